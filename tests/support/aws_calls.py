"""Accounts as the portal leaves them in AWS, and guards on the calls that reach it.

`place_as_configured` puts an account made straight in moto (quicker than vending it) where
vending puts it: in its course's OU, with the portal's tags; the gate of every AWS action asks
for both. `students_ready_account` makes the persona student's such account. `NoAwsCalls` stops
every botocore API call in the process, wherever its client was made, and keeps a list of them: a
test that must prove some code makes no AWS call asserts the list is empty.
`keep_requests_on_this_machine`, on for every test (conftest.py), stops the requests nothing in
the test answered before they leave for AWS.
"""

from __future__ import annotations

from contextvars import ContextVar
from urllib.parse import urlsplit

import pytest
from botocore.client import BaseClient
from botocore.endpoint import Endpoint

from accounts_app.choices import AccountState
from accounts_app.models import Course, MemberAccount, Membership
from accounts_app.services.guardrails import course_guardrails_apply
from accounts_app.services.identity import account_tags
from portal.aws import organizations
from portal.aws.emulator import is_loopback
from portal.aws.session import client


def place_as_configured(account: MemberAccount) -> MemberAccount:
    """Move the account into its course's OU (made if needed) and tag it as vending does."""
    course = account.course
    if not course.aws_ou_id:
        course_guardrails_apply(actor=None, course=course)
    organizations.move_account(account.aws_account_id, course.aws_ou_id)
    organizations.tag_account(account.aws_account_id, account_tags(account))
    return account


def students_ready_account(personas, course: Course | None = None) -> MemberAccount:
    """The persona student's ready account in `course` (the personas' by default), made in moto
    and placed where vending puts it."""
    email = "aws+cs101-student@school.example"
    created = client("organizations").create_account(Email=email, AccountName="cs101-student")
    record = MemberAccount.objects.create(
        course=course or personas.course,
        membership=Membership.objects.get(user=personas.student),
        state=AccountState.READY,
        root_email=email,
        account_name="cs101-student",
        aws_account_id=created["CreateAccountStatus"]["AccountId"],
    )
    return place_as_configured(record)


class AwsCallMade(AssertionError):
    """Raised at an AWS API call where none may be made."""


class NoAwsCalls:
    """Every botocore API call fails with AwsCallMade and is listed in `calls` as
    (service, operation). It patches `BaseClient._make_api_call`, which every call of every
    client goes through (the portal's hooked clients, and the STS client that assumes the member
    role alike), so no call escapes, whatever catches the exception."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.calls: list[tuple[str, str]] = []

        def refuse(client: BaseClient, operation_name: str, api_params: dict):
            self.calls.append((client.meta.service_model.service_name, operation_name))
            raise AwsCallMade(f"AWS was called: {operation_name}")

        monkeypatch.setattr(BaseClient, "_make_api_call", refuse)


class RealAwsRequest(AssertionError):
    """Raised where botocore would send a request to an address that may be AWS itself."""


# The operation this thread (or task) is sending, for RealAwsRequest's message.
_operation_in_flight: ContextVar[str] = ContextVar("operation_in_flight", default="A request")


def keep_requests_on_this_machine(patch: pytest.MonkeyPatch) -> None:
    """Fail every request botocore would send to an address other than this machine's.

    Those answered in process never get that far: moto's mock and a test's own before-send hooks
    answer at the `before-send` event, and a Stubber at `before-call`, before any request is
    made. botocore calls `Endpoint._send` only when no hook answered: what reaches it is on its
    way out, to AWS itself with whatever credentials the machine has, or to a network tests must
    not need. Loopback addresses stay open, by address rather than by a marker on the tests that
    use them: the browser and reliability tests talk to moto's server on 127.0.0.1 over HTTP, and
    stay guarded against a client that would miss it.
    """
    make_request, send = Endpoint.make_request, Endpoint._send

    def noting_the_operation(endpoint: Endpoint, operation_model, request_dict: dict):
        name = f"{operation_model.service_model.service_name} {operation_model.name}"
        token = _operation_in_flight.set(name)
        try:
            return make_request(endpoint, operation_model, request_dict)
        finally:
            _operation_in_flight.reset(token)

    def sending_only_to_this_machine(endpoint: Endpoint, request):
        if not is_loopback(request.url):
            address = urlsplit(request.url)
            raise RealAwsRequest(
                f"{_operation_in_flight.get()} would be sent to {address.scheme}://{address.netloc}:"
                " tests never reach AWS. Answer it with moto (the aws fixture or mock_aws), a"
                " botocore Stubber, or a before-send hook (portal.aws.session.add_hook)."
            )
        return send(endpoint, request)

    patch.setattr(Endpoint, "make_request", noting_the_operation)
    patch.setattr(Endpoint, "_send", sending_only_to_this_machine)
