"""Registering an LMS: the Canvas developer key's JSON and LTI Dynamic Registration. The login
initiation and the launch are launch_views.py's."""

from __future__ import annotations

from typing import cast

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csp import csp_override
from django.views.decorators.http import require_GET, require_http_methods

from lms_app.forms import PlatformRegistrationForm
from lms_app.services.registration import (
    PlatformConfiguration,
    RegistrationError,
    platform_configuration_fetch,
    platform_register,
)
from lms_app.tool_configuration import (
    IDENTITY_CLAIMS,
    NRPS_SCOPE,
    TOOL_CONFIGURATION_CLAIM,
    ToolUrls,
    canvas_configuration,
    registration_request,
)

TEXT = "text/plain; charset=utf-8"


@require_GET
def canvas_config(request: HttpRequest) -> JsonResponse:
    """The JSON of a Canvas developer key ("Enter URL" reads it here; "Paste JSON" is a copy)."""
    return JsonResponse(canvas_configuration(ToolUrls.from_request(request)), json_dumps_params={"indent": 2})


# The LMS shows this page in a frame of its own pages (or a window it opened) and waits for its
# message: any site may frame it. Framed by another site, the browser sends it none of the
# portal's cookies (SameSite=Lax), so the page is signed out there and offers a window of its own;
# a window the portal opens keeps its opener, which the message goes to.
@xframe_options_exempt
@csp_override({**cast("dict[str, list[str]]", settings.SECURE_CSP), "frame-ancestors": ["*"]})
@require_http_methods(["GET", "POST"])
def dynamic_registration(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        if request.headers.get("Sec-Fetch-Dest") == "iframe":
            return _keep_opener(render(request, "lms/register_sign_in.html", {"url": request.get_full_path()}))
        return redirect_to_login(request.get_full_path())
    if not request.user.is_superuser:
        raise PermissionDenied("Only the portal's administrators can register an LMS.")
    if request.method == "POST":
        return _keep_opener(_register(request))
    return _keep_opener(_confirm(request))


def _confirm(request: HttpRequest) -> HttpResponse:
    form = PlatformRegistrationForm(
        initial={
            "openid_configuration": request.GET.get("openid_configuration", ""),
            "registration_token": request.GET.get("registration_token", ""),
        }
    )
    if not form["openid_configuration"].value():
        return _refused(
            request, "This page is opened by an LMS's dynamic registration, which gives it the LMS's address."
        )
    try:
        platform = platform_configuration_fetch(
            openid_configuration_url=form["openid_configuration"].value(),
            registration_token=form["registration_token"].value(),
        )
    except RegistrationError as error:
        return _refused(request, str(error))
    form.initial["name"] = platform.suggested_name
    return _confirmation_page(request, form, platform)


def _register(request: HttpRequest) -> HttpResponse:
    form = PlatformRegistrationForm(request.POST)
    try:
        if not form.is_valid():
            platform = platform_configuration_fetch(
                openid_configuration_url=form["openid_configuration"].value(),
                registration_token=form["registration_token"].value(),
            )
            return _confirmation_page(request, form, platform, status=400)
        registration = platform_register(
            actor=request.user,
            openid_configuration_url=form.cleaned_data["openid_configuration"],
            registration_token=form.cleaned_data["registration_token"],
            name=form.cleaned_data["name"],
            email_domains=form.cleaned_data["email_domains"],
            tool=ToolUrls.from_request(request),
        )
    except RegistrationError as error:
        return _refused(request, str(error))
    return render(
        request,
        "lms/register_done.html",
        {"registration": registration, "deployments": registration.deployments.all()},
    )


def _confirmation_page(
    request: HttpRequest, form: PlatformRegistrationForm, platform: PlatformConfiguration, status: int = 200
) -> HttpResponse:
    urls = ToolUrls.from_request(request)
    request_body = registration_request(urls, product_family_code=platform.product_family_code)
    context = {
        "form": form,
        "platform": platform,
        "urls": urls,
        "scope": NRPS_SCOPE,
        "claims": IDENTITY_CLAIMS,
        "tool_configuration": request_body[TOOL_CONFIGURATION_CLAIM],
    }
    return render(request, "lms/register_confirm.html", context, status=status)


def _refused(request: HttpRequest, reason: str) -> HttpResponse:
    return render(request, "lms/register_error.html", {"reason": reason}, status=400)


def _keep_opener(response: HttpResponse) -> HttpResponse:
    """The LMS that opened this page in a window waits for its message there: the portal's usual
    Cross-Origin-Opener-Policy (same-origin) would sever the window from it."""
    response["Cross-Origin-Opener-Policy"] = "unsafe-none"
    return response
