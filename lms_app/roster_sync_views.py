"""The roster sync's pages: Sync now, and the preview of a list from the LMS that an instructor
applies (a CSV import's preview, for the LMS). Instructors and administrators only, as every
change to a roster."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django_htmx.middleware import HtmxDetails

from accounts_app.forms import RosterConfirmForm
from accounts_app.models import User
from accounts_app.services.roster_sync import RosterSyncError
from accounts_app.views.common import managed_course
from lms_app import selectors
from lms_app.models import LmsCourseLink, RosterFetchStatus
from lms_app.services import roster_sync

# How often the preview asks again while the LMS is being asked.
REFRESH_SECONDS = 2


class SignedInRequest(HttpRequest):
    """A request past login_required, as django-htmx's middleware leaves it."""

    user: User
    htmx: HtmxDetails


@require_POST
@login_required
def roster_sync_now(request: SignedInRequest, course_id: int) -> HttpResponse:
    course = managed_course(request, course_id)
    link = get_object_or_404(LmsCourseLink, course=course)
    fetch = roster_sync.lms_roster_sync_request(actor=request.user, link=link)
    return redirect("lms:roster_sync_preview", course_id=course.pk, fetch_id=fetch.pk)


@login_required
def roster_sync_review(request: SignedInRequest, course_id: int) -> HttpResponse:
    """The list waiting for an instructor, which the roster page links to."""
    course = managed_course(request, course_id)
    fetch = selectors.roster_fetch_awaiting_review(course=course)
    if fetch is None:
        messages.info(request, "No list from the LMS is waiting for review.")
        return redirect("courses:roster", course_id=course.pk)
    return redirect("lms:roster_sync_preview", course_id=course.pk, fetch_id=fetch.pk)


@login_required
def roster_sync_preview(request: SignedInRequest, course_id: int, fetch_id: int) -> HttpResponse:
    course = managed_course(request, course_id)
    fetch = get_object_or_404(selectors.roster_fetches(course=course), pk=fetch_id)
    form = RosterConfirmForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            plan = roster_sync.lms_roster_fetch_apply(
                actor=request.user, fetch=fetch, send_invitations=form.cleaned_data["send_invitations"]
            )
        except roster_sync.RosterFetchNotApplicable as error:
            messages.error(request, str(error))
        except RosterSyncError:
            messages.error(request, "The roster changed since this preview; see the problems below.")
        else:
            if plan is None:
                messages.info(request, "This list was already applied.")
            else:
                counts = plan.summary
                messages.success(
                    request,
                    f"Synced with {roster_sync.lms_roster_label(fetch.link)}: {counts['add']} added, "
                    f"{counts['update']} updated, {counts['remove']} removed.",
                )
            return redirect("courses:roster", course_id=course.pk)
        fetch.refresh_from_db()
    context = {
        "course": course,
        "fetch": fetch,
        "managed_by": roster_sync.lms_roster_label(fetch.link),
        "plan": roster_sync.lms_roster_fetch_plan(fetch=fetch) if fetch.status == RosterFetchStatus.FETCHED else None,
        "form": form,
        "refresh_seconds": REFRESH_SECONDS,
    }
    if request.htmx:
        return render(request, "lms/roster_sync_preview.html#fetch-status", context)
    return render(request, "lms/roster_sync_preview.html", context)
