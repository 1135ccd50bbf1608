"""LTI Dynamic Registration against a live LMS on this machine (tests/support/lti_dynamic_registration.py):
what the portal posts, what it keeps, and that it keeps nothing when the platform fails it."""

from __future__ import annotations

import pytest
from lti_tool.models import Key, LtiDeployment, LtiRegistration

from accounts_app.choices import AuditAction
from accounts_app.models import AuditEvent
from lms_app.models import PlatformTrust
from lms_app.services.registration import RegistrationError, platform_configuration_fetch, platform_register
from lms_app.tool_configuration import NRPS_SCOPE, ToolUrls
from tests.support.lti_dynamic_registration import TOKEN, unreachable_url

TOOL = ToolUrls(base="https://cloud.school.example")
TOOL_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-tool-configuration"


def register(platform, *, actor=None, token=TOKEN, url=None, domains=("school.example",)) -> LtiRegistration:
    return platform_register(
        actor=actor,
        openid_configuration_url=url or platform.openid_configuration_url,
        registration_token=token,
        name="Moodle at the school",
        email_domains=list(domains),
        tool=TOOL,
    )


def nothing_saved() -> bool:
    return not (
        LtiRegistration.objects.exists()
        or LtiDeployment.objects.exists()
        or PlatformTrust.objects.exists()
        or Key.objects.exists()
        or AuditEvent.objects.exists()
    )


def test_the_platform_gets_the_portals_registration_with_its_bearer_token(db, platform):
    register(platform)

    [registered] = platform.registered
    assert registered.headers["Authorization"] == f"Bearer {TOKEN}"
    body = registered.body
    assert body["application_type"] == "web"
    assert body["client_name"] == "Classroom Cloud"
    assert body["initiate_login_uri"] == "https://cloud.school.example/lti/init/"
    assert body["redirect_uris"] == ["https://cloud.school.example/lti/launch/"]
    assert body["jwks_uri"] == "https://cloud.school.example/lti/.well-known/jwks.json"
    assert body["token_endpoint_auth_method"] == "private_key_jwt"
    assert sorted(body["grant_types"]) == ["client_credentials", "implicit"]
    assert body["response_types"] == ["id_token"]
    assert body["scope"] == NRPS_SCOPE
    tool = body[TOOL_CONFIGURATION]
    assert tool["domain"] == "cloud.school.example"
    assert tool["target_link_uri"] == "https://cloud.school.example/lti/launch/"
    assert tool["claims"] == ["iss", "sub", "name", "given_name", "family_name", "email"]
    assert [message["type"] for message in tool["messages"]] == ["LtiResourceLinkRequest", "LtiDeepLinkingRequest"]
    # Moodle substitutes the IMS course section variables; Canvas's are its own.
    assert tool["custom_parameters"] == {
        "course_start": "$CourseSection.timeFrame.begin",
        "course_end": "$CourseSection.timeFrame.end",
    }


def test_a_registered_platform_is_kept_with_its_deployment_active_and_its_domains(db, platform, personas):
    registration = register(platform, actor=personas.admin, domains=("school.example", "students.school.example"))

    assert registration.issuer == platform.base
    assert registration.client_id == platform.client_id
    assert registration.auth_url == f"{platform.base}/mod/lti/auth.php"
    assert registration.token_url == f"{platform.base}/mod/lti/token.php"
    assert registration.keyset_url == f"{platform.base}/mod/lti/certs.php"
    assert registration.audience == ""
    assert registration.is_active
    [deployment] = registration.deployments.all()
    assert (deployment.deployment_id, deployment.is_active) == ("7", True)
    assert registration.trust.email_domains == ["school.example", "students.school.example"]
    # The portal can sign from the first launch on.
    assert Key.objects.active().count() == 1
    event = AuditEvent.objects.get(action=AuditAction.LMS_PLATFORM_REGISTERED)
    assert event.actor == personas.admin
    assert event.data["client_id"] == platform.client_id and event.data["deployment_id"] == "7"


def test_canvas_is_asked_for_its_own_variables_placements_and_the_public_privacy_level(db, platform):
    platform.product_family_code = "canvas"

    register(platform)

    tool = platform.registered[0].body[TOOL_CONFIGURATION]
    assert tool["custom_parameters"] == {
        "course_start": "$Canvas.course.startAt",
        "course_end": "$Canvas.course.endAt",
        "term_name": "$Canvas.term.name",
    }
    assert tool["https://canvas.instructure.com/lti/privacy_level"] == "public"
    assert tool["messages"][0]["https://canvas.instructure.com/lti/display_type"] == "new_window"
    assert [message.get("placements") for message in tool["messages"]] == [
        ["course_navigation"],
        ["link_selection", "assignment_selection"],
    ]


def test_a_platform_that_gives_no_deployment_gets_one_at_its_first_launch(db, platform):
    platform.deployment_id = None

    registration = register(platform)

    assert not registration.deployments.exists()


@pytest.mark.parametrize(
    ("authorization_server", "audience"),
    [
        ("https://auth.school.example/oauth2/token", "https://auth.school.example/oauth2/token"),
        # Canvas's: a bare host; the token endpoint's address is the audience then.
        ("canvas.instructure.com", ""),
    ],
)
def test_the_token_requests_audience_is_the_authorization_server_it_names_by_address(
    db, platform, authorization_server, audience
):
    configuration = platform.configuration()
    platform.configuration = lambda: {**configuration, "authorization_server": authorization_server}

    assert register(platform).audience == audience


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("stale token", "refused the registration token (401)"),
        ("other issuer", "calls itself https://lms.elsewhere.example, but its configuration came from"),
        ("refusal", 'refused the portal\'s registration: 400 Bad Request, saying: {"error": "invalid_redirect_uri"'),
        ("unreachable", "could not reach http://127.0.0.1:"),
        ("no client id", "gave no client id"),
    ],
)
def test_nothing_is_kept_when_the_platform_fails_the_registration(db, platform, fault, reason):
    token, url = TOKEN, None
    if fault == "stale token":
        token = "a-token-the-lms-no-longer-accepts"
    elif fault == "other issuer":
        platform.issuer = "https://lms.elsewhere.example"
    elif fault == "refusal":
        platform.refusal = (400, {"error": "invalid_redirect_uri"})
    elif fault == "unreachable":
        url = unreachable_url()
    elif fault == "no client id":
        platform.client_id = ""

    with pytest.raises(RegistrationError) as refused:
        register(platform, token=token, url=url)

    assert reason in str(refused.value)
    assert nothing_saved()


def test_an_issuer_mismatch_is_found_before_anything_is_posted(db, platform):
    platform.issuer = "https://lms.elsewhere.example"

    with pytest.raises(RegistrationError):
        register(platform)

    assert platform.registered == []


def test_a_platform_over_plain_http_is_refused_unless_debug_is_on(db, platform, settings):
    settings.DEBUG = False

    with pytest.raises(RegistrationError, match="is not an https address"):
        platform_configuration_fetch(
            openid_configuration_url=platform.openid_configuration_url, registration_token=TOKEN
        )

    assert platform.configuration_requests == 0


def test_an_address_too_long_to_keep_is_refused_before_the_platform_registers_anything(db, platform):
    configuration = platform.configuration()
    platform.configuration = lambda: {**configuration, "jwks_uri": f"{platform.base}/{'k' * 250}"}

    with pytest.raises(RegistrationError, match="cannot be kept: keyset_url"):
        register(platform)

    assert platform.registered == [] and nothing_saved()


def test_a_second_registration_of_the_same_client_is_refused(db, platform):
    register(platform)

    with pytest.raises(RegistrationError, match="already has a registration"):
        register(platform)

    assert LtiRegistration.objects.count() == 1
