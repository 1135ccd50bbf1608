"""What the portal tells an LMS about itself as an LTI 1.3 tool: its addresses, the Canvas
developer key's JSON, and the client registration of IMS LTI Dynamic Registration.

Pure: the portal's base address in, plain dicts out. Both documents ask for the same things: the
launcher's name and email (a launch signs in the portal user holding that address), the Names and
Role Provisioning Services scope alone (the roster), a resource link launch and deep linking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from django.http import HttpRequest
from django.urls import reverse

TOOL_TITLE = "Classroom Cloud"
TOOL_DESCRIPTION = "Each student's own AWS account for the course, with its budget and guardrails."
DEEP_LINK_LABEL = "My AWS account"

NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
RESOURCE_LINK_REQUEST = "LtiResourceLinkRequest"
DEEP_LINKING_REQUEST = "LtiDeepLinkingRequest"
# The identity claims a launch must carry: the person is found by email, named by the rest.
IDENTITY_CLAIMS = ["iss", "sub", "name", "given_name", "family_name", "email"]

TOOL_CONFIGURATION_CLAIM = "https://purl.imsglobal.org/spec/lti-tool-configuration"
CANVAS_PLATFORM = "canvas.instructure.com"
CANVAS_PRODUCT_FAMILY = "canvas"
CANVAS_PRIVACY_LEVEL_EXTENSION = "https://canvas.instructure.com/lti/privacy_level"
CANVAS_DISPLAY_TYPE_EXTENSION = "https://canvas.instructure.com/lti/display_type"
# "public": name and email in every launch (Canvas's other levels leave one or both out).
CANVAS_PRIVACY_LEVEL = "public"

# The course's dates (and Canvas's term), which prefill a portal course made from an LMS course.
# Canvas has its own variables; the IMS ones (LIS course section) are those Moodle substitutes.
CANVAS_CUSTOM_FIELDS = {
    "course_start": "$Canvas.course.startAt",
    "course_end": "$Canvas.course.endAt",
    "term_name": "$Canvas.term.name",
}
IMS_CUSTOM_PARAMETERS = {
    "course_start": "$CourseSection.timeFrame.begin",
    "course_end": "$CourseSection.timeFrame.end",
}


@dataclass(frozen=True)
class ToolUrls:
    """The portal's addresses an LMS administrator types in, from the portal's own address."""

    base: str  # scheme://host[:port], as the portal is reached

    @classmethod
    def from_request(cls, request: HttpRequest) -> ToolUrls:
        """The addresses as the request reached the portal (behind a proxy: DJANGO_ALLOWED_HOSTS
        and X-Forwarded-Proto give the public ones), as for campus sign-in's redirect URIs."""
        return cls(base=request.build_absolute_uri("/").rstrip("/"))

    @property
    def domain(self) -> str:
        return urlsplit(self.base).netloc

    @property
    def login_init(self) -> str:
        """OpenID Connect login initiation for every registration (found by issuer and client id)."""
        return self.base + reverse("lms:login_init_any")

    def login_init_for(self, registration_uuid: UUID) -> str:
        """Login initiation for one registration: for a platform that sends no client id."""
        return self.base + reverse("lms:login_init", kwargs={"registration_uuid": registration_uuid})

    @property
    def launch(self) -> str:
        """Where the LMS posts its launches, deep linking requests included."""
        return self.base + reverse("lms:launch")

    @property
    def jwks(self) -> str:
        return self.base + reverse("lms:jwks")

    @property
    def canvas_config(self) -> str:
        return self.base + reverse("lms:canvas_config")

    @property
    def dynamic_registration(self) -> str:
        return self.base + reverse("lms:dynamic_registration")


def canvas_configuration(urls: ToolUrls) -> dict[str, Any]:
    """A Canvas LTI 1.3 developer key, as its "Paste JSON" and "Enter URL" methods read it."""
    return {
        "title": TOOL_TITLE,
        "description": TOOL_DESCRIPTION,
        "oidc_initiation_url": urls.login_init,
        "target_link_uri": urls.launch,
        "public_jwk_url": urls.jwks,
        "scopes": [NRPS_SCOPE],
        "extensions": [
            {
                "platform": CANVAS_PLATFORM,
                "domain": urls.domain,
                "privacy_level": CANVAS_PRIVACY_LEVEL,
                "settings": {
                    "text": TOOL_TITLE,
                    "placements": [
                        # The portal's pages refuse to be framed: the course's link opens a tab.
                        {
                            **_canvas_placement("course_navigation", RESOURCE_LINK_REQUEST, TOOL_TITLE, urls),
                            "windowTarget": "_blank",
                        },
                        _canvas_placement("link_selection", DEEP_LINKING_REQUEST, DEEP_LINK_LABEL, urls),
                        _canvas_placement("assignment_selection", DEEP_LINKING_REQUEST, DEEP_LINK_LABEL, urls),
                    ],
                },
            }
        ],
        "custom_fields": dict(CANVAS_CUSTOM_FIELDS),
    }


def _canvas_placement(placement: str, message_type: str, text: str, urls: ToolUrls) -> dict[str, str]:
    return {"placement": placement, "message_type": message_type, "text": text, "target_link_uri": urls.launch}


def registration_request(urls: ToolUrls, *, product_family_code: str) -> dict[str, Any]:
    """The client registration a tool posts to the platform's registration endpoint (IMS LTI
    Dynamic Registration 1.0, on OpenID Connect Dynamic Client Registration), worded for the
    platform's product family where one needs it."""
    is_canvas = product_family_code == CANVAS_PRODUCT_FAMILY
    tool_configuration: dict[str, Any] = {
        "domain": urls.domain,
        "description": TOOL_DESCRIPTION,
        "target_link_uri": urls.launch,
        "custom_parameters": dict(CANVAS_CUSTOM_FIELDS if is_canvas else IMS_CUSTOM_PARAMETERS),
        "claims": list(IDENTITY_CLAIMS),
        "messages": [
            _message(RESOURCE_LINK_REQUEST, TOOL_TITLE, urls, ["course_navigation"] if is_canvas else None),
            _message(
                DEEP_LINKING_REQUEST,
                DEEP_LINK_LABEL,
                urls,
                ["link_selection", "assignment_selection"] if is_canvas else None,
            ),
        ],
    }
    if is_canvas:
        # Canvas sends the name and email only at this privacy level, whatever `claims` says.
        tool_configuration[CANVAS_PRIVACY_LEVEL_EXTENSION] = CANVAS_PRIVACY_LEVEL
        # The portal's pages refuse to be framed: the course's link opens a tab.
        tool_configuration["messages"][0][CANVAS_DISPLAY_TYPE_EXTENSION] = "new_window"
    return {
        "application_type": "web",
        "client_name": TOOL_TITLE,
        "initiate_login_uri": urls.login_init,
        "redirect_uris": [urls.launch],
        "jwks_uri": urls.jwks,
        "token_endpoint_auth_method": "private_key_jwt",
        "grant_types": ["implicit", "client_credentials"],
        "response_types": ["id_token"],
        "scope": NRPS_SCOPE,
        TOOL_CONFIGURATION_CLAIM: tool_configuration,
    }


def _message(message_type: str, label: str, urls: ToolUrls, placements: list[str] | None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": message_type, "target_link_uri": urls.launch, "label": label}
    if placements:
        message["placements"] = placements
    return message
