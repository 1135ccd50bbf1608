"""Proving that the portal can act inside a member account."""

from portal.aws.errors import classify
from portal.aws.session import client


def caller_account(account_id: str) -> str:
    """The account id STS reports for the member role: equal to `account_id` when access works."""
    try:
        return client("sts", account_id=account_id).get_caller_identity()["Account"]
    except Exception as error:
        raise classify(error, operation="GetCallerIdentity") from error
