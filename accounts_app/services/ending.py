"""The end of a course, driven by its end date.

`end_notice_days` before the end date students are told what will happen to their account (and
offered to keep it where the course allows); once the end date is over, every account is frozen
(state ENDED); `grace_days` later the course's end policy runs per account: cleanup, then closing
or recycling. An instructor may end a course early, extend it (ended accounts come back), or keep
single accounts out of all this. Every step is safe to run twice: the beat runs
`courses_end_tick` every quarter of an hour and it only does what is due and not yet done.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from django.db import transaction
from django.utils import timezone

from accounts_app import next_step
from accounts_app.choices import AccountState as S
from accounts_app.choices import AuditAction, EndPolicy
from accounts_app.lifecycle import IN_USE_STATES, RETIRABLE_STATES, transition
from accounts_app.models import AccountEvent, Course, MemberAccount
from accounts_app.services.audit import audit_record
from accounts_app.services.freezing import freeze_sync_enqueue
from accounts_app.services.notifications import email_build, emails_send


class EndingError(Exception):
    """A request about the end of a course the portal refuses; the message says why."""


@dataclass(frozen=True)
class EndSchedule:
    notice_on: date
    freeze_at: datetime
    policy_at: datetime
    ended: bool


def end_schedule(course: Course) -> EndSchedule:
    return EndSchedule(
        notice_on=course.notice_date,
        freeze_at=course.ended_at or course.end_moment,
        policy_at=course.grace_ends_at,
        ended=course.is_ended,
    )


def end_outcome(course: Course) -> str:
    """What happens to an account at the end, in the words students read."""
    return {
        EndPolicy.CLOSE: "it is cleaned up and closed",
        EndPolicy.RECYCLE: "it is cleaned up and given to another class",
        EndPolicy.KEEP: "it is cleaned up and closed, unless you keep it",
    }[EndPolicy(course.end_policy)]


# --- The schedule ---------------------------------------------------------------------------------


def courses_end_tick(*, now: datetime | None = None) -> None:
    """Do what is due in every course: notices, end-date freezes, grace periods that are over."""
    now = now or timezone.now()
    for course in Course.objects.active():
        course_end_advance(course=course, now=now)


def course_end_advance(*, course: Course, now: datetime) -> None:
    if course.is_ended:
        if now >= course.grace_ends_at:
            course_accounts_retire(course=course)
        return
    if now >= course.end_moment:
        course_end(actor=None, course=course, now=now)
    elif timezone.localdate(now) >= course.notice_date and course.end_notice_sent_for != course.end_date:
        course_end_notify(course=course)


def _students_to_end(course: Course):
    return MemberAccount.objects.filter(course=course, end_excluded=False).exclude(membership=None)


def course_end_notify(*, course: Course) -> int:
    """Tell every student with an account what will happen to it, once per end date."""
    with transaction.atomic():
        claimed = (
            Course.objects.filter(pk=course.pk)
            .exclude(end_notice_sent_for=course.end_date)
            .update(end_notice_sent_for=course.end_date)
        )
        if not claimed:
            return 0
        accounts = list(_students_to_end(course).filter(state__in=IN_USE_STATES).select_related("membership"))
        audit_record(
            actor=None,
            action=AuditAction.COURSE_ENDING_NOTIFIED,
            course=course,
            target=course,
            summary=f"Told {len(accounts)} student(s) that the course ends on {course.end_date:%b %-d, %Y}",
        )
    context = {"course": course, "outcome": end_outcome(course), "schedule": end_schedule(course)}
    emails_send([email_build("course_ending", {**context, "account": a}, [a.membership.email]) for a in accounts])
    return len(accounts)


def course_end(*, actor, course: Course, now: datetime | None = None) -> int:
    """Freeze every account of the course (early, when an instructor asks). Returns how many
    accounts are being frozen."""
    now = now or timezone.now()
    with transaction.atomic():
        if not Course.objects.filter(pk=course.pk, ended_at=None).update(ended_at=now):
            return 0
        course.ended_at = now
        accounts = list(_students_to_end(course).filter(state__in=IN_USE_STATES))
        audit_record(
            actor=actor,
            action=AuditAction.COURSE_ENDED,
            course=course,
            target=course,
            summary=f"Ended the course: {len(accounts)} account(s) frozen; the end policy runs on "
            f"{course.grace_ends_at:%b %-d, %Y}",
        )
        for account in accounts:
            next_step.account_end_enqueue(account)
    return len(accounts)


def account_end(*, account_id: int) -> bool:
    """Freeze one account for the end of its course: the state first, then a task attaches the
    freeze SCP."""
    account = MemberAccount.objects.select_related("course", "membership").filter(pk=account_id).first()
    if account is None or account.state not in IN_USE_STATES or account.end_excluded or not account.course.is_ended:
        return False
    with transaction.atomic():
        if not transition(
            account, expected=IN_USE_STATES, to=S.ENDED, reason="The course has ended", freeze_sync_pending=True
        ):
            return False
        freeze_sync_enqueue(account)
    course = account.course
    emails_send(
        [
            email_build(
                "course_ended",
                {
                    "course": course,
                    "account": account,
                    "outcome": end_outcome(course),
                    "schedule": end_schedule(course),
                },
                [account.membership.email],
            )
        ]
    )
    return True


def course_accounts_retire(*, course: Course) -> int:
    """The grace period is over: run the end policy on every ended account, and clean the
    course's unused pool accounts for the organization's pool. Returns how many started."""
    accounts = MemberAccount.objects.filter(course=course, end_excluded=False, state__in=RETIRABLE_STATES)
    started = 0
    for account in accounts:
        started += account_retire(actor=None, account=account, reason="End of course")
    return started


def end_destination(account: MemberAccount) -> str:
    """Where a cleaned account goes: an unused pool account back to the organization's pool, a
    student's account where the course's end policy says."""
    if account.state == S.POOLED or account.course.end_policy == EndPolicy.RECYCLE:
        return "recycle"
    return "close"


def account_retire(*, actor, account: MemberAccount, reason: str) -> bool:
    """Start the end policy of one account (ended, pooled, or in use when its student leaves
    the course): cleanup first, then closing or the pool."""
    destination = end_destination(account)
    with transaction.atomic():
        if account.state in IN_USE_STATES and not transition(
            account, expected=IN_USE_STATES, to=S.ENDED, actor=actor, reason=reason
        ):
            return False
        if not transition(
            account,
            expected=RETIRABLE_STATES,
            to=S.CLEANING,
            actor=actor,
            reason=reason,
            cleanup_report={"destination": destination},
        ):
            return False
        audit_record(
            actor=actor,
            action=AuditAction.ACCOUNT_ENDED,
            course=account.course,
            target=account,
            summary=f"Cleaning up {account.account_name} ({reason.lower()}); then "
            + ("back to the pool" if destination == "recycle" else "closing"),
        )
        next_step.next_step_enqueue(account)
    return True


# --- Changes of plan ------------------------------------------------------------------------------


def course_extend(*, actor, course: Course, end_date: date) -> int:
    """Move the end date later. Accounts already frozen for the end come back as they were
    (frozen for their budget, or ready). Returns how many came back."""
    if end_date < timezone.localdate():
        raise EndingError("The new end date is in the past. Pick today or a later day.")
    if end_date < course.start_date:
        raise EndingError("The new end date is before the course starts.")
    with transaction.atomic():
        previous = course.end_date
        Course.objects.filter(pk=course.pk).update(end_date=end_date)
        course.end_date = end_date
        audit_record(
            actor=actor,
            action=AuditAction.COURSE_EXTENDED,
            course=course,
            target=course,
            summary=f"End date {previous:%b %-d, %Y} → {end_date:%b %-d, %Y}",
        )
        return course_reopen_if_extended(actor=actor, course=course)


def course_reopen_if_extended(*, actor, course: Course) -> int:
    """After a change of end date: an ended course whose new end is still ahead goes on, and its
    ended accounts come back. Returns how many accounts came back."""
    if not course.is_ended or timezone.now() >= course.end_moment:
        return 0
    with transaction.atomic():
        Course.objects.filter(pk=course.pk).update(ended_at=None)
        course.ended_at = None
        ended = list(MemberAccount.objects.filter(course=course, state=S.ENDED))
        for account in ended:
            next_step.account_unend_enqueue(account)
    return len(ended)


def account_unend(*, account_id: int) -> bool:
    """Give an ended account back: frozen if its budget had frozen it before, ready otherwise
    (then a task takes the freeze SCP off)."""
    account = MemberAccount.objects.filter(pk=account_id).first()
    if account is None or account.state != S.ENDED:
        return False
    before = _state_before_end(account)
    with transaction.atomic():
        if not transition(account, expected=S.ENDED, to=before, reason="The course goes on", freeze_sync_pending=True):
            return False
        freeze_sync_enqueue(account)
    return True


def _state_before_end(account: MemberAccount) -> S:
    last = AccountEvent.objects.filter(account=account, to_state=S.ENDED).order_by("-created_at", "-id").first()
    return S.FROZEN if last is not None and last.from_state == S.FROZEN else S.READY


def account_exclude(*, actor, account: MemberAccount, excluded: bool) -> None:
    """Keep one account out of the end of the course (or put it back in). An excluded account
    that was already frozen for the end is given back at once."""
    if account.membership_id is None:
        raise EndingError("Only students' accounts can be kept out of the end of the course.")
    with transaction.atomic():
        MemberAccount.objects.filter(pk=account.pk).update(end_excluded=excluded)
        account.end_excluded = excluded
        audit_record(
            actor=actor,
            action=AuditAction.ACCOUNT_EXCLUDED if excluded else AuditAction.ACCOUNT_INCLUDED,
            course=account.course,
            target=account,
            summary=f"{account.membership.email}: "
            + ("kept out of the end of the course" if excluded else "ends with the course again"),
        )
        if excluded and account.state == S.ENDED:
            next_step.account_unend_enqueue(account)
        elif not excluded and account.course.is_ended and account.state in IN_USE_STATES:
            next_step.account_end_enqueue(account)
