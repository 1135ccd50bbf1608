"""A course's webhooks, on its settings: instructors add and remove them, send a test message,
and see how the last messages went. The school's webhooks are the Django admin's."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts_app import selectors
from accounts_app.forms import WebhookForm
from accounts_app.models import Course, WebhookEndpoint
from accounts_app.services import webhooks as webhook_services
from accounts_app.views.common import managed_course
from accounts_app.webhook_formats import REPLAY_WINDOW_SECONDS


@login_required
def webhooks(request: HttpRequest, course_id: int) -> HttpResponse:
    course = managed_course(request, course_id)
    form = WebhookForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            endpoint, secret = webhook_services.webhook_create(actor=request.user, course=course, **form.cleaned_data)
        except webhook_services.WebhookError as error:
            form.add_error("url", str(error))
        else:
            if secret:
                return _secret_once(request, course, endpoint, secret)
            messages.success(request, f"Added the webhook {endpoint.name}. Send it a test message to check it.")
            return redirect("courses:webhooks", course_id=course.pk)
    return render(request, "courses/webhooks.html", _context(course, form))


def _context(course: Course, form: WebhookForm) -> dict:
    return {
        "course": course,
        "form": form,
        "endpoints": selectors.course_webhooks(course=course),
        "school_webhooks": selectors.school_webhook_names(),
    }


def _secret_once(request: HttpRequest, course: Course, endpoint: WebhookEndpoint, secret: str) -> HttpResponse:
    """The signing secret, shown on this page only: it is stored encrypted and never shown again."""
    context = {
        **_context(course, WebhookForm()),
        "new_endpoint": endpoint,
        "secret": secret,
        "replay_window_minutes": REPLAY_WINDOW_SECONDS // 60,
    }
    response = render(request, "courses/webhooks.html", context)
    response["Cache-Control"] = "no-store"
    return response


def _course_endpoint(request: HttpRequest, course_id: int, endpoint_id: int) -> tuple[Course, WebhookEndpoint]:
    course = managed_course(request, course_id)
    return course, get_object_or_404(WebhookEndpoint, course=course, pk=endpoint_id)


@require_POST
@login_required
def webhook_test(request: HttpRequest, course_id: int, endpoint_id: int) -> HttpResponse:
    course, endpoint = _course_endpoint(request, course_id, endpoint_id)
    webhook_services.webhook_test_send(endpoint=endpoint)
    messages.info(request, f"Sending a test message to {endpoint.name}… reload this page to see how it went.")
    return redirect("courses:webhooks", course_id=course.pk)


@require_POST
@login_required
def webhook_remove(request: HttpRequest, course_id: int, endpoint_id: int) -> HttpResponse:
    course, endpoint = _course_endpoint(request, course_id, endpoint_id)
    webhook_services.webhook_remove(actor=request.user, endpoint=endpoint)
    messages.success(request, f"Removed the webhook {endpoint.name}.")
    return redirect("courses:webhooks", course_id=course.pk)
