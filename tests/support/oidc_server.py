"""The test's OpenID Connect provider (tests/support/oidc_provider.py) under /idp/, beside the
portal's own URLs; the ROOT_URLCONF of the tests that sign in through it. Imported only once
oauth2_provider is an installed app: its views and validator need its models."""

from typing import Any

from django.http import HttpResponse
from django.urls import include, path
from django.views.decorators.csp import csp_override
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.views import AuthorizationView

from portal.urls import urlpatterns as portal_urlpatterns
from tests.support.oidc_provider import directory, idp_sign_in


class DirectoryValidator(OAuth2Validator):
    """django-oauth-toolkit's validator, whose claims (ID token and userinfo) come from `directory`.
    Every claim is released to every scope: the portal asks for openid, profile and email."""

    oidc_claim_scope = None

    def get_additional_claims(self, request) -> dict[str, Any]:
        return directory.get(request.user.pk, {})


# The provider's pages are the university's, not the portal's: not under the portal's
# Content-Security-Policy (whose form-action would stop the consent form's way back to the portal).
without_portal_csp = csp_override({})

urlpatterns = [
    # What a browser asks the provider's host for, besides its pages.
    path("favicon.ico", lambda request: HttpResponse(status=204)),
    path("idp/sign-in/", without_portal_csp(idp_sign_in)),
    # The provider sends people to its own sign-in page, not to the portal's.
    path("idp/authorize/", without_portal_csp(AuthorizationView.as_view(login_url="/idp/sign-in/"))),
    path("idp/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    *portal_urlpatterns,
]
