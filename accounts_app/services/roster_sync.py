"""Rosters another system keeps (an LMS, through lms_app): the whole list of people it says are in
the course is compared with the roster (`roster_sync_plan`, which only reads and makes the
preview), then applied at once (`roster_sync_apply`).

What the list decides:
- each person on it is added, or their roster entry takes the list's role and name; an entry the
  list names, whoever made it, is kept by the outside system from then on (source LMS);
- an entry the outside system keeps and the list no longer names is removed as an instructor
  removes one (`member_remove`: a student's AWS account starts the course's end policy); people
  added by hand, from a CSV file or with the join code stay;
- the course keeps an instructor: a list that would leave none, or that names no instructor and
  would remove the person who linked the course, is refused, as is an address that is not one.

An automatic sync may be given a `RemovalLimit`: a list that would remove more students than
that (an outside system's glitch answering an empty class) changes nothing and waits for an
instructor to look at it (`roster_sync_awaiting_review`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from accounts_app.choices import AuditAction, CourseRole, MembershipSource
from accounts_app.models import Course, Membership, User, normalize_email
from accounts_app.services.audit import audit_record
from accounts_app.services.invitations import invitations_enqueue
from accounts_app.services.rosters import member_remove
from accounts_app.services.staff_access import RoleChange, staff_access_follow

NAME_MAX_LENGTH = Membership._meta.get_field("name").max_length


@dataclass(frozen=True)
class RosterPerson:
    """Someone the outside system says is in the course, with the portal role it gives them."""

    email: str
    name: str
    role: CourseRole


class SyncOutcome(StrEnum):
    ADD = "add"
    UPDATE = "update"
    REMOVE = "remove"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class SyncLine:
    email: str
    name: str
    role: CourseRole  # the role after the sync; a removed person's current one
    outcome: SyncOutcome
    member: Membership | None = None  # the roster entry, for all but an addition
    changes: tuple[str, ...] = ()  # human-readable, e.g. "role: Student → TA"


@dataclass
class RosterSyncPlan:
    """What applying the list would do, person by person, before anything is saved."""

    lines: list[SyncLine] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    students_before: int = 0  # students on the roster now

    @property
    def ok(self) -> bool:
        return not self.errors

    def with_outcome(self, outcome: SyncOutcome) -> list[SyncLine]:
        return [line for line in self.lines if line.outcome == outcome]

    @property
    def summary(self) -> dict[str, int]:
        """How many people have each outcome, keyed by outcome name (for templates and JSON)."""
        return {outcome.value: len(self.with_outcome(outcome)) for outcome in SyncOutcome}

    @property
    def changes_anything(self) -> bool:
        return any(line.outcome != SyncOutcome.UNCHANGED for line in self.lines)

    @property
    def students_removed(self) -> int:
        return sum(1 for line in self.with_outcome(SyncOutcome.REMOVE) if line.role == CourseRole.STUDENT)


@dataclass(frozen=True)
class RemovalLimit:
    """The most students an automatic sync removes without an instructor's look: `at_least`, or
    `percent` of the students on the roster when that is more."""

    at_least: int
    percent: int

    def allows(self, plan: RosterSyncPlan) -> bool:
        return plan.students_removed <= max(self.at_least, plan.students_before * self.percent // 100)


class RosterSyncError(Exception):
    """The list cannot be applied (its plan has errors); nothing was changed."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__(" ".join(errors))


class RosterSyncHeld(Exception):
    """The list would remove more students than the automatic sync's limit; nothing was changed."""

    def __init__(self, plan: RosterSyncPlan):
        self.plan = plan
        super().__init__(f"The list would remove {plan.students_removed} of {plan.students_before} students.")


def roster_sync_plan(
    *, course: Course, people: Iterable[RosterPerson], keep_emails: Collection[str] = ()
) -> RosterSyncPlan:
    """Compare the outside system's list with the roster. Reads only. `keep_emails`: people the
    list may not remove while it names no instructor (the instructor who linked the course)."""
    existing = {m.email: m for m in course.memberships.only("email", "name", "role", "source")}
    plan = RosterSyncPlan(students_before=sum(1 for m in existing.values() if m.role == CourseRole.STUDENT))
    listed = _listed_people(people, plan.errors)
    for email, person in listed.items():
        plan.lines.append(_line_for(person, existing.get(email)))
    for email, member in existing.items():
        if email not in listed and member.source == MembershipSource.LMS:
            plan.lines.append(
                SyncLine(email, member.name, CourseRole(member.role), SyncOutcome.REMOVE, member, ("not in the list",))
            )
    plan.lines.sort(key=lambda line: (list(SyncOutcome).index(line.outcome), line.role, line.name, line.email))
    if plan.ok:
        plan.errors.extend(_instructor_problems(plan, listed, existing, {normalize_email(e) for e in keep_emails}))
    return plan


def _listed_people(people: Iterable[RosterPerson], errors: list[str]) -> dict[str, RosterPerson]:
    listed: dict[str, RosterPerson] = {}
    for person in people:
        email = normalize_email(person.email)
        try:
            validate_email(email)
        except ValidationError:
            errors.append(f"“{person.email}” ({person.name or 'no name'}) is not an email address.")
            continue
        if email in listed:
            errors.append(f"{email} is listed twice. Each person needs their own address.")
            continue
        listed[email] = RosterPerson(email=email, name=person.name.strip()[:NAME_MAX_LENGTH], role=person.role)
    return listed


def _line_for(person: RosterPerson, member: Membership | None) -> SyncLine:
    if member is None:
        return SyncLine(person.email, person.name, person.role, SyncOutcome.ADD)
    changes = []
    if person.role != member.role:
        changes.append(f"role: {member.get_role_display()} → {person.role.label}")
    if person.name and person.name != member.name:
        changes.append(f"name: {member.name or '(none)'} → {person.name}")
    if member.source != MembershipSource.LMS:
        changes.append(f"source: {member.get_source_display()} → {MembershipSource.LMS.label}")
    outcome = SyncOutcome.UPDATE if changes else SyncOutcome.UNCHANGED
    return SyncLine(person.email, person.name or member.name, person.role, outcome, member, tuple(changes))


def _instructor_problems(
    plan: RosterSyncPlan,
    listed: dict[str, RosterPerson],
    existing: dict[str, Membership],
    keep_emails: set[str],
) -> list[str]:
    removed = {line.email for line in plan.with_outcome(SyncOutcome.REMOVE)}
    roles_after = {email: member.role for email, member in existing.items() if email not in removed}
    roles_after.update({email: person.role for email, person in listed.items()})
    if CourseRole.INSTRUCTOR not in roles_after.values():
        return ["This list would leave the course without an instructor."]
    names_an_instructor = any(person.role == CourseRole.INSTRUCTOR for person in listed.values())
    return [
        f"The list names no instructor and would remove {email}, who linked the course. "
        "Check who the outside system lists as the course's teachers."
        for email in sorted(removed & keep_emails)
        if not names_an_instructor
    ]


def roster_sync_apply(
    *,
    actor: User | None,
    course: Course,
    people: Iterable[RosterPerson],
    managed_by: str,
    send_invitations: bool,
    keep_emails: Collection[str] = (),
    removal_limit: RemovalLimit | None = None,
) -> RosterSyncPlan:
    """Apply the outside system's list, all or nothing. The plan is made again under a lock on
    the course, so two syncs of one course follow each other. Raises RosterSyncError when it has
    errors, RosterSyncHeld when it would remove more students than `removal_limit` (an automatic
    sync's); both change nothing. `managed_by` names the system, e.g. "Canvas: CS 101"."""
    people = list(people)
    with transaction.atomic():
        course = Course.objects.select_for_update().get(pk=course.pk)
        plan = roster_sync_plan(course=course, people=people, keep_emails=keep_emails)
        if not plan.ok:
            raise RosterSyncError(plan.errors)
        if removal_limit is not None and not removal_limit.allows(plan):
            raise RosterSyncHeld(plan)

        _write_additions_and_updates(course, plan)
        for line in plan.with_outcome(SyncOutcome.REMOVE):
            member_remove(actor=actor, member=line.member)
        course.roster_managed_by, course.roster_synced_at = managed_by, timezone.now()
        course.roster_sync_error, course.roster_sync_awaiting_review = "", False
        course.save(
            update_fields=["roster_managed_by", "roster_synced_at", "roster_sync_error", "roster_sync_awaiting_review"]
        )
        if plan.changes_anything:  # a nightly sync that finds nothing new is no event
            _audit_sync(actor, course, managed_by, plan)
        _follow_additions_and_updates(actor, course, plan, send_invitations)
    return plan


def _write_additions_and_updates(course: Course, plan: RosterSyncPlan) -> None:
    now = timezone.now()
    # One INSERT … ON CONFLICT for additions and updates alike, as a CSV import: constant
    # queries, and no race with an import or a join of the same person.
    Membership.objects.bulk_create(
        [
            _member_after_sync(course, line, now)
            for line in plan.lines
            if line.outcome in (SyncOutcome.ADD, SyncOutcome.UPDATE)
        ],
        update_conflicts=True,
        unique_fields=["course", "email"],
        update_fields=["role", "name", "source", "updated_at"],
    )


def _member_after_sync(course: Course, line: SyncLine, now: datetime) -> Membership:
    return Membership(
        course=course,
        email=line.email,
        name=line.name,
        role=line.role,
        source=MembershipSource.LMS,
        created_at=now,
        updated_at=now,
    )


def _audit_sync(actor: User | None, course: Course, managed_by: str, plan: RosterSyncPlan) -> None:
    counts = plan.summary
    audit_record(
        actor=actor,
        action=AuditAction.ROSTER_SYNCED,
        course=course,
        target=course,
        summary=(
            f"Synced with {managed_by}: {counts['add']} added, {counts['update']} updated, "
            f"{counts['remove']} removed, {counts['unchanged']} unchanged"
        ),
        data={
            "added": [line.email for line in plan.with_outcome(SyncOutcome.ADD)],
            "updated": {line.email: list(line.changes) for line in plan.with_outcome(SyncOutcome.UPDATE)},
            "removed": [line.email for line in plan.with_outcome(SyncOutcome.REMOVE)],
        },
    )


def _follow_additions_and_updates(
    actor: User | None, course: Course, plan: RosterSyncPlan, send_invitations: bool
) -> None:
    """What a CSV import does after writing: invitations for the people added, and the staff's
    AWS access for new or changed roles (`member_remove` did both for the people removed)."""
    added = [line.email for line in plan.with_outcome(SyncOutcome.ADD)]
    if send_invitations and added:
        added_ids = course.memberships.filter(email__in=added).values_list("pk", flat=True)
        invitations_enqueue(actor=actor, course=course, member_ids=added_ids)
    staff_access_follow(
        course=course,
        changes=[
            RoleChange(line.email, line.member.role if line.member else None, line.role)
            for line in plan.lines
            if line.outcome in (SyncOutcome.ADD, SyncOutcome.UPDATE)
        ],
    )


def roster_sync_awaiting_review(*, course: Course, managed_by: str, held_because: str = "") -> None:
    """A list the outside system sent waits for an instructor: one they asked for, or one an
    automatic sync did not apply (`held_because` says why; the hold is audited)."""
    with transaction.atomic():
        Course.objects.filter(pk=course.pk).update(
            roster_managed_by=managed_by, roster_sync_awaiting_review=True, roster_sync_error=""
        )
        if held_because:
            audit_record(
                actor=None,
                action=AuditAction.ROSTER_SYNC_HELD,
                course=course,
                target=course,
                summary=f"Sync with {managed_by} held for review: {held_because}",
            )


def roster_sync_failed(*, course: Course, managed_by: str, error: str, trying_again: bool) -> None:
    """The outside system could not be asked, or its list cannot be applied: the roster page
    says why. A failure that will not be tried again is audited."""
    with transaction.atomic():
        Course.objects.filter(pk=course.pk).update(roster_managed_by=managed_by, roster_sync_error=error)
        if not trying_again:
            audit_record(
                actor=None,
                action=AuditAction.ROSTER_SYNC_FAILED,
                course=course,
                target=course,
                summary=f"Sync with {managed_by} failed: {error}",
            )
