"""The vending queue: accounts requested wait here until AWS's quotas let the portal send
CreateAccount, are followed until AWS has made them, and are adopted (never created twice) when
AWS already has them.

The queue never has more than PORTAL_AWS_MAX_CREATIONS_IN_PROGRESS creations in flight, nor sends
CreateAccount faster than PORTAL_AWS_CREATE_ACCOUNT_RATE (with a burst of
PORTAL_AWS_CREATE_ACCOUNT_BURST). One run of the queue (`vending_dispatch`, the task of REQUESTED
and CREATING alike), under the queue's advisory lock (portal/locks.py: one run at a time, whatever
the number of workers and machines):

1. looks at every creation that is due: first once AWS has typically finished
   (PORTAL_AWS_CREATION_SECONDS after its request), then less and less often. When several are
   due, one ListCreateAccountStatus(IN_PROGRESS) says which still run; only the others are
   described (DescribeCreateAccountStatus), for their account id or their failure;
2. takes as many queued accounts as the quotas allow now (the slots of the creations just seen
   done included) and marks them sent; their CreateAccount requests then leave together, after
   the lock is let go, and each is first looked at PORTAL_AWS_CREATION_SECONDS after AWS took it;
3. writes when it must run again into its accounts' due times (a creation's next look, the
   queue's next token), and asks the broker for that run. Beat's due tick queues it from the
   database if the broker loses it.

Before CreateAccount, the run looks for an account with the record's root email in the
organization (one list per run), and, for a record whose request may have reached AWS before,
for its creation by account name too. A record is marked CREATING and sent
(`create_submitted_at`) in its own commit before its CreateAccount leaves: a worker killed right
after the request, or an answer lost, leaves a record that says so. A created account goes on to
`account_setup`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Min, Q
from django.utils import timezone

from accounts_app import next_step
from accounts_app.choices import AccountState as S
from accounts_app.lifecycle import CREATION_STATES, step_due, transition
from accounts_app.models import MemberAccount
from accounts_app.services.guardrails import AwsNotBootstrapped, organization_ready
from accounts_app.services.identity import NotThePortals, account_adoption_check, account_tags
from portal.aws import organizations
from portal.aws.errors import AwsError, TransientAwsError, UnknownOutcome
from portal.locks import VENDING_QUEUE, advisory_lock

logger = logging.getLogger(__name__)

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
    next_run_at: datetime | None  # when the queue can move again; None when nothing waits or runs

    @property
    def retry_in(self) -> float | None:
        """Seconds until the next run, from now."""
        return None if self.next_run_at is None else (self.next_run_at - timezone.now()).total_seconds()


def vending_dispatch() -> DispatchResult:
    """One run of the queue: look at the creations that are due, send CreateAccount for as many
    queued accounts as AWS's quotas allow right now, and schedule the next run."""
    try:
        organization_ready()
    except AwsNotBootstrapped:
        logger.info("Vending queue idle: the AWS organization is not set up yet.")
        return DispatchResult(0, MemberAccount.objects.filter(state=S.REQUESTED).count(), None)
    with advisory_lock(VENDING_QUEUE):
        directory = _AwsDirectory()
        _poll_due_creations(directory)
        claimed = _claim_queued(directory)
    # Counted against the quotas and committed as sent: the requests leave outside the lock, so
    # that the next run's looks do not wait for AWS's answers.
    refused = _send_creations(claimed)
    result = _next_run(len(claimed), after_refusal=refused)
    if result.next_run_at is not None:
        next_step.queue_wake(S.REQUESTED, at=result.next_run_at)
    return result


def _claim_queued(directory: _AwsDirectory) -> list[MemberAccount]:
    """The oldest queued accounts, as many as the quotas allow, moved to CREATING and marked as
    sent; those AWS turns out to have already are adopted instead."""
    in_flight = MemberAccount.objects.filter(state=S.CREATING).count()
    allowed, _ = _create_account_allowance(timezone.now())
    slots = min(settings.PORTAL_AWS_MAX_CREATIONS_IN_PROGRESS - in_flight, allowed)
    queued = list(
        MemberAccount.objects.filter(state=S.REQUESTED)
        .select_related("course", "membership")
        .order_by("created_at")[: max(slots, 0)]
    )
    claimed = []
    for account in queued:
        if not transition(account, expected=S.REQUESTED, to=S.CREATING, reason="Leaving the queue"):
            continue
        if _found_in_aws(account, directory):
            continue
        now = timezone.now()
        # Committed before the request leaves: the rate's replay counts it, and a worker killed
        # while it is on its way leaves a record that says to look before sending again.
        MemberAccount.objects.filter(pk=account.pk).update(
            create_submitted_at=now,
            attempts=F("attempts") + 1,
            next_attempt_at=now + timedelta(seconds=settings.PORTAL_AWS_CREATION_SECONDS),
        )
        account.create_submitted_at = now
        claimed.append(account)
    return claimed


def _next_run(submitted: int, *, after_refusal: bool) -> DispatchResult:
    """When the queue can move again: the next creation due for a look, or, for accounts still
    queued, the next token of the rate (a creation slot frees only when a look sees it done;
    after AWS throttled a request, PORTAL_AWS_POLL_SECONDS at the soonest). The queued accounts
    are due a grace period after it: beat's tick runs the queue then if the broker lost the run."""
    now = timezone.now()
    waiting = MemberAccount.objects.filter(state=S.REQUESTED)
    creating = MemberAccount.objects.filter(state=S.CREATING)
    next_look = creating.aggregate(at=Min("next_attempt_at"))["at"]
    moments = [next_look] if next_look is not None else []
    count = waiting.count()
    if count and creating.count() < settings.PORTAL_AWS_MAX_CREATIONS_IN_PROGRESS:
        _, wait = _create_account_allowance(now)  # 0 while a token is left
        if after_refusal:
            wait = max(wait, settings.PORTAL_AWS_POLL_SECONDS)
        moments.append(now + timedelta(seconds=wait))
    next_run_at = min(moments) if moments else None
    if count and next_run_at is not None:
        waiting.update(next_attempt_at=step_due(next_run_at))
    return DispatchResult(submitted, count, next_run_at)


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
    """What the organization already holds, read at most once per run of the queue (paginated
    lists) instead of once per account."""

    def __init__(self):
        self._accounts: dict[str, organizations.Account] | None = None
        self._statuses: dict[str, organizations.CreateStatus] | None = None
        self._running: set[str] | None = None

    def account_by_email(self, email: str) -> organizations.Account | None:
        if self._accounts is None:
            self._accounts = {a.email.lower(): a for a in organizations.list_accounts()}
        return self._accounts.get(email.lower())

    def creation_by_name(self, name: str) -> organizations.CreateStatus | None:
        if self._statuses is None:
            # Oldest first, so the newest request for a name wins.
            self._statuses = {s.account_name: s for s in organizations.list_create_statuses()}
        return self._statuses.get(name)

    def running_requests(self) -> set[str]:
        """The ids of the creation requests AWS is still working on: one short list (AWS runs
        at most a few creations at once), or the longer one if this run read it already."""
        if self._running is None:
            if self._statuses is not None:
                statuses = list(self._statuses.values())
            else:
                statuses = list(organizations.list_create_statuses(states=("IN_PROGRESS",)))
            self._running = {s.request_id for s in statuses if s.state == "IN_PROGRESS"}
        return self._running


def _found_in_aws(account: MemberAccount, directory: _AwsDirectory) -> bool:
    """Whether AWS already has the account or its creation (then adopted or followed)."""
    # A request sent before (its answer lost, or the record back in the queue since) may have
    # reached AWS: look for its creation and its account. A record never sent may still find an
    # account with its root email (a restored database, an account made by hand).
    if account.create_submitted_at is not None:
        return _adopt_from_aws(account, directory)
    existing = directory.account_by_email(account.root_email)
    if existing is None:
        return False
    account_adopt(account=account, aws_account_id=existing.id, reason="Found in the organization")
    return True


def _send_creations(claimed: list[MemberAccount]) -> bool:
    """CreateAccount for each claimed account, together. Returns whether AWS sent one back to
    the queue (throttled)."""
    if not claimed:
        return False
    requests = [
        organizations.NewAccount(
            email=account.root_email,
            account_name=account.account_name,
            tags=account_tags(account),
            role_name=settings.PORTAL_AWS_MEMBER_ROLE_NAME,
        )
        for account in claimed
    ]
    refused = False
    for account, answer in zip(claimed, organizations.create_accounts(requests), strict=True):
        if isinstance(answer, UnknownOutcome):
            # AWS may have the request: its first look, when it is due, looks it up by name.
            logger.warning("CreateAccount for %s: no answer (%s); will look it up", account.account_name, answer)
            MemberAccount.objects.filter(pk=account.pk).update(last_error=f"Waiting for AWS to confirm: {answer}")
        elif isinstance(answer, AwsError):
            _creation_refused(account, answer)
            refused = refused or account.state == S.REQUESTED
        else:
            MemberAccount.objects.filter(pk=account.pk, state=S.CREATING).update(
                create_request_id=answer.request_id, last_error="", next_attempt_at=_first_look(account, answer)
            )
            account.create_request_id = answer.request_id
    return refused


def _first_look(account: MemberAccount, answer: organizations.CreateStatus) -> datetime:
    """When AWS has typically finished: PORTAL_AWS_CREATION_SECONDS after it took the request,
    by its own timestamp (the record's is a moment earlier). Whatever the clocks say, AWS took it
    after it was sent, at most ARRIVAL_MARGIN after, and before its answer came back (now)."""
    answered = timezone.now()
    sent = account.create_submitted_at or answered
    taken = min(max(answer.requested_at or sent, sent), sent + ARRIVAL_MARGIN, answered)
    return taken + timedelta(seconds=settings.PORTAL_AWS_CREATION_SECONDS)


def _adopt_from_aws(account: MemberAccount, directory: _AwsDirectory) -> bool:
    """Take over an account or creation request that AWS already has for this student. A
    request still in progress is looked at soon (it started at a time the record does not know)."""
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
    look = timezone.now() + timedelta(seconds=settings.PORTAL_AWS_POLL_SECONDS)
    MemberAccount.objects.filter(pk=account.pk).update(create_request_id=status.request_id, next_attempt_at=look)
    account.create_request_id = status.request_id
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


def _poll_due_creations(directory: _AwsDirectory) -> None:
    """Look at every creation whose look is due (or that has no due time, from before there
    were any). One that AWS did not answer about is looked at again a little later."""
    due = list(
        MemberAccount.objects.filter(state=S.CREATING)
        .filter(Q(next_attempt_at__lte=timezone.now()) | Q(next_attempt_at=None))
        .select_related("course", "membership")
        .order_by("next_attempt_at")
    )
    with_request = [account for account in due if account.create_request_id]
    for account in due:
        try:
            if not account.create_request_id:
                _resolve_unknown_creation(account, directory)
            elif len(with_request) > 1 and account.create_request_id in directory.running_requests():
                _look_again(account)
            else:
                _creation_look(account)
        except TransientAwsError as error:
            logger.warning("Creation of %s not looked at: %s", account.account_name, error)
            _look_again(account, settings.PORTAL_AWS_POLL_SECONDS)


def _creation_look(account: MemberAccount) -> None:
    status = organizations.describe_create_status(account.create_request_id)
    if status.state == "IN_PROGRESS":
        _look_again(account)
    elif status.state == "SUCCEEDED":
        account_adopt(account=account, aws_account_id=status.account_id, reason="AWS finished creating the account")
    else:
        _creation_failed(account, status.failure_reason)


def _resolve_unknown_creation(account: MemberAccount, directory: _AwsDirectory) -> None:
    """A creation whose request id the record lacks (its answer was lost, or its worker died):
    found by name or root email, looked at again a while, or sent again once AWS has had the
    time to list it."""
    if _adopt_from_aws(account, directory):
        return
    submitted = account.create_submitted_at or account.state_changed_at
    if timezone.now() - submitted < timedelta(seconds=settings.PORTAL_AWS_LOST_REQUEST_SECONDS):
        _look_again(account)
        return
    # AWS never saw it: back in the queue, which looks once more before sending (this same run).
    transition(account, expected=S.CREATING, to=S.REQUESTED, reason="The creation request never reached AWS")


def _look_again(account: MemberAccount, delay: float | None = None) -> None:
    """The creation's next look is due after `delay` seconds (by default `_poll_delay`)."""
    seconds = _poll_delay(account) if delay is None else delay
    MemberAccount.objects.filter(pk=account.pk, state=S.CREATING).update(
        next_attempt_at=timezone.now() + timedelta(seconds=seconds)
    )


def _poll_delay(account: MemberAccount) -> float:
    # A tenth of the time waited so far: AWS's answer is seen at most ~10% after it is ready,
    # and so is the creation slot it frees, at one or two more looks per account than a quarter.
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
