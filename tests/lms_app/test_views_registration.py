"""LTI Dynamic Registration as the administrator meets it: the LMS opens /lti/register/ with its
configuration's address and a token; a portal administrator confirms; the LMS is told to close."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.urls import reverse
from lti_tool.models import Key, LtiRegistration

from accounts_app.choices import AuditAction
from accounts_app.models import AuditEvent
from tests.factories import UserFactory
from tests.support.lti_dynamic_registration import TOKEN, unreachable_url


def register_url(platform, token: str = TOKEN, configuration: str | None = None) -> str:
    query = {"openid_configuration": configuration or platform.openid_configuration_url, "registration_token": token}
    return f"{reverse('lms:dynamic_registration')}?{urlencode(query)}"


def confirm(client, platform, token: str = TOKEN, configuration: str | None = None, **typed):
    data = {
        "openid_configuration": configuration or platform.openid_configuration_url,
        "registration_token": token,
        "name": "Moodle at the school",
        "email_domains": "school.example, Students.School.example",
        **typed,
    }
    return client.post(reverse("lms:dynamic_registration"), data)


def test_the_administrator_sees_the_platform_and_what_the_portal_registers_there(personas, platform):
    response = personas.client("admin").get(register_url(platform))

    assert response.status_code == 200
    page = response.content.decode()
    assert platform.base in page and "moodle" in page and "4.5.2" in page
    assert "http://testserver/lti/init/" in page and "http://testserver/lti/launch/" in page
    assert "http://testserver/lti/.well-known/jwks.json" in page
    assert "course_start=$CourseSection.timeFrame.begin" in page
    form = response.context["form"]
    assert form["name"].value() == "Moodle at 127.0.0.1:" + platform.base.rsplit(":", 1)[1]
    assert form["email_domains"].value() in (None, "")
    # Nothing is registered by looking.
    assert platform.registered == [] and not LtiRegistration.objects.exists()


def test_confirming_registers_the_lms_and_tells_it_to_close(personas, platform):
    response = confirm(personas.client("admin"), platform)

    assert response.status_code == 200
    registration = LtiRegistration.objects.get()
    assert (registration.issuer, registration.client_id, registration.name) == (
        platform.base,
        platform.client_id,
        "Moodle at the school",
    )
    assert registration.trust.email_domains == ["school.example", "students.school.example"]
    assert list(registration.deployments.values_list("deployment_id", "is_active")) == [("7", True)]
    assert Key.objects.active().exists()
    assert AuditEvent.objects.get(action=AuditAction.LMS_PLATFORM_REGISTERED).actor == personas.admin
    page = response.content.decode()
    assert "data-lti-registration-done" in page and "js/lti-registration.js" in page
    assert platform.client_id in page
    # The LMS shows the page in its frame, or a window it opened and waits to hear from.
    assert "frame-ancestors *" in response["Content-Security-Policy"]
    assert "X-Frame-Options" not in response
    assert response["Cross-Origin-Opener-Policy"] == "unsafe-none"


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("stale token", "refused the registration token"),
        ("other issuer", "calls itself https://lms.elsewhere.example"),
        ("unreachable", "could not reach"),
        ("refusal", "refused the portal&#x27;s registration: 400 Bad Request"),
    ],
)
def test_a_failed_registration_says_why_and_keeps_nothing(personas, platform, fault, reason):
    token, configuration = TOKEN, None
    if fault == "stale token":
        token = "a-token-the-lms-no-longer-accepts"
    elif fault == "other issuer":
        platform.issuer = "https://lms.elsewhere.example"
    elif fault == "unreachable":
        configuration = unreachable_url()
    elif fault == "refusal":
        platform.refusal = (400, {"error": "invalid_client_metadata", "error_description": "no such placement"})

    response = confirm(personas.client("admin"), platform, token=token, configuration=configuration)

    assert response.status_code == 400
    assert reason in response.content.decode()
    assert "Nothing was saved" in response.content.decode()
    assert not LtiRegistration.objects.exists() and not Key.objects.exists() and not AuditEvent.objects.exists()


def test_a_failure_shows_on_opening_the_page_before_anything_is_asked(personas, platform):
    response = personas.client("admin").get(register_url(platform, token="a-token-the-lms-no-longer-accepts"))

    assert response.status_code == 400
    assert "refused the registration token" in response.content.decode()


def test_email_domains_are_required_and_checked_before_the_platform_is_asked(personas, platform):
    response = confirm(personas.client("admin"), platform, email_domains="school.example, not a domain!")

    assert response.status_code == 400
    assert "Not an email domain: not, a, domain!" in response.content.decode()
    assert platform.registered == [] and not LtiRegistration.objects.exists()
    assert confirm(personas.client("admin"), platform, email_domains="").status_code == 400
    assert platform.registered == []


def test_the_page_needs_the_address_the_lms_gives(personas):
    response = personas.client("admin").get(reverse("lms:dynamic_registration"))

    assert response.status_code == 400
    assert "opened by an LMS" in response.content.decode()


@pytest.mark.parametrize("persona", ["instructor", "student"])
def test_only_an_administrator_may_register_an_lms(personas, platform, persona):
    client = personas.client(persona)

    assert client.get(register_url(platform)).status_code == 403
    assert confirm(client, platform).status_code == 403
    assert platform.configuration_requests == 0 and platform.registered == []


def test_staff_who_are_not_superusers_may_not_register_an_lms(db, client, platform):
    client.force_login(UserFactory(email="helpdesk@school.example", is_staff=True))

    assert confirm(client, platform).status_code == 403
    assert platform.registered == []


def test_someone_signed_out_is_sent_to_sign_in_and_back(client, platform):
    url = register_url(platform)

    response = client.get(url)

    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path == reverse("account_login") and parse_qs(location.query)["next"] == [url]
    assert client.post(reverse("lms:dynamic_registration"), {}).status_code == 302
    assert platform.configuration_requests == 0


def test_in_the_lmss_frame_someone_signed_out_is_offered_a_window_of_the_portals_own(client, platform):
    url = register_url(platform)

    response = client.get(url, headers={"Sec-Fetch-Dest": "iframe"})

    assert response.status_code == 200
    page = response.content.decode()
    assert 'target="_blank" rel="opener"' in page and url.replace("&", "&amp;") in page
    assert platform.configuration_requests == 0


def test_an_administrator_owing_a_second_factor_passes_it_first(personas, platform, settings):
    settings.PORTAL_REQUIRE_MFA_FOR_STAFF = True

    response = personas.client("admin").get(register_url(platform))

    assert response.status_code == 302 and response["Location"] == reverse("mfa_activate_totp")
    assert platform.configuration_requests == 0
