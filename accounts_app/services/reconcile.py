"""The reconciler (run by beat): compares the database with AWS and repairs what it can.

It closes every gap a crash or a lost broker message can open: accounts whose next step (in
lifecycle.SCHEDULED_STATES) is overdue past what beat's due tick allows get that step queued
again and are reported, creations whose answer was lost are looked up, orphan accounts in the
organization with a record's root email are adopted once their tags show they are that record's,
the account quota is read again (AWS Support may have raised it), accounts waiting for the quota
or the school directory are tried again, frozen accounts have what they run stopped again (AWS
restarts a stopped database after seven days), and whatever cannot be repaired is listed for
administrators.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts_app import next_step
from accounts_app.choices import AccountState as S
from accounts_app.lifecycle import (
    CREATION_STATES,
    ORGANIZATION_CHECKED_STATES,
    SCHEDULED_STATES,
    step_due,
    transition,
)
from accounts_app.models import AwsOrganization, MemberAccount
from accounts_app.services.access_roles import brought_access_roles_check
from accounts_app.services.freezing import freeze_reconcile
from accounts_app.services.guardrails import AwsNotBootstrapped, organization_ready
from accounts_app.services.handover import handover_timeouts
from accounts_app.services.spending import spending_reconcile
from accounts_app.services.staff_access import staff_access_reconcile
from accounts_app.services.vending_queue import account_adopt
from portal.aws import organizations, quotas

logger = logging.getLogger(__name__)

# Beat's due tick queues every step whose due time has come, every PORTAL_DUE_TICK_SECONDS, and
# moves its due time on: a step overdue by this many ticks was not picked up (beat down, the tick
# failing, or a record from before due times, which has none: its last change stands for it).
STUCK_AFTER_TICKS = 4


def stuck_after() -> timedelta:
    """How far past its due time an account's next step is stuck."""
    return timedelta(seconds=STUCK_AFTER_TICKS * settings.PORTAL_DUE_TICK_SECONDS)


def reconcile() -> list[str]:
    """Repair and report. Returns the drift found (also saved for the administrator page)."""
    try:
        organization = organization_ready()
    except AwsNotBootstrapped:
        return []
    aws_accounts = list(organizations.list_accounts())
    drift = _requeue_stuck(timezone.now())
    _account_limit_refresh(organization)
    _retry_waiting(accounts_in_use=len(aws_accounts))
    drift += _compare_with_aws(aws_accounts)
    drift += staff_access_reconcile(organization)
    drift += freeze_reconcile()
    drift += spending_reconcile()
    drift += handover_timeouts()
    drift += brought_access_roles_check()
    AwsOrganization.objects.filter(pk=organization.pk).update(
        last_reconciled_at=timezone.now(), drift=drift, accounts_in_organization=len(aws_accounts)
    )
    return drift


def stuck_accounts(now: datetime) -> QuerySet[MemberAccount]:
    """The accounts whose next step is overdue by more than `stuck_after()`."""
    stale = now - stuck_after()
    return MemberAccount.objects.filter(state__in=SCHEDULED_STATES).filter(
        Q(next_attempt_at__lt=stale) | Q(next_attempt_at=None, state_changed_at__lt=stale)
    )


def _requeue_stuck(now: datetime) -> list[str]:
    """Queue again the step of every stuck account, and say so: a run that finds some means the
    due tick did not run for a while."""
    stuck = list(stuck_accounts(now).select_related("handover").order_by("pk"))
    stepped = [account for account in stuck if account.state not in next_step.QUEUES]
    for account in stepped:
        next_step.next_step_enqueue(account)
    MemberAccount.objects.filter(pk__in=[account.pk for account in stepped]).update(next_attempt_at=step_due(now))
    # A queue's task is queued again whenever an account waits in it: its accounts wait their turn.
    for queue in next_step.QUEUES:
        if MemberAccount.objects.filter(state=queue).exists():
            next_step.queue_enqueue(queue)
    if not stuck:
        return []
    names = ", ".join(account.account_name for account in stuck[:5]) + (", …" if len(stuck) > 5 else "")
    overdue = f"{len(stuck)} account(s) had their next step overdue by more than {stuck_after().total_seconds():g} s"
    return [f"{overdue} ({names}): queued again. If this comes back at every run, beat's steps-due job is not running."]


def _retry_waiting(*, accounts_in_use: int) -> None:
    for account in MemberAccount.objects.filter(state=S.WAITING_FOR_DIRECTORY):
        if transition(
            account, expected=S.WAITING_FOR_DIRECTORY, to=S.CONFIGURING, reason="Checking the directory again"
        ):
            next_step.next_step_enqueue(account)
    waiting_for_quota = MemberAccount.objects.filter(state=S.WAITING_FOR_QUOTA)
    # Every account in the organization counts, closed ones too (AWS keeps them 90 days).
    if waiting_for_quota.exists() and accounts_in_use < account_limit():
        for account in waiting_for_quota:
            transition(account, expected=S.WAITING_FOR_QUOTA, to=S.REQUESTED, reason="The organization has room again")
        next_step.vending_dispatch_enqueue()


def _account_limit_refresh(organization: AwsOrganization) -> None:
    """Keep the organization's account quota as AWS says it is now; where Service Quotas cannot
    tell, the last value read (or PORTAL_AWS_ACCOUNT_LIMIT) stands."""
    limit = quotas.account_limit()
    if limit is None or limit == organization.account_limit:
        return
    logger.info("Account quota changed from %s to %s", organization.account_limit, limit)
    AwsOrganization.objects.filter(pk=organization.pk).update(account_limit=limit)


def account_limit() -> int:
    return AwsOrganization.load().account_limit or settings.PORTAL_AWS_ACCOUNT_LIMIT


def _compare_with_aws(aws_accounts: list[organizations.Account]) -> list[str]:
    drift: list[str] = []
    known = {a.aws_account_id: a for a in MemberAccount.objects.exclude(aws_account_id=None)}
    by_email = {a.root_email.lower(): a for a in MemberAccount.objects.filter(aws_account_id=None)}
    for aws_account in aws_accounts:
        if aws_account.id in known:
            continue
        orphan_of = by_email.get(aws_account.email.lower())
        if orphan_of is not None:
            _adopt_orphan(orphan_of, aws_account, drift)
        elif _looks_like_ours(aws_account.email):
            drift.append(f"Account {aws_account.id} ({aws_account.email}) has a portal root email but no record.")
    in_organization = {a.id for a in aws_accounts}
    for account_id, account in known.items():
        if account.state in ORGANIZATION_CHECKED_STATES and account_id not in in_organization:
            drift.append(
                f"{account.account_name} ({account_id}) is {account.get_state_display().lower()} here "
                "but not in the organization."
            )
    return drift


def _adopt_orphan(account: MemberAccount, aws_account: organizations.Account, drift: list[str]) -> None:
    if account.state not in CREATION_STATES:
        drift.append(
            f"{aws_account.id} ({aws_account.email}) has the root email of {account.account_name}, which is "
            f"{account.get_state_display().lower()} without an account id."
        )
        return
    reason = f"Adopted {aws_account.id}, found in the organization by its root email"
    if not account_adopt(account=account, aws_account_id=aws_account.id, reason=reason):
        account.refresh_from_db()
        if account.state == S.FAILED:
            drift.append(f"{account.account_name}: {account.last_error}")


def _looks_like_ours(email: str) -> bool:
    prefix = settings.PORTAL_ROOT_EMAIL_PATTERN.split("{", 1)[0].lower()
    domain = settings.PORTAL_ROOT_EMAIL_PATTERN.rsplit("@", 1)[-1].lower()
    return email.lower().startswith(prefix) and email.lower().endswith("@" + domain)
