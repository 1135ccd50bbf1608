"""Each account's spend to date (billing_app/services/cost_totals.py), summed from the daily
rollups by the cost sync, against moto's Cost Explorer (tests/support/cost_explorer.py)."""

from decimal import Decimal
from typing import cast

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts_app.models import Course
from billing_app.models import AccountCostTotal, AccountDailyCost
from billing_app.services.cost_totals import account_cost_totals_rebuild
from billing_app.services.costs import costs_sync
from tests.factories import CourseFactory
from tests.support import cost_explorer as ce
from tests.support.billing import DAYS, TODAY, d
from tests.support.cost_explorer import ALICE, BOB, page, period, seed, student_accounts

EC2 = "Amazon Elastic Compute Cloud - Compute"


def totals() -> set[tuple]:
    return set(AccountCostTotal.objects.values_list("account__aws_account_id", "course__code", "usage", "credits"))


@pytest.mark.django_db
def test_a_sync_sums_every_day_of_each_account_with_credits_apart(course, cost_explorer):
    alice, _ = student_accounts(course, [ALICE, BOB])
    # A September day an earlier sync rolled up, before this sync's window.
    AccountDailyCost.objects.create(account=alice, course=course, day=d(30, 9), usage=Decimal("7.00"))
    seed(
        page(period(d(18), [(ALICE, EC2, "1.25")]), period(d(19), [(ALICE, EC2, "2.00"), (BOB, EC2, "3.10")])),
        page(period(d(18), [(ALICE, "Credit", "-1.00")]), period(d(19), [(BOB, "Refund", "-0.10")])),
    )

    costs_sync(days=DAYS, today=TODAY)

    assert totals() == {
        (ALICE, "cs101", Decimal("10.25"), Decimal("-1.00")),
        (BOB, "cs101", Decimal("3.10"), Decimal("-0.10")),
    }


@pytest.mark.django_db
def test_a_revised_figure_lowers_the_total_and_an_account_with_no_day_left_has_none(course, cost_explorer):
    student_accounts(course, [ALICE, BOB])
    seed(page(period(d(19), [(ALICE, EC2, "2.00"), (BOB, EC2, "3.10")], estimated=True)), page())
    costs_sync(days=DAYS, today=TODAY)

    ce.forget()
    seed(page(period(d(19), [(ALICE, EC2, "1.50")])), page())
    costs_sync(days=DAYS, today=TODAY)

    assert totals() == {(ALICE, "cs101", Decimal("1.50"), Decimal(0))}


@pytest.mark.django_db
def test_the_totals_take_the_same_queries_for_three_and_thirty_accounts():
    def course_of(students: int, code: str) -> None:
        course = cast(Course, CourseFactory(code=code))  # factory_boy returns a Course, typed as the factory
        accounts = student_accounts(course, [f"{code[-1]}{i:011d}" for i in range(students)])
        AccountDailyCost.objects.bulk_create(
            AccountDailyCost(account=a, course=course, day=d(day), usage=Decimal(1)) for a in accounts for day in (1, 2)
        )

    course_of(3, "small3")
    with CaptureQueriesContext(connection) as few:
        account_cost_totals_rebuild()
    course_of(30, "large4")
    with CaptureQueriesContext(connection) as many:
        account_cost_totals_rebuild()

    assert len(few) == len(many)
    assert AccountCostTotal.objects.count() == 33
    assert set(AccountCostTotal.objects.values_list("usage", flat=True)) == {Decimal(2)}
