"""Handover: a student keeps their AWS account and takes it over with their own billing.

A student asks, an instructor approves (or declines, with a reason), then the portal walks both
through a checklist that advances by itself:

1. the root email moves to the student's own address (AWS sends them a code they type here);
2. the alternate contacts become the student's;
3. the portal's access, the course staff's access and the school's tags go, and the account
   moves into the leaving OU: its SCP lets the root user do the owner's tasks and nothing else
   (the course's SCPs and the baseline's deny-root do not reach it there);
4. the student resets the root password, adds a payment method and verifies a phone number;
5. the account leaves the organization; what AWS says is missing becomes a checklist item and
   the step is tried again when the student says it is done;
6. handed over: the record, its costs and its audit trail stay; only now the AWS Budget goes.
   The freeze SCP of a frozen account stays on until it has left.

The student or an instructor may cancel an approved handover, and one that makes no progress for
PORTAL_HANDOVER_TIMEOUT_DAYS is cancelled by itself (the instructors are told): the account goes
back into its course's OU, its tags come back, and the record returns to its previous state.

Each step stamps its own time on the Handover, so `handover_advance` resumes after a crash and
running it twice does nothing twice. Every step that calls AWS runs in a task, behind the gate
(the record still in HANDOVER, the account in the course's OU or the leaving OU, with the portal's tag): the
pages only record what the student typed or asked for and queue the task.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts_app import next_step
from accounts_app.choices import AccessMode, AccountOrigin, AuditAction, CourseRole, EndPolicy, HandoverStatus
from accounts_app.choices import AccountState as S
from accounts_app.crypto import decrypt, encrypt
from accounts_app.lifecycle import HELD_STATES, IN_USE_STATES, transition
from accounts_app.models import Course, Handover, MemberAccount, User
from accounts_app.services.audit import audit_record
from accounts_app.services.cleanup import access_revoke
from accounts_app.services.gates import REFUSED, Action, action_gate
from accounts_app.services.guardrails import organization_ready
from accounts_app.services.identity import SCHOOL_TAG_KEYS, account_tags
from accounts_app.services.identity_access import assignment_ensure, identity_user_for
from accounts_app.services.notifications import email_send
from portal.aws import account_mgmt, organizations
from portal.aws import budgets as aws_budgets
from portal.aws.errors import AwsError, PermanentAwsError
from portal.aws.guardrails import MANAGED_BUDGET_PREFIX

logger = logging.getLogger(__name__)

CONTACT_TYPES = ("BILLING", "OPERATIONS", "SECURITY")

# What each reason AWS gives for refusing RemoveAccountFromOrganization asks of the student.
REMOVAL_BLOCKERS = {
    "MEMBER_ACCOUNT_PAYMENT_INSTRUMENT_REQUIRED": "Add a payment method (a credit or debit card) to the account: "
    "sign in as the root user, open Billing and Cost Management → Payment preferences.",
    "ACCOUNT_CANNOT_LEAVE_WITHOUT_PHONE_VERIFICATION": "Verify a phone number: sign in as the root user and "
    "follow the “Complete your account setup” steps; AWS calls or texts the number you give.",
    "ACCOUNT_CANNOT_LEAVE_WITHOUT_EULA": "Accept the AWS Customer Agreement: sign in as the root user and "
    "follow the “Complete your account setup” steps.",
    "WAIT_PERIOD_ACTIVE": "AWS lets a newly created account leave its organization only {days} days after it "
    "was created: possible from {date}.",
}


GATE_REFUSED = (
    "The handover is stopped: the portal cannot confirm that the account is still where the school put "
    "it. The course's staff can see why in the course's audit log."
)
CODE_REFUSED = "AWS did not accept the code. Check the latest email from AWS, or send a new code."
CODE_NOT_ANSWERED = "AWS did not answer in time. Type the code again in a minute."
# The handover's errors written for the student; any other is AWS's own answer, for staff.
STUDENT_ERRORS = frozenset({GATE_REFUSED, CODE_REFUSED, CODE_NOT_ANSWERED})


# AcceptPrimaryEmailUpdate's Otp, as AWS's API reference gives it: letters and digits.
OTP_PATTERN = re.compile(r"[a-zA-Z0-9]{6}")


class HandoverError(Exception):
    """A handover request or step the portal refuses; the message is for the person who asked."""


# --- Requests and decisions -----------------------------------------------------------------------


def handover_offered(account: MemberAccount | None) -> bool:
    return (
        account is not None
        and account.course_id is not None
        and account.course.handover_allowed
        and account.state in HELD_STATES
        and not account.end_excluded
    )


def handover_request(
    *, actor, account: MemberAccount, new_root_email: str, contact_name: str, contact_phone: str
) -> Handover:
    """Ask to keep the account. Where the course's end policy is "keep", the request is approved
    at once."""
    if not handover_offered(account):
        raise HandoverError("This account cannot be handed over now.")
    if Handover.objects.filter(account=account).exists():
        raise HandoverError("You have already asked to keep this account.")
    if new_root_email.lower() == account.root_email.lower():
        raise HandoverError("Give your own email address, not the account's current one.")
    with transaction.atomic():
        previous_state = account.state
        if not transition(
            account, expected=HELD_STATES, to=S.HANDOVER_REQUESTED, actor=actor, reason="Asked to keep it"
        ):
            raise HandoverError("The account changed meanwhile; reload the page.")
        handover = Handover.objects.create(
            account=account,
            new_root_email=new_root_email,
            contact_name=contact_name,
            contact_phone=contact_phone,
            previous_state=previous_state,
            requested_by=actor,
        )
        _audit(
            actor,
            handover,
            AuditAction.HANDOVER_REQUESTED,
            f"{account.membership.email} asked to keep {account.account_name}",
        )
    if account.course.end_policy == EndPolicy.KEEP:
        handover_approve(actor=None, handover=handover)
    else:
        instructors = account.course.memberships.filter(role=CourseRole.INSTRUCTOR).values_list("email", flat=True)
        email_send(
            "handover_requested", {"handover": handover, "account": account, "course": account.course}, instructors
        )
    return handover


def handover_approve(*, actor, handover: Handover) -> bool:
    account = handover.account
    with transaction.atomic():
        claimed = Handover.objects.filter(pk=handover.pk, status=HandoverStatus.REQUESTED).update(
            status=HandoverStatus.APPROVED, decided_by=actor, decided_at=timezone.now()
        )
        if not claimed or not transition(
            account, expected=S.HANDOVER_REQUESTED, to=S.HANDOVER, actor=actor, reason="Handover approved"
        ):
            transaction.set_rollback(True)
            return False
        handover.refresh_from_db()
        _audit(actor, handover, AuditAction.HANDOVER_APPROVED, f"Approved the handover of {account.account_name}")
        next_step.handover_advance_enqueue(handover)
    email_send("handover_approved", _context(handover), [account.membership.email])
    return True


def handover_decline(*, actor, handover: Handover, reason: str) -> bool:
    reason = reason.strip()
    if not reason:
        raise HandoverError("Say why the request is declined: the student reads it.")
    account = handover.account
    with transaction.atomic():
        claimed = Handover.objects.filter(pk=handover.pk, status=HandoverStatus.REQUESTED).update(
            status=HandoverStatus.DECLINED, decided_by=actor, decided_at=timezone.now(), decline_reason=reason
        )
        if not claimed or not transition(
            account,
            expected=S.HANDOVER_REQUESTED,
            to=S(handover.previous_state),
            actor=actor,
            reason="Handover declined",
        ):
            transaction.set_rollback(True)
            return False
        handover.refresh_from_db()
        _audit(
            actor, handover, AuditAction.HANDOVER_DECLINED, f"Declined the handover of {account.account_name}: {reason}"
        )
        _follow_course_end(account)
    email_send("handover_declined", _context(handover), [account.membership.email])
    return True


def _follow_course_end(account: MemberAccount) -> None:
    """The course may have ended (or been extended) while the request waited, and its end passed
    over the account: a declined account goes where the others went."""
    ended = Course.objects.filter(pk=account.course_id, ended_at__isnull=False).exists()
    if ended and account.state in IN_USE_STATES:
        next_step.account_end_enqueue(account)
    elif not ended and account.state == S.ENDED:
        next_step.account_unend_enqueue(account)


# --- The checklist --------------------------------------------------------------------------------


def _handover_load(handover_id: int) -> Handover | None:
    """The handover with its account, course and student, in one query: what each task's steps read."""
    return Handover.objects.select_related("account__course", "account__membership").filter(pk=handover_id).first()


def handover_advance(*, handover_id: int) -> None:
    """Do every step that is due and can be done without the student; stop at the first one
    that waits for them."""
    handover = _handover_load(handover_id)
    if handover is None:
        return
    account = handover.account
    if handover.status != HandoverStatus.APPROVED or account.state != S.HANDOVER:
        return
    if handover.student_ready_at and organizations.find_account(account.aws_account_id) is None:
        _handed_over(handover)  # it left already: the answer to an earlier removal was lost
        return
    if not _gate_passes(handover):
        return
    if not handover.root_email_moved_at and not _root_email_start(handover):
        return
    if not handover.contacts_set_at:
        _contacts_set(handover)
    if not handover.access_removed_at:
        _school_detach(handover)
    if handover.student_ready_at:
        _leave_organization(handover)


def _root_email_start(handover: Handover) -> bool:
    """Ask AWS to send the student a code for their address. Returns whether the root email has
    moved already, and the checklist goes on; otherwise it waits for the student's code."""
    account = handover.account
    try:
        if account_mgmt.primary_email(account.aws_account_id).lower() == handover.new_root_email.lower():
            # Moved already (the answer to an accepted code was lost): carry on.
            _stamp(handover, "root_email_moved_at", "Root email moved")
            return True
        if handover.code_sent_at:
            return False  # waiting for the student to type the code
        account_mgmt.start_primary_email_update(account.aws_account_id, handover.new_root_email)
    except PermanentAwsError as error:
        # E.g. the address is already another AWS account's root email, or the portal may not
        # use the Account Management API: the student and the instructor read why.
        _handover_update(
            handover, last_error=f"AWS would not send a code to {handover.new_root_email}: {error.message}"
        )
        return False
    _handover_update(handover, last_error="")
    _stamp(handover, "code_sent_at", f"AWS sent a code to {handover.new_root_email}")
    email_send("handover_code", _context(handover), [account.membership.email])
    return False


def student_error(handover: Handover) -> str:
    """What the student reads about the handover's last error: the portal's own words as they
    are; for an answer of AWS (which may name the school's accounts), a plain sentence."""
    if not handover.last_error or handover.blockers:
        return ""
    if handover.last_error in STUDENT_ERRORS:
        return handover.last_error
    return (
        f"AWS would not send a code to {handover.new_root_email}: the address may already be the root email "
        "of another AWS account. Your instructor can see AWS's answer and help."
    )


def handover_resend_code(*, actor, handover: Handover) -> None:
    """The student asks for a new code: the step starts again, and the task asks AWS for one."""
    if handover.status != HandoverStatus.APPROVED or handover.root_email_moved_at:
        raise HandoverError("There is no code to send now.")
    with transaction.atomic():
        _handover_update(handover, code_sent_at=None, pending_code="", last_error="")
        _audit(actor, handover, AuditAction.HANDOVER_STEP, f"Asked for a new code to {handover.new_root_email}")
        next_step.handover_advance_enqueue(handover)


def handover_submit_code(*, actor, handover: Handover, code: str) -> None:
    """The student typed the code AWS sent to their address: kept (encrypted) for the task that
    gives it to AWS."""
    code = "".join(code.split())
    if handover.status != HandoverStatus.APPROVED or not handover.code_sent_at or handover.root_email_moved_at:
        raise HandoverError("No code is expected now.")
    if not OTP_PATTERN.fullmatch(code):
        raise HandoverError("The code is the 6 letters and digits in the email AWS sent you.")
    with transaction.atomic():
        _handover_update(handover, pending_code=encrypt(code), last_error="")
        next_step.handover_code_check_enqueue(handover, actor=actor)


def handover_code_check(*, actor_id: int | None, handover_id: int) -> None:
    """Give the code the student typed to AWS (the task's half of `handover_submit_code`).

    The code stays pending, and the student's checklist keeps refreshing, until its check is
    settled; a task redelivered after a crash checks it again (AWS's answer is looked up, so a
    code accepted twice does no harm)."""
    handover = _handover_load(handover_id)
    if handover is None or not handover.pending_code:
        return
    token = handover.pending_code
    actor = User.objects.filter(pk=actor_id).first() if actor_id else None
    if handover.status != HandoverStatus.APPROVED or handover.root_email_moved_at or not _gate_passes(handover):
        _code_settled(handover, token)
        return
    try:
        account_mgmt.accept_primary_email_update(
            handover.account.aws_account_id, handover.new_root_email, decrypt(token) or ""
        )
    except AwsError as error:
        # AWS may have accepted the code and lost (or, retried, refused again) its answer: look.
        if not _root_email_moved(handover):
            if error.permanent:
                # The student reads the message: AWS's own words go to the log.
                logger.warning("AcceptPrimaryEmailUpdate for handover %s: %s", handover.pk, error)
            _code_settled(handover, token, last_error=CODE_REFUSED if error.permanent else CODE_NOT_ANSWERED)
            return
    _code_settled(handover, token)
    _stamp(handover, "root_email_moved_at", f"Root email moved to {handover.new_root_email}", actor=actor)
    next_step.handover_advance_enqueue(handover)


def _code_settled(handover: Handover, token: str, *, last_error: str = "") -> None:
    """The check of `token` is over; a code the student typed again meanwhile stays pending."""
    Handover.objects.filter(pk=handover.pk, pending_code=token).update(pending_code="", last_error=last_error)


def _gate_passes(handover: Handover) -> bool:
    """The gate before a step that calls AWS. A refusal stops the checklist with a plain message
    (the student reads it); why, with the account's and OUs' ids, goes to the course's audit log
    for its staff, once."""
    try:
        action_gate(handover.account, action=Action.HANDOVER, organization=organization_ready())
    except (*REFUSED, PermanentAwsError) as error:
        if handover.last_error != GATE_REFUSED:
            with transaction.atomic():
                _handover_update(handover, last_error=GATE_REFUSED)
                _audit(None, handover, AuditAction.HANDOVER_STEP, f"Handover stopped: {error}")
        return False
    return True


def _root_email_moved(handover: Handover) -> bool:
    try:
        current = account_mgmt.primary_email(handover.account.aws_account_id)
    except AwsError:
        return False
    return current.lower() == handover.new_root_email.lower()


def handover_student_ready(*, actor, handover: Handover) -> None:
    """The student says they have reset the root password and added billing details."""
    if handover.status != HandoverStatus.APPROVED or not handover.access_removed_at:
        raise HandoverError("Finish the earlier steps first.")
    with transaction.atomic():
        _handover_update(handover, student_ready_at=timezone.now(), blockers=[], last_error="")
        _audit(
            actor,
            handover,
            AuditAction.HANDOVER_STEP,
            "The student finished their steps; trying to leave the organization",
        )
        next_step.handover_advance_enqueue(handover)


def _contacts_set(handover: Handover) -> None:
    account = handover.account
    for kind in CONTACT_TYPES:
        account_mgmt.set_alternate_contact(
            account.aws_account_id,
            kind=kind,
            name=handover.contact_name,
            email=handover.new_root_email,
            phone=handover.contact_phone,
            title="Account owner",
        )
    _stamp(handover, "contacts_set_at", "Alternate contacts set to the student's")


def _school_detach(handover: Handover) -> None:
    """What must not follow the account: the portal's and the staff's access and the school's
    tags; then the account moves into the leaving OU, where its root user can do the owner's tasks.
    The budget and a freeze SCP stay until it has left: it still spends on the school's bill."""
    account = handover.account
    organization = organization_ready()
    access_revoke(account, organization)
    organizations.untag_account(account.aws_account_id, SCHOOL_TAG_KEYS)
    if not Handover.objects.filter(pk=handover.pk, status=HandoverStatus.APPROVED).exists():
        return  # cancelled meanwhile: the account stays in its course, and handover_return restores the rest
    if organizations.parent_id(account.aws_account_id) != organization.leaving_ou_id:
        organizations.move_account(account.aws_account_id, organization.leaving_ou_id)
    _stamp(handover, "access_removed_at", "The school's access and tags removed; moved into the leaving OU")
    email_send("handover_your_turn", _context(handover), [account.membership.email])


def _leave_organization(handover: Handover) -> None:
    try:
        organizations.remove_account(handover.account.aws_account_id)
    except PermanentAwsError as error:
        _blocked(handover, error)
        return
    _handed_over(handover)


def _handed_over(handover: Handover) -> None:
    """The account has left: its budget (in the management account) goes, the record follows."""
    account = handover.account
    organization = organization_ready()
    aws_budgets.delete_budget(organization.management_account_id, f"{MANAGED_BUDGET_PREFIX}{account.aws_account_id}")
    with transaction.atomic():
        _handover_update(
            handover, removed_at=timezone.now(), status=HandoverStatus.COMPLETED, blockers=[], last_error=""
        )
        if transition(account, expected=S.HANDOVER, to=S.HANDED_OVER, reason="Left the organization"):
            _audit(
                None,
                handover,
                AuditAction.HANDOVER_COMPLETED,
                f"{account.account_name} left the organization: handed over",
            )
    email_send("handover_done", _context(handover), [account.membership.email])


def _blocked(handover: Handover, error: PermanentAwsError) -> None:
    blocker = {"reason": error.reason or error.code, "message": removal_blocker_message(handover.account, error)}
    _handover_update(handover, student_ready_at=None, blockers=[blocker], last_error=error.message)
    _audit(None, handover, AuditAction.HANDOVER_STEP, f"AWS would not let the account leave yet: {blocker['reason']}")
    email_send("handover_blocked", _context(handover), [handover.account.membership.email])


def removal_blocker_message(account: MemberAccount, error: PermanentAwsError) -> str:
    template = REMOVAL_BLOCKERS.get(error.reason)
    if template is None:
        # The student reads this: AWS's own words (kept in last_error) are for the staff.
        return (
            f"AWS would not let the account leave the organization yet ({error.reason or error.code}). "
            "Your instructor can see AWS's explanation and help."
        )
    if error.reason != "WAIT_PERIOD_ACTIVE":
        return template
    days = settings.PORTAL_HANDOVER_WAIT_DAYS
    joined = organizations.describe_account(account.aws_account_id).joined
    if joined is None or account.origin == AccountOrigin.INVITED:
        return template.format(days=days, date="a few days after its creation")
    return template.format(days=days, date=f"{timezone.localtime(joined + timedelta(days=days)):%b %-d, %Y, %H:%M}")


# --- Cancelling, by hand or by the clock --------------------------------------------------------


def handover_cancel(*, actor, handover: Handover, reason: str) -> bool:
    """The student or an instructor stops the handover. A request not yet decided just returns the
    record to its previous state; an approved one is marked cancelled here and the task returns the
    account to its course (`handover_return`). False when it has already finished or been stopped."""
    reason = reason.strip() or "Cancelled"
    account = handover.account
    with transaction.atomic():
        claimed = Handover.objects.filter(
            pk=handover.pk, status__in=[HandoverStatus.REQUESTED, HandoverStatus.APPROVED], removed_at__isnull=True
        ).update(status=HandoverStatus.CANCELLED, cancelled_at=timezone.now(), cancel_reason=reason)
        if not claimed:
            return False
        if handover.status == HandoverStatus.REQUESTED:
            if not transition(
                account, expected=S.HANDOVER_REQUESTED, to=S(handover.previous_state), actor=actor, reason=reason
            ):
                transaction.set_rollback(True)
                return False
            Handover.objects.filter(pk=handover.pk).update(returned_at=timezone.now())
            _follow_course_end(account)
        else:
            next_step.handover_return_enqueue(handover)
        handover.refresh_from_db()
        _audit(actor, handover, AuditAction.HANDOVER_STEP, f"Handover of {account.account_name} cancelled: {reason}")
    recipients = [account.membership.email, *_instructor_emails(account)]
    email_send("handover_cancelled", _context(handover), recipients)
    return True


def handover_return(*, handover_id: int) -> None:
    """A cancelled handover's account goes back to where it was: into its course's OU (through
    the gate: the record still in HANDOVER, the account in the course's or the leaving OU, with
    the portal's tag), with its tags, then the record returns to its previous state. The freeze
    SCP and the budget never left. Safe to repeat."""
    handover = _handover_load(handover_id)
    if handover is None:
        return
    account = handover.account
    if handover.status != HandoverStatus.CANCELLED or handover.returned_at or account.state != S.HANDOVER:
        return
    if organizations.find_account(account.aws_account_id) is None:
        # The removal went through before the cancellation: it is handed over after all.
        _handed_over(handover)
        return
    if not _gate_passes(handover):
        return
    organization = organization_ready()
    if organizations.parent_id(account.aws_account_id) != account.course.aws_ou_id:
        organizations.move_account(account.aws_account_id, account.course.aws_ou_id)
    organizations.tag_account(account.aws_account_id, account_tags(account))
    if handover.contacts_set_at:  # the school's step may have begun removing access: give back what is gone
        _access_restore(account, organization)
    with transaction.atomic():
        _handover_update(handover, returned_at=timezone.now(), last_error="", blockers=[])
        previous = S(handover.previous_state)
        if transition(
            account, expected=S.HANDOVER, to=previous, reason=f"Handover cancelled: {handover.cancel_reason}"
        ):
            _audit(None, handover, AuditAction.HANDOVER_STEP, f"{account.account_name} is back in its course's OU")
            _follow_course_end(account)


def handover_timeouts(*, now=None) -> list[str]:
    """Cancel every approved handover with no step done for PORTAL_HANDOVER_TIMEOUT_DAYS; its
    instructors and the student are told. Returns what was cancelled (the reconciler reports it)."""
    now = now or timezone.now()
    limit = now - timedelta(days=settings.PORTAL_HANDOVER_TIMEOUT_DAYS)
    stalled: list[str] = []
    for handover in Handover.objects.filter(status=HandoverStatus.APPROVED).select_related(
        "account__course", "account__membership"
    ):
        if _last_progress(handover) >= limit:
            continue
        reason = f"Timed out: no step done for {settings.PORTAL_HANDOVER_TIMEOUT_DAYS} days"
        if handover_cancel(actor=None, handover=handover, reason=reason):
            stalled.append(f"Handover of {handover.account.account_name} timed out: returning it to its course.")
    return stalled


def _last_progress(handover: Handover):
    stamps = [
        handover.decided_at,
        handover.code_sent_at,
        handover.root_email_moved_at,
        handover.contacts_set_at,
        handover.access_removed_at,
        handover.student_ready_at,
    ]
    return max(stamp for stamp in [handover.requested_at, *stamps] if stamp)


def _instructor_emails(account: MemberAccount) -> list[str]:
    return list(account.course.memberships.filter(role=CourseRole.INSTRUCTOR).values_list("email", flat=True))


def _access_restore(account: MemberAccount, organization) -> None:
    """Step 3 removed the student's and the staff's Identity Center access: give back what the
    roster gives. (An IAM-user course's user was deleted; its staff re-issue it from the course page.)"""
    if account.course.access_mode != AccessMode.IDENTITY_CENTER or not organization.sso_instance_arn:
        return
    people = [(account.membership, "student")] + [
        (member, member.role)
        for member in account.course.memberships.filter(role__in=[CourseRole.TA, CourseRole.INSTRUCTOR])
    ]
    for member, role in people:
        user_id = identity_user_for(organization, email=member.email, display_name=member.display_name)
        if user_id is not None:
            assignment_ensure(
                organization,
                account_id=account.aws_account_id,
                permission_set_arn=organization.permission_sets[role],
                user_id=user_id,
            )


# --- What the checklist shows ---------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    title: str
    status: str  # done, current (the portal works on it), yours (the student must act), todo
    detail: str = ""


CODE_ACCEPTED = "AWS accepted the code."


def handover_steps(handover: Handover) -> list[Step]:
    # The code step is the student's while AWS's email waits for them, the portal's while it
    # asks AWS for a code or gives AWS the one they typed.
    code_status = "yours" if handover.code_sent_at and not handover.pending_code else "current"
    code_detail = CODE_ACCEPTED if handover.code_sent_at else ""
    steps = [
        ("Move the root email to your address", handover.root_email_moved_at, code_status, code_detail),
        ("Make you the account's contact", handover.contacts_set_at, "current", ""),
        ("Remove the school's access and tags", handover.access_removed_at, "current", ""),
        (
            "Reset the root password and add your billing details",
            handover.student_ready_at or handover.removed_at,
            "yours",
            "",
        ),
        ("Leave the school's organization", handover.removed_at, "current", ""),
    ]
    result: list[Step] = []
    waiting = handover.status == HandoverStatus.APPROVED
    for title, done_at, active_status, done_detail in steps:
        if done_at:
            result.append(Step(title, "done", done_detail))
        elif waiting:
            result.append(Step(title, active_status))
            waiting = False
        else:
            result.append(Step(title, "todo"))
    return result


# --- Helpers ----------------------------------------------------------------------------------------


def _context(handover: Handover) -> dict:
    return {"handover": handover, "account": handover.account, "course": handover.account.course}


def _handover_update(handover: Handover, **changes) -> None:
    """Write `changes` to the handover's row and to `handover` itself, which keeps the account it
    was loaded with (a refresh from the database would drop it, and the next step load it again)."""
    Handover.objects.filter(pk=handover.pk).update(**changes)
    for name, value in changes.items():
        setattr(handover, name, value)


def _stamp(handover: Handover, field: str, summary: str, *, actor=None) -> None:
    with transaction.atomic():
        _handover_update(handover, **{field: timezone.now()})
        _audit(actor, handover, AuditAction.HANDOVER_STEP, f"{handover.account.account_name}: {summary}")


def _audit(actor, handover: Handover, action: AuditAction, summary: str) -> None:
    audit_record(actor=actor, action=action, course=handover.account.course, target=handover.account, summary=summary)
