"""portal/aws/errors.classify and the two kinds of clients in portal/aws/session.

The first half classifies botocore exceptions built by hand. The second half puts a scripted AWS
behind real clients at the HTTP layer (a `before-send` hook that answers every request, no
emulator): botocore parses each answer as it would parse AWS's, and its retry machinery runs for
real, so the tests see how many requests a call really sends.
"""

from __future__ import annotations

import json
import types
from collections import deque
from datetime import UTC, datetime

import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ParamValidationError,
    ReadTimeoutError,
)

from portal.aws import organizations, session
from portal.aws.errors import (
    AwsError,
    NotFound,
    PermanentAwsError,
    TransientAwsError,
    UnknownOutcome,
    classify,
    while_account_is_new,
)

ENDPOINT = "https://organizations.us-east-1.amazonaws.com/"


def client_error(
    code: str,
    message: str = "AWS says no.",
    *,
    status: int = 400,
    operation="CreateAccount",
    **fields,
):
    """A ClientError shaped like botocore's parse of an AWS error answer (modeled fields, such as
    ConstraintViolationException's Reason, sit at the top level)."""
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {
            "HTTPStatusCode": status,
            "RequestId": "0c5b7e5e-0000-4000-8000-000000000000",
        },
        **fields,
    }
    return ClientError(response, operation)


# --- classify: AWS's error answers ------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    ["TooManyRequestsException", "ThrottlingException", "Throttling", "RequestLimitExceeded"],
)
@pytest.mark.parametrize("safe_to_repeat", [True, False])
def test_throttling_is_transient_even_for_a_call_that_is_not_safe_to_repeat(code, safe_to_repeat):
    # A throttled request was refused before any work: sending it again later is safe.
    error = classify(client_error(code, "Rate exceeded"), safe_to_repeat=safe_to_repeat)

    assert type(error) is TransientAwsError
    assert error.code == code
    assert error.operation == "CreateAccount"
    assert error.message == "Rate exceeded"
    assert error.permanent is False


def test_a_5xx_on_a_call_that_is_not_safe_to_repeat_is_an_unknown_outcome():
    error = classify(client_error("ServiceException", "Internal error", status=500), safe_to_repeat=False)

    assert type(error) is UnknownOutcome
    assert isinstance(error, TransientAwsError)
    assert error.code == "ServiceException"


def test_a_5xx_on_a_safe_call_is_merely_transient():
    error = classify(client_error("ServiceException", "Internal error", status=500), safe_to_repeat=True)

    assert type(error) is TransientAwsError


def test_a_5xx_with_a_code_the_portal_does_not_know_is_still_judged_by_its_status():
    unsafe = classify(client_error("SomethingBroke", status=503), safe_to_repeat=False)
    safe = classify(client_error("SomethingBroke", status=503), safe_to_repeat=True)

    assert type(unsafe) is UnknownOutcome
    assert type(safe) is TransientAwsError


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("AccessDeniedException", 400),
        ("AccessDenied", 403),
        ("ValidationException", 400),
        ("InvalidInputException", 400),
        ("AWSOrganizationsNotInUseException", 400),
    ],
)
@pytest.mark.parametrize("safe_to_repeat", [True, False])
def test_refusals_that_need_a_person_are_permanent(code, status, safe_to_repeat):
    error = classify(client_error(code, "Not allowed", status=status), safe_to_repeat=safe_to_repeat)

    assert type(error) is PermanentAwsError
    assert error.permanent is True
    assert error.code == code
    assert error.reason == ""


@pytest.mark.parametrize("code", ["AccountNotFoundException", "ResourceNotFoundException", "NoSuchEntity"])
def test_missing_things_are_not_found(code):
    error = classify(client_error(code, "No such thing", operation="DescribeAccount"))

    assert type(error) is NotFound
    assert isinstance(error, PermanentAwsError)
    assert error.operation == "DescribeAccount"


def test_an_account_creation_rate_constraint_is_transient_and_keeps_its_reason():
    error = classify(
        client_error(
            "ConstraintViolationException",
            "You have exceeded the allowed number of AWS accounts created in a period.",
            Reason="ACCOUNT_CREATION_RATE_LIMIT_EXCEEDED",
        ),
        safe_to_repeat=False,
    )

    assert type(error) is TransientAwsError
    assert error.reason == "ACCOUNT_CREATION_RATE_LIMIT_EXCEEDED"
    assert str(error) == (
        "CreateAccount: ConstraintViolationException (ACCOUNT_CREATION_RATE_LIMIT_EXCEEDED): "
        "You have exceeded the allowed number of AWS accounts created in a period."
    )


def test_the_account_number_limit_is_permanent_and_keeps_its_reason():
    error = classify(
        client_error(
            "ConstraintViolationException",
            "Account limit reached.",
            Reason="ACCOUNT_NUMBER_LIMIT_EXCEEDED",
        ),
        safe_to_repeat=False,
    )

    assert type(error) is PermanentAwsError
    assert error.reason == "ACCOUNT_NUMBER_LIMIT_EXCEEDED"
    assert error.code == "ConstraintViolationException"


def test_a_reason_inside_the_error_block_is_read_too():
    error = classify(
        ClientError(
            {
                "Error": {
                    "Code": "ConstraintViolationException",
                    "Message": "m",
                    "Reason": "CLOSE_ACCOUNT_QUOTA_EXCEEDED",
                },
                "ResponseMetadata": {"HTTPStatusCode": 400},
            },
            "CloseAccount",
        )
    )

    assert type(error) is TransientAwsError
    assert error.reason == "CLOSE_ACCOUNT_QUOTA_EXCEEDED"
    assert error.operation == "CloseAccount"


# --- classify: the network --------------------------------------------------------------------


@pytest.mark.parametrize(
    "lost", [ReadTimeoutError(endpoint_url=ENDPOINT), ConnectionClosedError(endpoint_url=ENDPOINT)]
)
def test_a_lost_answer_to_a_call_that_is_not_safe_to_repeat_is_an_unknown_outcome(lost):
    error = classify(lost, operation="CreateAccount", safe_to_repeat=False)

    assert type(error) is UnknownOutcome
    assert error.code == type(lost).__name__
    assert error.operation == "CreateAccount"


@pytest.mark.parametrize(
    "lost", [ReadTimeoutError(endpoint_url=ENDPOINT), ConnectionClosedError(endpoint_url=ENDPOINT)]
)
def test_a_lost_answer_to_a_safe_call_is_transient(lost):
    error = classify(lost, operation="ListAccounts", safe_to_repeat=True)

    assert type(error) is TransientAwsError


@pytest.mark.parametrize(
    "unreached",
    [EndpointConnectionError(endpoint_url=ENDPOINT), ConnectTimeoutError(endpoint_url=ENDPOINT)],
)
@pytest.mark.parametrize("safe_to_repeat", [True, False])
def test_a_request_that_never_left_is_transient_even_when_not_safe_to_repeat(unreached, safe_to_repeat):
    error = classify(unreached, operation="CreateAccount", safe_to_repeat=safe_to_repeat)

    assert type(error) is TransientAwsError
    assert error.code == type(unreached).__name__


@pytest.mark.parametrize("safe_to_repeat", [True, False])
def test_a_request_botocore_refuses_to_send_is_permanent(safe_to_repeat):
    # Parameter validation happens before anything is sent: neither an unknown outcome (nothing
    # to look up) nor worth retrying (the same request fails the same way).
    invalid = ParamValidationError(report='Missing required parameter in input: "Email"')

    error = classify(invalid, operation="CreateAccount", safe_to_repeat=safe_to_repeat)

    assert type(error) is PermanentAwsError
    assert error.code == "ParamValidationError"
    assert "Missing required parameter" in error.message


def test_an_already_classified_error_is_returned_as_is():
    original = UnknownOutcome("no answer", code="ReadTimeoutError", operation="CreateAccount")

    assert classify(original, safe_to_repeat=True) is original


def test_an_error_that_is_not_from_aws_is_raised_again():
    with pytest.raises(ZeroDivisionError):
        classify(ZeroDivisionError("a bug, not AWS"))


# --- The clients --------------------------------------------------------------------------------


class _Body:
    def __init__(self, payload: bytes):
        self._payload = payload

    def stream(self, **kwargs):
        yield self._payload


class ScriptedWire:
    """AWS at the HTTP layer: every request that leaves a client gets the next scripted answer,
    a (status, JSON body) pair or an exception raised where the HTTP library would raise it."""

    def __init__(self):
        self.answers: deque = deque()
        self.requests: list[str] = []  # operation of every request sent

    def __call__(self, request, event_name, **kwargs):
        self.requests.append(event_name.rsplit(".", 1)[-1])
        if not self.answers:
            raise AssertionError(f"Unscripted request: {event_name}")
        answer = self.answers.popleft()
        if isinstance(answer, BaseException):
            raise answer
        status, body = answer
        headers = {
            "Content-Type": "application/x-amz-json-1.1",
            "x-amzn-RequestId": "9f1e0c2a-0000-4000-8000-000000000000",
        }
        return AWSResponse(request.url, status, headers, _Body(json.dumps(body).encode()))


@pytest.fixture
def wire(monkeypatch, settings):
    """Real portal clients whose requests are answered by a ScriptedWire; botocore's retry sleeps
    are recorded instead of slept."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    settings.PORTAL_AWS_MANAGEMENT_ROLE_ARN = ""
    sleeps: list[float] = []
    monkeypatch.setattr(botocore.endpoint, "time", types.SimpleNamespace(sleep=sleeps.append))
    session.reset()
    scripted = ScriptedWire()
    scripted.sleeps = sleeps
    session.add_hook("before-send", scripted)
    yield scripted
    session.reset()


def _error_body(code: str, message: str, **fields) -> dict:
    return {"__type": code, "Message": message, **fields}


def _status_body(state: str, **fields) -> dict:
    return {
        "CreateAccountStatus": {
            "Id": "car-0123456789abcdef",
            "AccountName": "cs101-student-1a2b3c",
            "State": state,
            "RequestedTimestamp": datetime(2026, 9, 1, tzinfo=UTC).timestamp(),
            **fields,
        }
    }


def _create():
    return organizations.create_account(
        email="aws+cs101-student-1a2b3c@school.example.edu",
        account_name="cs101-student-1a2b3c",
        tags={"course": "cs101"},
        role_name="OrganizationAccountAccessRole",
    )


def test_the_client_for_calls_not_safe_to_repeat_has_botocore_retries_off():
    once = session.client("organizations", safe_to_repeat=False)
    safe = session.client("organizations")

    assert once is not safe
    assert once.meta.config.retries["mode"] == "standard"
    assert once.meta.config.retries["total_max_attempts"] == 1
    # botocore reads max_attempts=4 as four retries: five attempts in all.
    assert safe.meta.config.retries == {"mode": "standard", "total_max_attempts": 5}
    assert session.client("organizations", safe_to_repeat=False) is once  # cached: hooks and stubbers stick


def test_a_throttled_create_account_is_sent_once_and_is_transient(wire):
    wire.answers.append(
        (
            400,
            _error_body(
                "TooManyRequestsException",
                "AWS Organizations can't complete your request because another request is already in progress.",
                Type="OrganizationsRateLimit",
            ),
        )
    )

    with pytest.raises(TransientAwsError) as raised:
        _create()

    assert type(raised.value) is TransientAwsError
    assert raised.value.code == "TooManyRequestsException"
    assert wire.requests == ["CreateAccount"]
    assert wire.sleeps == []


def test_a_throttled_read_is_retried_by_botocore_until_it_succeeds(wire):
    throttled = (
        400,
        _error_body("TooManyRequestsException", "Rate exceeded", Type="OrganizationsRateLimit"),
    )
    wire.answers.extend([throttled, throttled, (200, _status_body("IN_PROGRESS"))])

    status = organizations.describe_create_status("car-0123456789abcdef")

    assert status.state == "IN_PROGRESS"
    assert status.request_id == "car-0123456789abcdef"
    assert wire.requests == ["DescribeCreateAccountStatus"] * 3
    assert len(wire.sleeps) == 2
    assert all(delay >= 0 for delay in wire.sleeps)


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("ACCOUNT_NUMBER_LIMIT_EXCEEDED", PermanentAwsError),
        ("ACCOUNT_CREATION_RATE_LIMIT_EXCEEDED", TransientAwsError),
    ],
)
def test_the_constraint_reason_on_the_wire_reaches_the_classified_error(wire, reason, kind):
    wire.answers.append(
        (
            400,
            _error_body("ConstraintViolationException", "You have exceeded a limit.", Reason=reason),
        )
    )

    with pytest.raises(AwsError) as raised:
        _create()

    assert type(raised.value) is kind
    assert raised.value.reason == reason
    assert raised.value.code == "ConstraintViolationException"
    assert raised.value.operation == "create_account"
    assert wire.requests == ["CreateAccount"]


def test_a_500_on_create_account_is_an_unknown_outcome_and_is_not_sent_again(wire):
    wire.answers.append(
        (
            500,
            _error_body(
                "ServiceException",
                "AWS Organizations can't complete your request because it encountered an internal error.",
            ),
        )
    )

    with pytest.raises(UnknownOutcome) as raised:
        _create()

    assert raised.value.code == "ServiceException"
    assert wire.requests == ["CreateAccount"]


def test_a_500_on_a_read_is_retried_then_transient(wire):
    failure = (500, _error_body("ServiceException", "internal error"))
    wire.answers.extend([failure] * 5)

    with pytest.raises(TransientAwsError) as raised:
        organizations.describe_create_status("car-0123456789abcdef")

    assert type(raised.value) is TransientAwsError
    assert wire.requests == ["DescribeCreateAccountStatus"] * 5
    assert len(wire.sleeps) == 4


def test_a_read_timeout_on_create_account_is_an_unknown_outcome_and_is_not_sent_again(wire):
    wire.answers.append(ReadTimeoutError(endpoint_url=ENDPOINT))

    with pytest.raises(UnknownOutcome) as raised:
        _create()

    assert raised.value.code == "ReadTimeoutError"
    assert raised.value.operation == "create_account"
    assert wire.requests == ["CreateAccount"]
    assert wire.sleeps == []


def test_a_read_timeout_on_a_read_is_retried(wire):
    wire.answers.extend(
        [
            ReadTimeoutError(endpoint_url=ENDPOINT),
            (200, _status_body("SUCCEEDED", AccountId="210987654321")),
        ]
    )

    status = organizations.describe_create_status("car-0123456789abcdef")

    assert status.state == "SUCCEEDED"
    assert status.account_id == "210987654321"
    assert wire.requests == ["DescribeCreateAccountStatus"] * 2


def test_no_connection_on_create_account_is_transient_not_unknown(wire):
    wire.answers.append(EndpointConnectionError(endpoint_url=ENDPOINT))

    with pytest.raises(TransientAwsError) as raised:
        _create()

    assert type(raised.value) is TransientAwsError
    assert raised.value.code == "EndpointConnectionError"
    assert wire.requests == ["CreateAccount"]


def test_access_denied_on_the_wire_is_permanent_and_not_retried(wire):
    wire.answers.append(
        (
            400,
            _error_body("AccessDeniedException", "You don't have permissions to access this resource."),
        )
    )

    with pytest.raises(PermanentAwsError) as raised:
        organizations.describe_create_status("car-0123456789abcdef")

    assert type(raised.value) is PermanentAwsError
    assert raised.value.code == "AccessDeniedException"
    assert wire.requests == ["DescribeCreateAccountStatus"]


def test_an_unknown_account_on_the_wire_is_not_found(wire):
    wire.answers.append(
        (
            400,
            _error_body("AccountNotFoundException", "You specified an account that doesn't exist."),
        )
    )

    with pytest.raises(NotFound) as raised:
        organizations.describe_account("111122223333")

    assert raised.value.code == "AccountNotFoundException"
    assert wire.requests == ["DescribeAccount"]


@pytest.mark.parametrize(
    "code", ["AccessDenied", "AccessDeniedException", "RegionDisabledException", "AssignmentFailed"]
)
def test_a_new_accounts_refusals_are_waits(code):
    refusal = PermanentAwsError("Not authorized.", code=code, operation="AssumeRole")

    settling = while_account_is_new(refusal)

    assert isinstance(settling, TransientAwsError)
    assert (settling.code, settling.operation) == (code, "AssumeRole")


@pytest.mark.parametrize("code", ["ValidationException", "NoSuchEntity", "ConstraintViolationException"])
def test_other_refusals_of_a_new_account_stay_permanent(code):
    refusal = PermanentAwsError("Invalid.", code=code, operation="CreateAccountAssignment")
    assert while_account_is_new(refusal) is refusal
