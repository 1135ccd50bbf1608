"""Cached clients are signed with the right account's credentials, and never with expired ones.

moto never expires credentials: AssumeRole's answer is edited (a botocore event hook on the
portal's base session) so that its Expiration follows a clock moved on by hand, as AWS's does.
"""

from __future__ import annotations

import gc
from datetime import timedelta

import pytest
from django.utils import timezone
from moto import mock_aws

from portal.aws import session
from tests.support.aws_script import Clock

ACCOUNTS = [f"1111{n:08d}" for n in range(8)]
LIFETIME = timedelta(hours=1)


class CredentialLedger:
    """Which account and expiry AWS gave each access key, and which key signed each call."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self.issued: dict[str, tuple[str, object]] = {}
        self.signed: list[tuple[str, object]] = []  # (access key, time of signing)

    def on_assume_role(self, parsed, **kwargs):
        credentials = parsed["Credentials"]
        credentials["Expiration"] = self.clock.now + LIFETIME
        account = parsed["AssumedRoleUser"]["Arn"].split(":")[4]
        self.issued[credentials["AccessKeyId"]] = (account, credentials["Expiration"])

    def on_sign(self, request_signer, **kwargs):
        self.signed.append((request_signer._credentials.access_key, self.clock.now))

    def account_and_expiry_of_last_call(self):
        access_key, signed_at = self.signed[-1]
        account, expiry = self.issued[access_key]
        return account, expiry, signed_at


@pytest.fixture
def ledger(settings, monkeypatch):
    settings.PORTAL_AWS_MANAGEMENT_ROLE_ARN = ""
    clock = Clock()
    monkeypatch.setattr(timezone, "now", clock)
    ledger = CredentialLedger(clock)
    with mock_aws():
        session.reset()
        # Registered on the base session before any client exists: the STS client that assumes
        # roles inherits it.
        session.base_session().events.register("after-call.sts.AssumeRole", ledger.on_assume_role)
        session.add_hook("before-sign", ledger.on_sign)
        yield ledger
        session.reset()


def caller_account(account_id: str) -> str:
    return session.client("sts", account_id=account_id).get_caller_identity()["Account"]


def test_sessions_created_and_discarded_never_lend_their_clients_to_another_account(ledger):
    for _ in range(3):
        for account_id in ACCOUNTS:
            assert caller_account(account_id) == account_id
            signer, _, _ = ledger.account_and_expiry_of_last_call()
            assert signer == account_id
            # The role refused its old sessions (access_role.py): the session is dropped and freed,
            # and the next account's session may be given its memory.
            session.forget_member_session(account_id)
            gc.collect()


def test_no_call_is_signed_with_expired_credentials_however_often_they_are_renewed(ledger):
    assumed_before = len(ledger.issued)
    for _ in range(30):
        for account_id in ACCOUNTS[:3]:
            assert caller_account(account_id) == account_id
            signer, expiry, signed_at = ledger.account_and_expiry_of_last_call()
            assert signer == account_id
            assert expiry - session.CREDENTIAL_MARGIN > signed_at
        ledger.clock.advance(timedelta(minutes=7))
    # 210 minutes with one-hour credentials renewed five minutes early: renewed, not reassumed per call.
    renewals = len(ledger.issued) - assumed_before
    assert 3 * 4 <= renewals <= 3 * 5


def test_renewed_credentials_take_their_old_clients_with_them(ledger):
    first = session.client("sts", account_id=ACCOUNTS[0])
    assert session.client("sts", account_id=ACCOUNTS[0]) is first
    ledger.clock.advance(LIFETIME - session.CREDENTIAL_MARGIN)

    renewed = session.client("sts", account_id=ACCOUNTS[0])

    assert renewed is not first
    assert first not in session._clients.values()
