"""No test reaches AWS: a request that nothing in the test answers fails before it leaves the
machine (`keep_requests_on_this_machine` in tests/support/aws_calls.py, on for every test)."""

import socket

import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber
from moto import mock_aws

from portal.aws import session
from tests.support.aws_calls import RealAwsRequest


@pytest.fixture(autouse=True)
def fresh_clients():
    session.reset()
    yield
    session.reset()


def test_a_call_nothing_answers_fails_naming_its_operation_and_address():
    with pytest.raises(RealAwsRequest) as refused:
        session.client("organizations").describe_organization()

    assert str(refused.value).startswith(
        "organizations DescribeOrganization would be sent to https://organizations.us-east-1.amazonaws.com:"
    )


def test_a_call_a_stubber_answers_is_not_stopped():
    organizations = session.client("organizations")
    with Stubber(organizations) as stubber:
        stubber.add_response("describe_organization", {"Organization": {"Id": "o-exampleorgid"}})

        assert organizations.describe_organization()["Organization"]["Id"] == "o-exampleorgid"


def test_a_call_moto_answers_is_not_stopped():
    with mock_aws():
        assert session.client("sts").get_caller_identity()["Account"] == "123456789012"


def test_a_request_for_an_emulator_on_this_machine_leaves(monkeypatch):
    # A port bound but not listening: the request gets as far as the connection, which is refused.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed.getsockname()[1]}")

        with pytest.raises(EndpointConnectionError):
            session.client("sts", safe_to_repeat=False).get_caller_identity()
