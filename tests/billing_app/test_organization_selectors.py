"""The administrators' overview of the organization (billing_app/organization_selectors.py):
each course's accounts, spend and alerts, the totals, and every account a page at a time."""

from decimal import Decimal
from typing import cast

import pytest
from django.utils import timezone

from accounts_app.choices import AccountState as S
from accounts_app.models import Course, MemberAccount
from billing_app.models import AccountDailyCost, Alert, AlertKind
from billing_app.organization_selectors import POOL, organization_accounts, organization_overview
from billing_app.services.cost_totals import account_cost_totals_rebuild
from tests.factories import CourseFactory, MemberAccountFactory, MembershipFactory
from tests.support.billing import d


def account(course: Course | None, email: str | None, state: str, aws_id: str, *spend: str) -> MemberAccount:
    """An account in `state`, a student's when `email` is given, with a day's spend per amount."""
    membership = MembershipFactory(course=course, user=None, email=email, name="") if email else None
    record = cast(
        MemberAccount,
        MemberAccountFactory(
            course=course, membership=membership, state=state, aws_account_id=aws_id, account_name=f"acct-{aws_id}"
        ),
    )
    AccountDailyCost.objects.bulk_create(
        AccountDailyCost(account=record, course=course, day=d(day), usage=Decimal(amount), credits=Decimal("-0.5"))
        for day, amount in enumerate(spend, start=1)
    )
    return record


def alert(record: MemberAccount, kind: str, *, resolved: bool = False) -> None:
    Alert.objects.create(
        account=record,
        course=record.course,
        kind=kind,
        period="course",
        message=kind,
        spend=1,
        budget=2,
        resolved_at=timezone.now() if resolved else None,
    )


@pytest.fixture
def organization(db) -> dict[str, MemberAccount]:
    """cs101 with three students, the archived old100 with one, and an account in the pool."""
    cs101 = cast(Course, CourseFactory(code="cs101", name="Cloud Computing"))
    old100 = cast(Course, CourseFactory(code="old100", name="Last Year", archived_at=timezone.now()))
    accounts = {
        "ada": account(cs101, "ada@school.example", S.READY, "111111111111", "10", "2.5"),
        "bob": account(cs101, "bob@school.example", S.FROZEN, "222222222222", "100"),
        "cy": account(cs101, "cy@school.example", S.FROZEN, "333333333333"),
        "dee": account(old100, "dee@school.example", S.CLOSED, "444444444444", "7"),
        "pool": account(None, None, S.POOLED, "555555555555"),
    }
    alert(accounts["bob"], AlertKind.FROZEN)
    alert(accounts["bob"], AlertKind.ACTUAL_100)
    alert(accounts["ada"], AlertKind.ACTUAL_50, resolved=True)
    alert(accounts["dee"], AlertKind.ACTUAL_50)
    account_cost_totals_rebuild()
    return accounts


def test_each_course_has_its_accounts_by_state_spend_frozen_accounts_and_open_alerts(organization):
    overview = organization_overview()

    assert [
        (s.course.code, s.accounts, s.states, s.frozen, s.spend, s.credits, s.open_alerts) for s in overview.courses
    ] == [
        # Active courses first, then archived ones.
        ("cs101", 3, [("Ready", 1), ("Frozen: budget used up", 2)], 2, Decimal("112.5"), Decimal("-1.5"), 2),
        ("old100", 1, [("Closed", 1)], 0, Decimal(7), Decimal("-0.5"), 1),
    ]
    pool = overview.pool
    assert (pool.course, pool.accounts, pool.states, pool.spend, pool.open_alerts) == (
        None,
        1,
        [("Ready in the pool", 1)],
        0,
        0,
    )
    total = overview.total
    assert (total.accounts, total.frozen, total.spend, total.credits, total.open_alerts) == (
        5,
        2,
        Decimal("119.5"),
        Decimal(-2),
        3,
    )


def emails(page) -> list[str | None]:
    return [line["email"] for line in page]


def test_every_account_is_listed_most_spent_first_with_its_open_alerts(organization):
    page = organization_accounts()

    assert [(line["account_name"], line["spend"], line["open_alerts"]) for line in page] == [
        ("acct-222222222222", Decimal(100), 2),
        ("acct-111111111111", Decimal("12.5"), 0),
        ("acct-444444444444", Decimal(7), 1),
        ("acct-333333333333", Decimal(0), 0),  # ties by course, the pool last
        ("acct-555555555555", Decimal(0), 0),
    ]
    assert page.paginator.count == 5


@pytest.mark.parametrize(
    ("filters", "found"),
    [
        ({"state": S.FROZEN}, ["bob@school.example", "cy@school.example"]),
        ({"course": POOL}, [None]),
        ({"query": "DEE@"}, ["dee@school.example"]),  # an email, whatever the case
        ({"query": "2222-2222"}, ["bob@school.example"]),  # the start of an AWS account id, as the console writes it
        ({"state": "no-such-state", "course": "no-such-course"}, ["ada", "bob", "cy", "dee", None]),
    ],
)
def test_the_accounts_are_filtered_by_state_course_and_a_search(organization, filters, found):
    page = organization_accounts(sort="email", **filters)

    assert emails(page) == [f"{e}@school.example" if e in {"ada", "bob", "cy", "dee"} else e for e in found]


def test_a_course_s_accounts_by_its_id(organization):
    cs101 = organization["ada"].course

    assert emails(organization_accounts(sort="-email", course=str(cs101.pk))) == [
        "cy@school.example",
        "bob@school.example",
        "ada@school.example",
    ]


@pytest.mark.parametrize(
    ("sort", "first"),
    [("spend", "acct-333333333333"), ("-alerts", "acct-222222222222"), ("-course", "acct-444444444444")],
)
def test_the_accounts_sort_by_spend_alerts_and_course(organization, sort, first):
    assert organization_accounts(sort=sort)[0]["account_name"] == first
