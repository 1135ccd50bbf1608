"""Accounts as the portal leaves them in AWS, and a guard that fails on any AWS call.

`place_as_configured` puts an account made straight in moto (quicker than vending it) where
vending puts it: in its course's OU, with the portal's tags; the gate of every AWS action asks
for both. `NoAwsCalls` stops every botocore API call in the process, wherever its client was
made, and keeps a list of them: a test that must prove some code makes no AWS call asserts the
list is empty.
"""

from __future__ import annotations

import pytest
from botocore.client import BaseClient

from accounts_app.models import MemberAccount
from accounts_app.services.guardrails import course_guardrails_apply
from accounts_app.services.identity import account_tags
from portal.aws import organizations


def place_as_configured(account: MemberAccount) -> MemberAccount:
    """Move the account into its course's OU (made if needed) and tag it as vending does."""
    course = account.course
    if not course.aws_ou_id:
        course_guardrails_apply(actor=None, course=course)
    organizations.move_account(account.aws_account_id, course.aws_ou_id)
    organizations.tag_account(account.aws_account_id, account_tags(account))
    return account


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
