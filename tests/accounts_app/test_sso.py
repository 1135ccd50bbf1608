"""Campus single sign-on (accounts_app/sso.py, docs/SSO.md) through a real OpenID Connect provider:
django-oauth-toolkit in the test process (tests/support/oidc_provider.py), served by the live
server. A browser (requests) goes the whole way: the portal's sign-in page, the provider's sign-in
and consent pages, and back with the code; allauth exchanges it for tokens, reads the provider's
discovery document, JWKS and userinfo over HTTP on loopback, and signs the person in."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from allauth.socialaccount.internal import jwtkit
from allauth.socialaccount.models import SocialAccount, SocialApp
from django.test import Client
from django.urls import reverse

from accounts_app.choices import CourseRole
from accounts_app.models import User
from tests.factories import PASSWORD, CourseFactory, MembershipFactory, UserFactory
from tests.support.oidc_provider import (
    DIRECTORY_DOMAIN,
    campus_sign_in,
    directory,
    provider_installed,
    university_provider,
)

UNIVERSITY = "Example University"
CAMPUS_DOMAIN = "uni.example.edu"
PROVIDER_ID = "campus"
MFA_ACR = "urn:example-university:mfa"


@pytest.fixture(scope="module")
def installed_provider(django_db_setup, django_db_blocker) -> Iterator[None]:
    with provider_installed(django_db_blocker):
        yield


@dataclass
class Campus:
    """The portal at `portal_url` (localhost) and the university's provider at `provider_url`
    (127.0.0.1: another host, so the browser keeps the two sessions apart)."""

    portal_url: str
    provider_url: str
    app: SocialApp

    def person(self, **claims: Any) -> tuple[str, str]:
        """Someone the provider knows, and what it says about them. Returns how they sign in there."""
        email = f"person{len(directory)}@{DIRECTORY_DOMAIN}"
        UserFactory(email=email, verified=False)
        directory[User.objects.get(email=email).pk] = claims
        return email, PASSWORD

    def sign_in(self, **claims: Any):
        email, password = self.person(**claims)
        return campus_sign_in(self.portal_url, UNIVERSITY, email, password)


@pytest.fixture
def campus(installed_provider, live_server) -> Iterator[Campus]:
    provider_url, app = university_provider(
        live_server.url,
        university=UNIVERSITY,
        provider_id=PROVIDER_ID,
        settings={"trusted_domains": [CAMPUS_DOMAIN], "mfa_acr_values": [MFA_ACR]},
    )
    yield Campus(portal_url=live_server.url, provider_url=provider_url, app=app)
    directory.clear()


def courses_url(campus: Campus) -> str:
    return campus.portal_url + reverse("courses:list")


def test_a_rostered_students_first_campus_sign_in_links_them_to_their_membership(campus):
    course = CourseFactory()
    entry = MembershipFactory(course=course, user=None, email=f"ana@{CAMPUS_DOMAIN}", role=CourseRole.STUDENT)

    _, page = campus.sign_in(email=f"ana@{CAMPUS_DOMAIN}", email_verified=True, name="Ana Lima")

    assert page.url == courses_url(campus)
    assert course.name in page.text
    student = User.objects.get(email=f"ana@{CAMPUS_DOMAIN}")
    entry.refresh_from_db()
    assert entry.user == student
    assert EmailAddress.objects.filter(user=student, email=f"ana@{CAMPUS_DOMAIN}", verified=True).exists()
    # The ID token the provider signed is what allauth stored: its issuer is the provider's.
    account = SocialAccount.objects.get(user=student, provider=PROVIDER_ID)
    assert account.extra_data["id_token"]["iss"] == f"{campus.provider_url}/idp"
    assert account.extra_data["id_token"]["aud"] == "classroom-cloud-portal"


def test_a_campus_identity_signs_in_the_portal_user_with_that_verified_address(campus):
    existing = UserFactory(email=f"bea@{CAMPUS_DOMAIN}")
    entry = MembershipFactory(user=existing)

    # The provider does not say the address is verified: its trusted domain is enough.
    _, page = campus.sign_in(email=f"bea@{CAMPUS_DOMAIN}")

    assert page.url == courses_url(campus)
    assert entry.course.name in page.text
    assert SocialAccount.objects.get(provider=PROVIDER_ID).user == existing
    assert User.objects.filter(email__iendswith=CAMPUS_DOMAIN).count() == 1


def test_an_address_outside_the_trusted_domains_is_not_linked(campus):
    existing = UserFactory(email="carl@elsewhere.example")

    # Even said to be verified by the provider: it speaks only for its own domains.
    browser, page = campus.sign_in(email="carl@elsewhere.example", email_verified=True)

    assert page.url.startswith(campus.portal_url + reverse("account_login"))
    assert (
        f"{UNIVERSITY} signed you in as carl@elsewhere.example, but the portal trusts it only for {CAMPUS_DOMAIN}."
    ) in page.text
    assert "no account was linked" in page.text
    assert not SocialAccount.objects.exists()
    assert not User.objects.filter(email="carl@elsewhere.example").exclude(pk=existing.pk).exists()
    # Not signed in: the portal sends the browser to sign in.
    assert browser.get(courses_url(campus)).url.startswith(campus.portal_url + reverse("account_login"))


def test_the_providers_id_token_is_signed_with_the_key_its_jwks_publishes(campus, monkeypatch):
    """allauth reads the ID token of the code flow from the provider's token endpoint itself and,
    as OpenID Connect Core 3.1.3.7 allows for a token received that way, checks its issuer,
    audience and expiry but not its signature. Its signature check (the one allauth makes of an ID
    token handed to it by an app) is made here on that same token, against the provider's JWKS."""
    decoded: list[dict[str, Any]] = []
    verify_and_decode = jwtkit.verify_and_decode

    def record(**kwargs: Any) -> dict:
        decoded.append(kwargs)
        return verify_and_decode(**kwargs)

    monkeypatch.setattr(jwtkit, "verify_and_decode", record)
    campus.sign_in(email=f"finn@{CAMPUS_DOMAIN}")

    [call] = decoded
    id_token, issuer = call["credential"], f"{campus.provider_url}/idp"
    assert call["keys_url"] == f"{issuer}/.well-known/jwks.json"
    algorithm, key = jwtkit.fetch_key(id_token, call["keys_url"], jwtkit.lookup_kid_jwk)
    claims = jwt.decode(id_token, key=key, algorithms=[algorithm], audience="classroom-cloud-portal", issuer=issuer)
    assert algorithm == "RS256"
    assert claims["email"] == f"finn@{CAMPUS_DOMAIN}"
    header, payload, signature = id_token.split(".")
    forged = ".".join([header, payload, signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")])
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(forged, key=key, algorithms=[algorithm], audience="classroom-cloud-portal", issuer=issuer)


def staff_member_with_totp() -> None:
    TOTP.activate(UserFactory(email=f"dana@{CAMPUS_DOMAIN}", is_instructor=True), generate_totp_secret())


@pytest.mark.parametrize(
    "claims",
    [pytest.param({"amr": ["pwd", "mfa"]}, id="amr-mfa"), pytest.param({"acr": MFA_ACR}, id="configured-acr")],
)
def test_staff_are_not_asked_for_the_portals_totp_when_the_providers_second_factor_is_trusted(campus, settings, claims):
    settings.PORTAL_SSO_TRUST_IDP_MFA = True
    staff_member_with_totp()

    browser, page = campus.sign_in(email=f"dana@{CAMPUS_DOMAIN}", **claims)

    assert page.url == courses_url(campus)
    # Past the portal's own check on every page (RequireMFAMiddleware), not only the sign-in.
    assert browser.get(campus.portal_url + reverse("mfa_index")).status_code == 200


@pytest.mark.parametrize(
    ("trust", "claims"),
    [
        pytest.param(False, {"amr": ["pwd", "mfa"]}, id="not-trusted"),
        pytest.param(True, {"amr": ["pwd"]}, id="password-alone-at-the-provider"),
        pytest.param(True, {"acr": "urn:example-university:password"}, id="another-acr"),
    ],
)
def test_staff_are_asked_for_the_portals_totp_otherwise(campus, settings, trust, claims):
    settings.PORTAL_SSO_TRUST_IDP_MFA = trust
    staff_member_with_totp()

    browser, page = campus.sign_in(email=f"dana@{CAMPUS_DOMAIN}", **claims)

    assert page.url == campus.portal_url + reverse("mfa_authenticate")
    # Not signed in until the code is given: the courses page sends the browser back for it.
    assert browser.get(courses_url(campus)).url == campus.portal_url + reverse("mfa_authenticate")


def test_staff_without_an_authenticator_need_not_enrol_one_after_the_providers_trusted_second_factor(campus, settings):
    settings.PORTAL_SSO_TRUST_IDP_MFA = True
    settings.PORTAL_REQUIRE_MFA_FOR_STAFF = True
    UserFactory(email=f"eli@{CAMPUS_DOMAIN}", is_instructor=True)

    _, page = campus.sign_in(email=f"eli@{CAMPUS_DOMAIN}", amr=["mfa"])

    assert page.url == courses_url(campus)
    assert not Authenticator.objects.exists()


# --- The sign-in page -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_sign_in_page_shows_each_universitys_button_above_the_password_form():
    for name, provider_id in (("Example University", "campus"), ("Other College", "other")):
        SocialApp.objects.create(
            provider="openid_connect",
            provider_id=provider_id,
            name=name,
            client_id=provider_id,
            settings={"server_url": f"https://{provider_id}.example/", "trusted_domains": [f"{provider_id}.example"]},
        )

    page = Client().get(reverse("account_login")).content.decode()

    password_field = page.index('name="password"')
    assert page.index("Sign in with Example University") < password_field
    assert page.index("Sign in with Other College") < password_field
    assert f'action="{reverse("openid_connect_login", kwargs={"provider_id": "campus"})}' in page


@pytest.mark.django_db
def test_without_a_provider_the_sign_in_page_is_the_password_form_alone():
    page = Client().get(reverse("account_login")).content.decode()

    assert "Sign in with" not in page
    assert 'name="password"' in page


@pytest.mark.django_db
def test_the_sign_in_pages_let_their_forms_lead_to_the_identity_providers_and_no_other_page_does():
    """A browser applies form-action to the redirects after a form's submission: the "Sign in with"
    form posts to the portal, which sends the browser on to the provider."""
    SocialApp.objects.create(
        provider="openid_connect",
        provider_id="campus",
        name="Example University",
        client_id="portal",
        settings={"server_url": "https://login.example.edu/realms/campus"},
    )
    SocialApp.objects.create(
        provider="saml",
        provider_id="college",
        name="Other College",
        client_id="college",
        settings={"idp": {"entity_id": "urn:college", "sso_url": "https://idp.college.example/sso/redirect"}},
    )

    sign_in = Client().get(reverse("account_login"))
    elsewhere = Client().get("/healthz")

    form_action = next(d for d in sign_in["Content-Security-Policy"].split("; ") if d.startswith("form-action"))
    assert form_action == "form-action 'self' https://idp.college.example https://login.example.edu"
    assert "form-action 'self';" in elsewhere["Content-Security-Policy"] + ";"
