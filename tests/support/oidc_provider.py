"""A real OpenID Connect provider in the test process: django-oauth-toolkit, OIDC on, signing ID
tokens with an RS256 key made for the test run, served by the live server under /idp/ beside the
portal (tests/support/oidc_server.py, imported only once oauth2_provider is an installed app).
It stands for a university's identity provider.

Its people are portal `User` rows of their own (the provider needs a user to sign in), with
addresses at `DIRECTORY_DOMAIN` that the portal never sees; what the provider says about each of
them (the campus `email`, `amr`, ...) is their entry in `directory`. A browser signs in at the
provider with its `idp_sign_in` page and consents on django-oauth-toolkit's own page; allauth
then calls the provider's discovery, token, JWKS and userinfo endpoints over HTTP on loopback."""

from __future__ import annotations

import html.parser
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import requests
from allauth.socialaccount.models import SocialApp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.contrib.auth import authenticate, login
from django.core.checks.registry import registry
from django.core.management import call_command
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.test.utils import override_settings
from django.views.decorators.csrf import csrf_exempt

DIRECTORY_DOMAIN = "directory.idp.invalid"
# What the provider says about each of its people, by their provider user's primary key.
directory: dict[int, dict[str, Any]] = {}


def rsa_private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def provider_settings(private_key_pem: str) -> dict[str, Any]:
    return {
        "OIDC_ENABLED": True,
        "OIDC_RSA_PRIVATE_KEY": private_key_pem,
        "OAUTH2_VALIDATOR_CLASS": "tests.support.oidc_server.DirectoryValidator",
        "SCOPES": {"openid": "Who you are", "profile": "Your name", "email": "Your email address"},
        "PKCE_REQUIRED": True,
    }


@contextmanager
def provider_installed(django_db_blocker: Any) -> Iterator[None]:
    """oauth2_provider installed and its tables made for the tests inside only, then dropped: the
    rest of the suite runs without them, and without the system checks the app registers as it
    loads (they would look for its models). For a module-scoped fixture (pytest-django's
    `django_db_blocker`)."""
    checks_before = set(registry.registered_checks), set(registry.deployment_checks)
    override = override_settings(
        INSTALLED_APPS=[*settings.INSTALLED_APPS, "oauth2_provider"],
        OAUTH2_PROVIDER=provider_settings(rsa_private_key_pem()),
        ROOT_URLCONF="tests.support.oidc_server",
    )
    override.enable()
    try:
        with django_db_blocker.unblock():
            call_command("migrate", "oauth2_provider", verbosity=0)
        yield
        with django_db_blocker.unblock():
            call_command("migrate", "oauth2_provider", "zero", verbosity=0)
    finally:
        override.disable()
        directory.clear()
        registry.registered_checks, registry.deployment_checks = checks_before


def university_provider(
    portal_url: str, *, university: str, provider_id: str, settings: dict[str, Any]
) -> tuple[str, SocialApp]:
    """The university's provider, served by the live server at `portal_url`, and the portal's
    SocialApp for it. The provider is addressed as 127.0.0.1 and the portal as localhost: two
    hosts, so that a browser keeps the two sessions apart. Returns the provider's address."""
    from oauth2_provider.models import get_application_model

    application_model = get_application_model()
    secret = "the-portal-client-secret"
    provider_url = portal_url.replace("localhost", "127.0.0.1")
    application_model.objects.create(
        name=university,
        client_id="classroom-cloud-portal",
        client_secret=secret,
        client_type=application_model.CLIENT_CONFIDENTIAL,
        authorization_grant_type=application_model.GRANT_AUTHORIZATION_CODE,
        redirect_uris=f"{portal_url}/accounts/oidc/{provider_id}/login/callback/",
        algorithm=application_model.RS256_ALGORITHM,
    )
    app = SocialApp.objects.create(
        provider="openid_connect",
        provider_id=provider_id,
        name=university,
        client_id="classroom-cloud-portal",
        secret=secret,
        settings={"server_url": f"{provider_url}/idp", "oauth_pkce_enabled": True, **settings},
    )
    return provider_url, app


@csrf_exempt
def idp_sign_in(request: HttpRequest) -> HttpResponse:
    """The provider's own sign-in page: a password for one of its people, then back to the
    authorization request that sent the browser here."""
    if request.method == "POST":
        user = authenticate(request, email=request.POST["email"], password=request.POST["password"])
        if user is None:
            return HttpResponse("Wrong email or password", status=401)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return HttpResponseRedirect(request.GET["next"])
    return HttpResponse(
        '<form method="post"><input name="email"><input name="password" type="password">'
        '<button type="submit">Sign in</button></form>'
    )


# --- The browser ---------------------------------------------------------------------------------


@dataclass
class Form:
    action: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str, str]] = field(default_factory=list)  # (name, value, text)


class FormParser(html.parser.HTMLParser):
    """The forms of a page, their hidden and pre-filled fields, and their buttons' labels."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.button: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(Form(action=attributes.get("action", "")))
        elif tag == "input" and self.forms and attributes.get("name"):
            if attributes.get("type") in {"submit", "button"}:
                self.forms[-1].buttons.append((attributes["name"], attributes.get("value", ""), ""))
            else:
                self.forms[-1].fields[attributes["name"]] = attributes.get("value", "")
        elif tag == "button" and self.forms:
            self.button = [attributes.get("name", ""), attributes.get("value", ""), ""]

    def handle_data(self, data: str) -> None:
        if self.button is not None:
            self.button[2] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self.button is not None and self.forms:
            name, value, text = self.button
            self.forms[-1].buttons.append((name, value, text.strip()))
            self.button = None


def forms_of(response: requests.Response) -> list[Form]:
    parser = FormParser()
    parser.feed(response.text)
    return parser.forms


def form_with_button(response: requests.Response, label: str) -> Form:
    for form in forms_of(response):
        if any(label in (text, value) for _, value, text in form.buttons):
            return form
    raise AssertionError(f"No form with a “{label}” button at {response.url}:\n{response.text}")


def submit(browser: requests.Session, response: requests.Response, form: Form, **extra: str) -> requests.Response:
    return browser.post(urljoin(response.url, form.action or response.url), data={**form.fields, **extra})


def campus_sign_in(
    portal_url: str, university: str, email: str, password: str
) -> tuple[requests.Session, requests.Response]:
    """A browser's whole way through: the portal's sign-in page, its "Sign in with <university>"
    button, the provider's sign-in and consent pages, and back to the portal with the code.
    Returns the browser and the page it ends on."""
    browser = requests.Session()
    sign_in_page = browser.get(f"{portal_url}/accounts/login/")
    sign_in_page.raise_for_status()
    at_provider = submit(browser, sign_in_page, form_with_button(sign_in_page, f"Sign in with {university}"))
    assert "/idp/sign-in/" in at_provider.url, at_provider.url
    consent_page = browser.post(at_provider.url, data={"email": email, "password": password})
    consent_page.raise_for_status()
    back_at_portal = submit(browser, consent_page, form_with_button(consent_page, "Authorize"), allow="Authorize")
    return browser, back_at_portal
