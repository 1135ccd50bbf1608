"""Who may do what. Course-level checks read `viewer_role`, which Course.objects.for_user()
annotates on every course it returns."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import reduce
from operator import or_

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.db.models import BooleanField, Exists, OuterRef, Q, Value

from accounts_app.choices import STAFF_ROLES, CourseRole
from accounts_app.models import Course, Membership


def request_user_facts(domains: Iterable[str]) -> dict[str, Exists | Value]:
    """What the middleware asks of every signed-in request (a second factor owned? a staff role?),
    as annotations of the query that loads the session's user (User's default manager, which the
    sign-in backends read with): a page costs one query for the user and these, not one more query
    for each. They are read as the request starts, as the middleware's own queries were.
    `domains` are the instructor email domains (`instructor_email_domains`)."""
    user = OuterRef("pk")
    domain_email = (
        Exists(
            EmailAddress.objects.filter(user=user, verified=True).filter(
                reduce(or_, (Q(email__iendswith=f"@{domain}") for domain in domains))
            )
        )
        if domains
        else Value(False, output_field=BooleanField())
    )
    return {
        "has_authenticator": Exists(Authenticator.objects.filter(user=user)),
        "has_staff_membership": Exists(Membership.objects.filter(user=user, role__in=STAFF_ROLES)),
        "has_instructor_membership": Exists(Membership.objects.filter(user=user, role=CourseRole.INSTRUCTOR)),
        "has_instructor_domain_email": domain_email,
    }


def _known(user, fact: str, ask: Callable[[], bool]) -> bool:
    """A fact of `request_user_facts` as the user's loading query found it, or asked now for a
    user read through `User.objects`."""
    known = getattr(user, fact, None)
    return ask() if known is None else bool(known)


def instructor_email_domains() -> set[str]:
    return {domain.lower() for domain in settings.PORTAL_INSTRUCTOR_EMAIL_DOMAINS}


def can_create_courses(user) -> bool:
    if not user.is_authenticated:
        return False
    if user.is_staff or user.is_instructor:
        return True
    domains = instructor_email_domains()
    if not domains:
        return False

    def has_domain_email() -> bool:
        verified = EmailAddress.objects.filter(user=user, verified=True).values_list("email", flat=True)
        return any(email.rsplit("@", 1)[-1].lower() in domains for email in verified)

    return _known(user, "has_instructor_domain_email", has_domain_email)


def must_use_mfa(user) -> bool:
    """Administrators and instructors hold other people's AWS accounts: they need a second factor."""
    if not user.is_authenticated:
        return False
    return can_create_courses(user) or _known(
        user,
        "has_instructor_membership",
        lambda: Membership.objects.filter(user=user, role=CourseRole.INSTRUCTOR).exists(),
    )


def holds_staff_role(user) -> bool:
    """Administrators, instructors (by flag, email domain or roster role) and TAs: they see other
    people's data, so their sessions end when left idle."""
    if not user.is_authenticated:
        return False
    return can_create_courses(user) or _known(
        user, "has_staff_membership", lambda: Membership.objects.filter(user=user, role__in=STAFF_ROLES).exists()
    )


def owns_authenticator(user) -> bool:
    """Whether the user set up a second factor (allauth's `is_mfa_enabled`)."""
    return _known(user, "has_authenticator", lambda: is_mfa_enabled(user))


def can_manage_course(user, course: Course) -> bool:
    """Instructors of the course, and administrators, may change it."""
    return user.is_staff or course.viewer_role == CourseRole.INSTRUCTOR


def can_view_roster(user, course: Course) -> bool:
    """TAs see what instructors see, without changing it."""
    return user.is_staff or course.viewer_role in STAFF_ROLES
