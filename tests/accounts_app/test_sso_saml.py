"""Campus single sign-on over SAML 2.0 (accounts_app/sso.py, docs/SSO.md), on allauth's own SAML
provider (python3-saml), against a real identity provider: pysaml2's IdP in the test process
(tests/support/saml_idp.py), with a key and certificate made for the test. The browser (Django's
test client) goes the whole way: the portal's sign-in redirects it to the IdP's SSO endpoint with an
AuthnRequest (HTTP-Redirect binding); the IdP signs a Response for that request; the browser posts
it to the portal's ACS (HTTP-POST binding), where python3-saml checks its signature against the
IdP's certificate, its audience, destination and InResponseTo before allauth signs the person in."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount, SocialApp
from allauth.socialaccount.signals import pre_social_login
from django.test import Client
from django.test.utils import override_settings
from django.urls import reverse

from accounts_app.choices import CourseRole
from accounts_app.models import Membership, User
from accounts_app.sso import MetadataError, saml_idp_from_metadata, trusts_idp_second_factor
from tests.factories import CourseFactory, MembershipFactory, UserFactory
from tests.support.saml_idp import (
    GIVEN_NAME,
    IDP_ENTITY_ID,
    IDP_SSO_URL,
    MAIL,
    MFA_ATTRIBUTE,
    MFA_VALUE,
    SURNAME,
    IdentityProvider,
    identity_provider,
)

UNIVERSITY = "Example University"
CAMPUS_DOMAIN = "uni.example.edu"
ORGANIZATION = "campus"
PORTAL_HOST = "portal.example.edu"


@dataclass
class Campus:
    browser: Client
    idp: IdentityProvider
    app: SocialApp

    def sign_in(self, attributes: dict[str, list[str]], *, tamper=None, sign: bool = True):
        """Through the portal's sign-in, the IdP, and back to the ACS. `tamper` may change the
        Response's XML on its way through the browser."""
        login_url = reverse("saml_login", kwargs={"organization_slug": ORGANIZATION})
        to_idp = self.browser.post(login_url)
        assert to_idp.status_code == 302 and to_idp["Location"].startswith(IDP_SSO_URL + "?SAMLRequest=")
        acs_url, form = self.idp.answer(
            to_idp["Location"], attributes[MAIL][0].partition("@")[0], attributes, sign=sign
        )
        assert acs_url == f"http://{PORTAL_HOST}" + reverse("saml_acs", kwargs={"organization_slug": ORGANIZATION})
        if tamper:
            xml = base64.b64decode(form["SAMLResponse"]).decode()
            form["SAMLResponse"] = base64.b64encode(tamper(xml).encode()).decode()
        return self.browser.post(acs_url.removeprefix(f"http://{PORTAL_HOST}"), form, follow=True)


@pytest.fixture
def campus(db) -> Iterator[Campus]:
    with identity_provider() as idp, override_settings(ALLOWED_HOSTS=[PORTAL_HOST]):
        app = SocialApp.objects.create(
            provider="saml",
            client_id=ORGANIZATION,
            name=UNIVERSITY,
            settings={
                "idp": {"entity_id": IDP_ENTITY_ID, "sso_url": IDP_SSO_URL, "x509cert": idp.certificate},
                "attribute_mapping": {"email": MAIL, "first_name": GIVEN_NAME, "last_name": SURNAME},
                "trusted_domains": [CAMPUS_DOMAIN],
                "mfa_attribute": MFA_ATTRIBUTE,
                "mfa_attribute_values": [MFA_VALUE],
            },
        )
        browser = Client(HTTP_HOST=PORTAL_HOST)
        metadata = browser.get(reverse("saml_metadata", kwargs={"organization_slug": ORGANIZATION}))
        assert metadata.status_code == 200
        idp.trust(metadata.content.decode())
        yield Campus(browser=browser, idp=idp, app=app)


def person(email: str, **more: list[str]) -> dict[str, list[str]]:
    return {MAIL: [email], GIVEN_NAME: ["Ana"], SURNAME: ["Lima"], **more}


def test_a_rostered_students_first_saml_sign_in_links_them_to_their_membership(campus):
    course = CourseFactory()
    entry = MembershipFactory(course=course, user=None, email=f"ana@{CAMPUS_DOMAIN}", role=CourseRole.STUDENT)

    sign_in_page = campus.browser.get(reverse("account_login")).content.decode()
    assert f"Sign in with {UNIVERSITY}" in sign_in_page

    page = campus.sign_in(person(f"ana@{CAMPUS_DOMAIN}"))

    assert page.request["PATH_INFO"] == reverse("courses:list")
    assert course.name in page.content.decode()
    student = User.objects.get(email=f"ana@{CAMPUS_DOMAIN}")
    assert student.name == "Ana Lima"
    entry.refresh_from_db()
    assert entry.user == student
    assert EmailAddress.objects.filter(user=student, email=f"ana@{CAMPUS_DOMAIN}", verified=True).exists()
    # The account is the IdP's persistent NameID for this person; its attributes are what allauth stored.
    account = SocialAccount.objects.get(user=student, provider="saml")
    assert account.extra_data[MAIL] == [f"ana@{CAMPUS_DOMAIN}"]


def test_an_address_outside_the_trusted_domains_is_refused(campus):
    page = campus.sign_in(person("carl@elsewhere.example"))

    assert page.request["PATH_INFO"] == reverse("account_login")
    text = page.content.decode()
    assert f"{UNIVERSITY} signed you in as carl@elsewhere.example, but the portal trusts it only for" in text
    assert "no account was linked" in text
    assert not SocialAccount.objects.exists()
    assert not User.objects.filter(email="carl@elsewhere.example").exists()
    assert "_auth_user_id" not in campus.browser.session


@pytest.mark.parametrize(
    ("tamper", "sign"),
    [
        # Someone edits the signed assertion on its way through their browser.
        (lambda xml: xml.replace(f"ana@{CAMPUS_DOMAIN}", f"dean@{CAMPUS_DOMAIN}"), True),
        # An assertion nobody signed.
        (None, False),
    ],
    ids=["tampered", "unsigned"],
)
def test_an_assertion_whose_signature_does_not_hold_is_refused_and_changes_nothing(campus, tamper, sign):
    dean = UserFactory(email=f"dean@{CAMPUS_DOMAIN}", verified=False)
    entry = MembershipFactory(user=None, email=f"ana@{CAMPUS_DOMAIN}", role=CourseRole.STUDENT)
    users_before = User.objects.count()

    page = campus.sign_in(person(f"ana@{CAMPUS_DOMAIN}"), tamper=tamper, sign=sign)

    assert page.status_code == 401
    text = page.content.decode()
    assert f"Signing in with {UNIVERSITY} failed" in text
    assert "nothing was changed" in text
    assert "_auth_user_id" not in campus.browser.session
    assert not SocialAccount.objects.exists()
    assert User.objects.count() == users_before
    assert Membership.objects.get(pk=entry.pk).user is None
    assert not EmailAddress.objects.filter(user=dean).exists()


def test_the_saml_attribute_mapped_to_mfa_is_read_as_the_idps_second_factor(campus, settings):
    settings.PORTAL_SSO_TRUST_IDP_MFA = True
    seen = []

    def record(request, sociallogin, **kwargs):
        seen.append(trusts_idp_second_factor(sociallogin))

    pre_social_login.connect(record)
    try:
        campus.sign_in(person(f"mo@{CAMPUS_DOMAIN}"))
        campus.browser.logout()
        campus.sign_in(person(f"mo@{CAMPUS_DOMAIN}", **{MFA_ATTRIBUTE: [MFA_VALUE]}))
    finally:
        pre_social_login.disconnect(record)

    assert seen == [False, True]


def test_the_idps_metadata_xml_gives_the_settings_a_saml_sign_in_works_with(campus):
    """The `campus` fixture's provider signs people in with these three values."""
    assert saml_idp_from_metadata(campus.idp.metadata()) == campus.app.settings["idp"]


@pytest.mark.parametrize(
    ("xml", "problem"),
    [
        ("not metadata at all", "This is not XML"),
        ('<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="sp"/>', "No IdP in this metadata"),
    ],
)
def test_metadata_the_portal_cannot_take_is_refused_with_what_is_wrong(xml, problem):
    with pytest.raises(MetadataError, match=problem):
        saml_idp_from_metadata(xml)


def test_an_administrator_pastes_the_idps_metadata_in_the_admin(personas):
    with identity_provider() as idp:
        response = personas.client("admin").post(
            reverse("admin:socialaccount_socialapp_add"),
            {
                "provider": "saml",
                "name": "Example University",
                "client_id": "campus",
                "secret": "",
                "key": "",
                "settings": json.dumps({"trusted_domains": [CAMPUS_DOMAIN]}),
                "idp_metadata_xml": idp.metadata(),
            },
        )
        certificate = idp.certificate

    assert response.status_code == 302, response.content.decode()[:2000]
    app = SocialApp.objects.get(client_id="campus")
    assert app.settings == {
        "trusted_domains": [CAMPUS_DOMAIN],
        "idp": {"entity_id": IDP_ENTITY_ID, "sso_url": IDP_SSO_URL, "x509cert": certificate},
    }


def test_metadata_pasted_for_an_openid_connect_provider_is_refused(personas):
    with identity_provider() as idp:
        response = personas.client("admin").post(
            reverse("admin:socialaccount_socialapp_add"),
            {
                "provider": "openid_connect",
                "name": "U",
                "client_id": "u",
                "settings": "{}",
                "idp_metadata_xml": idp.metadata(),
            },
        )

    assert response.status_code == 200
    assert "IdP metadata is for a SAML provider only." in response.content.decode()
    assert not SocialApp.objects.exists()
