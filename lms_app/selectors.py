"""Reads for lms_app's pages."""

from django.db.models import QuerySet

from accounts_app.choices import CourseRole
from accounts_app.models import Course
from lms_app.models import LmsRosterFetch, RosterFetchStatus


def roster_fetches(*, course: Course) -> QuerySet[LmsRosterFetch]:
    """The course's asks of the LMS for its roster, newest first: another course's answer 404."""
    return LmsRosterFetch.objects.filter(link__course=course).select_related(
        "link__course", "link__linked_by", "link__context__deployment__registration", "requested_by", "applied_by"
    )


def roster_fetch_awaiting_review(*, course: Course) -> LmsRosterFetch | None:
    return roster_fetches(course=course).filter(status=RosterFetchStatus.FETCHED).first()


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
