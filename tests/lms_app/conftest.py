"""The LMSs of lms_app's tests, on this machine: a Moodle-like one for dynamic registration
(`platform`), and the one launches and roster syncs talk to (`lms`, tests/support/lti_platform.py),
with a portal course linked to one of its courses (`linked`): django-lti's registration,
deployment and context, the portal's link, and the tool's key the LMS trusts. The launch tests'
`registration` is that LMS as an administrator registers it (an active deployment, the email
domain it is trusted for), `lms_class` a class in it and `linked_course` a portal course following it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import factory
import pytest
from django.core.cache import cache
from lti_tool.models import Key, LtiContext, LtiDeployment, LtiRegistration

from accounts_app import tasks as accounts_tasks
from accounts_app.choices import CourseRole
from accounts_app.models import Course
from lms_app.models import LmsCourseLink, PlatformTrust
from lms_app.services.keys import lti_key_ensure
from tests.factories import CourseFactory, MembershipFactory, UserFactory
from tests.support import lti_platform
from tests.support.lti_dynamic_registration import FakePlatform, serve
from tests.support.lti_platform import LmsCourse, LmsPerson, TestPlatform
from tests.support.next_steps import record_account_steps

CANVAS_ISSUER = "https://canvas.instructure.com"
TRUSTED_DOMAIN = "example.edu"


@pytest.fixture
def platform(settings) -> Iterator[FakePlatform]:
    """A Moodle-like LMS on this machine, which speaks plain http: allowed with DEBUG on only."""
    settings.DEBUG = True
    fake = FakePlatform()
    server = serve(fake)
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def canvas_registration(db) -> LtiRegistration:
    """Canvas registered by hand, as docs/LMS.md says: its client id is the developer key's id."""
    registration = LtiRegistration.objects.create(
        name="Canvas",
        issuer=CANVAS_ISSUER,
        client_id="10000000000042",
        auth_url="https://sso.canvaslms.com/api/lti/authorize_redirect",
        token_url="https://school.instructure.com/login/oauth2/token",
        keyset_url="https://sso.canvaslms.com/api/lti/security/jwks",
    )
    PlatformTrust.objects.create(registration=registration, email_domains=["school.example"])
    return registration


class LtiRegistrationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LtiRegistration

    name = "Canvas"
    issuer = factory.Sequence(lambda n: f"https://lms{n}.school.example")
    client_id = factory.Sequence(lambda n: f"client-{n}")
    auth_url = factory.LazyAttribute(lambda registration: f"{registration.issuer}/auth")
    token_url = factory.LazyAttribute(lambda registration: f"{registration.issuer}/token")
    keyset_url = factory.LazyAttribute(lambda registration: f"{registration.issuer}/jwks")


class LtiDeploymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LtiDeployment

    registration = factory.SubFactory(LtiRegistrationFactory)
    deployment_id = factory.Sequence(lambda n: f"deployment-{n}")
    is_active = True


class LtiContextFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LtiContext

    deployment = factory.SubFactory(LtiDeploymentFactory)
    id_on_platform = factory.Sequence(lambda n: f"context-{n}")
    title = "Cloud Computing"
    label = "CS 101"
    is_course_offering = True


class LmsCourseLinkFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LmsCourseLink

    course = factory.SubFactory(CourseFactory)
    context = factory.SubFactory(LtiContextFactory)
    linked_by = None


@dataclass
class Linked:
    """A portal course and the LMS course it follows, on the running test platform."""

    platform: TestPlatform
    lms_course: LmsCourse
    link: LmsCourseLink

    @property
    def course(self) -> Course:
        return self.link.course


@pytest.fixture
def lms() -> Iterator[TestPlatform]:
    """The LMS the launch and roster tests talk to (tests/support/lti_platform.py)."""
    yield from lti_platform.serve()


@pytest.fixture
def lms_registration(db, lms) -> LtiRegistration:
    """`lms` as its administrator registered it, and the tool's key it trusts."""
    Key.objects.generate()
    lms.trust_tool(Key.objects.as_jwks())
    return LtiRegistrationFactory.create(
        issuer=lms.issuer,
        client_id=lms.client_id,
        auth_url=lms.auth_url,
        token_url=lms.token_url,
        keyset_url=lms.jwks_url,
    )


def link_course(platform: TestPlatform, registration: LtiRegistration, course: Course, **link_fields) -> Linked:
    """`course` linked to a new LMS course, whose names and roles address a launch brought."""
    lms_course = platform.add_course(LmsCourse(title=course.name, label=course.code.upper()))
    context = LtiContextFactory.create(
        deployment__registration=registration,
        deployment__deployment_id=f"{platform.deployment_id}-{lms_course.id}",
        id_on_platform=lms_course.id,
        title=lms_course.title,
        label=lms_course.label,
        memberships_url=platform.memberships_url(lms_course),
    )
    return Linked(platform, lms_course, LmsCourseLinkFactory.create(course=course, context=context, **link_fields))


@pytest.fixture
def linked(personas, lms, lms_registration) -> Linked:
    """personas' course, linked by its instructor, whose LMS course lists the instructor."""
    linked = link_course(lms, lms_registration, personas.course, linked_by=personas.instructor)
    linked.lms_course.enrol(LmsPerson("instructor@school.example", "Ines Instructor"), "Instructor")
    return linked


@pytest.fixture
def queued(monkeypatch) -> dict[str, list[int]]:
    """The next steps the services queue for an account, by task name (recorded, not run)."""
    return record_account_steps(monkeypatch)


@pytest.fixture
def staff_access_queued(monkeypatch) -> list[tuple[int, str]]:
    """The staff AWS access tasks a roster change queues (recorded: they would call AWS)."""
    recorded: list[tuple[int, str]] = []
    monkeypatch.setattr(accounts_tasks.staff_access_sync_task, "delay_on_commit", lambda *args: recorded.append(args))
    return recorded


@pytest.fixture(autouse=True)
def no_launch_throttle_left_over():
    """A launch's sync is throttled in the cache, which outlives a test."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def registration(db, lms: TestPlatform) -> LtiRegistration:
    """`lms` registered as an administrator does: an active deployment, the email domain it is
    trusted for, and the portal's signing key."""
    lti_key_ensure(actor=None)
    registration = LtiRegistration.objects.create(
        name="Test LMS",
        issuer=lms.issuer,
        client_id=lms.client_id,
        auth_url=lms.auth_url,
        token_url=lms.token_url,
        keyset_url=lms.jwks_url,
    )
    LtiDeployment.objects.create(registration=registration, deployment_id=lms.deployment_id, is_active=True)
    PlatformTrust.objects.create(registration=registration, email_domains=[TRUSTED_DOMAIN])
    return registration


@dataclass
class LmsClass:
    """An LMS course with its instructor, TA and two students."""

    course: LmsCourse
    instructor: LmsPerson
    ta: LmsPerson
    student: LmsPerson
    other_student: LmsPerson


@pytest.fixture
def lms_class(lms: TestPlatform) -> LmsClass:
    course = lms.add_course(LmsCourse(title="Cloud Computing (Fall 2026)", label="CS 101-A"))
    return LmsClass(
        course=course,
        instructor=course.enrol(LmsPerson("ines.instructor@example.edu", "Ines Instructor"), "Instructor"),
        ta=course.enrol(LmsPerson("theo.assistant@example.edu", "Theo Assistant"), "Instructor", "TeachingAssistant"),
        student=course.enrol(LmsPerson("stella.student@example.edu", "Stella Student"), "Learner"),
        other_student=course.enrol(LmsPerson("olga.student@example.edu", "Olga Student"), "Learner"),
    )


@pytest.fixture
def linked_course(registration: LtiRegistration, lms_class: LmsClass) -> Course:
    """A portal course that follows the LMS course, with an instructor of its own in the portal."""
    course = cast(Course, CourseFactory(code="cloud-computing", name="Cloud Computing"))  # factory_boy's instance
    MembershipFactory(course=course, role=CourseRole.INSTRUCTOR, user=UserFactory(email="owner@example.edu"))
    context = LtiContext.objects.create(
        deployment=registration.deployments.get(),
        id_on_platform=lms_class.course.id,
        title=lms_class.course.title,
        label=lms_class.course.label,
    )
    LmsCourseLink.objects.create(course=course, context=context)
    return course
