from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import pytest
from lti_tool.models import LtiContext, LtiDeployment, LtiRegistration

from accounts_app.choices import CourseRole
from accounts_app.models import Course
from lms_app.models import LmsCourseLink, PlatformTrust
from lms_app.services.keys import lti_key_ensure
from tests.factories import CourseFactory, MembershipFactory, UserFactory
from tests.support.lti_dynamic_registration import FakePlatform, serve
from tests.support.lti_platform import LmsCourse, LmsPerson, TestPlatform
from tests.support.lti_platform import serve as lms_serve

CANVAS_ISSUER = "https://canvas.instructure.com"


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


TRUSTED_DOMAIN = "example.edu"


@pytest.fixture
def lms() -> Iterator[TestPlatform]:
    """The LMS the launch tests launch from (tests/support/lti_platform.py)."""
    yield from lms_serve()


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
