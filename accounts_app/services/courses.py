from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts_app.choices import AuditAction, CourseRole, InviteStatus, MembershipSource
from accounts_app.models import Course, Membership, User, normalize_email
from accounts_app.selectors import course_code_locked
from accounts_app.services.audit import audit_record
from accounts_app.services.guardrails import GUARDRAIL_FIELDS, course_guardrails_enqueue

# What each account's AWS Budget follows: an edit of one updates them all.
BUDGET_FIELDS = frozenset(
    {"budget_per_student", "budget_period", "start_date", "end_date", "usage_alert_email", "budget_action_enabled"}
)

# The fields an instructor edits on the course settings page.
COURSE_FIELDS = (
    "name",
    "code",
    "term",
    "start_date",
    "end_date",
    "description",
    "budget_per_student",
    "budget_period",
    "freeze_at_percent",
    "budget_action_enabled",
    "spike_multiple",
    "cost_tag_key",
    "access_mode",
    "end_policy",
    "end_notice_days",
    "grace_days",
    "handover_allowed",
    "allowed_regions",
    "allowed_services",
    "allowed_instance_families",
    "bedrock_model_families",
    "billing_contact_email",
    "usage_alert_email",
)
# What a new course allows until its instructor opts in to more: one region, services billed by
# use with a free tier (and EC2), and burstable instance families at cents an hour. No GPU, no
# large family, no service whose forgotten resource costs tens of dollars a day.
NEW_COURSE_REGIONS = ["us-east-1"]
NEW_COURSE_SERVICES = ["cloudformation", "cloudwatch", "dynamodb", "ec2", "iam", "lambda", "logs", "s3"]
NEW_COURSE_INSTANCE_FAMILIES = ["t3", "t3a", "t4g"]
JOIN_CODE_ATTEMPTS = 5
JOIN_LIMIT_FIELDS = ("join_code_expires_at", "join_code_max_joins", "join_email_domains")
CODE_LOCKED = (
    "The course code cannot change any more: the course has AWS accounts or an OU, and their root "
    "emails, names and tags carry it."
)


class CourseError(Exception):
    """A change the portal refuses; the message is for the person who asked."""


@transaction.atomic
def course_create(*, actor: User | None, instructor_email: str, **fields: Any) -> Course:
    """Create a course with `instructor_email` as its first instructor."""
    course = Course.objects.create(created_by=actor, **fields)
    instructor_email = normalize_email(instructor_email)
    instructor = User.objects.filter(email=instructor_email).first()
    Membership.objects.create(
        course=course,
        email=instructor_email,
        name=instructor.name if instructor else "",
        user=instructor,
        role=CourseRole.INSTRUCTOR,
        source=MembershipSource.MANUAL,
        invite_status=InviteStatus.ACCEPTED if instructor else InviteStatus.NOT_SENT,
        accepted_at=timezone.now() if instructor else None,
    )
    audit_record(
        actor=actor,
        action=AuditAction.COURSE_CREATED,
        course=course,
        target=course,
        summary=f"Created course {course.code} ({course.name}) with instructor {instructor_email}",
    )
    return course


@transaction.atomic
def course_update(*, actor: User, course: Course, changes: dict[str, Any]) -> Course:
    """Apply the edited fields in `changes` and record what each was before."""
    # A form marks a field changed when its text differs ("s3 ec2" for "ec2, s3"); only a
    # different value is a change to record.
    changes = {name: value for name, value in changes.items() if getattr(course, name) != value}
    if "code" in changes and course_code_locked(course=course):
        raise CourseError(CODE_LOCKED)
    before = {name: getattr(course, name) for name in changes}
    for name, value in changes.items():
        setattr(course, name, value)
    course.save()
    changed = {name: [_plain(before[name]), _plain(value)] for name, value in changes.items()}
    if changed:
        labels = ", ".join(str(Course._meta.get_field(name).verbose_name) for name in changed)
        audit_record(
            actor=actor,
            action=AuditAction.COURSE_UPDATED,
            course=course,
            target=course,
            summary=f"Edited {labels}",
            data={"changes": changed},
        )
    if "end_date" in changes:
        from accounts_app.services.ending import course_reopen_if_extended

        course_reopen_if_extended(actor=actor, course=course)
    if course.aws_ou_id and GUARDRAIL_FIELDS & changes.keys():
        course_guardrails_enqueue(course)
    if BUDGET_FIELDS & changes.keys():
        from billing_app.tasks import course_budgets_ensure_task

        course_budgets_ensure_task.delay_on_commit(course.pk)
    if course.cost_tag_key and "cost_tag_key" in changes:
        from accounts_app.tasks import cost_tags_activate_task

        cost_tags_activate_task.delay_on_commit()
    return course


@transaction.atomic
def course_archive(*, actor: User, course: Course) -> Course:
    course.archived_at = timezone.now()
    course.save(update_fields=["archived_at", "updated_at"])
    audit_record(
        actor=actor,
        action=AuditAction.COURSE_ARCHIVED,
        course=course,
        target=course,
        summary=f"Archived course {course.code}",
    )
    return course


@transaction.atomic
def course_unarchive(*, actor: User, course: Course) -> Course:
    course.archived_at = None
    course.save(update_fields=["archived_at", "updated_at"])
    audit_record(
        actor=actor,
        action=AuditAction.COURSE_UNARCHIVED,
        course=course,
        target=course,
        summary=f"Restored course {course.code} from the archive",
    )
    return course


@dataclass(frozen=True)
class JoinCodeLimits:
    """What an instructor sets beside the join code: when it stops working, how many people can
    join with it, and which email domains they must have a verified address at."""

    expires_at: datetime | None = None
    max_joins: int | None = None
    email_domains: tuple[str, ...] = ()

    def describe(self) -> str:
        """e.g. "until 2026-09-15 09:00 UTC, at most 40 people, only school.edu"."""
        parts = []
        if self.expires_at:
            parts.append(f"until {timezone.localtime(self.expires_at):%Y-%m-%d %H:%M %Z}")
        if self.max_joins is not None:
            parts.append(f"at most {self.max_joins} people")
        if self.email_domains:
            parts.append(f"only {', '.join(self.email_domains)}")
        return ", ".join(parts) or "no limits"


def course_join_code_enable(*, actor: User, course: Course, limits: JoinCodeLimits | None = None) -> Course:
    """Turn self-enrolment on, keeping the existing code if there is one."""
    if course.join_code:
        return _set_join_code(actor, course, course.join_code, AuditAction.JOIN_CODE_ENABLED, limits)
    return course_join_code_rotate(actor=actor, course=course, limits=limits)


def course_join_code_rotate(*, actor: User, course: Course, limits: JoinCodeLimits | None = None) -> Course:
    """Give the course a fresh code; the old one stops working at once."""
    action = AuditAction.JOIN_CODE_ROTATED if course.join_code else AuditAction.JOIN_CODE_ENABLED
    for _ in range(JOIN_CODE_ATTEMPTS):
        try:
            return _set_join_code(actor, course, Course.new_join_code(), action, limits)
        except IntegrityError:
            continue  # another course drew the same code; draw again
    raise RuntimeError("Could not find an unused join code.")


@transaction.atomic
def course_join_code_limits_set(*, actor: User, course: Course, limits: JoinCodeLimits) -> Course:
    """Change the limits of the code in use, keeping the code and the joins counted so far."""
    _apply_limits(course, limits)
    course.save(update_fields=[*JOIN_LIMIT_FIELDS, "updated_at"])
    audit_record(
        actor=actor,
        action=AuditAction.COURSE_UPDATED,
        course=course,
        target=course,
        summary=f"Set the join code's limits: {limits.describe()}",
    )
    return course


@transaction.atomic
def course_join_code_disable(*, actor: User, course: Course) -> Course:
    course.join_code_enabled = False
    course.save(update_fields=["join_code_enabled", "updated_at"])
    audit_record(
        actor=actor,
        action=AuditAction.JOIN_CODE_DISABLED,
        course=course,
        target=course,
        summary="Turned the join code off",
    )
    return course


@transaction.atomic
def _set_join_code(
    actor: User, course: Course, code: str, action: AuditAction, limits: JoinCodeLimits | None
) -> Course:
    if code != course.join_code:
        course.join_code_joins = 0  # a cap counts the joins with this code, not with older ones
    course.join_code = code
    course.join_code_enabled = True
    summary = f"Join code is now {code}"
    if limits is not None:
        _apply_limits(course, limits)
        if limits != JoinCodeLimits():
            summary += f"; {limits.describe()}"
    course.save(update_fields=["join_code", "join_code_enabled", "join_code_joins", *JOIN_LIMIT_FIELDS, "updated_at"])
    audit_record(actor=actor, action=action, course=course, target=course, summary=summary)
    return course


def _apply_limits(course: Course, limits: JoinCodeLimits) -> None:
    course.join_code_expires_at = limits.expires_at
    course.join_code_max_joins = limits.max_joins
    course.join_email_domains = list(limits.email_domains)


def _plain(value: Any) -> Any:
    """A JSON-friendly copy of a field value for the audit log."""
    if isinstance(value, (str, int, float, bool, list, type(None))):
        return value
    return str(value)
