"""Reads for the LMS pages."""

from django.db.models import QuerySet

from accounts_app.choices import CourseRole
from accounts_app.models import Course


def courses_taught(*, user) -> QuerySet[Course]:
    """The portal courses `user` is an instructor of and that may still change (not archived),
    through the scoped queryset, each with the LMS course it follows, if any."""
    return (
        Course.objects.for_user(user)
        .active()
        .filter(memberships__user=user, memberships__role=CourseRole.INSTRUCTOR)
        .select_related("lms_link__context")
        .order_by("-start_date", "code")
    )
