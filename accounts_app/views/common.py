"""How every course view finds its objects: through querysets scoped to the signed-in user, so a
course or person the user may not see answers 404."""

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from accounts_app.models import Course, Membership
from accounts_app.permissions import can_manage_course, can_view_roster


def visible_course(request: HttpRequest, course_id: int) -> Course:
    return get_object_or_404(Course.objects.for_user(request.user), pk=course_id)


def managed_course(request: HttpRequest, course_id: int, *, allow_archived: bool = False) -> Course:
    """A course the user instructs (or administers); TAs and students are refused, and so is any
    change to an archived course unless `allow_archived`."""
    course = visible_course(request, course_id)
    if not can_manage_course(request.user, course):
        raise PermissionDenied("Only the course's instructors can do this.")
    if course.is_archived and not allow_archived:
        raise PermissionDenied("This course is archived. Restore it before making changes.")
    return course


def roster_course(request: HttpRequest, course_id: int) -> Course:
    """A course whose whole roster the user may read: instructors, TAs, administrators."""
    course = visible_course(request, course_id)
    if not can_view_roster(request.user, course):
        raise PermissionDenied("Only the course's instructors and TAs can see the roster.")
    return course


def visible_member(request: HttpRequest, course: Course, member_id: int) -> Membership:
    return get_object_or_404(Membership.objects.visible_to(request.user, course), pk=member_id)
