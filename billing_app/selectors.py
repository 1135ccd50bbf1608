"""Reads for the cost pages. Everything comes from the rollups (AccountDailyCost,
CourseServiceDailyCost) in a fixed number of queries, whatever the number of students."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django.db.models import Count, Q, Sum

from accounts_app.choices import AccountState
from accounts_app.models import AwsOrganization, Course, MemberAccount
from billing_app.models import (
    AccountDailyCost,
    Alert,
    AlertKind,
    BudgetRequest,
    BudgetRequestStatus,
    CostKind,
    CostRecord,
    CourseServiceDailyCost,
    CourseSpendLimits,
    HourlyCost,
    StudentBudget,
    TagDailyCost,
)

if TYPE_CHECKING:
    from billing_app.meter_selectors import AccountMeter

TREND_DAYS = 7
CHART_SERVICES = 6  # the rest is stacked as "Other"
ZERO = Decimal(0)


@dataclass
class StudentCostRow:
    account: MemberAccount
    name: str
    email: str
    spend: Decimal
    credits: Decimal
    budget: Decimal
    trend: list[Decimal]
    open_alerts: int
    meter: AccountMeter | None = None  # the usage meter's view (meter_selectors), when the page has it
    frozen_by: Alert | None = None  # a frozen account's freeze (its course limit, if one), when the page has it

    @property
    def percent(self) -> Decimal:
        return (self.spend / self.budget * 100).quantize(Decimal("1")) if self.budget else ZERO


@dataclass
class CourseCosts:
    spend: Decimal
    credits: Decimal
    budget: Decimal
    forecast: Decimal
    students: list[StudentCostRow] = field(default_factory=list)

    @property
    def percent(self) -> Decimal:
        return (self.spend / self.budget * 100).quantize(Decimal("1")) if self.budget else ZERO


def course_costs(*, course: Course, today: date) -> CourseCosts:
    """Totals and the per-student table of a course (five queries)."""
    accounts = list(
        MemberAccount.objects.filter(course=course, membership__isnull=False)
        .select_related("membership")
        .order_by("membership__name", "membership__email")
    )
    totals = {
        row["account_id"]: row
        for row in AccountDailyCost.objects.filter(course=course)
        .values("account_id")
        .annotate(spend=Sum("usage"), credits=Sum("credits"))
    }
    trend_start = today - timedelta(days=TREND_DAYS - 1)
    trends: dict[int, dict[date, Decimal]] = defaultdict(dict)
    for account_id, day, usage in AccountDailyCost.objects.filter(course=course, day__gte=trend_start).values_list(
        "account_id", "day", "usage"
    ):
        trends[account_id][day] = usage
    alerts = dict(
        Alert.objects.filter(course=course, resolved_at=None)
        .values("account_id")
        .annotate(n=Count("pk"))
        .values_list("account_id", "n")
    )
    overrides = dict(
        StudentBudget.objects.filter(account__course=course, amount_override__isnull=False).values_list(
            "account_id", "amount_override"
        )
    )
    days = [trend_start + timedelta(days=i) for i in range(TREND_DAYS)]
    rows = [
        StudentCostRow(
            account=account,
            name=account.membership.display_name,
            email=account.membership.email,
            spend=totals.get(account.pk, {}).get("spend") or ZERO,
            credits=totals.get(account.pk, {}).get("credits") or ZERO,
            budget=overrides.get(account.pk, course.budget_per_student),
            trend=[trends[account.pk].get(day, ZERO) for day in days],
            open_alerts=alerts.get(account.pk, 0),
        )
        for account in accounts
    ]
    spend = sum((r.spend for r in rows), ZERO)
    return CourseCosts(
        spend=spend,
        credits=sum((r.credits for r in rows), ZERO),
        budget=sum((r.budget for r in rows), ZERO),
        forecast=_forecast(course, spend, sum((sum(r.trend, ZERO) for r in rows), ZERO), today),
        students=rows,
    )


def _forecast(course: Course, spend: Decimal, last_week: Decimal, today: date) -> Decimal:
    """Spend to date plus the last week's daily pace until the course ends."""
    remaining = max((course.end_date - today).days, 0)
    return spend + last_week / TREND_DAYS * remaining


SORTS = {
    "name": lambda r: (r.name.lower(),),
    "spend": lambda r: (r.spend,),
    "percent": lambda r: (r.percent,),
    "alerts": lambda r: (r.open_alerts,),
    "rate": lambda r: (r.meter.usd_per_hour if r.meter else ZERO,),
    "state": lambda r: (r.account.state,),
}


def sorted_rows(rows: list[StudentCostRow], *, sort: str, query: str, state: str) -> list[StudentCostRow]:
    key = sort.lstrip("-")
    if query:
        needle = query.lower()
        rows = [r for r in rows if needle in r.name.lower() or needle in r.email.lower()]
    if state in AccountState.values:
        rows = [r for r in rows if r.account.state == state]
    return sorted(rows, key=SORTS.get(key, SORTS["name"]), reverse=sort.startswith("-"))


def course_daily_by_service(*, course: Course, start: date, end: date) -> dict:
    """Chart data: one series per top service (the rest as "Other"), one point per day."""
    rows = CourseServiceDailyCost.objects.filter(course=course, day__gte=start, day__lte=end).values_list(
        "day", "service", "usage"
    )
    return _stacked(rows, start, end)


def _stacked(rows, start: date, end: date) -> dict:
    by_service: dict[str, dict[date, Decimal]] = defaultdict(dict)
    for day, service, usage in rows:
        by_service[service][day] = by_service[service].get(day, ZERO) + usage
    ranked = sorted(by_service, key=lambda s: sum(by_service[s].values()), reverse=True)
    top, rest = ranked[:CHART_SERVICES], ranked[CHART_SERVICES:]
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    series = [{"label": s, "data": [float(by_service[s].get(d, ZERO)) for d in days]} for s in top]
    if rest:
        series.append(
            {"label": "Other", "data": [float(sum((by_service[s].get(d, ZERO) for s in rest), ZERO)) for d in days]}
        )
    return {"labels": [d.isoformat() for d in days], "series": series}


def course_top_services(*, course: Course, limit: int = 8) -> list[tuple[str, Decimal]]:
    return list(
        CourseServiceDailyCost.objects.filter(course=course)
        .values("service")
        .annotate(total=Sum("usage"))
        .order_by("-total")
        .values_list("service", "total")[:limit]
    )


def course_open_alerts(*, course: Course, limit: int = 20):
    return Alert.objects.filter(course=course, resolved_at=None).select_related("account__membership")[:limit]


def account_daily(*, account: MemberAccount, start: date, end: date) -> dict:
    """Chart data of one account: its services stacked per day (one account's raw rows)."""
    rows = CostRecord.objects.filter(account=account, kind=CostKind.USAGE, day__gte=start, day__lte=end).values_list(
        "day", "service", "amount"
    )
    return _stacked(rows, start, end)


def account_services(*, account: MemberAccount) -> list[tuple[str, Decimal]]:
    return list(
        CostRecord.objects.filter(account=account, kind=CostKind.USAGE)
        .values("service")
        .annotate(total=Sum("amount"))
        .order_by("-total")
        .values_list("service", "total")
    )


def account_tag_breakdown(*, account: MemberAccount) -> list[tuple[str, Decimal]]:
    """Spend per value of the course's cost allocation tag ("" is untagged)."""
    return list(
        TagDailyCost.objects.filter(account=account)
        .values("tag_value")
        .annotate(total=Sum("amount"))
        .order_by("-total")
        .values_list("tag_value", "total")
    )


def cost_tag_refusal(*, course: Course) -> str:
    """AWS's reason for not activating the course's cost allocation tag key, as of the portal's
    last try ("" when it is active, or the course names none): Cost Explorer has no costs by it."""
    if not course.cost_tag_key:
        return ""
    refused = AwsOrganization.objects.values_list("refused_cost_tags", flat=True).first() or {}
    return refused.get(course.cost_tag_key, "")


def account_hourly(*, account: MemberAccount, since) -> dict | None:
    """Chart data of the account's hourly spend since `since`, or None without hourly history."""
    rows = list(
        HourlyCost.objects.filter(account=account, hour__gte=since).order_by("hour").values_list("hour", "amount")
    )
    if not rows:
        return None
    return {
        "labels": [hour.strftime("%b %d %H:00") for hour, _ in rows],
        "series": [{"label": "Spend", "data": [float(amount) for _, amount in rows]}],
    }


def account_totals(*, account: MemberAccount) -> dict[str, Decimal]:
    totals = AccountDailyCost.objects.filter(account=account).aggregate(spend=Sum("usage"), credits=Sum("credits"))
    return {"spend": totals["spend"] or ZERO, "credits": totals["credits"] or ZERO}


def account_alerts(*, account: MemberAccount):
    return Alert.objects.filter(account=account)[:50]


def statement_months(course: Course, today: date) -> list[date]:
    """The first day of every month of the course up to now, newest first."""
    months, month = [], course.start_date.replace(day=1)
    while month <= min(today, course.end_date):
        months.append(month)
        month = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
    return months[::-1]


def chart_window(course: Course, today: date) -> tuple[date, date]:
    return course.start_date, min(today, course.end_date)


def report_rows(*, course: Course, start: date, end: date):
    """Per student per day per service, for CSV exports (raw rows, streamed in order)."""
    return (
        CostRecord.objects.filter(course=course, day__gte=start, day__lte=end, account__membership__isnull=False)
        .select_related("account__membership")
        .order_by("account__membership__email", "day", "kind", "service")
        .iterator(chunk_size=2000)
    )


def month_is_settled(month_start: date, today: date) -> bool:
    """AWS settles a month's figures around the 13th of the next month."""
    next_month = (month_start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return today >= next_month.replace(day=14)


def monthly_statement(*, course: Course, month_start: date, today: date) -> dict:
    next_month = (month_start.replace(day=28) + timedelta(days=4)).replace(day=1)
    window = Q(course=course, day__gte=month_start, day__lt=next_month)
    per_student = list(
        AccountDailyCost.objects.filter(window)
        .values("account__membership__name", "account__membership__email", "account__aws_account_id")
        .annotate(usage=Sum("usage"), credits=Sum("credits"))
        .order_by("account__membership__email")
    )
    still_estimated = AccountDailyCost.objects.filter(window, estimated=True).exists()
    totals = AccountDailyCost.objects.filter(window).aggregate(usage=Sum("usage"), credits=Sum("credits"))
    return {
        "month": month_start,
        "students": per_student,
        "usage": totals["usage"] or ZERO,
        "credits": totals["credits"] or ZERO,
        "final": month_is_settled(month_start, today) and not still_estimated,
    }


def course_pending_budget_requests(*, course: Course):
    return (
        BudgetRequest.objects.filter(course=course, status=BudgetRequestStatus.PENDING)
        .select_related("account__membership")
        .order_by("created_at")
    )


def account_budget_requests(*, account: MemberAccount, limit: int = 5):
    return BudgetRequest.objects.filter(account=account).select_related("decided_by")[:limit]


def course_spend_limits(*, course: Course) -> CourseSpendLimits:
    """The course's spend limits; a course that never set any has none (an unsaved, empty row)."""
    return CourseSpendLimits.objects.filter(course=course).first() or CourseSpendLimits(course=course)


def freeze_alerts(*, accounts) -> dict[int, Alert]:
    """The alert of each frozen account's latest freeze: why it was frozen, and by which course
    limit if one froze it (one query)."""
    frozen = [account for account in accounts if account.state == AccountState.FROZEN]
    if not frozen:
        return {}
    # Oldest first, so that each account's latest freeze is the one the dict keeps: an account has
    # a freeze alert per freeze, a handful at most (DISTINCT ON would do it in SQL, on PostgreSQL
    # only, and the demo runs on SQLite).
    alerts = Alert.objects.filter(account__in=frozen, kind=AlertKind.FROZEN).order_by("created_at", "id")
    return {alert.account_id: alert for alert in alerts}
