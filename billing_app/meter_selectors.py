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
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Max, Sum
from django.utils import timezone

from accounts_app.models import Course, MemberAccount
from billing_app.models import AccountDailyCost, MeteredDailyCost, MeterReading, StudentBudget
from billing_app.services.budgets import budget_period

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


@dataclass
class CourseMeter:
    accounts: dict[int, AccountMeter] = field(default_factory=dict)

    @property
    def read(self) -> list[AccountMeter]:
        return [meter for meter in self.accounts.values() if meter.now]

    @property
    def running(self) -> int:
        return sum(meter.now.running for meter in self.read)

    @property
    def usd_per_hour(self) -> Decimal:
        return sum((meter.now.usd_per_hour for meter in self.read), ZERO)

    @property
    def unknown(self) -> int:
        return sum(meter.now.unknown for meter in self.read)

    @property
    def estimate(self) -> Decimal:
        return sum((meter.estimate.total for meter in self.accounts.values()), ZERO)

    @property
    def metered(self) -> Decimal:
        return sum((meter.estimate.metered for meter in self.accounts.values()), ZERO)

    @property
    def oldest_reading(self) -> datetime | None:
        return min((meter.now.taken_at for meter in self.read), default=None)


def course_meter(*, course: Course, accounts: list[MemberAccount], now: datetime) -> CourseMeter:
    return CourseMeter(accounts_meter(course=course, accounts=accounts, now=now))


def soonest_to_run_out(rows: list):
    """Of cost rows carrying their `meter`, the one whose budget runs out first at this rate, or None."""
    dated = [row for row in rows if row.meter and row.meter.burn_down.runs_out_at]
    return min(dated, key=lambda row: row.meter.burn_down.runs_out_at, default=None)
