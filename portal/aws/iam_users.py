"""IAM users inside a member account (the access mode without Identity Center), reached through
the member account's organization role."""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

from portal.aws import cleanup_iam
from portal.aws.errors import NotFound, PermanentAwsError, classify
from portal.aws.session import client

POLICY_NAME = "classroom-cloud-guardrails"
PASSWORD_LENGTH = 20


def _call(account_id: str, operation: str, **params: Any) -> dict:
    api = client("iam", account_id=account_id)
    try:
        return getattr(api, operation)(**params)
    except Exception as error:
        raise classify(error, operation=operation) from error


def new_password() -> str:
    """A password that satisfies IAM's default and strict password policies."""
    alphabet = string.ascii_letters + string.digits + "!@#$%^&*()-_=+"
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(PASSWORD_LENGTH))
        if (
            any(c.islower() for c in password)
            and any(c.isupper() for c in password)
            and any(c.isdigit() for c in password)
            and any(not c.isalnum() for c in password)
        ):
            return password


def ensure_user(account_id: str, user_name: str, tags: dict[str, str]) -> None:
    try:
        _call(account_id, "get_user", UserName=user_name)
        return
    except NotFound:
        pass
    try:
        _call(
            account_id,
            "create_user",
            UserName=user_name,
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )
    except PermanentAwsError as error:
        if error.code != "EntityAlreadyExists":
            raise


def has_login_profile(account_id: str, user_name: str) -> bool:
    try:
        _call(account_id, "get_login_profile", UserName=user_name)
        return True
    except NotFound:
        return False


def set_first_password(account_id: str, user_name: str) -> str:
    """Give the user a new console password that must be changed at first sign-in, whether or
    not they had one (a lost password is replaced, never recovered). Returns the password."""
    password = new_password()
    params = {"UserName": user_name, "Password": password, "PasswordResetRequired": True}
    if has_login_profile(account_id, user_name):
        _call(account_id, "update_login_profile", **params)
    else:
        try:
            _call(account_id, "create_login_profile", **params)
        except PermanentAwsError as error:
            if error.code != "EntityAlreadyExists":
                raise
            _call(account_id, "update_login_profile", **params)
    return password


def put_guardrail_policy(account_id: str, user_name: str, document: dict) -> None:
    _call(
        account_id,
        "put_user_policy",
        UserName=user_name,
        PolicyName=POLICY_NAME,
        PolicyDocument=json.dumps(document),
    )


def ensure_account_alias(account_id: str, alias: str) -> str:
    """The account's alias: the existing one if it has one, else `alias`."""
    existing = _call(account_id, "list_account_aliases")["AccountAliases"]
    if existing:
        return existing[0]
    _call(account_id, "create_account_alias", AccountAlias=alias)
    return alias


def delete_user(account_id: str, user_name: str) -> None:
    """Delete an IAM user and whatever IAM refuses to delete it without (a student may have added
    an MFA device, keys or group memberships of their own). Safe to repeat; a user already gone is
    fine."""
    try:
        cleanup_iam.delete_user(account_id, user_name)
    except NotFound:
        pass
