from collections.abc import Callable

from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from accounts_app.permissions import must_use_mfa

# Pages someone without a second factor still needs: signing in and out, setting one up.
MFA_EXEMPT_PREFIXES = ("/accounts/", "/static/", "/healthz")


class RequireMFAMiddleware:
    """With PORTAL_REQUIRE_MFA_FOR_STAFF on, administrators and instructors are sent to set up an
    authenticator app before they can use anything else."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            settings.PORTAL_REQUIRE_MFA_FOR_STAFF
            and not request.path.startswith(MFA_EXEMPT_PREFIXES)
            and must_use_mfa(request.user)
            and not is_mfa_enabled(request.user)
        ):
            return redirect(reverse("mfa_activate_totp"))
        return self.get_response(request)
