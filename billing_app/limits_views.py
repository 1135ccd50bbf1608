"""A course's spend limits: instructors set them, TAs read them (students see them on their spend
page). The usage meter acts on them at every reading (services/limits.py)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts_app.permissions import can_manage_course
from accounts_app.views.common import managed_course, roster_course
from billing_app import selectors
from billing_app.forms import SpendLimitsForm
from billing_app.services.limits import course_spend_limits_set


@login_required
def spend_limits(request: HttpRequest, course_id: int) -> HttpResponse:
    # TAs read the limits; only instructors set them.
    find_course = managed_course if request.method == "POST" else roster_course
    course = find_course(request, course_id)
    limits = selectors.course_spend_limits(course=course)
    can_manage = can_manage_course(request.user, course)
    form = SpendLimitsForm(request.POST or None, instance=limits) if can_manage and not course.is_archived else None
    if request.method == "POST" and form is not None and form.is_valid():
        course_spend_limits_set(actor=request.user, course=course, values=form.cleaned_data)
        messages.success(
            request,
            f"Spend limits saved: each student account is checked at its next reading, within "
            f"{settings.PORTAL_METER_INTERVAL_MINUTES} minutes.",
        )
        return redirect("billing:spend_limits", course_id=course.pk)
    context = {
        "course": course,
        "limits": limits,
        "form": form,
        "interval_minutes": settings.PORTAL_METER_INTERVAL_MINUTES,
        "can_manage": can_manage,
        "can_view_roster": True,
    }
    return render(request, "billing/spend_limits.html", context)
