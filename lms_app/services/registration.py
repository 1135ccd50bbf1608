"""Registering an LMS with the portal through IMS LTI Dynamic Registration 1.0.

The LMS opens `lms:dynamic_registration` with the address of its OpenID configuration and a
registration token. The portal reads that configuration (with the token), checks that the issuer
is the platform the configuration came from, posts its client registration to the platform's
registration endpoint, and keeps what the platform answered: the registration (issuer, client
id, the platform's addresses), its deployment, active at once since an administrator approved it,
and the email domains the administrator trusts it for. Nothing is kept unless the platform
accepted the registration.

The addresses come from a link: only https is spoken (plain http only with DEBUG on, for a test
LMS on the developer's machine), redirects are not followed, and answers are read up to a size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from lti_tool.models import LtiDeployment, LtiRegistration

from accounts_app.choices import AuditAction
from accounts_app.services.audit import audit_record
from lms_app.models import PlatformTrust
from lms_app.services.keys import lti_key_ensure
from lms_app.tool_configuration import TOOL_CONFIGURATION_CLAIM, ToolUrls, registration_request

CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 15
MAX_ANSWER_BYTES = 1_000_000
MAX_QUOTED_CHARS = 300  # of a refusal, enough to say why
PLATFORM_CONFIGURATION_CLAIM = "https://purl.imsglobal.org/spec/lti-platform-configuration"
REQUIRED_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri", "registration_endpoint")


class RegistrationError(Exception):
    """Why the LMS could not be registered, in words for the administrator. Nothing was saved."""


@dataclass(frozen=True)
class PlatformConfiguration:
    """What the platform's OpenID configuration says of it, as far as the portal keeps it."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    registration_endpoint: str
    audience: str  # of the portal's token requests when not the token endpoint itself; or empty
    product_family_code: str  # "canvas", "moodle", …; empty when the platform does not say
    version: str

    @property
    def suggested_name(self) -> str:
        product = self.product_family_code.capitalize() or "LMS"
        return f"{product} at {urlsplit(self.issuer).netloc}"


def platform_configuration_fetch(*, openid_configuration_url: str, registration_token: str) -> PlatformConfiguration:
    """The platform's OpenID configuration, read with the registration token and checked."""
    _require_https(openid_configuration_url, what="The LMS's OpenID configuration address")
    document = _exchange(
        "GET", openid_configuration_url, token=registration_token, what="the request for its OpenID configuration"
    )
    issuer = document.get("issuer")
    if not isinstance(issuer, str) or not issuer:
        raise RegistrationError("The platform's OpenID configuration names no issuer.")
    if _origin(issuer) != _origin(openid_configuration_url):
        raise RegistrationError(
            f"The platform calls itself {issuer}, but its configuration came from "
            f"{_origin(openid_configuration_url)}: an LMS's configuration is served by the LMS itself. "
            "Nothing was registered."
        )
    missing = [name for name in REQUIRED_ENDPOINTS if not isinstance(document.get(name), str) or not document[name]]
    if missing:
        raise RegistrationError(f"The platform's OpenID configuration lacks {', '.join(missing)}.")
    for name in REQUIRED_ENDPOINTS:
        _require_https(document[name], what=f"The platform's {name}")
    platform = document.get(PLATFORM_CONFIGURATION_CLAIM)
    platform = platform if isinstance(platform, dict) else {}
    audience = document.get("authorization_server")
    # The audience of the portal's token requests: the platform's authorization server when it
    # names one by its address. Canvas names a bare host, which its token endpoint is not known to
    # take; without one, the token endpoint's own address is the audience (the IMS default).
    if not isinstance(audience, str) or not audience.startswith("https://"):
        audience = ""
    configuration = PlatformConfiguration(
        issuer=issuer,
        authorization_endpoint=document["authorization_endpoint"],
        token_endpoint=document["token_endpoint"],
        jwks_uri=document["jwks_uri"],
        registration_endpoint=document["registration_endpoint"],
        audience=audience,
        product_family_code=str(platform.get("product_family_code") or "").lower(),
        version=str(platform.get("version") or ""),
    )
    _check_keepable(configuration)
    return configuration


def platform_register(
    *,
    actor,
    openid_configuration_url: str,
    registration_token: str,
    name: str,
    email_domains: list[str],
    tool: ToolUrls,
) -> LtiRegistration:
    """Register the portal with the platform, then keep the platform as registered."""
    platform = platform_configuration_fetch(
        openid_configuration_url=openid_configuration_url, registration_token=registration_token
    )
    answer = _exchange(
        "POST",
        platform.registration_endpoint,
        token=registration_token,
        what="the portal's registration",
        body=registration_request(tool, product_family_code=platform.product_family_code),
    )
    client_id = answer.get("client_id")
    if not isinstance(client_id, str | int) or str(client_id) == "":
        raise RegistrationError("The platform accepted the registration but gave no client id.")
    tool_configuration = answer.get(TOOL_CONFIGURATION_CLAIM)
    deployment_id = tool_configuration.get("deployment_id") if isinstance(tool_configuration, dict) else None
    return _keep(
        actor=actor,
        platform=platform,
        name=name,
        client_id=str(client_id),
        deployment_id=str(deployment_id) if deployment_id not in (None, "") else None,
        email_domains=email_domains,
    )


def _keep(
    *,
    actor,
    platform: PlatformConfiguration,
    name: str,
    client_id: str,
    deployment_id: str | None,
    email_domains: list[str],
) -> LtiRegistration:
    with transaction.atomic():
        if LtiRegistration.objects.filter(issuer=platform.issuer, client_id=client_id).exists():
            raise RegistrationError(
                f"The portal already has a registration for {platform.issuer} with client id {client_id}."
            )
        registration = LtiRegistration.objects.create(
            name=name,
            issuer=platform.issuer,
            client_id=client_id,
            audience=platform.audience,
            auth_url=platform.authorization_endpoint,
            token_url=platform.token_endpoint,
            keyset_url=platform.jwks_uri,
        )
        if deployment_id is not None:
            LtiDeployment.objects.create(registration=registration, deployment_id=deployment_id, is_active=True)
        PlatformTrust.objects.create(registration=registration, email_domains=email_domains)
        lti_key_ensure(actor=actor)
        audit_record(
            actor=actor,
            action=AuditAction.LMS_PLATFORM_REGISTERED,
            summary=(
                f"{name} registered (dynamic registration): issuer {platform.issuer}, client id {client_id}, "
                f"deployment {deployment_id or 'none yet'}, trusted for {', '.join(email_domains) or 'no domain'}."
            ),
            target=registration,
            data={
                "issuer": platform.issuer,
                "client_id": client_id,
                "deployment_id": deployment_id,
                "email_domains": email_domains,
                "product_family_code": platform.product_family_code,
            },
        )
    return registration


def _exchange(method: str, url: str, *, token: str, what: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Send one request to the platform and return its JSON answer, or RegistrationError."""
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with requests.request(
            method,
            url,
            headers=headers,
            json=body,
            timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
            allow_redirects=False,
            stream=True,
        ) as response:
            content = response.raw.read(MAX_ANSWER_BYTES + 1, decode_content=True)
    except requests.Timeout as error:
        raise RegistrationError(f"{_origin(url)} did not answer {what} in time.") from error
    except requests.RequestException as error:
        raise RegistrationError(
            f"The portal could not reach {_origin(url)} ({_reason(error)}): check the LMS's address, "
            "and that the portal's server may connect to it."
        ) from error
    if response.status_code in (401, 403):
        raise RegistrationError(
            f"The platform refused the registration token ({response.status_code}) for {what}. "
            "A registration token lasts a short while: start the registration again from the LMS."
        )
    if not 200 <= response.status_code < 300:
        quoted = content[:MAX_QUOTED_CHARS].decode("utf-8", "replace").strip()
        raise RegistrationError(
            f"The platform refused {what}: {response.status_code} {response.reason}"
            + (f", saying: {quoted}" if quoted else ".")
        )
    if len(content) > MAX_ANSWER_BYTES:
        raise RegistrationError(f"The platform's answer to {what} is larger than the portal reads.")
    try:
        document = json.loads(content)
    except ValueError as error:
        raise RegistrationError(f"The platform's answer to {what} is not JSON.") from error
    if not isinstance(document, dict):
        raise RegistrationError(f"The platform's answer to {what} is not a JSON object.")
    return document


def _require_https(url: str, *, what: str) -> None:
    scheme = urlsplit(url).scheme
    if scheme == "https" or (scheme == "http" and settings.DEBUG):
        return
    raise RegistrationError(f"{what} is not an https address ({url}): the portal speaks to platforms over TLS only.")


def _check_keepable(platform: PlatformConfiguration) -> None:
    """Refuse, before anything is sent, addresses the registration's fields cannot hold."""
    candidate = LtiRegistration(
        issuer=platform.issuer,
        audience=platform.audience,
        auth_url=platform.authorization_endpoint,
        token_url=platform.token_endpoint,
        keyset_url=platform.jwks_uri,
    )
    try:
        candidate.clean_fields(exclude=["name", "client_id"])
    except ValidationError as error:
        problems = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items())
        raise RegistrationError(f"The platform's configuration cannot be kept: {problems}") from error


def _origin(url: str) -> str:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    default_port = {"https": 443, "http": 80}.get(parts.scheme)
    host = (parts.hostname or "") + (f":{port}" if port not in (None, default_port) else "")
    return f"{parts.scheme}://{host}"


def _reason(error: requests.RequestException) -> str:
    """The innermost cause, without requests' wrapping (pool, retries) around it."""
    cause: BaseException = error
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
    return str(cause) or type(cause).__name__
