"""Asking for a higher budget: the student's form on their spend page, and the page where an
instructor approves or declines the request in one click."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts_app.choices import CourseRole
from accounts_app.models import MemberAccount
from accounts_app.permissions import can_manage_course
from accounts_app.views.common import managed_course, roster_course, visible_course
from billing_app.forms import BudgetDeclineForm, BudgetRequestForm
from billing_app.models import BudgetRequest
from billing_app.services import budget_requests as services
from billing_app.services.budgets import budget_amount, frozen_for_its_budget, under_freeze_line


@require_POST
@login_required
def budget_request(request: HttpRequest, course_id: int) -> HttpResponse:
    course = visible_course(request, course_id)
    account = MemberAccount.objects.filter(
        membership__course=course, membership__user=request.user, membership__role=CourseRole.STUDENT
    ).first()
    if account is None:
        raise Http404("You have no AWS account in this course.")
    form = BudgetRequestForm(request.POST)
    if not form.is_valid():
        problems = [f"{form[name].label}: {' '.join(errors)}" for name, errors in form.errors.items()]
        messages.error(request, "Your request was not sent. " + " ".join(problems))
        return redirect("billing:my_costs", course_id=course.pk)
    try:
        services.budget_request_create(actor=request.user, account=account, **form.cleaned_data)
    except services.BudgetRequestError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, "Your request was sent to your instructor. You will get an email with the answer.")
    return redirect("billing:my_costs", course_id=course.pk)


def _course_request(course, request_id: int) -> BudgetRequest:
    return get_object_or_404(
        BudgetRequest.objects.select_related("account__membership", "account__course", "requested_by", "decided_by"),
        course=course,
        pk=request_id,
    )


@login_required
def budget_request_review(request: HttpRequest, course_id: int, request_id: int) -> HttpResponse:
    course = roster_course(request, course_id)
    budget_request = _course_request(course, request_id)
    account = budget_request.account
    context = {
        "course": course,
        "budget_request": budget_request,
        "account": account,
        "budget_now": budget_amount(account),
        # What approving does to a frozen account, said before the click.
        "approval_unfreezes": frozen_for_its_budget(account) and under_freeze_line(account, budget_request.amount),
        "decline_form": BudgetDeclineForm(),
        "can_manage": can_manage_course(request.user, course),
        "can_view_roster": True,
    }
    return render(request, "billing/budget_request.html", context)


@require_POST
@login_required
def budget_request_approve(request: HttpRequest, course_id: int, request_id: int) -> HttpResponse:
    course = managed_course(request, course_id)
    budget_request = _course_request(course, request_id)
    try:
        decided = services.budget_request_approve(actor=request.user, budget_request=budget_request)
    except services.BudgetRequestError as error:
        messages.error(request, str(error))
    else:
        if decided:
            messages.success(request, f"Approved: the budget is now ${budget_request.amount}. The student is told.")
        else:
            messages.info(request, "This request was already decided.")
    return redirect("billing:budget_request_review", course_id=course.pk, request_id=budget_request.pk)


@require_POST
@login_required
def budget_request_decline(request: HttpRequest, course_id: int, request_id: int) -> HttpResponse:
    course = managed_course(request, course_id)
    budget_request = _course_request(course, request_id)
    form = BudgetDeclineForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Not declined: " + " ".join(form.errors["reason"]))
        return redirect("billing:budget_request_review", course_id=course.pk, request_id=budget_request.pk)
    reason = form.cleaned_data["reason"]
    if services.budget_request_decline(actor=request.user, budget_request=budget_request, reason=reason):
        messages.success(request, "Declined. The student is told.")
    else:
        messages.info(request, "This request was already decided.")
    return redirect("billing:budget_request_review", course_id=course.pk, request_id=budget_request.pk)
