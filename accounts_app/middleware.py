"""Checks on every signed-in request, before any view: a staff session left idle ends, and a
session reaches the portal only once it has proven the second factor its user owes."""

import time
from collections.abc import Callable
from urllib.parse import urlencode

from allauth.account.authentication import get_authentication_records
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import REDIRECT_FIELD_NAME, logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

from accounts_app.permissions import holds_staff_role, must_use_mfa, owns_authenticator
from accounts_app.sso import sign_in_page_csp

# allauth's pages: signing in, up, out, the provider's own steps.
SIGN_IN_PREFIX = "/accounts/"
# An LMS's login initiation and launch (lms_app): a launch signs in anew whoever the LMS names,
# whatever the session it replaces owed or how long it sat idle; the pages it leads to are
# checked as any other.
LMS_LAUNCH_PREFIXES = ("/lti/init/", "/lti/launch/")
# Pages someone without a second factor still needs: signing in and out, setting one up.
MFA_EXEMPT_PREFIXES = (SIGN_IN_PREFIX, "/static/", "/healthz", *LMS_LAUNCH_PREFIXES)
IDLE_EXEMPT_PREFIXES = ("/static/", "/healthz", *LMS_LAUNCH_PREFIXES)
LAST_ACTIVITY_SESSION_KEY = "portal_last_activity"
# Sent by the panels that refresh themselves (htmx polling): a page left open is not activity.
AUTO_REFRESH_HEADER = "X-Portal-Auto-Refresh"
# Recording every request would write the session on every request; a minute's precision will do
# (a session may end up to a minute early, never late).
ACTIVITY_RESOLUTION_SECONDS = 60


class StaffIdleTimeoutMiddleware:
    """Administrators, instructors and TAs (see `holds_staff_role`) are signed out when their
    session has seen no request of theirs for PORTAL_STAFF_IDLE_TIMEOUT_MINUTES: a laptop left
    open in a lab does not keep a roster, or the power to freeze accounts, open for the next
    person. Students keep Django's ordinary session length."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            request.user.is_authenticated
            and not request.path.startswith(IDLE_EXEMPT_PREFIXES)
            and holds_staff_role(request.user)
        ):
            now = time.time()
            last_activity = request.session.get(LAST_ACTIVITY_SESSION_KEY)
            if last_activity is not None and now - last_activity > idle_timeout_seconds():
                return self.sign_out(request)
            if last_activity is None or (
                not request.headers.get(AUTO_REFRESH_HEADER) and now - last_activity >= ACTIVITY_RESOLUTION_SECONDS
            ):
                request.session[LAST_ACTIVITY_SESSION_KEY] = now
        return self.get_response(request)

    @staticmethod
    def sign_out(request: HttpRequest) -> HttpResponse:
        page = page_path(request)
        logout(request)
        messages.info(
            request,
            f"You were signed out after {settings.PORTAL_STAFF_IDLE_TIMEOUT_MINUTES} minutes "
            "without activity. Sign in again to continue.",
        )
        return go_to(request, with_next("account_login", page))


class RequireMFAMiddleware:
    """Whoever owns an authenticator must have passed it in *this* session: allauth records every
    step of a sign-in in the session, and "mfa" is the second factor. A session signed in some
    other way (a password alone) is sent to prove it before it reaches anything else.

    With PORTAL_REQUIRE_MFA_FOR_STAFF on, administrators and instructors without an authenticator
    are sent to set one up first, unless this session's second factor was their university's
    (docs/SSO.md, PORTAL_SSO_TRUST_IDP_MFA)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated and not request.path.startswith(MFA_EXEMPT_PREFIXES):
            if owns_authenticator(request.user):
                if not passed_second_factor(request):
                    return go_to(request, with_next("mfa_reauthenticate", page_path(request)))
            elif (
                settings.PORTAL_REQUIRE_MFA_FOR_STAFF
                and must_use_mfa(request.user)
                and not passed_second_factor(request)
            ):
                return go_to(request, reverse("mfa_activate_totp"))
        return self.get_response(request)


def passed_second_factor(request: HttpRequest) -> bool:
    """Whether this session's sign-in (or a later re-authentication) included the second factor."""
    records = get_authentication_records(request, request.user)
    return any(record.get("method") == "mfa" for record in records)


def idle_timeout_seconds() -> int:
    return settings.PORTAL_STAFF_IDLE_TIMEOUT_MINUTES * 60


def page_path(request: HttpRequest) -> str:
    """The page the person is on: for an htmx request, the page around the fragment it asks for."""
    if request.htmx and request.htmx.current_url_abs_path:
        return request.htmx.current_url_abs_path
    return request.get_full_path()


def with_next(url_name: str, next_path: str) -> str:
    return f"{reverse(url_name)}?{urlencode({REDIRECT_FIELD_NAME: next_path})}"


def go_to(request: HttpRequest, url: str) -> HttpResponse:
    """A redirect of the whole page, also from an htmx request (which would otherwise swap the
    page it is sent to into a fragment)."""
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


class SignInPageCSPMiddleware:
    """allauth's pages (under /accounts/) get the Content-Security-Policy that lets their forms lead
    to the university's identity provider (accounts_app.sso.sign_in_page_csp). Listed after
    Django's ContentSecurityPolicyMiddleware, which then writes this policy instead of SECURE_CSP."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith(SIGN_IN_PREFIX) and not hasattr(response, "_csp_config"):
            response._csp_config = sign_in_page_csp()  # type: ignore[attr-defined]
        return response
