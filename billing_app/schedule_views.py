"""Course schedules in the browser: the course's schedule (instructors set it, TAs read it), and a
student's list of what it stopped in their own account, with a button to start each again."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.middleware import HtmxDetails

from accounts_app.choices import CourseRole
from accounts_app.models import Course, MemberAccount
from accounts_app.permissions import can_manage_course
from accounts_app.views.common import managed_course, roster_course, visible_course
from billing_app import schedule_selectors
from billing_app.forms import CourseScheduleForm
from billing_app.models import ScheduledStop
from billing_app.services import schedules as services


class HtmxHttpRequest(HttpRequest):
    """A request as django-htmx's middleware leaves it."""

    htmx: HtmxDetails


# While something is being started again, the student's list asks for news this often (seconds).
STOPS_REFRESH_SECONDS = 3


@require_http_methods(["GET", "POST"])
@login_required
def schedule(request: HttpRequest, course_id: int) -> HttpResponse:
    course = roster_course(request, course_id)
    view = schedule_selectors.course_schedule(course=course, now=timezone.now())
    if request.method == "POST":
        course = managed_course(request, course_id)
        form = CourseScheduleForm(request.POST)
        if form.is_valid():
            services.course_schedule_save(actor=request.user, course=course, **form.cleaned_data)
            messages.success(request, "Schedule saved. It applies from the next look, within minutes.")
            return redirect("billing:schedule", course_id=course.pk)
    else:
        form = CourseScheduleForm(initial=schedule_selectors.schedule_initial(view.schedule))
    can_manage = can_manage_course(request.user, course)
    context = {
        "course": course,
        "view": view,
        "form": form,
        "can_edit": can_manage and not course.is_archived,
        "can_manage": can_manage,
        "can_view_roster": True,
    }
    return render(request, "billing/schedule.html", context)


def _own_account(request: HttpRequest, course: Course) -> MemberAccount:
    """The signed-in student's own account in the course; 404 for anyone else."""
    mine = {"membership__user_id": request.user.pk, "membership__role": CourseRole.STUDENT}
    account = MemberAccount.objects.filter(course=course, **mine).select_related("course").first()
    if account is None:
        raise Http404("You have no AWS account in this course.")
    return account


def _stops_fragment(request: HttpRequest, course: Course, account: MemberAccount, notice: str = "") -> HttpResponse:
    context = {
        "course": course,
        "account": account,
        "scheduled_stops": schedule_selectors.account_scheduled_stops(account=account, now=timezone.now()),
        "stops_refresh_seconds": STOPS_REFRESH_SECONDS,
        "stops_notice": notice,
        "staff_view": False,
    }
    return render(request, "billing/_scheduled_stops.html", context)


@login_required
def my_scheduled_stops(request: HttpRequest, course_id: int) -> HttpResponse:
    """What the schedule stopped in the student's own account, for their account panel (htmx)."""
    course = visible_course(request, course_id)
    return _stops_fragment(request, course, _own_account(request, course))


@require_POST
@login_required
def scheduled_stop_start(request: HtmxHttpRequest, course_id: int, stop_id: int) -> HttpResponse:
    """Start again one thing the schedule stopped in the student's own account."""
    course = visible_course(request, course_id)
    account = _own_account(request, course)
    stop = get_object_or_404(ScheduledStop, account=account, pk=stop_id)
    try:
        queued = services.scheduled_stop_restart_request(actor=request.user, stop=stop)
    except services.ScheduleError as error:
        notice, level = str(error), messages.ERROR
    else:
        if queued:
            notice, level = "Starting it again… this list updates by itself.", messages.SUCCESS
        else:
            notice, level = "It is already started again, or on its way.", messages.INFO
    if request.htmx:
        return _stops_fragment(request, course, account, notice)
    messages.add_message(request, level, notice)
    return redirect("courses:detail", course_id=course.pk)
