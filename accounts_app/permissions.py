"""Who may do what. Course-level checks read `viewer_role`, which Course.objects.for_user()
annotates on every course it returns."""

from __future__ import annotations

from allauth.account.models import EmailAddress
from django.conf import settings

from accounts_app.choices import STAFF_ROLES, CourseRole
from accounts_app.models import Course, Membership


def can_create_courses(user) -> bool:
    if not user.is_authenticated:
        return False
    if user.is_staff or user.is_instructor:
        return True
    domains = {domain.lower() for domain in settings.PORTAL_INSTRUCTOR_EMAIL_DOMAINS}
    if not domains:
        return False
    verified = EmailAddress.objects.filter(user=user, verified=True).values_list("email", flat=True)
    return any(email.rsplit("@", 1)[-1].lower() in domains for email in verified)


def must_use_mfa(user) -> bool:
    """Administrators and instructors hold other people's AWS accounts: they need a second factor."""
    if not user.is_authenticated:
        return False
    return can_create_courses(user) or Membership.objects.filter(user=user, role=CourseRole.INSTRUCTOR).exists()


def holds_staff_role(user) -> bool:
    """Administrators, instructors (by flag, email domain or roster role) and TAs: they see other
    people's data, so their sessions end when left idle."""
    if not user.is_authenticated:
        return False
    return can_create_courses(user) or Membership.objects.filter(user=user, role__in=STAFF_ROLES).exists()


def can_manage_course(user, course: Course) -> bool:
    """Instructors of the course, and administrators, may change it."""
    return user.is_staff or course.viewer_role == CourseRole.INSTRUCTOR


def can_view_roster(user, course: Course) -> bool:
    """TAs see what instructors see, without changing it."""
    return user.is_staff or course.viewer_role in STAFF_ROLES
