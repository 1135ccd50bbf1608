"""Reads for the administrators' overview of the whole organization: every course's accounts by
state, spend to date and open alerts, the organization's totals, and every account a page at a
time. A fixed number of queries whatever the number of courses and accounts; spend comes from the
accounts' totals (AccountCostTotal), never from daily rows."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypedDict

from django.core.paginator import Page, Paginator
from django.db.models import Count, DecimalField, F, FilteredRelation, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from accounts_app.choices import AccountState
from accounts_app.models import Course, MemberAccount
from billing_app.models import AMOUNT, AccountCostTotal, Alert

ACCOUNTS_PER_PAGE = 100
POOL = "pool"  # the course filter's value for the organization's pool (accounts of no course)
ZERO = Decimal(0)


@dataclass
class CourseSummary:
    """One course's line of the overview; `course` is None for the organization's pool."""

    course: Course | None
    by_state: Counter[str] = field(default_factory=Counter)
    spend: Decimal = ZERO
    credits: Decimal = ZERO
    open_alerts: int = 0

    @property
    def accounts(self) -> int:
        return sum(self.by_state.values())

    @property
    def frozen(self) -> int:
        return self.by_state[AccountState.FROZEN]

    @property
    def states(self) -> list[tuple[str, int]]:
        """(label, count) of each state the course has accounts in, in the lifecycle's order."""
        return [(label, self.by_state[value]) for value, label in AccountState.choices if self.by_state[value]]


@dataclass
class OrganizationOverview:
    courses: list[CourseSummary]  # active courses by code, then archived ones
    pool: CourseSummary  # the accounts of no course
    total: CourseSummary  # the whole organization

    @property
    def lines(self) -> list[CourseSummary]:
        """The overview's table: each course, then the pool when it holds any account."""
        return [*self.courses, *([self.pool] if self.pool.accounts else [])]


def organization_overview() -> OrganizationOverview:
    """Every course's accounts by state, spend to date, frozen accounts and open alerts, and the
    organization's totals (four queries)."""
    courses = Course.objects.order_by(F("archived_at").asc(nulls_first=True), "code")
    summaries = {course.pk: CourseSummary(course) for course in courses}
    pool = CourseSummary(None)
    for course_id, state, count in MemberAccount.objects.values_list("course_id", "state").annotate(n=Count("pk")):
        (summaries[course_id] if course_id else pool).by_state[state] += count
    for course_id, usage, credits in AccountCostTotal.objects.values_list("course_id").annotate(
        usage=Sum("usage"), credits=Sum("credits")
    ):
        summaries[course_id].spend, summaries[course_id].credits = usage, credits
    for course_id, count in Alert.objects.filter(resolved_at=None).values_list("course_id").annotate(n=Count("pk")):
        summaries[course_id].open_alerts = count
    total = CourseSummary(None)
    for summary in [*summaries.values(), pool]:
        total.by_state.update(summary.by_state)
        total.spend += summary.spend
        total.credits += summary.credits
        total.open_alerts += summary.open_alerts
    return OrganizationOverview(courses=list(summaries.values()), pool=pool, total=total)


# How the accounts' table sorts (the `sort` parameter, "-" first for the largest first).
ACCOUNT_SORTS = {
    "spend": F("spend"),
    "alerts": F("open_alerts"),
    "course": F("course__code"),
    "email": F("membership__email"),
    "state": F("state"),
}


class AccountLine(TypedDict):
    """An account as the overview's table shows it. Plain values: a template reads a dict's keys
    faster than a record's attributes, and the table has a hundred lines."""

    pk: int
    account_name: str
    aws_account_id: str | None
    course_id: int | None
    course_code: str | None
    student: str  # the student's name, else their email; "" when the account is nobody's
    email: str | None
    state: str
    state_label: str
    spend: Decimal
    open_alerts: int


def organization_accounts(
    *, sort: str = "-spend", query: str = "", state: str = "", course: str = "", page: int | str | None = 1
) -> Page:
    """A page of AccountLine: every account of the organization with its spend to date and open
    alerts, sorted by an ACCOUNT_SORTS key (ties in the order the accounts were made; the pool's
    and nobody's accounts last), filtered by state, course (a course's id, or POOL) and a search
    of the student's email or name or the AWS account id. Three queries: the count; the page's
    ids, which join only what the sort and the filters need, across every account; the page's
    lines."""
    key = ACCOUNT_SORTS.get(sort.lstrip("-"), ACCOUNT_SORTS["spend"])
    # Only what the sort asks for is joined: an alias is left out of the query until it is used.
    ordered = (
        _filtered(query=query, state=state, course=course)
        .alias(course_total=_course_total(), spend=_spend(), open_alerts=_open_alerts())
        .order_by(key.desc(nulls_last=True) if sort.startswith("-") else key.asc(nulls_last=True), "pk")
    )
    shown = Paginator(ordered.values_list("pk", flat=True), ACCOUNTS_PER_PAGE).get_page(page)
    ids = list(shown.object_list)
    values = (
        MemberAccount.objects.filter(pk__in=ids)
        .alias(course_total=_course_total())
        .annotate(spend=_spend(), open_alerts=_open_alerts())
        .values(
            "pk",
            "account_name",
            "aws_account_id",
            "course_id",
            "state",
            "spend",
            "open_alerts",
            course_code=F("course__code"),
            name=F("membership__name"),
            email=F("membership__email"),
        )
    )
    labels = dict(AccountState.choices)
    lines = {
        row["pk"]: AccountLine(
            pk=row["pk"],
            account_name=row["account_name"],
            aws_account_id=row["aws_account_id"],
            course_id=row["course_id"],
            course_code=row["course_code"],
            student=row["name"] or row["email"] or "",
            email=row["email"],
            state=row["state"],
            state_label=labels.get(row["state"], row["state"]),
            spend=row["spend"],
            open_alerts=row["open_alerts"],
        )
        for row in values
    }
    return Page([lines[pk] for pk in ids], shown.number, shown.paginator)


def _filtered(*, query: str, state: str, course: str) -> QuerySet[MemberAccount]:
    accounts = MemberAccount.objects.all()
    if query:
        digits = query.replace("-", "")
        accounts = accounts.filter(
            Q(membership__email__icontains=query)
            | Q(membership__name__icontains=query)
            | Q(aws_account_id__startswith=digits)
        )
    if state in AccountState.values:
        accounts = accounts.filter(state=state)
    if course == POOL:
        accounts = accounts.filter(course=None)
    elif course.isdigit():
        accounts = accounts.filter(course_id=int(course))
    return accounts


def _course_total() -> FilteredRelation:
    """The account's total in its course: an account's costs are filed under its course, and its
    days in the pool belong to no course."""
    return FilteredRelation("cost_totals", condition=Q(cost_totals__course=F("course")))


def _spend() -> Coalesce:
    return Coalesce("course_total__usage", ZERO, output_field=DecimalField(**AMOUNT))


def _open_alerts() -> Coalesce:
    open_alerts = Alert.objects.filter(account=OuterRef("pk"), resolved_at=None)
    return Coalesce(Subquery(open_alerts.values("account").annotate(n=Count("pk")).values("n")), 0)
