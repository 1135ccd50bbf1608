"""Recycling: a cleaned account goes back to the organization's pool for another course.

The account leaves its course entirely: it moves to the pool OU, its tags are the pool's and
nothing else, its budget and freeze are removed. Its record stays with the course, the student and their costs (state
RECYCLED); a new record without a course takes the account into the pool. Costs lag by up to a
day and are revised for days, so the new record waits out a billing cool-down before anyone can
have it, and costs are split between the records by day (`costs_since`).

Nothing goes to the pool that the next student would inherit: before anything changes, every
region enabled in the account is listed afresh (cleanup.pool_check, whatever region the cleanup
passes were limited to) and anything found keeps the account out, failed, for a person.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts_app.choices import AccountOrigin, AuditAction
from accounts_app.choices import AccountState as S
from accounts_app.lifecycle import transition
from accounts_app.models import MemberAccount
from accounts_app.services.audit import audit_record
from accounts_app.services.cleanup import found_by_region, pool_check
from accounts_app.services.gates import Action, StateRefused, action_gate
from accounts_app.services.guardrails import freeze_policy_id, organization_ready
from accounts_app.services.identity import pool_tags
from accounts_app.services.ownership import MANAGED_BY_TAG, NotOurs
from portal.aws import budgets as aws_budgets
from portal.aws import organizations
from portal.aws.errors import PermanentAwsError
from portal.aws.guardrails import MANAGED_BUDGET_PREFIX


def cooldown_end(now: datetime) -> datetime:
    """Midnight (UTC, Cost Explorer's day) after the cool-down: the next holder's costs start on
    a day of their own."""
    later = (now + timedelta(days=settings.PORTAL_RECYCLE_COOLDOWN_DAYS)).astimezone(UTC)
    return datetime.combine(later.date() + timedelta(days=1), time.min, tzinfo=UTC)


def account_recycle(*, account_id: int) -> MemberAccount | None:
    """Put a cleaned account into the organization's pool. Returns the pool record (None: the
    record is gone, or the account went elsewhere)."""
    account = MemberAccount.objects.select_related("course").filter(pk=account_id).first()
    if account is None:
        return None
    if account.state != S.CLEANING:
        return MemberAccount.objects.filter(aws_account_id=account.aws_account_id, course=None).first()
    organization = organization_ready()
    aws_account_id = account.aws_account_id
    if account.origin == AccountOrigin.INVITED:
        # Its root user is the student's own: whoever got it next would share it with them.
        message = (
            f"AWS account {aws_account_id} is the student's own (invited into the organization): its root user is "
            "theirs, so it is not given to another student. Return it to them or handle it by hand."
        )
        transition(account, expected=S.CLEANING, to=S.FAILED, reason=message, last_error=message)
        return None
    try:
        action_gate(account, action=Action.RECYCLE, organization=organization)
    except StateRefused:
        return None  # moved on meanwhile (another worker recycled it, or a person failed it)
    except NotOurs as error:
        if not _moved_to_pool_already(aws_account_id, organization):
            transition(account, expected=S.CLEANING, to=S.FAILED, reason=str(error)[:1000], last_error=str(error))
            return None
    if refusal := _left_for_the_next_student(account):
        transition(account, expected=S.CLEANING, to=S.FAILED, reason=refusal[:1000], last_error=refusal)
        return None
    organizations.detach_policy(freeze_policy_id(), aws_account_id)
    aws_budgets.delete_budget(organization.management_account_id, f"{MANAGED_BUDGET_PREFIX}{aws_account_id}")
    organizations.move_account(aws_account_id, organization.pool_ou_id)
    # Only the pool's tags: a tag of the old course or its student would follow the account to
    # the next (and cost allocation tags would count its spend for the old course).
    organizations.set_account_tags(aws_account_id, pool_tags(account))
    available = cooldown_end(timezone.now())
    with transaction.atomic():
        if not transition(account, expected=S.CLEANING, to=S.RECYCLED, reason="Returned to the organization's pool"):
            return None
        pooled = MemberAccount.objects.create(
            course=None,
            membership=None,
            state=S.COOLING_DOWN,
            origin=account.origin,
            aws_account_id=aws_account_id,
            root_email=account.root_email,
            account_name=f"pool-{aws_account_id}",
            available_from=available,
            costs_since=available.date(),
        )
        audit_record(
            actor=None,
            action=AuditAction.ACCOUNT_RECYCLED,
            course=account.course,
            target=account,
            summary=f"Returned {account.account_name} ({aws_account_id}) to the pool; "
            f"usable from {available:%b %-d, %Y}",
        )
    return pooled


def _left_for_the_next_student(account: MemberAccount) -> str:
    """Why the account must not go to the pool ("" when it may): what a fresh listing of every
    enabled region found, region by region, or why the listing could not be made."""
    try:
        found = pool_check(account)
    except PermanentAwsError as error:
        return (
            f"Not returned to the pool: AWS refused the check of its regions ({error.message}). Fix that; then Retry."
        )
    if not found:
        return ""
    limited = (
        f" Cleanup works only in PORTAL_CLEANUP_REGIONS ({', '.join(settings.PORTAL_CLEANUP_REGIONS)})."
        if settings.PORTAL_CLEANUP_REGIONS
        else ""
    )
    return (
        f"Not returned to the pool: {len(found)} resource(s) left, which the next student would inherit. "
        f"{found_by_region(found)}{limited} Delete them by hand; then Retry."
    )


def _moved_to_pool_already(account_id: str, organization) -> bool:
    """An earlier run moved the account to the pool OU and died before its record changed: the
    account is still the portal's (in its pool OU, with its tag), and the retry carries on."""
    if organizations.parent_id(account_id) != organization.pool_ou_id:
        return False
    key, value = next(iter(MANAGED_BY_TAG.items()))
    return organizations.account_tags(account_id).get(key) == value


def pool_release_cooled(*, now: datetime | None = None) -> int:
    """Accounts whose cool-down is over become available to any course."""
    now = now or timezone.now()
    released = 0
    for account in MemberAccount.objects.filter(state=S.COOLING_DOWN, available_from__lte=now):
        released += transition(account, expected=S.COOLING_DOWN, to=S.POOLED, reason="Cool-down over")
    return released
