"""Campus single sign-on through OpenID Connect or SAML 2.0 (docs/SSO.md), on allauth's own providers.

An administrator adds each university's identity provider in the admin as a SocialApp of the
provider "openid_connect" or "saml". Besides allauth's own settings (`server_url`, or `idp` and
`attribute_mapping`, ...) its settings hold, for either protocol:

- "trusted_domains": the email domains the provider speaks for. An address at one of them is a
  verified address of whoever signs in, and signs in (and links) the portal user who holds it.
  An address anywhere else is refused: the provider cannot vouch for it.
- "mfa_acr_values" (optional): `acr` values of the ID token that mean the provider asked for a
  second factor, besides an `amr` holding "mfa" or "otp" (read only when
  PORTAL_SSO_TRUST_IDP_MFA is on). OpenID Connect only.
- "mfa_attribute" and "mfa_attribute_values" (optional): a SAML attribute, and its values, that
  mean the identity provider asked for a second factor (e.g. Entra ID's authnmethodsreferences
  holding multipleauthn). SAML only; the assertion's AuthnContextClassRef is not read.

SocialApp.name is the university's name the sign-in page shows ("Sign in with <name>").
"""

from typing import Any
from urllib.parse import urlsplit

from allauth.core.exceptions import ImmediateHttpResponse
from allauth.mfa.stages import AuthenticateStage
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialApp, SocialLogin
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest
from django.shortcuts import redirect
from django.utils.csp import CSP
from lxml import etree
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser

TRUSTED_DOMAINS_KEY = "trusted_domains"
MFA_ACR_VALUES_KEY = "mfa_acr_values"
MFA_ATTRIBUTE_KEY = "mfa_attribute"
MFA_ATTRIBUTE_VALUES_KEY = "mfa_attribute_values"
SAML_PROVIDER = "saml"
# RFC 8176's authentication method references that say a second factor was asked for.
MFA_AMR_VALUES = frozenset({"mfa", "otp"})


def trusted_domains(app: SocialApp | None) -> list[str]:
    if app is None:
        return []
    return [domain.strip().lower() for domain in app.settings.get(TRUSTED_DOMAINS_KEY, []) if domain.strip()]


def is_trusted_address(app: SocialApp | None, email: str) -> bool:
    """Whether `app` speaks for `email`: its domain is one of the provider's trusted domains."""
    return email.rpartition("@")[2].lower() in trusted_domains(app)


def campus_email(sociallogin: SocialLogin) -> str:
    """The address the provider gave for the person (its `email` claim, or the SAML attribute
    mapped to email), or "" without one."""
    for address in sociallogin.email_addresses:
        if address.primary:
            return address.email
    return sociallogin.user.email if sociallogin.user else ""


def id_token_claims(sociallogin: SocialLogin) -> dict[str, Any]:
    return (sociallogin.account.extra_data or {}).get("id_token") or {}


def idp_asked_second_factor(sociallogin: SocialLogin) -> bool:
    """Whether the provider says that this sign-in passed a second factor: in the ID token
    (OpenID Connect) or in an attribute of the assertion (SAML)."""
    if sociallogin.provider.id == SAML_PROVIDER:
        return saml_attribute_says_second_factor(sociallogin)
    return id_token_says_second_factor(sociallogin)


def saml_attribute_says_second_factor(sociallogin: SocialLogin) -> bool:
    """allauth stores the assertion's attributes (name to list of values) as the account's extra data."""
    app_settings = sociallogin.provider.app.settings
    attribute = app_settings.get(MFA_ATTRIBUTE_KEY)
    if not attribute:
        return False
    released = (sociallogin.account.extra_data or {}).get(attribute) or []
    return bool(set(released).intersection(app_settings.get(MFA_ATTRIBUTE_VALUES_KEY, [])))


def id_token_says_second_factor(sociallogin: SocialLogin) -> bool:
    claims = id_token_claims(sociallogin)
    methods = claims.get("amr") or []
    if isinstance(methods, str):
        methods = [methods]
    if MFA_AMR_VALUES.intersection(methods):
        return True
    acr_values = sociallogin.provider.app.settings.get(MFA_ACR_VALUES_KEY, [])
    return bool(claims.get("acr")) and claims["acr"] in acr_values


def trusts_idp_second_factor(sociallogin: SocialLogin | None) -> bool:
    """The portal counts the provider's second factor as its own: the setting is on and the
    provider says it asked for one."""
    return (
        sociallogin is not None
        and settings.PORTAL_SSO_TRUST_IDP_MFA
        and sociallogin.provider.app is not None
        and idp_asked_second_factor(sociallogin)
    )


class MetadataError(ValueError):
    """IdP metadata the portal cannot take, with what is wrong with it."""


def saml_idp_from_metadata(xml: str) -> dict[str, str]:
    """A SAML IdP's `idp` settings (entity id, single sign-on URL for the HTTP-Redirect binding, and
    signing certificate) read from its metadata XML, as an administrator pastes it: for an IdP
    whose metadata is a file (an XML download, an entry of a federation's aggregate) rather than
    an address allauth reads it from. Raises MetadataError naming what is missing."""
    try:
        parsed = OneLogin_Saml2_IdPMetadataParser.parse(xml.strip().encode())
    except etree.XMLSyntaxError as error:
        raise MetadataError(f"This is not XML: {error}.") from error
    idp = parsed.get("idp") or {}
    if not idp.get("entityId"):
        raise MetadataError("No IdP in this metadata: it has no EntityDescriptor with an IDPSSODescriptor.")
    sso_url = (idp.get("singleSignOnService") or {}).get("url")
    if not sso_url:
        raise MetadataError("The IdP offers no single sign-on service with the HTTP-Redirect binding.")
    certificate = idp.get("x509cert") or next(iter((idp.get("x509certMulti") or {}).get("signing", [])), None)
    if not certificate:
        raise MetadataError("The IdP's metadata holds no signing certificate.")
    return {"entity_id": idp["entityId"], "sso_url": sso_url, "x509cert": certificate}


def identity_provider_origins() -> list[str]:
    """Where the sign-in pages send the browser: each provider's origin. For OpenID Connect that of
    its `server_url` (the authorization endpoint of Entra ID, Google, Okta and Keycloak is on the
    issuer's host), for SAML that of the IdP's single sign-on URL, or of its metadata URL when the
    SSO URL is read from the metadata."""
    origins = []
    for app in SocialApp.objects.filter(provider__in=["openid_connect", SAML_PROVIDER]).only("provider", "settings"):
        idp = app.settings.get("idp") or {}
        address = app.settings.get("server_url") or idp.get("sso_url") or idp.get("metadata_url") or ""
        parts = urlsplit(address)
        if parts.scheme in {"https", "http"} and parts.netloc:
            origins.append(f"{parts.scheme}://{parts.netloc}")
    return sorted(set(origins))


def sign_in_page_csp() -> dict[str, Any]:
    """The Content-Security-Policy of the sign-in pages: the portal's, with the identity providers
    added to form-action. A browser applies form-action to the redirects that follow a form's
    submission too: the "Sign in with <university>" form posts to the portal, which redirects to
    the provider, and a form-action of 'self' alone would stop the browser there."""
    policy = dict(settings.SECURE_CSP)
    policy["form-action"] = [CSP.SELF, *identity_provider_origins()]
    return policy


class PortalSocialAccountAdapter(DefaultSocialAccountAdapter):
    """Set as SOCIALACCOUNT_ADAPTER: a provider vouches for addresses at its trusted domains, and
    for no other."""

    def is_email_verified(self, provider, email: str) -> bool:
        return is_trusted_address(provider.app, email)

    def can_authenticate_by_email(self, login: SocialLogin, email: str) -> bool:
        """Signing in as the portal user who holds `email` (and linking the two) is for trusted
        addresses only, whatever the provider's own `email_verified` says."""
        return is_trusted_address(login.provider.app, email)

    def populate_user(self, request: HttpRequest, sociallogin: SocialLogin, data: dict[str, Any]):
        """A first sign-in's portal user takes the provider's name for the person: its `name`, or
        the given name and surname (the portal's user has one name field)."""
        user = super().populate_user(request, sociallogin, data)
        given_and_surname = " ".join(part for part in (data.get("first_name"), data.get("last_name")) if part)
        user.name = data.get("name") or given_and_surname
        return user

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        app = sociallogin.provider.app
        email = campus_email(sociallogin)
        if email and is_trusted_address(app, email):
            return
        university = sociallogin.provider.name
        domains = ", ".join(trusted_domains(app)) or "no email domain yet"
        if email:
            reason = f"{university} signed you in as {email}, but the portal trusts it only for {domains}."
        else:
            reason = f"{university} did not give the portal your email address."
        messages.error(
            request,
            f"{reason} You were not signed in and no account was linked. Sign in with the account your "
            "university gave you, or ask an administrator.",
        )
        raise ImmediateHttpResponse(redirect("account_login"))


class IdpAwareAuthenticateStage(AuthenticateStage):
    """allauth's step that asks for the portal's TOTP code at sign-in, skipped when the portal
    trusts the provider's own second factor for this sign-in (PORTAL_SSO_TRUST_IDP_MFA)."""

    def _should_handle(self, request: HttpRequest) -> bool:
        sociallogin = (self.login.signal_kwargs or {}).get("sociallogin")
        if trusts_idp_second_factor(sociallogin):
            return False
        return super()._should_handle(request)
