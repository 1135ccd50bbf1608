"""AWS Account Management, called from the management account with trusted access: the
alternate contacts AWS writes to about billing and operations, and the move of a member
account's root email address (its handover to a student)."""

from __future__ import annotations

from typing import Any

from portal.aws.errors import NotFound, classify
from portal.aws.session import client


def _call(operation: str, **params: Any) -> dict:
    try:
        return getattr(client("account"), operation)(**params)
    except Exception as error:
        raise classify(error, operation=operation) from error


def alternate_contact(account_id: str, kind: str) -> dict | None:
    """The BILLING, OPERATIONS or SECURITY contact of a member account, or None."""
    try:
        return _call("get_alternate_contact", AccountId=account_id, AlternateContactType=kind)["AlternateContact"]
    except NotFound:
        return None


def set_alternate_contact(account_id: str, *, kind: str, name: str, email: str, phone: str, title: str) -> None:
    """Set the contact unless it already says exactly this (a write AWS records as a change)."""
    wanted = {"Name": name, "EmailAddress": email, "PhoneNumber": phone, "Title": title}
    current = alternate_contact(account_id, kind) or {}
    if all(current.get(key) == value for key, value in wanted.items()):
        return
    _call("put_alternate_contact", AccountId=account_id, AlternateContactType=kind, **wanted)


def primary_email(account_id: str) -> str:
    return _call("get_primary_email", AccountId=account_id)["PrimaryEmail"]


def start_primary_email_update(account_id: str, email: str) -> str:
    """Send a one-time code to `email`; the root email changes once the code is accepted.
    Asking again sends a new code. Returns AWS's status (PENDING)."""
    return _call("start_primary_email_update", AccountId=account_id, PrimaryEmail=email)["Status"]


def accept_primary_email_update(account_id: str, email: str, code: str) -> str:
    """Make `email` the root email with the code sent to it. Returns AWS's status (ACCEPTED)."""
    return _call("accept_primary_email_update", AccountId=account_id, PrimaryEmail=email, Otp=code)["Status"]
