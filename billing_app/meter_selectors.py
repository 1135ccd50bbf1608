"""Reads of the usage meter (services/meter.py): what runs now and what it costs an hour, the
estimated spend, and when the budget runs out at this rate. A fixed number of queries whatever the
number of students.

- **Billed**: Cost Explorer's figures (`AccountDailyCost`), 8 to 24 hours late.
- **Metered**: what the meter counted (`MeteredDailyCost`), for the days Cost Explorer has not
  settled: from the newest day it reports (still filling in) on.
- **Estimated** = billed + what the meter saw beyond it on those days: for each such day the larger
  of the two figures, so the estimate is never below the bill and nothing is counted twice.

`running_now` is the read for code that acts on spend (automatic freezes, schedules): per account,
what runs and its known dollars an hour.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Count, F, Max, Min, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from accounts_app.choices import BudgetPeriod
from accounts_app.models import Course, MemberAccount
from billing_app.models import AccountCostTotal, AccountDailyCost, MeteredDailyCost, MeterReading, StudentBudget
from billing_app.services.budgets import Period, budget_period

ZERO = Decimal(0)


@dataclass(frozen=True)
class RunningNow:
    """An account's latest reading."""

    account_id: int
    running: int
    usd_per_hour: Decimal  # what runs with a known price
    unknown: int  # items whose price is unknown (not in usd_per_hour)
    taken_at: datetime | None
    items: list[dict]
    error: str


def running_now(*, accounts) -> dict[int, RunningNow]:
    """The latest reading of each of `accounts` (records or ids) that has one (one query)."""
    readings = MeterReading.objects.filter(account__in=accounts).exclude(taken_at=None)
    return {
        reading.account_id: RunningNow(
            account_id=reading.account_id,
            running=reading.running,
            usd_per_hour=reading.usd_per_hour,
            unknown=reading.unknown,
            taken_at=reading.taken_at,
            items=reading.items,
            error=reading.error,
        )
        for reading in readings
    }


def settled_through() -> date | None:
    """The last day Cost Explorer has settled: the day before the newest it reports for the
    organization (that one is still filling in). None before the first sync."""
    newest = AccountDailyCost.objects.aggregate(newest=Max("day"))["newest"]
    return newest - timedelta(days=1) if newest else None


@dataclass(frozen=True)
class Estimate:
    billed: Decimal
    metered: Decimal  # what the meter adds to the bill on the days Cost Explorer has not settled

    @property
    def total(self) -> Decimal:
        return self.billed + self.metered


def estimates(*, accounts: list[MemberAccount], start: date, end: date) -> dict[int, Estimate]:
    """Estimated spend of each account between `start` and `end` (inclusive), three queries."""
    settled = settled_through()
    window = {"account__in": accounts, "day__gte": start, "day__lte": end}
    billed = dict(
        AccountDailyCost.objects.filter(**window)
        .values("account_id")
        .annotate(total=Sum("usage"))
        .values_list("account_id", "total")
    )
    unsettled = {"day__gt": settled} if settled else {}
    billed_days: dict[int, dict[date, Decimal]] = defaultdict(dict)
    for account_id, day, usage in AccountDailyCost.objects.filter(**window, **unsettled).values_list(
        "account_id", "day", "usage"
    ):
        billed_days[account_id][day] = usage
    beyond: dict[int, Decimal] = defaultdict(Decimal)
    for account_id, day, amount in MeteredDailyCost.objects.filter(**window, **unsettled).values_list(
        "account_id", "day", "amount"
    ):
        beyond[account_id] += max(amount - billed_days[account_id].get(day, ZERO), ZERO)
    return {
        account.pk: Estimate(billed=billed.get(account.pk) or ZERO, metered=beyond.get(account.pk, ZERO))
        for account in accounts
    }


@dataclass(frozen=True)
class BurnDown:
    """When the budget runs out if what runs now keeps running."""

    budget: Decimal
    spent: Decimal  # estimated, in the budget's period
    usd_per_hour: Decimal
    unknown: int  # with unknown prices it runs out sooner than said
    period_end: date
    runs_out_at: datetime | None  # None: already spent, nothing runs, or it lasts the period

    @property
    def left(self) -> Decimal:
        return max(self.budget - self.spent, ZERO)

    @property
    def already_spent(self) -> bool:
        return self.spent >= self.budget

    @property
    def lasts_the_period(self) -> bool:
        return not self.already_spent and self.runs_out_at is None


def burn_down(
    *, budget: Decimal, spent: Decimal, usd_per_hour: Decimal, unknown: int, now: datetime, period_end: date
) -> BurnDown:
    """At `usd_per_hour` from `now`, the moment the `budget` left after `spent` is gone, if that is
    before the period ends (its last day included)."""
    runs_out_at = None
    period_over = datetime.combine(period_end + timedelta(days=1), time.min, tzinfo=UTC)
    if spent < budget and usd_per_hour > 0:
        hours_left = (budget - spent) / usd_per_hour
        if now + timedelta(hours=float(min(hours_left, Decimal(24 * 366 * 10)))) < period_over:
            runs_out_at = now + timedelta(hours=float(hours_left))
    return BurnDown(budget, spent, usd_per_hour, unknown, period_end, runs_out_at)


@dataclass(frozen=True)
class AccountMeter:
    now: RunningNow | None  # None: never read
    estimate: Estimate  # in the budget's period
    period_start: date
    burn_down: BurnDown

    @property
    def usd_per_hour(self) -> Decimal:
        return self.now.usd_per_hour if self.now else ZERO


def accounts_meter(*, course: Course, accounts: list[MemberAccount], now: datetime) -> dict[int, AccountMeter]:
    """Running now, the estimate and the burn-down of each of the course's `accounts` (six queries)."""
    period = budget_period(course, timezone.localdate(now))
    readings = running_now(accounts=accounts)
    spent = estimates(accounts=accounts, start=period.start, end=period.end)
    raised = dict(
        StudentBudget.objects.filter(account__in=accounts, amount_override__isnull=False).values_list(
            "account_id", "amount_override"
        )
    )
    meters = {}
    for account in accounts:
        reading = readings.get(account.pk)
        meters[account.pk] = AccountMeter(
            now=reading,
            estimate=spent[account.pk],
            period_start=period.start,
            burn_down=burn_down(
                budget=raised.get(account.pk) or course.budget_per_student,
                spent=spent[account.pk].total,
                usd_per_hour=reading.usd_per_hour if reading else ZERO,
                unknown=reading.unknown if reading else 0,
                now=now,
                period_end=period.end,
            ),
        )
    return meters


def account_meter(*, account: MemberAccount, now: datetime) -> AccountMeter:
    return accounts_meter(course=account.course, accounts=[account], now=now)[account.pk]


def _course_students(course: Course) -> QuerySet[MemberAccount]:
    """The accounts of the course's dashboard: its students'."""
    return MemberAccount.objects.filter(course=course, membership__isnull=False)


@dataclass(frozen=True)
class CourseMeter:
    """What the course's students' accounts run now, and their estimated spend in the budget's period."""

    accounts_read: int
    running: int
    usd_per_hour: Decimal
    unknown: int
    oldest_reading: datetime | None
    billed: Decimal
    metered: Decimal  # what the meter adds to the bill on the days Cost Explorer has not settled

    @property
    def estimate(self) -> Decimal:
        return self.billed + self.metered


def course_meter(*, course: Course, now: datetime) -> CourseMeter:
    """The sums of each student's `accounts_meter`, added up by the database (five queries at most,
    whatever the number of students)."""
    students = _course_students(course)
    readings = (
        MeterReading.objects.filter(account__in=students)
        .exclude(taken_at=None)
        .aggregate(
            read=Count("pk"),
            running=Sum("running"),
            usd_per_hour=Sum("usd_per_hour"),
            unknown=Sum("unknown"),
            oldest=Min("taken_at"),
        )
    )
    period = budget_period(course, timezone.localdate(now))
    window = {"account__in": students, "day__gte": period.start, "day__lte": period.end}
    settled = settled_through()
    unsettled = MeteredDailyCost.objects.filter(**window, **({"day__gt": settled} if settled else {}))
    same_day_bill = AccountDailyCost.objects.filter(account=OuterRef("account"), day=OuterRef("day")).values("usage")
    beyond = Greatest(F("amount") - Coalesce(Subquery(same_day_bill), ZERO), ZERO)
    metered = unsettled.aggregate(total=Sum(beyond))["total"]
    return CourseMeter(
        accounts_read=readings["read"],
        running=readings["running"] or 0,
        usd_per_hour=readings["usd_per_hour"] or ZERO,
        unknown=readings["unknown"] or 0,
        oldest_reading=readings["oldest"],
        billed=_billed(course, students, period),
        metered=metered or ZERO,
    )


def _billed(course: Course, students: QuerySet[MemberAccount], period: Period) -> Decimal:
    """What Cost Explorer billed the students in the budget's period. A student's days are all
    filed under their course (the sync files an account's costs under its course), which the index
    of the course's days reads. A course-long period holds most of them: it is their totals less
    the days outside it, rather than every day summed."""
    days = AccountDailyCost.objects.filter(course=course, account__in=students)
    if course.budget_period == BudgetPeriod.MONTHLY:
        return days.filter(day__gte=period.start, day__lte=period.end).aggregate(total=Sum("usage"))["total"] or ZERO
    totals = AccountCostTotal.objects.filter(course=course, account__in=students).aggregate(total=Sum("usage"))
    outside = days.filter(Q(day__lt=period.start) | Q(day__gt=period.end)).aggregate(total=Sum("usage"))
    return (totals["total"] or ZERO) - (outside["total"] or ZERO)


@dataclass(frozen=True)
class RunsOutFirst:
    account: MemberAccount
    name: str
    meter: AccountMeter


def soonest_to_run_out(*, course: Course, now: datetime) -> RunsOutFirst | None:
    """The student whose budget runs out first at what their account runs now, or None. Only an
    account that runs something priced can run out: their meters alone are worked out."""
    running = list(
        _course_students(course)
        .filter(meter_reading__taken_at__isnull=False, meter_reading__usd_per_hour__gt=0)
        .select_related("membership")
        .order_by("membership__name", "membership__email")
    )
    meters = accounts_meter(course=course, accounts=running, now=now)
    dated = [account for account in running if meters[account.pk].burn_down.runs_out_at]
    first = min(dated, key=lambda account: meters[account.pk].burn_down.runs_out_at, default=None)
    if first is None:
        return None
    return RunsOutFirst(account=first, name=first.membership.display_name, meter=meters[first.pk])
