"""Is this AWS account the portal's to act on? Asked before every call that changes an account.

The database can say a record belongs to a course; only AWS can say the account it names is
still where the portal put it. An account is the portal's when AWS shows it in the OU its record
expects (its course's, or the pool's; while it is handed over, also the leaving OU) and carrying
the portal's `managed-by` tag. Anything else (an account moved by hand, a record pointing at the
management account, an id typed by someone) is refused before the call.
"""

from __future__ import annotations

from accounts_app.choices import AccountState
from accounts_app.models import AwsOrganization, MemberAccount
from portal.aws import organizations

MANAGED_BY_TAG = {"managed-by": "classroom-cloud-portal"}


class NotOurs(Exception):
    """The account is not provably the portal's to act on; the message says why."""


def expected_parent(account: MemberAccount, organization: AwsOrganization) -> str:
    return account.course.aws_ou_id if account.course_id else organization.pool_ou_id


def allowed_parents(account: MemberAccount, organization: AwsOrganization) -> list[str]:
    """Where the account may be: its expected parent; while it is handed over, also the portal's
    leaving OU (the handover moves it there for the student's root tasks, and a cancelled handover
    moves it back)."""
    parents = [expected_parent(account, organization)]
    if account.state == AccountState.HANDOVER and organization.leaving_ou_id:
        parents.append(organization.leaving_ou_id)
    return [parent for parent in parents if parent]


def ownership_check(account: MemberAccount, organization: AwsOrganization) -> None:
    """Raise NotOurs unless AWS shows the account in its course's OU with the portal's tag."""
    account_id = account.aws_account_id
    if not account_id or account_id == organization.management_account_id:
        raise NotOurs("The record has no member account id.")
    parent = organizations.parent_id(account_id)
    wanted = allowed_parents(account, organization)
    if parent not in wanted:
        raise NotOurs(
            f"AWS account {account_id} is in {parent}, not in {' or '.join(wanted) or 'a known OU'}: the portal "
            "deletes and closes nothing outside its own OUs. Move it back or handle it by hand."
        )
    key, value = next(iter(MANAGED_BY_TAG.items()))
    if organizations.account_tags(account_id).get(key) != value:
        raise NotOurs(
            f"AWS account {account_id} lacks the tag {key}={value}: the portal deletes and closes "
            "only accounts it tagged as its own."
        )
