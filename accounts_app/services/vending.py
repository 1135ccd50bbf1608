"""Vending: one AWS account per student, created (or taken from the course pool, or invited),
placed in the course OU, tagged, and opened to the student.

Each step looks at AWS before it acts and is safe to run twice; the account's state moves only
through lifecycle.transition(). The queue never has more than
PORTAL_AWS_MAX_CREATIONS_IN_PROGRESS creations in flight, nor sends CreateAccount faster than
PORTAL_AWS_CREATE_ACCOUNT_RATE (with a burst of PORTAL_AWS_CREATE_ACCOUNT_BURST).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts_app import naming, tasks
from accounts_app.choices import AccessMode, AccountOrigin, AuditAction, CourseRole
from accounts_app.choices import AccountState as S
from accounts_app.crypto import encrypt
from accounts_app.lifecycle import CLOSURE_STATES, CREATION_STATES, transition
from accounts_app.models import (
    AccountEvent,
    AwsOrganization,
    Course,
    MemberAccount,
    Membership,
    OrganizationInvitation,
)
from accounts_app.services.access_roles import UnsafeAccessRole, access_role_secure
from accounts_app.services.audit import audit_record
from accounts_app.services.guardrails import (
    AwsNotBootstrapped,
    course_guardrails_apply,
    course_profile,
    organization_ready,
)
from accounts_app.services.identity import (
    NotThePortals,
    account_adoption_check,
    account_claim_check,
    account_tags,
)
from accounts_app.services.identity_access import assignment_ensure, identity_user_for
from accounts_app.services.ownership import MANAGED_BY_TAG, NotOurs
from portal.aws import account_mgmt, iam_users, organizations, sts
from portal.aws.errors import (
    AwsError,
    NotFound,
    PermanentAwsError,
    TransientAwsError,
    UnknownOutcome,
    while_account_is_new,
)
from portal.aws.guardrails import iam_user_policy

logger = logging.getLogger(__name__)

# A CreateAccount whose answer was lost and that AWS does not list after this long never
# reached AWS; it is sent again (after looking once more).
LOST_REQUEST_GRACE = timedelta(minutes=2)
# The CreateAccount token bucket is replayed over this many refills of the portal's requests,
# and a request is taken to reach AWS up to ARRIVAL_MARGIN after it is timestamped.
RATE_HISTORY_FILLS = 10
ARRIVAL_MARGIN = timedelta(seconds=0.5)
# An invitation stays open this long at AWS; an older one is never taken as the portal's own.
HANDSHAKE_LIFETIME = timedelta(days=15)
# A handshake proven the portal's (its stored id, or its reference) is taken while open, or once
# the student accepted it before the portal read AWS's answer; never one found by account id alone.
OWN_HANDSHAKE_STATES = frozenset({"REQUESTED", "OPEN", "ACCEPTED"})
# AWS's invitation quota is counted over a rolling day.
INVITATION_WINDOW = timedelta(hours=24)
# After AWS refused an invitation for the daily quota, the next one waits this long.
RATE_LIMITED_PAUSE = timedelta(hours=1)
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


class VendingError(Exception):
    """A request the portal refuses; the message is for the person who asked."""


# --- Names ----------------------------------------------------------------------------------------


def _slug(text: str, length: int) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:length].strip("-")


def student_key(email: str) -> str:
    """A short, stable, readable key for a student: their mailbox name and a hash of the address."""
    digest = hashlib.sha256(email.lower().encode()).hexdigest()[:6]
    return f"{_slug(email.split('@')[0], 16)}-{digest}"


def course_key(course: Course) -> str:
    """The course in root emails and account names: its code for people, its id for uniqueness.
    A code can be freed and taken by a new course; the id cannot, so the new course's students
    never get an old student's root email or account name (nor, looked up, their account)."""
    return f"{_slug(course.code, 16)}-{course.pk}"


def root_email_for(course: Course, student: str) -> str:
    """Within AWS's 64 characters; a longer address is shortened with a hash (naming.py)."""
    return naming.root_email(settings.PORTAL_ROOT_EMAIL_PATTERN, course=course_key(course), student=student)


def account_name_for(course: Course, student: str) -> str:
    """Within AWS's 50 characters; a longer name is shortened with a hash (naming.py)."""
    return naming.account_name(course=course_key(course), student=student)


# --- Requests from people -------------------------------------------------------------------------


def _new_account(course: Course, membership: Membership | None, key: str) -> MemberAccount:
    return MemberAccount(
        course=course,
        membership=membership,
        root_email=root_email_for(course, key),
        account_name=account_name_for(course, key),
    )


@transaction.atomic
def account_request(*, actor, membership: Membership) -> MemberAccount:
    """Give a student an account: their existing request, one from the course pool, or a new
    one in the vending queue. Asking twice returns the same account."""
    membership = Membership.objects.select_for_update().select_related("course").get(pk=membership.pk)
    existing = MemberAccount.objects.filter(membership=membership).first()
    if existing is not None:
        return existing
    if membership.role != CourseRole.STUDENT:
        raise VendingError("Only students get an AWS account for the course.")
    if membership.course.is_archived:
        raise VendingError("This course is archived: no new AWS accounts.")

    pooled = _pooled_account(membership.course)
    if pooled is not None:
        MemberAccount.objects.filter(pk=pooled.pk).update(course=membership.course, membership=membership)
        pooled.course, pooled.membership = membership.course, membership
        transition(pooled, expected=S.POOLED, to=S.CONFIGURING, actor=actor, reason="Taken from the pool")
        _audit_request(actor, pooled, "from the pool")
        _enqueue_configure(pooled)
        return pooled

    account = _new_account(membership.course, membership, student_key(membership.email))
    account.save()
    _audit_request(actor, account, "queued for creation")
    enqueue_dispatch()
    return account


def _pooled_account(course: Course) -> MemberAccount | None:
    """An account ready for a student: one pre-created for the course, else a recycled one from
    the organization's pool (whose cool-down is over, or it would not be POOLED)."""
    free = MemberAccount.objects.select_for_update(skip_locked=True).filter(membership__isnull=True, state=S.POOLED)
    return free.filter(course=course).first() or free.filter(course=None).order_by("available_from", "pk").first()


def course_provision_all(*, actor, course: Course) -> int:
    """Request an account for every student of the course who has none. Returns how many."""
    students = Membership.objects.filter(course=course, role=CourseRole.STUDENT, aws_account__isnull=True)
    count = 0
    for membership in students:
        account_request(actor=actor, membership=membership)
        count += 1
    return count


@transaction.atomic
def course_precreate(*, actor, course: Course, count: int) -> list[MemberAccount]:
    """Queue `count` accounts for the course pool, ready before students ask."""
    if not 1 <= count <= 500:
        raise VendingError("Pre-create between 1 and 500 accounts at a time.")
    # Numbered after every pool account the course ever had, taken by a student or not: a
    # count of the accounts still in the pool would reuse the name of one already taken.
    prefix = account_name_for(course, "pool-")
    names = MemberAccount.objects.filter(course=course, account_name__startswith=prefix).values_list(
        "account_name", flat=True
    )
    numbers = [name[len(prefix):] for name in names]
    taken = max((int(number) for number in numbers if number.isdigit()), default=0)
    accounts = MemberAccount.objects.bulk_create(
        [_new_account(course, None, f"pool-{taken + i + 1:03d}") for i in range(count)]
    )
    audit_record(
        actor=actor,
        action=AuditAction.ACCOUNTS_PRECREATED,
        course=course,
        target=course,
        summary=f"Queued {count} account(s) for the pool",
    )
    enqueue_dispatch()
    return accounts


@transaction.atomic
def account_bring_existing(*, actor, membership: Membership, aws_account_id: str) -> MemberAccount:
    """Ask to bring a student's own AWS account into the course instead of a new one.

    The request waits for an instructor's approval before anything reaches AWS: the invitation
    goes to whatever account id the student typed, and spends one of the few invitations AWS lets
    the organization send a day. Approving sends it (account_bring_approve); the student then
    accepts it and creates the access role, and only then is the account configured. Approving
    later, once the account has joined, would leave an unvetted account in the organization.
    """
    if not re.fullmatch(r"\d{12}", aws_account_id):
        raise VendingError("An AWS account id is 12 digits, as shown in the console's account menu.")
    membership = Membership.objects.select_for_update().select_related("course").get(pk=membership.pk)
    if membership.role != CourseRole.STUDENT:
        raise VendingError("Only students get an AWS account for the course.")
    if membership.course.is_archived:
        raise VendingError("This course is archived: no new AWS accounts.")
    if MemberAccount.objects.filter(membership=membership).exists():
        raise VendingError("You already have an AWS account for this course.")
    asked = MemberAccount.objects.filter(brought_by=membership).count()
    if asked >= settings.PORTAL_BRING_REQUESTS_PER_STUDENT:
        raise VendingError(
            f"You have asked to bring an existing account {asked} times in this course, the most the "
            "school allows. Request a new account instead, or ask your instructor."
        )
    if MemberAccount.objects.filter(aws_account_id=aws_account_id).exists():
        raise VendingError("That AWS account is already registered with the portal.")
    key = student_key(membership.email)
    account = MemberAccount.objects.create(
        course=membership.course,
        membership=membership,
        brought_by=membership,
        origin=AccountOrigin.INVITED,
        state=S.AWAITING_APPROVAL,
        aws_account_id=aws_account_id,
        # Never used as a root email; numbered so that a declined request leaves room for the next.
        root_email=f"existing-{aws_account_id}-{asked + 1}@{key}.invalid",
        account_name=account_name_for(membership.course, key),
    )
    _audit_request(actor, account, f"asks to bring existing account {aws_account_id}; waiting for an instructor")
    return account


def account_bring_approve(*, actor, account: MemberAccount) -> bool:
    """An instructor lets the portal invite a student's own account. False if it was decided."""
    with transaction.atomic():
        if not transition(
            account, expected=S.AWAITING_APPROVAL, to=S.INVITING, actor=actor, reason="Approved by an instructor"
        ):
            return False
        audit_record(
            actor=actor,
            action=AuditAction.ACCOUNT_BRING_APPROVED,
            course=account.course,
            target=account,
            summary=f"Approved bringing AWS account {account.aws_account_id} for {account.membership.email}",
        )
        tasks.account_invite_task.delay_on_commit(account.pk)
    return True


def account_bring_decline(*, actor, account: MemberAccount) -> bool:
    """An instructor turns down a request to bring an account: one waiting for approval, or one
    that failed before the account joined the organization. The student may then request a new
    account or bring another (the request still counts against their cap). False if it cannot
    be declined (any more)."""
    with transaction.atomic():
        account = MemberAccount.objects.select_for_update(of=("self",)).select_related("membership").get(pk=account.pk)
        if not account.bring_declinable:
            return False
        student, aws_account_id = account.membership.email, account.aws_account_id
        transition(
            account,
            expected=account.state,
            to=S.DECLINED,
            actor=actor,
            reason=f"Declined by an instructor: {aws_account_id}",
            # The record stays as history of the request; the student's place and the account
            # id are freed.
            membership=None,
            aws_account_id=None,
            handshake_id="",
        )
        audit_record(
            actor=actor,
            action=AuditAction.ACCOUNT_BRING_DECLINED,
            course=account.course,
            target=account,
            summary=f"Declined bringing AWS account {aws_account_id} for {student}",
        )
    return True


def account_retry(*, actor, account: MemberAccount) -> bool:
    """Send a failed account back to the step it failed in."""
    failed_in = (
        AccountEvent.objects.filter(account=account, to_state=S.FAILED)
        .order_by("-created_at", "-id")
        .values_list("from_state", flat=True)
        .first()
    )
    if failed_in == S.CLEANING:
        resume = S.CLEANING
    elif failed_in in CLOSURE_STATES:
        resume = S.CLOSE_QUEUED
    elif account.origin == AccountOrigin.INVITED:
        resume = S.INVITING if not account.handshake_id else S.INVITED
    else:
        resume = S.CONFIGURING if account.aws_account_id else S.REQUESTED
    with transaction.atomic():
        moved = transition(account, expected=S.FAILED, to=resume, actor=actor, reason="Retry", last_error="")
        if moved:
            audit_record(
                actor=actor,
                action=AuditAction.ACCOUNT_RETRIED,
                course=account.course,
                target=account,
                summary=f"Retried {account.account_name} from “{S(resume).label}”",
            )
            if resume == S.CLOSE_QUEUED:
                from accounts_app.tasks import close_dispatch_task

                close_dispatch_task.delay_on_commit()
            else:
                enqueue_next_step(account)
    return moved


def _audit_request(actor, account: MemberAccount, how: str) -> None:
    who = account.membership.email if account.membership_id else "the pool"
    audit_record(
        actor=actor,
        action=AuditAction.ACCOUNT_REQUESTED,
        course=account.course,
        target=account,
        summary=f"AWS account for {who}: {how}",
    )


# --- The vending queue ----------------------------------------------------------------------------


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
            MemberAccount.objects.filter(state=S.REQUESTED).select_related("course", "membership").order_by("created_at")[: max(slots, 0)]
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
    MemberAccount.objects.filter(pk=account.pk).update(create_submitted_at=timezone.now(), attempts=account.attempts + 1)
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
        _enqueue_poll(account)
        return 1
    except AwsError as error:
        _creation_refused(account, error)
        return 1
    MemberAccount.objects.filter(pk=account.pk).update(create_request_id=status.request_id, last_error="")
    account.create_request_id = status.request_id
    _enqueue_poll(account)
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
        _enqueue_poll(account)
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
        transition(account, expected=S.CREATING, to=S.REQUESTED, reason=str(error), last_error=f"AWS asked us to slow down: {error.message}")
    else:
        transition(account, expected=S.CREATING, to=S.FAILED, reason=str(error), last_error=f"AWS refused to create the account: {error.message}")


# --- Waiting for creation -------------------------------------------------------------------------


def account_poll_creation(*, account: MemberAccount) -> float | None:
    """Look at a creation in progress. Returns the seconds to wait before looking again, or
    None when the account has left CREATING."""
    account.refresh_from_db()
    if account.state != S.CREATING:
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
    enqueue_dispatch()  # a creation slot is free
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
    enqueue_dispatch()
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
        _enqueue_configure(account)
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
    transition(account, expected=S.CREATING, to=S.FAILED, reason=failure_reason, create_request_id="", last_error=explanation)


# --- Configuring ----------------------------------------------------------------------------------


def account_configure(*, account: MemberAccount) -> None:
    """Put a created account in its course OU, tag it, open it to the student and the course
    staff, and check that the portal can work inside it. Every step is idempotent."""
    account = MemberAccount.objects.select_related("course", "membership__user").get(pk=account.pk)
    if account.state != S.CONFIGURING:
        return
    organization = organization_ready()
    course = account.course
    try:
        _place_in_course_ou(account)
        organizations.tag_account(account.aws_account_id, account_tags(account))
        _set_course_contacts(account)
        if account.is_pooled:
            transition(account, expected=S.CONFIGURING, to=S.POOLED, reason="Ready for a student")
            return
        if course.access_mode == AccessMode.IAM_USER:
            _configure_iam_user(account)
        elif not _configure_identity_center(account, organization):
            return
        _grant_course_staff(account, organization)
        if account.origin == AccountOrigin.INVITED:
            # In the course OU now, under the guardrails: the role the student made becomes the
            # portal's alone. Last of the steps inside the account, as the portal's own session
            # is refused too until the revocation moment.
            access_role_secure(account=account, organization=organization)
        _verify_access(account)
    except PermanentAwsError as error:
        if account_is_new_in_aws(account):
            settling = while_account_is_new(error)
            if not settling.permanent:
                # The task tries again later (with backoff), past the grace window if need be.
                raise settling from error
        transition(account, expected=S.CONFIGURING, to=S.FAILED, reason=str(error), last_error=_plain(error))
        return
    except (NotThePortals, NotOurs, UnsafeAccessRole) as refusal:
        transition(account, expected=S.CONFIGURING, to=S.FAILED, reason=str(refusal)[:1000], last_error=str(refusal))
        return
    transition(account, expected=S.CONFIGURING, to=S.READY, reason="Access verified", last_error="")


def account_is_new_in_aws(account: MemberAccount) -> bool:
    """Whether AWS created the account less than PORTAL_AWS_NEW_ACCOUNT_GRACE_MINUTES ago. Its
    creation is when CreateAccountStatus gave its id: the record's first move to CONFIGURING. An
    invited account existed before; it gets no grace."""
    if account.origin != AccountOrigin.CREATED:
        return False
    created = (
        AccountEvent.objects.filter(
            account=account, to_state=S.CONFIGURING, from_state__in=CREATION_STATES
        )
        .order_by("id")
        .values_list("created_at", flat=True)
        .first()
    )
    grace = timedelta(minutes=settings.PORTAL_AWS_NEW_ACCOUNT_GRACE_MINUTES)
    return created is not None and timezone.now() - created < grace


def _place_in_course_ou(account: MemberAccount) -> None:
    """Move the record's account into its course's OU, once AWS shows it carries the record's own
    tags (raises NotThePortals otherwise: nothing is moved)."""
    course = account.course
    account_claim_check(account)
    if not course.aws_ou_id:
        course_guardrails_apply(actor=None, course=course)
    organizations.move_account(account.aws_account_id, course.aws_ou_id)


def _set_course_contacts(account: MemberAccount) -> None:
    """AWS writes to an account's alternate contacts about its bills and operations: make them the
    course's billing and usage-alert contacts. AWS requires a phone number, so this needs
    PORTAL_CONTACT_PHONE (the school's)."""
    phone = settings.PORTAL_CONTACT_PHONE
    if not phone:
        return
    course = account.course
    for kind, email in (("BILLING", course.billing_contact_email), ("OPERATIONS", course.usage_alert_email)):
        account_mgmt.set_alternate_contact(
            account.aws_account_id,
            kind=kind,
            name=f"{course.code} {kind.lower()} contact",
            email=email,
            phone=phone,
            title=f"{course.name} ({course.code})"[:50],
        )


def _plain(error: AwsError) -> str:
    if error.code in {"AccessDenied", "AccessDeniedException"}:
        return f"The portal is not allowed to {error.operation or 'do this'} in AWS. An administrator must check the portal's IAM policy."
    return f"AWS refused {error.operation or 'a step'}: {error.message}"


def _configure_identity_center(account: MemberAccount, organization: AwsOrganization) -> bool:
    student = account.membership
    user_id = identity_user_for(organization, email=student.email, display_name=student.display_name)
    if user_id is None:
        transition(
            account,
            expected=S.CONFIGURING,
            to=S.WAITING_FOR_DIRECTORY,
            reason="No Identity Center user yet",
            last_error=f"{account.membership.email} has not been synced from the school's directory to "
            "IAM Identity Center yet. The account opens once the directory has synced.",
        )
        return False
    MemberAccount.objects.filter(pk=account.pk).update(identity_store_user_id=user_id)
    account.identity_store_user_id = user_id
    assignment_ensure(
        organization,
        account_id=account.aws_account_id,
        permission_set_arn=organization.permission_sets["student"],
        user_id=user_id,
    )
    return True


def _grant_course_staff(account: MemberAccount, organization: AwsOrganization) -> None:
    if account.course.access_mode != AccessMode.IDENTITY_CENTER:
        return
    staff = Membership.objects.filter(course=account.course, role__in=[CourseRole.TA, CourseRole.INSTRUCTOR])
    for member in staff:
        user_id = identity_user_for(organization, email=member.email, display_name=member.display_name)
        if user_id is not None:
            assignment_ensure(
                organization,
                account_id=account.aws_account_id,
                permission_set_arn=organization.permission_sets[member.role],
                user_id=user_id,
            )


def _configure_iam_user(account: MemberAccount) -> None:
    account_id = account.aws_account_id
    user_name = _slug(account.membership.email.split("@")[0], 40) or "student"
    iam_users.ensure_user(account_id, user_name, MANAGED_BY_TAG)
    iam_users.put_guardrail_policy(account_id, user_name, iam_user_policy(course_profile(account.course)))
    alias = iam_users.ensure_account_alias(account_id, f"{account.account_name}-{account_id[-4:]}"[:63])
    updates = {"iam_user_name": user_name, "account_alias": alias}
    if not account.iam_user_name or not iam_users.has_login_profile(account_id, user_name):
        # First time (or the password was lost before it was saved): issue a new one.
        updates["one_time_password"] = encrypt(iam_users.set_first_password(account_id, user_name))
    MemberAccount.objects.filter(pk=account.pk).update(**updates)
    for name, value in updates.items():
        setattr(account, name, value)


def _verify_access(account: MemberAccount) -> None:
    reported = sts.caller_account(account.aws_account_id)
    if reported != account.aws_account_id:
        raise PermanentAwsError(
            f"Signed in to {reported} instead of {account.aws_account_id}.", code="WrongAccount", operation="AssumeRole"
        )


# --- Existing accounts ----------------------------------------------------------------------------


def account_invite(*, account: MemberAccount) -> None:
    """Send the organization's invitation to a student's existing account, once, within AWS's
    daily invitation quota.

    Only an invitation the portal sent for this request is ever taken as its own: one whose
    handshake id it stored, or, after a lost answer, one whose notes carry the random reference the
    portal wrote for this request, sent by this organization's management account, and open (or
    accepted by the student before the portal read AWS's answer). A handshake of the same account
    id that is accepted, or sent by someone else, proves nothing: taking it would let a student
    name an account already in the organization, another student's, and be given it.
    """
    account = MemberAccount.objects.select_related("course").get(pk=account.pk)
    if account.state != S.INVITING:
        return
    organization = organization_ready()
    handshake = _own_handshake(account, organization)
    if handshake is None:
        if organizations.find_account(account.aws_account_id) is not None:
            transition(
                account,
                expected=S.INVITING,
                to=S.FAILED,
                reason="Already a member of the organization",
                last_error="That AWS account is already in the school's organization: it cannot be brought into "
                "a course. Decline the request; the student can then request a new account.",
            )
            return
        slot = _invitation_slot(account, organization)
        if not isinstance(slot, OrganizationInvitation):
            _wait_for_invitation_quota(account, slot)
            return
        handshake = _send_invitation(account, organization, slot)
        if handshake is None:
            return
    transition(
        account,
        expected=S.INVITING,
        to=S.INVITED,
        reason=f"Handshake {handshake.id}",
        handshake_id=handshake.id,
        last_error="",
    )


def _reference_note(reference: str) -> str:
    return f"Portal reference {reference}."


def _is_ours(handshake: organizations.Handshake, account: MemberAccount, organization: AwsOrganization) -> bool:
    """Sent by this organization's management account to this account (the caller has proven
    that it is this request's, by its stored id or its reference) and not closed."""
    return (
        handshake.state in OWN_HANDSHAKE_STATES
        and handshake.action == "INVITE"
        and handshake.account_id == account.aws_account_id
        and handshake.organization_id == organization.organization_id
        and handshake.sender_account_id == organization.management_account_id
    )


def _own_handshake(account: MemberAccount, organization: AwsOrganization) -> organizations.Handshake | None:
    """The invitation the portal already sent for this request, if it is not closed."""
    recent = list(account.invitations.filter(sent_at__gte=timezone.now() - HANDSHAKE_LIFETIME, rate_limited=False))
    for invitation in reversed(recent):
        if not invitation.handshake_id:
            continue
        try:
            handshake = organizations.describe_handshake(invitation.handshake_id)
        except NotFound:
            continue
        if _is_ours(handshake, account, organization):
            return handshake
    unanswered = [invitation for invitation in recent if not invitation.handshake_id]
    return _find_by_reference(account, organization, unanswered) if unanswered else None


def _find_by_reference(
    account: MemberAccount, organization: AwsOrganization, invitations: list[OrganizationInvitation]
) -> organizations.Handshake | None:
    """A handshake of this organization, not closed, whose notes carry one of `invitations`'
    references (sent, its answer lost); its id is stored on the invitation."""
    for handshake in organizations.invitation_handshakes():
        if not _is_ours(handshake, account, organization):
            continue
        for invitation in invitations:
            if _reference_note(invitation.reference) in handshake.notes:
                OrganizationInvitation.objects.filter(pk=invitation.pk).update(handshake_id=handshake.id)
                return handshake
    return None


def _invitation_slot(account: MemberAccount, organization: AwsOrganization) -> OrganizationInvitation | datetime:
    """One of the organization's invitations for the last 24 hours, recorded before it is sent
    (so that a worker dying after the send still counts it, and its notes can be recognised), or
    the moment the next one frees."""
    quota = settings.PORTAL_AWS_INVITATIONS_PER_DAY
    with transaction.atomic():
        # One claimant at a time, across every worker: the organization row is the lock.
        AwsOrganization.objects.select_for_update().get(pk=organization.pk)
        now = timezone.now()
        window = OrganizationInvitation.objects.filter(sent_at__gt=now - INVITATION_WINDOW)
        refused_at = window.filter(rate_limited=True).order_by("-sent_at").values_list("sent_at", flat=True).first()
        if refused_at is not None and refused_at + RATE_LIMITED_PAUSE > now:
            return refused_at + RATE_LIMITED_PAUSE
        sent = list(window.filter(rate_limited=False).order_by("sent_at").values_list("sent_at", flat=True))
        if len(sent) >= quota:
            return sent[len(sent) - quota] + INVITATION_WINDOW
        return OrganizationInvitation.objects.create(account=account, reference=secrets.token_hex(8), sent_at=now)


def _wait_for_invitation_quota(account: MemberAccount, until: datetime) -> None:
    """The request stays INVITING with a plain explanation; the reconciler, which re-queues the
    invitations that have not moved, sends it once AWS allows."""
    moment = timezone.localtime(until)
    explanation = (
        f"AWS lets the school send {settings.PORTAL_AWS_INVITATIONS_PER_DAY} invitations a day; "
        f"yours goes out after {moment:%H:%M} ({moment.tzname()})."
    )
    MemberAccount.objects.filter(pk=account.pk).update(last_error=explanation)


def _send_invitation(
    account: MemberAccount, organization: AwsOrganization, invitation: OrganizationInvitation
) -> organizations.Handshake | None:
    course = account.course
    notes = (
        f"{course.name} ({course.code}) invites this account to the school's AWS organization. "
        f"{_reference_note(invitation.reference)}"
    )
    try:
        handshake = organizations.invite_account(account.aws_account_id, notes=notes, tags=account_tags(account))
    except UnknownOutcome:
        handshake = _find_by_reference(account, organization, [invitation])
        if handshake is None:
            raise  # the task looks again later, before sending anything
        return handshake
    except PermanentAwsError as error:
        return _invitation_refused(account, organization, invitation, error)
    except TransientAwsError:
        # Refused before AWS did anything (throttled): no invitation was spent.
        OrganizationInvitation.objects.filter(pk=invitation.pk).delete()
        raise
    OrganizationInvitation.objects.filter(pk=invitation.pk).update(handshake_id=handshake.id)
    return handshake


def _invitation_refused(
    account: MemberAccount, organization: AwsOrganization, invitation: OrganizationInvitation, error: AwsError
) -> organizations.Handshake | None:
    if error.reason == "HANDSHAKE_RATE_LIMIT_EXCEEDED":
        # AWS counts invitations the portal did not send (an administrator's, by hand): a wait,
        # not a failure. The refused one is not counted, and the next waits RATE_LIMITED_PAUSE.
        OrganizationInvitation.objects.filter(pk=invitation.pk).update(rate_limited=True)
        _wait_for_invitation_quota(account, invitation.sent_at + RATE_LIMITED_PAUSE)
        return None
    OrganizationInvitation.objects.filter(pk=invitation.pk).delete()
    if error.code == "DuplicateHandshakeException":
        # An invitation of this account is open: the portal's own from an earlier lost answer,
        # or someone else's, which the portal never takes.
        handshake = _own_handshake(account, organization)
        if handshake is not None:
            return handshake
    transition(account, expected=S.INVITING, to=S.FAILED, reason=str(error), last_error=_refusal_explained(error))
    return None


def _refusal_explained(error: AwsError) -> str:
    explanations = {
        "DuplicateAccountException": "That account is already in this organization.",
        "DuplicateHandshakeException": "The school's organization already has an open invitation for that "
        "account that the portal did not send. An administrator must cancel it (AWS Organizations → "
        "Invitations) before the portal invites the account; then retry.",
        "AccountOwnerNotVerifiedException": "The account's owner has not verified its email address yet.",
        "HandshakeConstraintViolationException": "AWS will not invite that account now "
        f"({error.reason or error.message}); it may already belong to another organization.",
    }
    return explanations.get(error.code, f"AWS refused the invitation: {error.message}")


def account_check_invitation(*, account: MemberAccount) -> None:
    """Follow the invitation: accepted → ask for the access role (and check it at once)."""
    account.refresh_from_db()
    if account.state != S.INVITED:
        return
    handshake = organizations.describe_handshake(account.handshake_id)
    if handshake.state == "ACCEPTED":
        # A joined account sits under the organization's root, outside every guardrail, and the
        # portal's role may work only under its own OU: it goes to its course's OU at once.
        try:
            _place_in_course_ou(account)
        except NotThePortals as refusal:
            transition(account, expected=S.INVITED, to=S.FAILED, reason=str(refusal)[:1000], last_error=str(refusal))
            return
        transition(account, expected=S.INVITED, to=S.AWAITING_ACCESS_ROLE, reason="Invitation accepted")
        account_verify_access_role(actor=None, account=account)
    elif handshake.state in {"DECLINED", "CANCELED", "EXPIRED"}:
        transition(
            account,
            expected=S.INVITED,
            to=S.FAILED,
            reason=f"Invitation {handshake.state.lower()}",
            last_error=f"The invitation was {handshake.state.lower()}. Retry to send a new one.",
            handshake_id="",
        )


def access_role_check_request(*, actor, account: MemberAccount) -> bool:
    """The student says the access role is in place: a task checks it (the web tier makes no AWS
    call). Returns whether a check was queued."""
    from accounts_app.tasks import account_verify_access_role_task

    if account.state != S.AWAITING_ACCESS_ROLE:
        return False
    account_verify_access_role_task.delay_on_commit(account.pk, actor.pk if actor else None)
    return True


def account_verify_access_role(*, actor, account: MemberAccount) -> bool:
    """Check that the student created the access role in their account; continue if so."""
    account.refresh_from_db()
    if account.state != S.AWAITING_ACCESS_ROLE:
        return False
    try:
        _verify_access(account)
    except AwsError as error:
        MemberAccount.objects.filter(pk=account.pk).update(
            last_error=f"The portal cannot use the role {settings.PORTAL_AWS_MEMBER_ROLE_NAME} in your account yet: {error.message}"
        )
        return False
    if transition(account, expected=S.AWAITING_ACCESS_ROLE, to=S.CONFIGURING, actor=actor, reason="Access role works", last_error=""):
        _enqueue_configure(account)
    return True


# --- Showing the first password -------------------------------------------------------------------


@transaction.atomic
def account_password_reveal(*, actor, account: MemberAccount) -> str | None:
    """The IAM user's first password, once: it is erased as it is shown."""
    from accounts_app.crypto import decrypt

    account = MemberAccount.objects.select_for_update().get(pk=account.pk)
    if not account.one_time_password:
        return None
    password = decrypt(account.one_time_password)
    MemberAccount.objects.filter(pk=account.pk).update(one_time_password="")
    audit_record(
        actor=actor,
        action=AuditAction.ACCOUNT_PASSWORD_REVEALED,
        course=account.course,
        target=account,
        summary=f"Showed the first console password of {account.iam_user_name}",
    )
    return password


# --- Queueing the next step -----------------------------------------------------------------------


# The task that moves an account on from each working state.
NEXT_STEP_TASKS = {
    S.CREATING: "account_poll_task",
    S.INVITING: "account_invite_task",
    S.INVITED: "account_check_invitation_task",
    S.CONFIGURING: "account_configure_task",
    S.CLEANING: "account_cleanup_task",
    S.CLOSING: "account_poll_closure_task",
}


def enqueue_dispatch() -> None:
    from accounts_app.tasks import vending_dispatch_task

    vending_dispatch_task.delay_on_commit()


def _enqueue(task_name: str, account: MemberAccount) -> None:
    from accounts_app import tasks

    getattr(tasks, task_name).delay_on_commit(account.pk)


def _enqueue_poll(account: MemberAccount) -> None:
    _enqueue("account_poll_task", account)


def _enqueue_configure(account: MemberAccount) -> None:
    _enqueue("account_configure_task", account)


def enqueue_next_step(account: MemberAccount) -> None:
    if account.state == S.REQUESTED:
        enqueue_dispatch()
    elif account.state == S.HANDOVER:
        from accounts_app.tasks import handover_advance_task

        handover_advance_task.delay_on_commit(account.handover.pk)
    elif step := NEXT_STEP_TASKS.get(S(account.state)):
        _enqueue(step, account)

