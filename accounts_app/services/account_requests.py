"""What people ask of vending: a student's account (a new one, from the pool, or their own
brought in), every student's account for a course, pool accounts made ahead, a retry, and the
first console password.

A request only writes the record and queues what runs next (`accounts_app.next_step`): the vending
queue (`vending_queue`) creates accounts, `account_setup` opens them, and `invited_accounts`
brings a student's own account in.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.db import transaction

from accounts_app import next_step
from accounts_app.choices import AccountOrigin, AuditAction, CourseRole
from accounts_app.choices import AccountState as S
from accounts_app.crypto import decrypt
from accounts_app.lifecycle import CLOSURE_STATES, transition
from accounts_app.models import AccountEvent, Course, MemberAccount, Membership
from accounts_app.naming import account_name_for, root_email_for, student_key
from accounts_app.services.audit import audit_record


class VendingError(Exception):
    """A request the portal refuses; the message is for the person who asked."""


def _new_account(course: Course, membership: Membership | None, key: str) -> MemberAccount:
    return MemberAccount(
        course=course,
        membership=membership,
        root_email=root_email_for(course, key),
        account_name=account_name_for(course, key),
    )


def account_request(*, actor, membership: Membership) -> MemberAccount:
    """Give a student an account: their existing request, one from the course pool, or a new
    one in the vending queue. Asking twice returns the same account."""
    account, queued = _student_account(actor, membership)
    if queued:
        next_step.vending_dispatch_enqueue()
    return account


@transaction.atomic
def _student_account(actor, membership: Membership) -> tuple[MemberAccount, bool]:
    """The student's account, and whether it has just joined the vending queue (the caller
    wakes the queue: once for a whole course)."""
    membership = Membership.objects.select_for_update().select_related("course").get(pk=membership.pk)
    existing = MemberAccount.objects.filter(membership=membership).first()
    if existing is not None:
        return existing, False
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
        next_step.next_step_enqueue(pooled)
        return pooled, False

    account = _new_account(membership.course, membership, student_key(membership.email))
    account.save()
    _audit_request(actor, account, "queued for creation")
    return account, True


def _pooled_account(course: Course) -> MemberAccount | None:
    """An account ready for a student: one pre-created for the course, else a recycled one from
    the organization's pool (whose cool-down is over, or it would not be POOLED)."""
    free = MemberAccount.objects.select_for_update(skip_locked=True).filter(membership__isnull=True, state=S.POOLED)
    return free.filter(course=course).first() or free.filter(course=None).order_by("available_from", "pk").first()


def course_provision_all(*, actor, course: Course) -> int:
    """Request an account for every student of the course who has none. Returns how many.
    The vending queue is woken once, however many students join it: each dispatch takes as many
    accounts as AWS's quotas allow."""
    students = Membership.objects.filter(course=course, role=CourseRole.STUDENT, aws_account__isnull=True)
    queued = [_student_account(actor, membership)[1] for membership in students]
    if any(queued):
        next_step.vending_dispatch_enqueue()
    return len(queued)


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
    numbers = [name[len(prefix) :] for name in names]
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
    next_step.vending_dispatch_enqueue()
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
        next_step.next_step_enqueue(account)
    return True


def account_bring_decline(*, actor, account: MemberAccount) -> bool:
    """An instructor turns down a request to bring an account: one waiting for approval, or one
    that failed before the account joined the organization. The student may then request a new
    account or bring another (the request still counts against their cap). False if it cannot
    be declined (any more)."""
    with transaction.atomic():
        # Read again under a row lock: an approval or a second decline at the same moment waits,
        # then finds the request decided.
        account = MemberAccount.objects.select_for_update(of=("self",)).select_related("membership").get(pk=account.pk)
        if not account.bring_declinable:
            return False
        student, aws_account_id = account.membership.email, account.aws_account_id
        transition(
            account,
            expected=S(account.state),
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
            next_step.next_step_enqueue(account)
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


@transaction.atomic
def account_password_reveal(*, actor, account: MemberAccount) -> str | None:
    """The IAM user's first password, once: it is erased as it is shown."""
    # Read again under a row lock: of two reveals at the same moment, the second finds it erased.
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
