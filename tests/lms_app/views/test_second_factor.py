"""A launch is a sign-in without the second factor: whoever owns an authenticator proves it next,
and then goes where the launch was taking them."""

import time
from urllib.parse import urlencode

import pytest
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.urls import reverse

from accounts_app.models import User
from tests.factories import UserFactory
from tests.support.lti_launches import launch


@pytest.fixture
def instructor_secret(settings, lms_class) -> str:
    # A code computed just before a 30-second boundary is still accepted just after it.
    settings.MFA_TOTP_TOLERANCE = 1
    secret = generate_totp_secret()
    TOTP.activate(UserFactory(email=lms_class.instructor.email), secret)
    return secret


def current_code(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def second_factor_then(client, secret: str, heading_to: str) -> None:
    asked = client.get(heading_to)
    assert (asked.status_code, asked["Location"]) == (
        302,
        f"{reverse('mfa_reauthenticate')}?{urlencode({'next': heading_to})}",
    )
    passed = client.post(asked["Location"], {"code": current_code(secret)})
    assert (passed.status_code, passed["Location"]) == (302, heading_to)
    assert client.get(heading_to).status_code == 200


def test_an_instructor_with_an_authenticator_proves_it_then_lands_in_the_course(
    client, lms, registration, lms_class, linked_course, instructor_secret
):
    response = launch(client, lms, registration, lms_class.instructor, lms_class.course)

    assert response["Location"] == reverse("courses:detail", kwargs={"course_id": linked_course.pk})
    second_factor_then(client, instructor_secret, response["Location"])


def test_an_instructor_setting_a_course_up_proves_it_then_finds_the_set_up_page(
    client, lms, registration, lms_class, instructor_secret
):
    response = launch(client, lms, registration, lms_class.instructor, lms_class.course)

    assert response["Location"].startswith("/lti/setup/")
    second_factor_then(client, instructor_secret, response["Location"])


@pytest.mark.parametrize("idle", [False, True])
def test_a_launch_is_not_held_up_by_the_session_it_replaces(
    client, settings, lms, registration, lms_class, linked_course, instructor_secret, idle
):
    """An LMS on the portal's own site (lms.school.edu beside portal.school.edu) sends the portal's
    session cookie with the launch: a staff session that owes its second factor, or that sat idle,
    is replaced by the launch's sign-in, not sent to prove the factor or to sign in first."""
    client.force_login(User.objects.get(email=lms_class.instructor.email))
    if idle:
        settings.PORTAL_STAFF_IDLE_TIMEOUT_MINUTES = 1
        session = client.session
        session["portal_last_activity"] = time.time() - 3600
        session.save()

    response = launch(client, lms, registration, lms_class.instructor, lms_class.course)

    assert response["Location"] == reverse("courses:detail", kwargs={"course_id": linked_course.pk})
    second_factor_then(client, instructor_secret, response["Location"])
