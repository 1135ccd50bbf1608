"""The session's user, loaded by the sign-in backends with what every request asks of them
(`permissions.request_user_facts`, the default manager of accounts_app.models.User): the same
answers as asking the database, without asking it again."""

import pytest
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib.auth import load_backend

from accounts_app.choices import CourseRole
from accounts_app.models import User
from accounts_app.permissions import can_create_courses, holds_staff_role, must_use_mfa, owns_authenticator
from tests.factories import MembershipFactory, UserFactory

CHECKS = (can_create_courses, holds_staff_role, must_use_mfa, owns_authenticator)


def person(kind: str):
    """Someone for whom one check says yes (the factory verifies their address)."""
    user = UserFactory(email=f"{kind}@{'faculty' if kind == 'domain' else 'school'}.example")
    if kind in ("ta", "instructor"):
        MembershipFactory(user=user, role=CourseRole.TA if kind == "ta" else CourseRole.INSTRUCTOR)
    elif kind == "student":
        MembershipFactory(user=user, role=CourseRole.STUDENT)
    elif kind == "authenticator":
        Authenticator.objects.create(user=user, type=Authenticator.Type.TOTP, data={})
    return user


@pytest.mark.django_db
@pytest.mark.parametrize("backend", settings.AUTHENTICATION_BACKENDS)
@pytest.mark.parametrize("kind", ["student", "ta", "instructor", "domain", "authenticator", "nobody"])
def test_the_sessions_user_answers_every_check_as_the_database_does_without_asking_it(
    backend, kind, settings, django_assert_num_queries
):
    settings.PORTAL_INSTRUCTOR_EMAIL_DOMAINS = ["Faculty.Example"]
    user = person(kind)
    asked = {check.__name__: check(User.objects.get(pk=user.pk)) for check in CHECKS}

    with django_assert_num_queries(1):
        loaded = load_backend(backend).get_user(user.pk)
    with django_assert_num_queries(0):
        known = {check.__name__: check(loaded) for check in CHECKS}

    assert known == asked
    assert any(asked.values()) == (kind not in ("student", "nobody"))


@pytest.mark.django_db
def test_users_read_through_user_objects_are_asked_afresh(django_assert_num_queries):
    """Code that reads a user itself, then changes their roles, sees the change."""
    user = User.objects.get(pk=UserFactory().pk)
    MembershipFactory(user=user, role=CourseRole.TA)

    with django_assert_num_queries(2):  # their email domains are not configured: two roster lookups
        assert holds_staff_role(user) and not must_use_mfa(user)


@pytest.mark.django_db
def test_the_facts_follow_a_change_of_the_instructor_domains(settings):
    """The annotated query is built once per set of domains, not once for the process."""
    user = person("domain")
    backend = load_backend(settings.AUTHENTICATION_BACKENDS[0])

    settings.PORTAL_INSTRUCTOR_EMAIL_DOMAINS = []
    assert not can_create_courses(backend.get_user(user.pk))
    settings.PORTAL_INSTRUCTOR_EMAIL_DOMAINS = ["faculty.example"]
    assert can_create_courses(backend.get_user(user.pk))
    settings.PORTAL_INSTRUCTOR_EMAIL_DOMAINS = []
    assert not can_create_courses(backend.get_user(user.pk))


@pytest.mark.django_db
def test_querysets_of_the_default_manager_do_not_share_their_filters():
    first, second = UserFactory(), UserFactory()

    only_first = User.signed_in.filter(pk=first.pk)
    only_second = User.signed_in.filter(pk=second.pk)

    assert list(only_first) == [first]
    assert list(only_second) == [second]
    assert User.signed_in.count() == 2
