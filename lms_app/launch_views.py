"""The LMS's way into the portal: the login initiation, the launch, and the pages a launch leads
to (setting a course up, the link an instructor adds to the LMS course); registering an LMS is
views.py's. What a launch does is decided in lms_app/services/launches.py: these views check the
launch (PyLTI1p3), sign the person in and show where it lands."""

import logging
from typing import Any, cast
from urllib.parse import urlsplit

# allauth's own record of the steps of a sign-in (RequireMFAMiddleware reads it); not re-exported.
from allauth.account.internal.flows.login import record_authentication
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.csp import CSP, build_policy
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from lti_tool.models import Key, LtiLaunch
from lti_tool.utils import DjangoToolConfig, get_launch_from_request
from lti_tool.views import OIDCLoginInitView
from pylti1p3.contrib.django import DjangoCacheDataStorage, DjangoOIDCLogin
from pylti1p3.exception import LtiException, OIDCException

from accounts_app.forms import CourseForm
from accounts_app.models import User
from lms_app.forms import LinkCourseForm
from lms_app.selectors import courses_taught
from lms_app.services import launches
from lms_app.services.launches import CourseSetup, Destination, Landing, LaunchRefused

logger = logging.getLogger(__name__)

# The backend allauth signs people in with: the session then looks like one of allauth's own.
ALLAUTH_BACKEND = "allauth.account.auth_backends.AuthenticationBackend"
# How the session's sign-in is recorded among allauth's authentication steps.
LTI_SIGN_IN_METHOD = "lti"
# The course set-ups waiting in this session, by the LMS course's (LtiContext's) id.
SETUP_SESSION_KEY = "lms_course_setups"
ACCOUNT_PANEL_ANCHOR = "#account-panel"
NO_TOOL_KEY = LaunchRefused(
    "The portal has no signing key yet",
    "The portal signs what it sends an LMS with a key of its own, and has none. Ask the portal's "
    "administrator to run `python manage.py lti_keys_ensure`.",
    detail="no active lti_tool Key",
    status=503,
)


def refusal_page(request: HttpRequest, refusal: LaunchRefused) -> HttpResponse:
    logger.info("LMS launch refused: %s (%s)", refusal.title, refusal.detail)
    return render(request, "lms/refused.html", {"refusal": refusal}, status=refusal.status)


class LoginInitView(OIDCLoginInitView):
    """django-lti's login initiation (OpenID Connect third-party initiated login), with two changes:

    - No cookie check page. PyLTI1p3's page tests cookies in an inline script, which the portal's
      Content-Security-Policy (script-src 'self') blocks: it stays blank. The check is for tools
      shown inside the LMS's page; the portal refuses to be framed (frame-ancestors 'none'), so it
      opens in a window of its own, where its cookies work. The initiation redirects to the LMS
      at once.
    - A bad initiation (an unknown registration, a missing parameter) answers the launch's
      refusal page, naming the issuer and client id it came with, not a server error.

    Without a registration's uuid in the address, the registration is the one of the request's
    issuer and client id.
    """

    def get_oidc_response(self, request: HttpRequest, registration_uuid, params) -> HttpResponse:
        target_link_uri = params.get("target_link_uri")
        if not target_link_uri:
            return refusal_page(request, launches.lti_error_refusal(OIDCException("Missing target_link_uri")))
        oidc_login = DjangoOIDCLogin(
            request, DjangoToolConfig(registration_uuid), launch_data_storage=DjangoCacheDataStorage()
        )
        try:
            return oidc_login.redirect(self.get_redirect_url(target_link_uri))
        except (LtiException, OIDCException) as error:
            caller = f"issuer {params.get('iss')!r}, client id {params.get('client_id')!r}"
            return refusal_page(request, launches.lti_error_refusal(error, about=caller))
        except Key.DoesNotExist:
            return refusal_page(request, NO_TOOL_KEY)


@csrf_exempt  # the LMS's page posts the launch; its signed, single-use token stands for a CSRF token
@require_POST
def launch(request: HttpRequest) -> HttpResponse:
    try:
        lti_launch = get_launch_from_request(request)
        launch_url = request.build_absolute_uri(reverse("lms:launch"))
        landing = launches.launch_accept(lti_launch=lti_launch, launch_url=launch_url)
    except (LtiException, OIDCException) as error:
        return refusal_page(request, launches.lti_error_refusal(error))
    except Key.DoesNotExist:
        return refusal_page(request, NO_TOOL_KEY)
    except LaunchRefused as refusal:
        return refusal_page(request, refusal)
    if landing.user is not None:
        _sign_in(request, landing.user, lti_launch)
    return _landing_response(request, landing)


def _sign_in(request: HttpRequest, user: User, lti_launch: LtiLaunch) -> None:
    """A sign-in as allauth's are, recorded among the session's authentication steps, in a new
    session: nothing of the one the browser may have sent (an LMS on the portal's own site sends
    it) carries over, neither a second factor passed nor an idle staff clock. The launch passes no
    second factor: RequireMFAMiddleware sends whoever owns an authenticator to prove it, with the
    page the launch leads to as `next`."""
    request.session.flush()
    login(request, user, backend=ALLAUTH_BACKEND)
    record_authentication(
        request, user, LTI_SIGN_IN_METHOD, issuer=lti_launch.get_claim("iss"), sub=lti_launch.get_claim("sub")
    )


def _landing_response(request: HttpRequest, landing: Landing) -> HttpResponse:
    match landing.destination:
        case Destination.COURSE:
            return redirect("courses:detail", course_id=landing.course.pk)
        case Destination.ACCOUNT_PANEL:
            return redirect(reverse("courses:detail", kwargs={"course_id": landing.course.pk}) + ACCOUNT_PANEL_ANCHOR)
        case Destination.SETUP:
            setups = request.session.get(SETUP_SESSION_KEY, {})
            setups[str(landing.setup.context_id)] = landing.setup.as_session()
            request.session[SETUP_SESSION_KEY] = setups
            return redirect("lms:setup", context_id=landing.setup.context_id)
        case Destination.NOT_SET_UP:
            return render(request, "lms/not_set_up.html", {"lms_title": landing.lms_title})
        case Destination.DEEP_LINK:
            return _deep_link_page(request, landing)


def _deep_link_page(request: HttpRequest, landing: Landing) -> HttpResponse:
    """The offer, with the signed answer already in its form, posted straight to the LMS. The LMS
    shows this page in a dialog of its own page, where the portal's session cookie (SameSite=Lax)
    is not sent: a round trip through the portal would find neither the session nor the CSRF
    cookie. The page may be framed by the LMS, and may post to it, and to nobody else."""
    answer = landing.deep_link
    response = render(request, "lms/deep_link.html", {"answer": answer, "lms_title": landing.lms_title})
    address = urlsplit(answer.return_url)
    lms_origin = f"{address.scheme}://{address.netloc}"
    policy: dict[str, Any] = {
        **settings.SECURE_CSP,
        "form-action": [CSP.SELF, lms_origin],
        "frame-ancestors": [lms_origin],
    }
    response.headers[CSP.HEADER_ENFORCE] = build_policy(policy)
    # frame-ancestors decides where the page may be framed; X-Frame-Options: DENY would contradict it.
    setattr(response, "xframe_options_exempt", True)  # noqa: B010 (what django's xframe_options_exempt sets)
    return response


# --- Setting up a course for an LMS course ---------------------------------------------------------


def _user(request: HttpRequest) -> User:
    """The signed-in user, for a view behind login_required."""
    return cast(User, request.user)


def _pending_setup(request: HttpRequest, context_id: int) -> CourseSetup:
    """The set-up a launch into this LMS course left in this session for this user: the only
    source of what the set-up pages act on."""
    data = request.session.get(SETUP_SESSION_KEY, {}).get(str(context_id))
    if data is None:
        raise Http404("No course set-up waits here: open the tool again from the LMS course.")
    setup = CourseSetup.from_session(data)
    if setup.user_id != request.user.pk:
        raise Http404("No course set-up waits here: open the tool again from the LMS course.")
    return setup


def _setup_page(
    request: HttpRequest, setup: CourseSetup, course_form: CourseForm, link_form: LinkCourseForm
) -> HttpResponse:
    context = {
        "setup": setup,
        "form": course_form,
        "link_form": link_form,
        "linked_elsewhere": courses_taught(user=request.user).filter(lms_link__isnull=False),
    }
    return render(request, "lms/setup.html", context)


def _new_course_form(request: HttpRequest, setup: CourseSetup, data=None) -> CourseForm:
    """The portal's course form, prefilled from the LMS course, its contacts the instructor's."""
    email = _user(request).email
    contacts = {"billing_contact_email": email, "usage_alert_email": email}
    return CourseForm(data, initial={**contacts, **setup.initial()})


def _setup_done(request: HttpRequest, setup: CourseSetup, course_id: int) -> HttpResponse:
    request.session.get(SETUP_SESSION_KEY, {}).pop(str(setup.context_id), None)
    request.session.modified = True
    return redirect("courses:detail", course_id=course_id)


@login_required
def setup(request: HttpRequest, context_id: int) -> HttpResponse:
    pending = _pending_setup(request, context_id)
    return _setup_page(request, pending, _new_course_form(request, pending), LinkCourseForm(user=request.user))


@require_POST
@login_required
def setup_create(request: HttpRequest, context_id: int) -> HttpResponse:
    pending = _pending_setup(request, context_id)
    form = _new_course_form(request, pending, request.POST)
    if not form.is_valid():
        return _setup_page(request, pending, form, LinkCourseForm(user=request.user))
    try:
        link = launches.lms_course_create(actor=_user(request), setup=pending, fields=form.cleaned_data)
    except LaunchRefused as refusal:
        return refusal_page(request, refusal)
    messages.success(request, f"Created {link.course.code} for {pending.lms_title}. Next, check its roster.")
    return _setup_done(request, pending, link.course_id)


@require_POST
@login_required
def setup_link(request: HttpRequest, context_id: int) -> HttpResponse:
    pending = _pending_setup(request, context_id)
    form = LinkCourseForm(request.POST, user=request.user)
    if not form.is_valid():
        return _setup_page(request, pending, _new_course_form(request, pending), form)
    try:
        link = launches.lms_course_link(actor=_user(request), setup=pending, course=form.cleaned_data["course"])
    except LaunchRefused as refusal:
        return refusal_page(request, refusal)
    messages.success(request, f"{link.course.code} now follows {pending.lms_title}.")
    return _setup_done(request, pending, link.course_id)
