"""Reads for the cost pages. Everything comes from the rollups (AccountCostTotal, AccountDailyCost,
CourseServiceDailyCost) in a fixed number of queries, whatever the number of students; the
students' table is sorted, filtered and paged by the database, and only its page is built."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django.core.paginator import Page, Paginator
from django.db.models import (
    Case,
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    FilteredRelation,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Coalesce, Collate, Floor, Lower, Mod, NullIf, Round
from django.db.models.lookups import Exact

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
    TagDailyCost,
)

if TYPE_CHECKING:
    from billing_app.meter_selectors import AccountMeter

TREND_DAYS = 7
CHART_SERVICES = 6  # the rest is stacked as "Other"
STUDENTS_PER_PAGE = 100  # rendering a thousand rows would cost more than reading them
ZERO = Decimal(0)
MONEY = DecimalField(max_digits=20, decimal_places=6)


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
    students: Page  # one page of StudentCostRow: the table as sorted and filtered, a page at a time

    @property
    def percent(self) -> Decimal:
        return (self.spend / self.budget * 100).quantize(Decimal("1")) if self.budget else ZERO


def course_costs(
    *,
    course: Course,
    today: date,
    sort: str = "name",
    query: str = "",
    state: str = "",
    page: int | str | None = 1,
    per_page: int = STUDENTS_PER_PAGE,
) -> CourseCosts:
    """The course's totals and one page of its students' table, sorted by `sort` (a SORTS key, "-"
    first for the largest first) and filtered by name or email and account state, in a fixed
    number of queries whatever the number of students: the table's page with the course's totals
    and last week's spend, then the page's last week day by day; a query more, the totals apart,
    when the table is searched or filtered, or the page is past its end."""
    students = _course_students(course)
    shown = _shown(query, state)
    trend_start = today - timedelta(days=TREND_DAYS - 1)
    last_week = _students_spend(course, trend_start, today)
    table = _students_table(students.filter(shown), sort)
    # Showing the whole course, the table's page carries the course's totals.
    found = None if shown else _page_with_course_totals(table, last_week, page, per_page)
    totals, rows = found or _totals_then_page(students, table, shown, last_week, page, per_page)
    rows.object_list = _cost_rows(course, list(rows.object_list), trend_start, today)
    spend = totals["spend"] or ZERO
    return CourseCosts(
        spend=spend,
        credits=totals["credits"] or ZERO,
        budget=totals["budget"] or ZERO,
        forecast=_forecast(course, spend, totals["last_week"] or ZERO, today),
        students=rows,
    )


def _page_with_course_totals(
    table: QuerySet[MemberAccount], last_week: CombinedExpression, page: int | str | None, per_page: int
) -> tuple[dict, Page] | None:
    """The page of a table of the whole course, each row carrying the course's totals (sums over
    the table before it is paged), in one query; None when the page is not one of the table's
    (the count comes with the rows), or the course has no students."""
    try:
        number = 1 if page is None else int(page)
    except ValueError:
        number = 1  # as Paginator.get_page takes what is not a number
    if number < 1:
        return None
    with_totals = table.annotate(
        course_spend=Window(Sum("spent")),
        course_credits=Window(Sum("credited")),
        course_budget=Window(Sum("budget_amount")),
        course_students=Window(Count("pk")),
        course_last_week=last_week,
    )
    accounts = list(with_totals[(number - 1) * per_page : number * per_page])
    if not accounts:
        return None
    first = accounts[0]
    paginator = Paginator(table, per_page)
    paginator.count = first.course_students
    totals = {
        "spend": first.course_spend,
        "credits": first.course_credits,
        "budget": first.course_budget,
        "last_week": first.course_last_week,
    }
    return totals, Page(accounts, number, paginator)


def _totals_then_page(
    students: QuerySet[MemberAccount],
    table: QuerySet[MemberAccount],
    shown: Q,
    last_week: CombinedExpression,
    page: int | str | None,
    per_page: int,
) -> tuple[dict, Page]:
    """The course's totals with the table's count, then the table's page: two queries."""
    totals = students.aggregate(
        spend=Sum("spent"),
        credits=Sum("credited"),
        budget=Sum("budget_amount"),
        shown=Count("pk", filter=shown),
        # The course's one figure, read once with the totals (Max takes it).
        last_week=Max(last_week),
    )
    paginator = Paginator(table, per_page)
    paginator.count = totals["shown"]  # counted with the totals, a query less
    return totals, paginator.get_page(page)


def _course_students(course: Course) -> QuerySet[MemberAccount]:
    """The course's students' accounts, each with its spend and credits to date and its budget."""
    return (
        MemberAccount.objects.filter(course=course, membership__isnull=False)
        .alias(course_total=FilteredRelation("cost_totals", condition=Q(cost_totals__course=course)))
        .annotate(
            spent=Coalesce("course_total__usage", ZERO, output_field=MONEY),
            credited=Coalesce("course_total__credits", ZERO, output_field=MONEY),
            budget_amount=Coalesce("budget__amount_override", course.budget_per_student, output_field=MONEY),
        )
    )


def _students_spend(course: Course, start: date, end: date) -> CombinedExpression:
    """What the course's students spent from `start` to `end`: the course's service-days (a few
    rows a day) less the account-days of its accounts no student holds any more (usually none),
    rather than every student's account-days. Both rollups sum the same raw rows (cost_store)."""
    days = Q(course=course, day__gte=start, day__lte=end)
    return _usage_sum(CourseServiceDailyCost.objects.filter(days)) - _usage_sum(
        AccountDailyCost.objects.filter(days, account__membership__isnull=True)
    )


def _usage_sum(rollups: QuerySet) -> Coalesce:
    """The sum of one course's `rollups`' usage, as a subquery (0 without rows)."""
    total = rollups.values("course").annotate(total=Sum("usage")).values("total")
    return Coalesce(Subquery(total), ZERO, output_field=MONEY)


def _shown(query: str, state: str) -> Q:
    """The students the table shows: by name or email, and by account state."""
    shown = Q()
    if query:
        shown &= Q(membership__name__icontains=query) | Q(membership__email__icontains=query)
    if state in AccountState.values:
        shown &= Q(state=state)
    return shown


def _students_table(students: QuerySet[MemberAccount], sort: str) -> QuerySet[MemberAccount]:
    """The table's rows in the order the page shows them: by the SORTS key, ties in roster order
    (name, then email), with what a row shows of its account and student only."""
    course_alerts = Alert.objects.filter(account=OuterRef("pk"), course=OuterRef("course"), resolved_at=None)
    key = SORTS.get(sort.lstrip("-"), SORTS["name"])
    return (
        students.only("state")
        .annotate(
            student_name=F("membership__name"),
            student_email=F("membership__email"),
            open_alert_count=Coalesce(Subquery(course_alerts.values("account").annotate(n=Count("pk")).values("n")), 0),
        )
        .order_by(key.desc() if sort.startswith("-") else key.asc(), "membership__name", "membership__email", "pk")
    )


def _percent(spend: F, budget: F) -> Case:
    """StudentCostRow.percent in SQL: spend / budget × 100 to the unit, 0 without a budget. A half
    goes to the even unit, as Decimal.quantize rounds it (SQL's ROUND takes it away from zero)."""
    exact = ExpressionWrapper(spend * 100 / budget, output_field=MONEY)
    unit = Floor(exact)
    return Case(
        When(Exact(budget, 0), then=Value(ZERO)),
        When(Exact(exact - unit, Decimal("0.5")), then=Case(When(Exact(Mod(unit, 2), 0), then=unit), default=unit + 1)),
        default=Round(exact),
        output_field=MONEY,
    )


class _CodePointOrder(Collate):
    """Strings compared by code point, as Python compares them and so as the table always sorted
    them: PostgreSQL's "C" collation (its default may be a language's); SQLite compares so already."""

    def __init__(self, expression):
        super().__init__(expression, "C")

    def as_sqlite(self, compiler, connection, **extra_context):
        return compiler.compile(self.get_source_expressions()[0])


# How the students' table sorts (the `sort` parameter, "-" first for the largest first).
SORTS = {
    "name": _CodePointOrder(Lower(Coalesce(NullIf("membership__name", Value("")), "membership__email"))),
    "spend": F("spent"),
    "percent": _percent(F("spent"), F("budget_amount")),
    "alerts": F("open_alert_count"),
    "rate": Coalesce(
        Case(When(meter_reading__taken_at__isnull=False, then=F("meter_reading__usd_per_hour"))),
        ZERO,
        output_field=MONEY,
    ),
    "state": _CodePointOrder(F("state")),
}


def _cost_rows(course: Course, accounts: list[MemberAccount], trend_start: date, today: date) -> list[StudentCostRow]:
    """A page's rows, with each student's spend day by day over the last week."""
    trends = {account.pk: [ZERO] * TREND_DAYS for account in accounts}
    for account_id, day, usage in AccountDailyCost.objects.filter(
        course=course, account_id__in=list(trends), day__gte=trend_start, day__lte=today
    ).values_list("account_id", "day", "usage"):
        trends[account_id][(day - trend_start).days] = usage
    return [
        StudentCostRow(
            account=account,
            name=account.student_name or account.student_email,
            email=account.student_email,
            spend=account.spent,
            credits=account.credited,
            budget=account.budget_amount,
            trend=trends[account.pk],
            open_alerts=account.open_alert_count,
        )
        for account in accounts
    ]


def _forecast(course: Course, spend: Decimal, last_week: Decimal, today: date) -> Decimal:
    """Spend to date plus the last week's daily pace until the course ends."""
    remaining = max((course.end_date - today).days, 0)
    return spend + last_week / TREND_DAYS * remaining


@dataclass
class ServiceCosts:
    chart: dict  # one series per top service (the rest as "Other"), one point per day of the window
    top: list[tuple[str, Decimal]]  # the course's spend to date per service, the largest first


def course_service_costs(*, course: Course, start: date, end: date, top: int = 8) -> ServiceCosts:
    """The course's chart from `start` to `end` and its top services to date, both from its
    service-days, read in one query."""
    rows = list(CourseServiceDailyCost.objects.filter(course=course).values_list("day", "service", "usage"))
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for _, service, usage in rows:
        totals[service] += usage
    return ServiceCosts(
        chart=_stacked([row for row in rows if start <= row[0] <= end], start, end),
        top=sorted(totals.items(), key=lambda item: item[1], reverse=True)[:top],
    )


def _stacked(rows, start: date, end: date) -> dict:
    """Rows of (day, service, usage), each day within `start`..`end`, as the chart's series."""
    days = (end - start).days + 1
    by_service: dict[str, list[Decimal]] = {}
    for day, service, usage in rows:
        if service not in by_service:
            by_service[service] = [ZERO] * days
        by_service[service][(day - start).days] += usage
    ranked = sorted(by_service, key=lambda s: sum(by_service[s], ZERO), reverse=True)
    top, rest = ranked[:CHART_SERVICES], ranked[CHART_SERVICES:]
    series = [{"label": s, "data": [float(usage) for usage in by_service[s]]} for s in top]
    if rest:
        others = zip(*(by_service[s] for s in rest), strict=True)
        series.append({"label": "Other", "data": [float(sum(usages, ZERO)) for usages in others]})
    return {"labels": [(start + timedelta(days=i)).isoformat() for i in range(days)], "series": series}


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
