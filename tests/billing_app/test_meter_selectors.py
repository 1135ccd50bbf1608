"""The course dashboard's meter figures (billing_app/meter_selectors.py): added up by the database,
they are the sums of each student's own meter (`accounts_meter`), in a fixed number of queries."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import cast

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts_app.choices import AccountState, BudgetPeriod
from accounts_app.models import Course, MemberAccount
from billing_app.meter_selectors import accounts_meter, course_meter, soonest_to_run_out
from billing_app.models import AccountDailyCost, MeteredDailyCost, MeterReading, StudentBudget
from billing_app.services.cost_totals import account_cost_totals_rebuild
from tests.factories import CourseFactory, MemberAccountFactory, MembershipFactory

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
NEWEST = date(2026, 11, 19)  # the newest day Cost Explorer reports: the 18th is settled


def student(course: Course, name: str, *, days: dict[date, str], metered: dict[date, str], rate: str | None):
    """A student's account with its billed and metered days, and a reading at `rate` dollars an hour."""
    membership = MembershipFactory(course=course, user=None, name=name, email=f"{name.lower()}@school.example")
    account = cast(MemberAccount, MemberAccountFactory(course=course, membership=membership))
    for day, usage in days.items():
        AccountDailyCost.objects.create(account=account, course=course, day=day, usage=Decimal(usage))
    for day, amount in metered.items():
        MeteredDailyCost.objects.create(account=account, course=course, day=day, amount=Decimal(amount))
    if rate is not None:
        MeterReading.objects.create(
            account=account, course=course, taken_at=NOW, checked_at=NOW, usd_per_hour=Decimal(rate), running=2
        )
    return account


def course_of_students(budget_period: str) -> tuple[Course, list[MemberAccount]]:
    course = cast(
        Course,
        CourseFactory(
            start_date=date(2026, 9, 1),
            end_date=date(2026, 12, 15),
            budget_per_student=Decimal("100.00"),
            budget_period=budget_period,
        ),
    )
    students = [
        # Billed before the course started, in October, on the newest days; the meter saw more
        # than the bill on the day still filling in and today.
        student(
            course,
            "Ada",
            days={date(2026, 8, 30): "3", date(2026, 10, 5): "40", date(2026, 11, 18): "6", NEWEST: "1"},
            metered={NEWEST: "4", date(2026, 11, 20): "2.5"},
            rate="0.50",
        ),
        # Almost at a raised budget, at a high rate: runs out first.
        student(course, "Bob", days={date(2026, 11, 10): "145"}, metered={}, rate="2.00"),
        # Runs nothing priced; the meter saw less than the bill.
        student(course, "Cy", days={NEWEST: "9"}, metered={NEWEST: "4"}, rate="0"),
        # Never read.
        student(course, "Di", days={date(2026, 11, 1): "12"}, metered={}, rate=None),
    ]
    StudentBudget.objects.create(account=students[1], amount_override=Decimal("150.00"))
    # The course's pool account is nobody's: it is not on the dashboard.
    pooled = cast(MemberAccount, MemberAccountFactory(course=course, state=AccountState.POOLED))
    AccountDailyCost.objects.create(account=pooled, course=course, day=NEWEST, usage=Decimal(500))
    MeterReading.objects.create(account=pooled, course=course, taken_at=NOW, checked_at=NOW, usd_per_hour=9)
    account_cost_totals_rebuild()
    return course, students


@pytest.mark.django_db
@pytest.mark.parametrize("budget_period", [BudgetPeriod.COURSE, BudgetPeriod.MONTHLY])
def test_the_course_meter_is_the_sum_of_each_students_meter(budget_period):
    course, students = course_of_students(budget_period)
    each = accounts_meter(course=course, accounts=students, now=NOW).values()

    with CaptureQueriesContext(connection) as queries:
        meter = course_meter(course=course, now=NOW)

    read = [m for m in each if m.now]
    assert (meter.accounts_read, meter.running, meter.usd_per_hour, meter.oldest_reading) == (
        len(read),
        sum(m.now.running for m in read),
        sum(m.now.usd_per_hour for m in read),
        NOW,
    )
    assert (meter.billed, meter.metered, meter.estimate) == (
        sum(m.estimate.billed for m in each),
        sum(m.estimate.metered for m in each),
        sum(m.estimate.total for m in each),
    )
    # The course's period leaves out August's day; November's leaves out October's too.
    assert meter.billed == {BudgetPeriod.COURSE: 213, BudgetPeriod.MONTHLY: 173}[budget_period]
    assert meter.metered == Decimal("5.5")
    assert len(queries) <= 6


@pytest.mark.django_db
def test_the_first_budget_to_run_out_is_found_among_the_students_that_run_something():
    course, students = course_of_students(BudgetPeriod.COURSE)
    each = accounts_meter(course=course, accounts=students, now=NOW)

    first = soonest_to_run_out(course=course, now=NOW)

    bob = students[1]
    assert first is not None
    assert (first.account, first.name) == (bob, "Bob")
    # $5 of $150 left at $2 an hour.
    assert first.meter.burn_down.runs_out_at == each[bob.pk].burn_down.runs_out_at == NOW + timedelta(hours=2.5)


@pytest.mark.django_db
def test_no_budget_runs_out_when_nothing_priced_runs():
    course, students = course_of_students(BudgetPeriod.COURSE)
    MeterReading.objects.filter(account__in=students).update(usd_per_hour=0)

    assert soonest_to_run_out(course=course, now=NOW) is None
