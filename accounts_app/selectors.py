"""Reads for the views. Callers pass courses they fetched through Course.objects.for_user()."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from accounts_app.choices import CourseRole
from accounts_app.models import AuditEvent, Course, Membership


def course_role_counts(*, course: Course) -> dict[str, int]:
    counts = course.memberships.aggregate(
        **{role.value: Count("pk", filter=Q(role=role)) for role in CourseRole},
        signed_in=Count("pk", filter=Q(user__isnull=False)),
    )
    return counts


def roster_members(
    *, course: Course, role: str | None = None, search: str | None = None
) -> QuerySet[Membership]:
    members = course.memberships.select_related("user").order_by("role", "name", "email")
    if role in CourseRole.values:
        members = members.filter(role=role)
    if search:
        members = members.filter(Q(email__icontains=search) | Q(name__icontains=search))
    return members


def course_audit_events(*, course: Course) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(course=course).select_related("actor")
