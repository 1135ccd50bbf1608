"""Cost pages: the course dashboard (instructors and TAs), a student's detail, the student's own
spend, CSV exports and monthly statements."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts_app.choices import AccountState, CourseRole
from accounts_app.lifecycle import IN_USE_STATES
from accounts_app.models import MemberAccount
from accounts_app.permissions import can_manage_course
from accounts_app.selectors import account_spending
from accounts_app.views.common import managed_course, roster_course, visible_course
from billing_app import meter_selectors, schedule_selectors, selectors
from billing_app.forms import BudgetRequestForm
from billing_app.reports import report_lines
from billing_app.services.budgets import account_freeze, account_unfreeze, budget_amount


@login_required
def course_costs(request: HttpRequest, course_id: int) -> HttpResponse:
    course = roster_course(request, course_id)
    today, now = timezone.localdate(), timezone.now()
    sort = request.GET.get("sort", "-spend")
    query, state = request.GET.get("q", "").strip(), request.GET.get("state", "")
    costs = selectors.course_costs(
        course=course, today=today, sort=sort, query=query, state=state, page=request.GET.get("page")
    )
    accounts = [row.account for row in costs.students]
    meters = meter_selectors.accounts_meter(course=course, accounts=accounts, now=now)
    freezes = selectors.freeze_alerts(accounts=accounts)
    for row in costs.students:
        row.meter = meters[row.account.pk]
        row.frozen_by = freezes.get(row.account.pk)
    start, end = selectors.chart_window(course, today)
    services = selectors.course_service_costs(course=course, start=start, end=end)
    context = {
        "course": course,
        "costs": costs,
        "rows": costs.students,
        "sort": sort,
        "query": query,
        "state": state,
        "states": AccountState.choices,
        "meter": meter_selectors.course_meter(course=course, now=now),
        "soonest": meter_selectors.soonest_to_run_out(course=course, now=now),
        "chart": services.chart,
        "top_services": services.top,
        "alerts": selectors.course_open_alerts(course=course),
        "limits": selectors.course_spend_limits(course=course),
        "budget_requests": selectors.course_pending_budget_requests(course=course),
        "tag_refusal": selectors.cost_tag_refusal(course=course),
        "months": selectors.statement_months(course, today),
        "can_manage": can_manage_course(request.user, course),
        "can_view_roster": True,
    }
    if request.htmx:
        return render(request, "billing/costs.html#student-table", context)
    return render(request, "billing/costs.html", context)


def _course_account(request: HttpRequest, course, account_id: int) -> MemberAccount:
    return get_object_or_404(
        MemberAccount.objects.select_related("membership", "course"),
        course=course,
        pk=account_id,
        membership__isnull=False,
    )


def _account_context(course, account: MemberAccount) -> dict:
    today = timezone.localdate()
    start, end = selectors.chart_window(course, today)
    totals = selectors.account_totals(account=account)
    budget = budget_amount(account)
    return {
        "course": course,
        "account": account,
        "totals": totals,
        "budget": budget,
        "left": max(budget - totals["spend"], Decimal(0)),
        "chart": selectors.account_daily(account=account, start=start, end=end),
        "hourly": selectors.account_hourly(account=account, since=timezone.now() - timedelta(hours=48)),
        "services": selectors.account_services(account=account),
        "tags": selectors.account_tag_breakdown(account=account) if course.cost_tag_key else [],
        "tag_refusal": selectors.cost_tag_refusal(course=course),
        "alerts": selectors.account_alerts(account=account),
        "spending": account_spending(account=account),
        "budget_requests": selectors.account_budget_requests(account=account),
        "meter": meter_selectors.account_meter(account=account, now=timezone.now()),
        "scheduled_stops": schedule_selectors.account_scheduled_stops(account=account, now=timezone.now()),
        "limits": selectors.course_spend_limits(course=course),
        "frozen_by": selectors.freeze_alerts(accounts=[account]).get(account.pk),
    }


@login_required
def student_costs(request: HttpRequest, course_id: int, account_id: int) -> HttpResponse:
    course = roster_course(request, course_id)
    account = _course_account(request, course, account_id)
    context = _account_context(course, account)
    context.update(can_manage=can_manage_course(request.user, course), can_view_roster=True, staff_view=True)
    if request.htmx:
        return render(request, "billing/student.html#freeze-panel", context)
    return render(request, "billing/student.html", context)


def _own_account(request: HttpRequest, course) -> MemberAccount:
    """The signed-in student's own account in the course; 404 for anyone else."""
    membership = course.memberships.filter(user=request.user, role=CourseRole.STUDENT).first()
    account = (
        MemberAccount.objects.filter(membership=membership).select_related("course").first() if membership else None
    )
    if account is None:
        raise Http404("You have no AWS account in this course.")
    return account


@login_required
def my_costs(request: HttpRequest, course_id: int) -> HttpResponse:
    course = visible_course(request, course_id)
    account = _own_account(request, course)
    context = _account_context(course, account)
    context.update(can_manage=False, can_view_roster=False, staff_view=False)
    if account.state in IN_USE_STATES:
        context["budget_request_form"] = BudgetRequestForm()
    return render(request, "billing/student.html", context)


@login_required
def my_meter(request: HttpRequest, course_id: int) -> HttpResponse:
    """What the student's own account runs now, for their account panel (loaded by htmx)."""
    course = visible_course(request, course_id)
    account = _own_account(request, course)
    meter = meter_selectors.account_meter(account=account, now=timezone.now())
    return render(request, "billing/_my_meter.html", {"course": course, "account": account, "meter": meter})


@require_POST
@login_required
def freeze(request: HttpRequest, course_id: int, account_id: int) -> HttpResponse:
    course = managed_course(request, course_id)
    account = _course_account(request, course, account_id)
    if account_freeze(actor=request.user, account=account, reason="Frozen by an instructor"):
        messages.success(request, f"Freezing {account.membership.display_name}'s account… the page updates.")
    else:
        messages.info(request, "Only a ready account can be frozen.")
    return redirect("billing:student_costs", course_id=course.pk, account_id=account.pk)


@require_POST
@login_required
def unfreeze(request: HttpRequest, course_id: int, account_id: int) -> HttpResponse:
    course = managed_course(request, course_id)
    account = _course_account(request, course, account_id)
    raw_budget = request.POST.get("budget", "").strip()
    try:
        new_budget = Decimal(raw_budget) if raw_budget else None
    except InvalidOperation:
        new_budget = Decimal(-1)
    if new_budget is not None and new_budget <= 0:
        messages.error(request, "The new budget must be a positive amount in USD, e.g. 75 or 120.50.")
        return redirect("billing:student_costs", course_id=course.pk, account_id=account.pk)
    if account_unfreeze(actor=request.user, account=account, new_budget=new_budget):
        messages.success(request, f"Unfreezing {account.membership.display_name}'s account… the page updates.")
    else:
        messages.info(request, "The account is not frozen.")
    return redirect("billing:student_costs", course_id=course.pk, account_id=account.pk)


def _date_param(request: HttpRequest, name: str, default: date) -> date:
    raw = request.GET.get(name)
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise Http404(f"“{raw}” is not a date (YYYY-MM-DD).") from None


@login_required
def costs_export(request: HttpRequest, course_id: int) -> StreamingHttpResponse:
    course = roster_course(request, course_id)
    start = _date_param(request, "from", course.start_date)
    end = _date_param(request, "to", min(timezone.localdate(), course.end_date))
    response = StreamingHttpResponse(report_lines(course, start, end), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{course.code}-costs-{start}-{end}.csv"'
    return response


@login_required
def statement(request: HttpRequest, course_id: int, year: int, month: int) -> HttpResponse:
    course = roster_course(request, course_id)
    try:
        month_start = date(year, month, 1)
    except ValueError:
        raise Http404("No such month.") from None
    context = {
        "course": course,
        "statement": selectors.monthly_statement(course=course, month_start=month_start, today=timezone.localdate()),
        "can_manage": can_manage_course(request.user, course),
        "can_view_roster": True,
    }
    return render(request, "billing/statement.html", context)
