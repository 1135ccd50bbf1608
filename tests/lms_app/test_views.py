"""What an LMS fetches to register and launch the portal: the Canvas developer key's JSON, and
login initiation at one address for every registration (found by issuer and client id)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse
from lti_tool.models import LtiRegistration

from lms_app.services.keys import lti_key_ensure
from tests.lms_app.conftest import CANVAS_ISSUER

NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
LAUNCH = "http://testserver/lti/launch/"


def test_canvas_json_points_canvas_at_this_portal(client):
    response = client.get(reverse("lms:canvas_config"))

    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    config = json.loads(response.content)
    assert config["title"] == "Classroom Cloud" and config["description"]
    assert config["oidc_initiation_url"] == "http://testserver/lti/init/"
    assert config["target_link_uri"] == LAUNCH
    assert config["public_jwk_url"] == "http://testserver/lti/.well-known/jwks.json"
    assert config["scopes"] == [NRPS_SCOPE]
    [extension] = config["extensions"]
    assert extension["platform"] == "canvas.instructure.com"
    assert extension["domain"] == "testserver"
    assert extension["privacy_level"] == "public"
    placements = {
        placement["placement"]: (placement["message_type"], placement["target_link_uri"])
        for placement in extension["settings"]["placements"]
    }
    # The portal refuses to be framed: the course's link opens a tab of its own.
    assert extension["settings"]["placements"][0]["windowTarget"] == "_blank"
    assert placements == {
        "course_navigation": ("LtiResourceLinkRequest", LAUNCH),
        "link_selection": ("LtiDeepLinkingRequest", LAUNCH),
        "assignment_selection": ("LtiDeepLinkingRequest", LAUNCH),
    }
    assert config["custom_fields"] == {
        "course_start": "$Canvas.course.startAt",
        "course_end": "$Canvas.course.endAt",
        "term_name": "$Canvas.term.name",
    }


def test_canvas_json_names_the_host_the_portal_is_reached_at(client, settings):
    settings.ALLOWED_HOSTS = ["cloud.school.example"]

    config = client.get(reverse("lms:canvas_config"), HTTP_HOST="cloud.school.example", secure=True).json()

    assert config["oidc_initiation_url"] == "https://cloud.school.example/lti/init/"
    assert config["extensions"][0]["domain"] == "cloud.school.example"


def login_initiation(registration: LtiRegistration, **params) -> dict[str, str]:
    return {
        "iss": registration.issuer,
        "login_hint": "535fa085f22b4655f48cd5a36a9215f64c062838",
        "target_link_uri": LAUNCH,
        "lti_message_hint": "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9",
        "client_id": registration.client_id,
        **params,
    }


@pytest.mark.parametrize("method", ["get", "post"])
def test_the_generic_init_url_sends_the_browser_to_the_platform_found_by_issuer_and_client_id(
    client, canvas_registration, method
):
    other_school = LtiRegistration.objects.create(
        name="Canvas of another school",
        issuer=CANVAS_ISSUER,
        client_id="10000000000077",
        auth_url="https://other.example/api/lti/authorize_redirect",
        token_url="https://other.example/login/oauth2/token",
        keyset_url="https://other.example/api/lti/security/jwks",
    )
    lti_key_ensure(actor=None)

    response = getattr(client, method)(reverse("lms:login_init_any"), login_initiation(canvas_registration))

    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == canvas_registration.auth_url
    query = {name: values[0] for name, values in parse_qs(location.query).items()}
    assert query["client_id"] == canvas_registration.client_id != other_school.client_id
    assert query["redirect_uri"] == LAUNCH
    assert query["login_hint"] == "535fa085f22b4655f48cd5a36a9215f64c062838"
    assert query["lti_message_hint"] == "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9"
    assert (query["response_type"], query["response_mode"], query["scope"]) == ("id_token", "form_post", "openid")
    assert query["state"].startswith("state-") and len(query["nonce"]) >= 32
    # The state comes back with the launch and is checked against this cookie.
    assert response.cookies[f"lti1p3-{query['state']}"].value == query["state"]


def test_the_generic_init_url_refuses_a_client_the_portal_does_not_know(client, canvas_registration):
    lti_key_ensure(actor=None)

    response = client.get(
        reverse("lms:login_init_any"), login_initiation(canvas_registration, client_id="<b>99999</b>")
    )

    assert response.status_code == 400
    assert response.templates[0].name == "lms/refused.html"
    text = response.content.decode()
    assert "This LMS is not registered with the portal" in text and CANVAS_ISSUER in text
    # The issuer and client id are the caller's: shown escaped, never as HTML.
    assert "&#x27;&lt;b&gt;99999&lt;/b&gt;&#x27;" in text and "<b>99999" not in text


def test_the_generic_init_url_refuses_a_registration_turned_off(client, canvas_registration):
    lti_key_ensure(actor=None)
    LtiRegistration.objects.filter(pk=canvas_registration.pk).update(is_active=False)

    response = client.get(reverse("lms:login_init_any"), login_initiation(canvas_registration))

    assert response.status_code == 400


def test_without_a_signing_key_the_generic_init_url_says_what_to_run(client, canvas_registration):
    response = client.get(reverse("lms:login_init_any"), login_initiation(canvas_registration))

    assert response.status_code == 503
    assert "lti_keys_ensure" in response.content.decode()
