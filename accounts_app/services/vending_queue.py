"""The vending queue: accounts requested wait here until AWS's quotas let the portal send
CreateAccount, are followed until AWS has made them, and are adopted (never created twice) when
AWS already has them.

The queue never has more than PORTAL_AWS_MAX_CREATIONS_IN_PROGRESS creations in flight, nor sends
CreateAccount faster than PORTAL_AWS_CREATE_ACCOUNT_RATE (with a burst of
PORTAL_AWS_CREATE_ACCOUNT_BURST). Each step looks at AWS before it acts and is safe to run twice; a
created account goes on to `account_setup`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts_app import next_step
from accounts_app.choices import AccountState as S
from accounts_app.lifecycle import CREATION_STATES, transition
from accounts_app.models import AwsOrganization, MemberAccount
from accounts_app.services.guardrails import AwsNotBootstrapped, organization_ready
from accounts_app.services.identity import NotThePortals, account_adoption_check, account_tags
from portal.aws import organizations
from portal.aws.errors import AwsError, UnknownOutcome

logger = logging.getLogger(__name__)

# A CreateAccount whose answer was lost and that AWS does not list after this long never
# reached AWS; it is sent again (after looking once more).
LOST_REQUEST_GRACE = timedelta(minutes=2)
# The CreateAccount token bucket is replayed over this many refills of the portal's requests,
# and a request is taken to reach AWS up to ARRIVAL_MARGIN after it is timestamped.
RATE_HISTORY_FILLS = 10
ARRIVAL_MARGIN = timedelta(seconds=0.5)
# Plain-language explanations of CreateAccount failure reasons for the people who must act.
FAILURE_EXPLANATIONS = {
    "ACCOUNT_LIMIT_EXCEEDED": "The organization has reached its account quota. Ask AWS Support for a "
    "higher “Default maximum number of accounts” quota; the account is created once there is room.",
    "EMAIL_ALREADY_EXISTS": "Another AWS account, outside this organization, already uses this root email "
    "address. Change PORTAL_ROOT_EMAIL_PATTERN or free the address.",
    "INVALID_EMAIL": "AWS refused the root email address as invalid. Check PORTAL_ROOT_EMAIL_PATTERN.",
    "INVALID_ADDRESS": "AWS refused the management account's address. Fix it in the billing console.",
    "INVALID_IDENTITY_FOR_BUSINESS_VALIDATION": "AWS could not validate the organization's identity. "
    "Contact AWS Support.",
    "MISSING_BUSINESS_VALIDATION": "The management account has not finished AWS's business validation.",
    "MISSING_PAYMENT_INSTRUMENT": "The management account has no valid payment method.",
    "FAILED_BUSINESS_VALIDATION": "The management account failed AWS's business validation. Contact AWS Support.",
    "PENDING_BUSINESS_VALIDATION": "The management account's business validation is still pending.",
    "UNKNOWN_BUSINESS_VALIDATION": "AWS reported an unknown business-validation problem. Contact AWS Support.",
}
# Failure reasons after which the same request can simply be made again.
RETRYABLE_FAILURES = frozenset({"CONCURRENT_ACCOUNT_MODIFICATION", "INTERNAL_FAILURE"})


@dataclass(frozen=True)
class DispatchResult:
    submitted: int
    waiting: int
    retry_in: float | None  # seconds until the queue can move again, None when it is empty


def vending_dispatch() -> DispatchResult:
    """Send CreateAccount for as many queued accounts as AWS's quotas allow right now."""
    try:
        organization = organization_ready()
    except AwsNotBootstrapped:
        logger.info("Vending queue idle: the AWS organization is not set up yet.")
        return DispatchResult(0, MemberAccount.objects.filter(state=S.REQUESTED).count(), None)
    submitted = 0
    with transaction.atomic():
        # One dispatcher at a time, across every worker: the organization row is the lock.
        AwsOrganization.objects.select_for_update().get(pk=organization.pk)
        in_flight = MemberAccount.objects.filter(state=S.CREATING).count()
        allowed, _ = _create_account_allowance(timezone.now())
        slots = min(settings.PORTAL_AWS_MAX_CREATIONS_IN_PROGRESS - in_flight, allowed)
        queued = list(
            MemberAccount.objects.filter(state=S.REQUESTED)
            .select_related("course", "membership")
            .order_by("created_at")[: max(slots, 0)]
        )
        if queued:
            directory = _AwsDirectory()
            for account in queued:
                if transition(account, expected=S.REQUESTED, to=S.CREATING, reason="Leaving the queue"):
                    submitted += _submit_creation(account, directory)
    waiting = MemberAccount.objects.filter(state=S.REQUESTED).count()
    return DispatchResult(submitted, waiting, _next_dispatch_in() if waiting else None)


def _next_dispatch_in() -> float:
    allowed, wait = _create_account_allowance(timezone.now())
    if allowed:
        # Only creation slots are missing, and the poll that frees one dispatches at once:
        # this follow-up is a safety net.
        return settings.PORTAL_AWS_POLL_SECONDS
    return max(wait, 0.5)


def _create_account_allowance(now: datetime) -> tuple[int, float]:
    """(CreateAccount requests AWS would accept now, seconds until it accepts one more).

    AWS meters CreateAccount with a token bucket: PORTAL_AWS_CREATE_ACCOUNT_BURST tokens,
    refilled at PORTAL_AWS_CREATE_ACCOUNT_RATE per second, one per request. It is replayed here
    from the portal's own requests, wrong only on the safe side: the bucket is taken as empty
    RATE_HISTORY_FILLS refills ago, and refilled only until ARRIVAL_MARGIN ago, since a request
    reaches AWS a moment after it is timestamped. (Counting at most BURST requests per
    BURST/RATE seconds would also be safe, but holds back requests the bucket would take.)
    """
    rate, burst = settings.PORTAL_AWS_CREATE_ACCOUNT_RATE, settings.PORTAL_AWS_CREATE_ACCOUNT_BURST
    clock = now - timedelta(seconds=RATE_HISTORY_FILLS * burst / rate)
    tokens = 0.0
    sent = (
        MemberAccount.objects.filter(create_submitted_at__gt=clock)
        .order_by("create_submitted_at")
        .values_list("create_submitted_at", flat=True)
    )
    for at in sent:
        tokens = min(burst, tokens + rate * max((at - clock).total_seconds(), 0)) - 1
        clock = at
    available = min(burst, tokens + rate * max((now - ARRIVAL_MARGIN - clock).total_seconds(), 0))
    if available >= 1:
        return int(available), 0.0
    return 0, (clock + ARRIVAL_MARGIN - now).total_seconds() + (1 - tokens) / rate


class _AwsDirectory:
    """What the organization already holds, read once per dispatch round (two paginated lists)
    instead of once per account."""

    def __init__(self):
        self._accounts: dict[str, organizations.Account] | None = None
        self._statuses: dict[str, organizations.CreateStatus] | None = None

    def account_by_email(self, email: str) -> organizations.Account | None:
        if self._accounts is None:
            self._accounts = {a.email.lower(): a for a in organizations.list_accounts()}
        return self._accounts.get(email.lower())

    def creation_by_name(self, name: str) -> organizations.CreateStatus | None:
        if self._statuses is None:
            # Oldest first, so the newest request for a name wins.
            self._statuses = {s.account_name: s for s in organizations.list_create_statuses()}
        return self._statuses.get(name)


def _submit_creation(account: MemberAccount, directory: _AwsDirectory) -> int:
    """CreateAccount for an account just moved to CREATING, unless AWS already has it.
    Returns 1 if a request was sent."""
    if _adopt_from_aws(account, directory):
        return 0
    MemberAccount.objects.filter(pk=account.pk).update(
        create_submitted_at=timezone.now(), attempts=account.attempts + 1
    )
    try:
        status = organizations.create_account(
            email=account.root_email,
            account_name=account.account_name,
            tags=account_tags(account),
            role_name=settings.PORTAL_AWS_MEMBER_ROLE_NAME,
        )
    except UnknownOutcome as error:
        # AWS may have the request: the poll looks it up before anything is sent again.
        logger.warning("CreateAccount for %s: no answer (%s); will look it up", account.account_name, error)
        MemberAccount.objects.filter(pk=account.pk).update(last_error=f"Waiting for AWS to confirm: {error}")
        next_step.next_step_enqueue(account)
        return 1
    except AwsError as error:
        _creation_refused(account, error)
        return 1
    MemberAccount.objects.filter(pk=account.pk).update(create_request_id=status.request_id, last_error="")
    account.create_request_id = status.request_id
    next_step.next_step_enqueue(account)
    return 1


def _adopt_from_aws(account: MemberAccount, directory: _AwsDirectory, *, queue_poll: bool = True) -> bool:
    """Take over an account or creation request that AWS already has for this student.
    A request still in progress gets a poll queued unless `queue_poll` is False."""
    existing = directory.account_by_email(account.root_email)
    if existing is not None:
        account_adopt(account=account, aws_account_id=existing.id, reason="Found in the organization")
        return True
    status = directory.creation_by_name(account.account_name)
    if status is None:
        return False
    if status.state == "SUCCEEDED" and status.account_id:
        try:
            account_adoption_check(account, status.account_id)
        except NotThePortals as refusal:
            # Account names are not unique in AWS: this one is someone else's, is left alone, and
            # does not stop this record's own creation (its root email would).
            logger.warning("Not adopting %s for %s: %s", status.account_id, account.account_name, refusal)
            return False
        MemberAccount.objects.filter(pk=account.pk).update(create_request_id=status.request_id)
        account.create_request_id = status.request_id
        _take_account(account, status.account_id, reason="Creation request found")
        return True
    MemberAccount.objects.filter(pk=account.pk).update(create_request_id=status.request_id)
    account.create_request_id = status.request_id
    if queue_poll:
        next_step.next_step_enqueue(account)
    return True


def _creation_refused(account: MemberAccount, error: AwsError) -> None:
    if error.reason == "ACCOUNT_NUMBER_LIMIT_EXCEEDED":
        transition(
            account,
            expected=S.CREATING,
            to=S.WAITING_FOR_QUOTA,
            reason=error.message,
            last_error=FAILURE_EXPLANATIONS["ACCOUNT_LIMIT_EXCEEDED"],
        )
    elif not error.permanent:
        # Throttled, or five creations already in flight: back in the queue.
        transition(
            account,
            expected=S.CREATING,
            to=S.REQUESTED,
            reason=str(error),
            last_error=f"AWS asked us to slow down: {error.message}",
        )
    else:
        transition(
            account,
            expected=S.CREATING,
            to=S.FAILED,
            reason=str(error),
            last_error=f"AWS refused to create the account: {error.message}",
        )


# --- Waiting for creation -------------------------------------------------------------------------


def account_poll_creation(*, account_id: int) -> float | None:
    """Look at a creation in progress. Returns the seconds to wait before looking again, or
    None when the account has left CREATING (or is gone)."""
    account = MemberAccount.objects.select_related("course", "membership").filter(pk=account_id).first()
    if account is None or account.state != S.CREATING:
        return None
    if not account.create_request_id:
        return _resolve_unknown_creation(account)
    status = organizations.describe_create_status(account.create_request_id)
    if status.state == "IN_PROGRESS":
        return _poll_delay(account)
    if status.state == "SUCCEEDED":
        account_adopt(account=account, aws_account_id=status.account_id, reason="AWS finished creating the account")
    else:
        _creation_failed(account, status.failure_reason)
    next_step.vending_dispatch_enqueue()  # a creation slot is free
    return None


def _resolve_unknown_creation(account: MemberAccount) -> float | None:
    directory = _AwsDirectory()
    # The poll task schedules the next look from the delay returned here: no second poll queued.
    if _adopt_from_aws(account, directory, queue_poll=False):
        return _poll_delay(account) if not account.aws_account_id else None
    submitted = account.create_submitted_at or account.state_changed_at
    if timezone.now() - submitted < LOST_REQUEST_GRACE:
        return _poll_delay(account)
    # AWS never saw it: queue it again (the dispatcher looks once more before sending).
    transition(account, expected=S.CREATING, to=S.REQUESTED, reason="The creation request never reached AWS")
    next_step.vending_dispatch_enqueue()
    return None


def _poll_delay(account: MemberAccount) -> float:
    # A tenth of the time waited so far: AWS's answer is seen at most ~10% after it is ready,
    # and so is the creation slot it frees, at one or two more polls per account than a quarter.
    waited = (timezone.now() - (account.create_submitted_at or account.state_changed_at)).total_seconds()
    return min(max(settings.PORTAL_AWS_POLL_SECONDS, waited / 10), settings.PORTAL_AWS_POLL_MAX_SECONDS)


def account_adopt(*, account: MemberAccount, aws_account_id: str, reason: str) -> bool:
    """Give a record waiting for its account (queued or being created) the account AWS has for
    it, once the account's tags show it is this record's: an account found by root email, or made
    by a creation request found by name, could be anyone's. If it is not, the record fails with
    why and nothing in AWS is touched. Returns whether it was adopted."""
    try:
        account_adoption_check(account, aws_account_id)
    except NotThePortals as refusal:
        transition(
            account,
            expected=CREATION_STATES,
            to=S.FAILED,
            reason=str(refusal)[:1000],
            create_request_id="",
            last_error=str(refusal),
        )
        return False
    return _take_account(account, aws_account_id, reason=reason)


def _take_account(account: MemberAccount, aws_account_id: str, *, reason: str) -> bool:
    taken = transition(
        account,
        expected=CREATION_STATES,
        to=S.CONFIGURING,
        reason=f"{reason}: {aws_account_id}",
        aws_account_id=aws_account_id,
        last_error="",
    )
    if taken:
        next_step.next_step_enqueue(account)
    return taken


def _creation_failed(account: MemberAccount, failure_reason: str) -> None:
    if failure_reason == "EMAIL_ALREADY_EXISTS":
        # Our own earlier request may have created it (a lost answer): adopt it if its tags say
        # it is this record's.
        existing = organizations.find_account_by_email(account.root_email)
        if existing is not None:
            reason = "The account already existed in the organization"
            account_adopt(account=account, aws_account_id=existing.id, reason=reason)
            return
    if failure_reason in RETRYABLE_FAILURES:
        transition(account, expected=S.CREATING, to=S.REQUESTED, reason=failure_reason, create_request_id="")
        return
    if failure_reason == "ACCOUNT_LIMIT_EXCEEDED":
        transition(
            account,
            expected=S.CREATING,
            to=S.WAITING_FOR_QUOTA,
            reason=failure_reason,
            create_request_id="",
            last_error=FAILURE_EXPLANATIONS[failure_reason],
        )
        return
    explanation = FAILURE_EXPLANATIONS.get(failure_reason, f"AWS could not create the account ({failure_reason}).")
    transition(
        account, expected=S.CREATING, to=S.FAILED, reason=failure_reason, create_request_id="", last_error=explanation
    )
