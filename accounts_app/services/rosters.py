"""Roster writes: CSV imports (previewed, then applied atomically), and changes to one person."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from django.db import transaction
from django.utils import timezone

from accounts_app.choices import AuditAction, CourseRole, MembershipSource
from accounts_app.lifecycle import IN_USE_STATES
from accounts_app.models import (
    Course,
    MemberAccount,
    Membership,
    RosterUpload,
    User,
    normalize_email,
)
from accounts_app.roster_csv import RosterError, RosterRow, decode_roster, parse_roster
from accounts_app.services.audit import audit_record
from accounts_app.services.ending import account_retire
from accounts_app.services.invitations import invitations_enqueue
from accounts_app.services.staff_access import RoleChange, staff_access_follow


class RowOutcome(StrEnum):
    ADD = "add"
    UPDATE = "update"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class PlannedRow:
    row: RosterRow
    outcome: RowOutcome
    member: Membership | None = None  # the roster entry the row matches, if any
    changes: tuple[str, ...] = ()  # human-readable, e.g. "role: student → ta"


@dataclass
class RosterPlan:
    """What importing a file would do, line by line, before anything is saved."""

    rows: list[PlannedRow] = field(default_factory=list)
    errors: list[RosterError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def count(self, outcome: RowOutcome) -> int:
        return sum(1 for planned in self.rows if planned.outcome == outcome)

    @property
    def summary(self) -> dict[str, int]:
        """How many rows have each outcome, keyed by outcome name (for templates)."""
        return {outcome.value: self.count(outcome) for outcome in RowOutcome}


class RosterImportError(Exception):
    def __init__(self, errors: list[RosterError]):
        self.errors = errors
        super().__init__("; ".join(str(error) for error in errors))


class RosterChangeError(Exception):
    """A change to one person that would leave the roster in a bad state."""


def roster_plan(*, course: Course, text: str) -> RosterPlan:
    """Compare a roster file with the course roster. Reads only."""
    parsed = parse_roster(text)
    plan = RosterPlan(errors=list(parsed.errors))
    existing = {m.email: m for m in course.memberships.only("email", "name", "role")}
    for row in parsed.rows:
        member = existing.get(row.email)
        if member is None:
            plan.rows.append(PlannedRow(row, RowOutcome.ADD))
            continue
        changes = []
        if row.role != member.role:
            changes.append(f"role: {member.get_role_display()} → {CourseRole(row.role).label}")
        if row.name and row.name != member.name:
            changes.append(f"name: {member.name or '(none)'} → {row.name}")
        outcome = RowOutcome.UPDATE if changes else RowOutcome.UNCHANGED
        plan.rows.append(PlannedRow(row, outcome, member, tuple(changes)))

    if plan.ok and not _keeps_an_instructor(existing, plan):
        plan.errors.append(RosterError(None, "This file would leave the course without an instructor."))
    return plan


def roster_upload_create(*, actor: User, course: Course, filename: str, data: bytes) -> tuple[RosterUpload, RosterPlan]:
    """Keep an uploaded file for its preview. ValueError if it cannot be read at all."""
    text = decode_roster(data)
    upload = RosterUpload.objects.create(course=course, uploaded_by=actor, filename=filename[:255], content=text)
    return upload, roster_plan(course=course, text=text)


def roster_upload_apply(*, actor: User, upload: RosterUpload, send_invitations: bool) -> RosterPlan:
    """Import a previewed upload. Applying the same upload twice does nothing the second time."""
    with transaction.atomic():
        upload = RosterUpload.objects.select_for_update().get(pk=upload.pk)
        if upload.applied_at is not None:
            return roster_plan(course=upload.course, text=upload.content)
        plan = roster_import(
            actor=actor,
            course=upload.course,
            text=upload.content,
            send_invitations=send_invitations,
            source_name=upload.filename,
        )
        upload.applied_at = timezone.now()
        upload.save(update_fields=["applied_at"])
    return plan


@transaction.atomic
def roster_import(
    *,
    actor: User | None,
    course: Course,
    text: str,
    send_invitations: bool,
    source_name: str = "roster.csv",
) -> RosterPlan:
    """Add and update everyone in a roster file, all or nothing, in a fixed number of queries.

    Nobody is removed: people missing from the file stay on the roster. Raises
    RosterImportError (and changes nothing) if any line has an error.
    """
    plan = roster_plan(course=course, text=text)
    if not plan.ok:
        raise RosterImportError(plan.errors)

    now = timezone.now()
    changed = [p for p in plan.rows if p.outcome != RowOutcome.UNCHANGED]
    # One INSERT … ON CONFLICT for adds and updates alike: constant queries, no race between
    # two imports of the same person.
    Membership.objects.bulk_create(
        [_member_after_import(course, planned, now) for planned in changed],
        update_conflicts=True,
        unique_fields=["course", "email"],
        update_fields=["role", "name", "updated_at"],
    )
    added = [p.row.email for p in changed if p.outcome == RowOutcome.ADD]
    audit_record(
        actor=actor,
        action=AuditAction.ROSTER_IMPORTED,
        course=course,
        target=course,
        summary=(
            f"Imported {source_name}: {len(added)} added, {plan.count(RowOutcome.UPDATE)} updated, "
            f"{plan.count(RowOutcome.UNCHANGED)} unchanged"
        ),
        data={
            "added": added,
            "updated": {p.row.email: list(p.changes) for p in plan.rows if p.outcome == RowOutcome.UPDATE},
        },
    )
    if send_invitations and added:
        added_ids = course.memberships.filter(email__in=added).values_list("pk", flat=True)
        invitations_enqueue(actor=actor, course=course, member_ids=added_ids)
    staff_access_follow(
        course=course,
        changes=[
            RoleChange(planned.row.email, planned.member.role if planned.member else None, planned.row.role)
            for planned in changed
        ],
    )
    return plan


def _member_after_import(course: Course, planned: PlannedRow, now: datetime) -> Membership:
    current_name = planned.member.name if planned.member else ""
    return Membership(
        course=course,
        email=planned.row.email,
        name=planned.row.name or current_name,  # a blank name in the file keeps the known one
        role=planned.row.role,
        source=MembershipSource.IMPORT,
        created_at=now,
        updated_at=now,
    )


def _keeps_an_instructor(existing: dict[str, Membership], plan: RosterPlan) -> bool:
    roles = {email: member.role for email, member in existing.items()}
    roles.update({planned.row.email: planned.row.role for planned in plan.rows})
    return CourseRole.INSTRUCTOR in roles.values()


@transaction.atomic
def member_add(*, actor: User, course: Course, email: str, name: str, role: CourseRole) -> Membership:
    """Put one person on the roster by hand."""
    email = normalize_email(email)
    if course.memberships.filter(email=email).exists():
        raise RosterChangeError(f"{email} is already on the roster; change their role in the table.")
    member = Membership.objects.create(
        course=course,
        email=email,
        name=name,
        role=role,
        source=MembershipSource.MANUAL,
    )
    audit_record(
        actor=actor,
        action=AuditAction.MEMBER_ADDED,
        course=course,
        target=member,
        summary=f"Added {email} as {member.get_role_display()}",
    )
    staff_access_follow(course=course, changes=[RoleChange(email, None, member.role)])
    return member


@transaction.atomic
def member_change_role(*, actor: User, member: Membership, role: CourseRole) -> Membership:
    member = Membership.objects.select_for_update().get(pk=member.pk)
    if member.role == role:
        return member
    _refuse_losing_last_instructor(member)
    previous, previous_role = member.get_role_display(), member.role
    member.role = role
    member.save(update_fields=["role", "updated_at"])
    audit_record(
        actor=actor,
        action=AuditAction.MEMBER_ROLE_CHANGED,
        course=member.course,
        target=member,
        summary=f"Changed {member.email} from {previous} to {member.get_role_display()}",
    )
    staff_access_follow(course=member.course, changes=[RoleChange(member.email, previous_role, role)])
    return member


@transaction.atomic
def member_remove(*, actor: User, member: Membership) -> None:
    """Take a person off the roster. A student's AWS account does not stay behind unowned: its
    end-of-course policy starts now (cleanup, then closing or the pool)."""
    member = Membership.objects.select_for_update().get(pk=member.pk)
    _refuse_losing_last_instructor(member)
    account = MemberAccount.objects.filter(membership=member, state__in=IN_USE_STATES).select_related("course").first()
    if account is not None:
        account_retire(actor=actor, account=account, reason=f"{member.email} left the course")
    audit_record(
        actor=actor,
        action=AuditAction.MEMBER_REMOVED,
        course=member.course,
        target=member,
        summary=f"Removed {member.email} ({member.get_role_display()}) from the roster",
    )
    staff_access_follow(course=member.course, changes=[RoleChange(member.email, member.role, None)])
    member.delete()


def _refuse_losing_last_instructor(member: Membership) -> None:
    if member.role != CourseRole.INSTRUCTOR:
        return
    # Lock every instructor row so two simultaneous demotions cannot both pass this check.
    instructors = list(
        Membership.objects.select_for_update()
        .filter(course_id=member.course_id, role=CourseRole.INSTRUCTOR)
        .values_list("pk", flat=True)
    )
    if instructors == [member.pk]:
        raise RosterChangeError("A course needs at least one instructor. Add another one first.")


@transaction.atomic
def roster_member_ensure(
    *, actor: User | None, course: Course, email: str, name: str, role: CourseRole, source: MembershipSource
) -> Membership:
    """Bring one person's roster entry to what another system says (the LMS, at a launch or in its
    roster): added with `role` and `source` if missing, else given `role` and, when `name` is not
    blank, `name`; its source stays what it was. Refuses (RosterChangeError) to take the role of
    the course's last instructor away."""
    email = normalize_email(email)
    # get_or_create's own savepoint settles a race for the same person (two launches, a launch and
    # the roster sync): the loser reads the winner's entry and goes on as an update.
    member, created = Membership.objects.select_for_update().get_or_create(
        course=course, email=email, defaults={"name": name, "role": role, "source": source}
    )
    source_words = _source_words(source)
    if created:
        audit_record(
            actor=actor,
            action=AuditAction.MEMBER_ADDED,
            course=course,
            target=member,
            summary=f"Added {email} as {member.get_role_display()} ({source_words})",
        )
        staff_access_follow(course=course, changes=[RoleChange(email, None, member.role)])
        return member
    if name and name != member.name:
        member.name = name
        member.save(update_fields=["name", "updated_at"])
    if member.role != role:
        _refuse_losing_last_instructor(member)
        previous, previous_role = member.get_role_display(), member.role
        member.role = role
        member.save(update_fields=["role", "updated_at"])
        audit_record(
            actor=actor,
            action=AuditAction.MEMBER_ROLE_CHANGED,
            course=course,
            target=member,
            summary=f"Changed {email} from {previous} to {member.get_role_display()} ({source_words})",
        )
        staff_access_follow(course=course, changes=[RoleChange(email, previous_role, role)])
    return member


def _source_words(source: MembershipSource) -> str:
    """A source's label inside a sentence: "from the LMS", "added by hand"."""
    label = MembershipSource(source).label
    return label[:1].lower() + label[1:]
