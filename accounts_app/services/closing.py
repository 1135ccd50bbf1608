"""The close queue: cleaned accounts closed within AWS's CloseAccount quotas.

AWS allows 3 closures in progress, one CloseAccount every 20 seconds, and max(250, 20% of the
organization's members) closures per rolling 30 days. The portal counts its own closures against
these limits (`close_submitted_at`) so it never asks for what AWS would refuse; when AWS refuses
anyway (CLOSE_ACCOUNT_QUOTA_EXCEEDED: other tools close accounts too), the queue pauses for a
while: back pressure, not failure. The queue lives in the database, so it survives restarts;
a closing account is followed from PENDING_CLOSURE to SUSPENDED.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts_app import next_step
from accounts_app.choices import AccountState as S
from accounts_app.choices import AuditAction
from accounts_app.lifecycle import step_due, transition
from accounts_app.models import AwsOrganization, MemberAccount
from accounts_app.selectors import close_queue_status
from accounts_app.services.audit import audit_record
from accounts_app.services.gates import REFUSED, Action, action_gate
from accounts_app.services.guardrails import AwsNotBootstrapped, organization_ready
from accounts_app.services.notifications import email_send
from portal.aws import organizations
from portal.aws.errors import PermanentAwsError, TransientAwsError, UnknownOutcome

logger = logging.getLogger(__name__)

# A CloseAccount whose answer was lost and whose account is still ACTIVE this long after was
# never received: the account goes back to the queue.
LOST_REQUEST_GRACE = timedelta(minutes=2)
CLOSED_STATES = frozenset({"SUSPENDED", "CLOSED"})
# Seconds between looks at a closing account: AWS takes minutes to hours.
CLOSURE_POLL_SECONDS = 5 * 60


# --- Dispatching ----------------------------------------------------------------------------------


def close_dispatch(*, now: datetime | None = None) -> float | None:
    """Close as many queued accounts as the quotas allow now. Returns seconds until the queue can
    move again, or None when it is empty; the queued accounts are due a grace period after that
    (beat's due tick runs the queue then if the broker lost its run)."""
    now = now or timezone.now()
    try:
        organization = organization_ready()
    except AwsNotBootstrapped:
        return None
    retry_in = _close_dispatch(organization, now)
    if retry_in is not None:
        MemberAccount.objects.filter(state=S.CLOSE_QUEUED).update(next_attempt_at=step_due(now, retry_in))
    return retry_in


def _close_dispatch(organization: AwsOrganization, now: datetime) -> float | None:
    with transaction.atomic():
        # One dispatcher at a time, across every worker: the organization row is the lock.
        organization = AwsOrganization.objects.select_for_update().get(pk=organization.pk)
        status = close_queue_status(now)
        if not status.queued:
            return None
        if status.paused_until:
            return (status.paused_until - now).total_seconds()
        wait = _rate_wait(now)
        slots = min(settings.PORTAL_AWS_MAX_CLOSURES_IN_PROGRESS - status.in_progress, status.quota_left)
        if wait > 0 or slots <= 0:
            return max(wait, settings.PORTAL_AWS_POLL_SECONDS)
        account = (
            MemberAccount.objects.filter(state=S.CLOSE_QUEUED)
            .select_related("course", "membership")
            .order_by("state_changed_at", "pk")
            .first()
        )
        _close_one(account, organization, now)
    return settings.PORTAL_AWS_CLOSE_ACCOUNT_INTERVAL


def _rate_wait(now: datetime) -> float:
    last = MemberAccount.objects.exclude(close_submitted_at=None).order_by("-close_submitted_at").first()
    if last is None:
        return 0.0
    return settings.PORTAL_AWS_CLOSE_ACCOUNT_INTERVAL - (now - last.close_submitted_at).total_seconds()


def _close_one(account: MemberAccount, organization: AwsOrganization, now: datetime) -> None:
    try:
        action_gate(account, action=Action.CLOSE, organization=organization)
    except REFUSED as error:
        transition(account, expected=S.CLOSE_QUEUED, to=S.FAILED, reason=str(error)[:1000], last_error=str(error))
        return
    aws_account = organizations.describe_account(account.aws_account_id)
    if aws_account.state in CLOSED_STATES | {"PENDING_CLOSURE"}:
        # Already closing (an earlier request whose answer was lost): follow it.
        if transition(
            account,
            expected=S.CLOSE_QUEUED,
            to=S.CLOSING,
            reason=f"AWS shows it {aws_account.state}",
            close_submitted_at=now,
        ):
            next_step.next_step_enqueue(account)
        return
    if not transition(
        account, expected=S.CLOSE_QUEUED, to=S.CLOSING, reason="CloseAccount sent", close_submitted_at=now
    ):
        return
    try:
        organizations.close_account(account.aws_account_id)
    except UnknownOutcome:
        pass  # the poll looks at the account's state
    except TransientAwsError as error:
        _back_to_queue(account, organization, error)
        return
    except PermanentAwsError as error:
        message = f"AWS refused to close the account: {error.message}"
        transition(
            account,
            expected=S.CLOSING,
            to=S.FAILED,
            reason=str(error)[:1000],
            last_error=message,
            close_submitted_at=None,
        )
        return
    audit_record(
        actor=None,
        action=AuditAction.ACCOUNT_CLOSE_REQUESTED,
        course=account.course,
        target=account,
        summary=f"Asked AWS to close {account.account_name} ({account.aws_account_id})",
    )
    next_step.next_step_enqueue(account)


def _back_to_queue(account: MemberAccount, organization: AwsOrganization, error: TransientAwsError) -> None:
    """AWS did not take the request: it does not count against the quota, and the account waits."""
    transition(account, expected=S.CLOSING, to=S.CLOSE_QUEUED, reason=str(error)[:1000], close_submitted_at=None)
    if error.reason == "CLOSE_ACCOUNT_QUOTA_EXCEEDED":
        until = timezone.now() + timedelta(hours=settings.PORTAL_AWS_CLOSE_QUOTA_BACKOFF_HOURS)
        AwsOrganization.objects.filter(pk=organization.pk).update(
            close_paused_until=until,
            close_pause_reason="AWS says the organization has used its closure quota for the last 30 days "
            "(accounts closed outside the portal count too). Closures resume by themselves.",
        )
        logger.warning("Close queue paused until %s: %s", until, error)


# --- Following a closure --------------------------------------------------------------------------


def account_poll_closure(*, account_id: int) -> float | None:
    """Look at a closing account. Returns seconds until the next look, None when done (or the
    record is gone)."""
    account = MemberAccount.objects.select_related("course", "membership").filter(pk=account_id).first()
    if account is None or account.state != S.CLOSING:
        return None
    aws_account = organizations.find_account(account.aws_account_id)
    # Closed accounts leave the organization's list after 90 days: gone counts as closed.
    if aws_account is None or aws_account.state in CLOSED_STATES:
        _closed(account)
        return None
    if aws_account.state == "PENDING_CLOSURE":
        return CLOSURE_POLL_SECONDS
    submitted = account.close_submitted_at or account.state_changed_at
    if timezone.now() - submitted < LOST_REQUEST_GRACE:
        return settings.PORTAL_AWS_POLL_SECONDS
    transition(
        account,
        expected=S.CLOSING,
        to=S.CLOSE_QUEUED,
        reason="The close request never reached AWS",
        close_submitted_at=None,
    )
    next_step.close_dispatch_enqueue()
    return None


def _closed(account: MemberAccount) -> None:
    with transaction.atomic():
        if not transition(account, expected=S.CLOSING, to=S.CLOSED, reason="AWS suspended the account"):
            return
        audit_record(
            actor=None,
            action=AuditAction.ACCOUNT_CLOSED,
            course=account.course,
            target=account,
            summary=f"Closed {account.account_name} ({account.aws_account_id})",
        )
    if account.membership_id:
        email_send("account_closed", {"account": account, "course": account.course}, [account.membership.email])
    next_step.close_dispatch_enqueue()  # a closure slot is free
