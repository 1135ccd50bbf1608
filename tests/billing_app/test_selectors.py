"""The dashboard's reads of the cost rollups (billing_app/selectors.py): course costs, the daily
costs by service, the monthly statement, and the administrator's list of syncs. The rollups come
from a sync against moto's Cost Explorer (tests/support/cost_explorer.py) or are written directly.
"""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import cast

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts_app.choices import AccountState
from accounts_app.models import Course, MemberAccount, Membership
from billing_app import selectors
from billing_app.models import (
    AccountDailyCost,
    Alert,
    AlertKind,
    CostSync,
    CourseServiceDailyCost,
    MeterReading,
    SpendLimit,
    StudentBudget,
)
from billing_app.services.cost_totals import account_cost_totals_rebuild
from billing_app.services.costs import costs_sync
from tests.factories import CourseFactory, MemberAccountFactory, MembershipFactory
from tests.support.billing import DAYS, TODAY, d
from tests.support.cost_explorer import ALICE, BOB, CAROL, page, period, seed, student_accounts


@pytest.mark.django_db
def test_course_costs_match_the_synced_figures_with_credits_apart(course, cost_explorer):
    alice, bob, carol = student_accounts(course, [ALICE, BOB, CAROL])
    StudentBudget.objects.create(account=bob, amount_override=Decimal("150.00"))
    Alert.objects.create(
        account=alice,
        course=course,
        kind=AlertKind.DAILY_SPIKE,
        period="2026-10-12",
        message="spike",
        spend=Decimal(10),
        budget=Decimal(100),
    )
    ec2, s3 = "Amazon Elastic Compute Cloud - Compute", "Amazon Simple Storage Service"
    seed(
        page(
            period(d(12), [(ALICE, ec2, "10.00")]),
            period(d(14), [(ALICE, ec2, "4.00")]),
            period(d(19), [(BOB, ec2, "30.00")]),
            period(d(20), [(ALICE, ec2, "2.50"), (ALICE, s3, "1.50")], estimated=True),
        ),
        page(period(d(14), [(ALICE, "Credit", "-3.00")]), period(d(19), [(BOB, "Refund", "-0.75")])),
    )
    costs_sync(days=DAYS, today=TODAY)

    costs = selectors.course_costs(course=course, today=TODAY)

    assert [
        (r.account, r.name, r.spend, r.credits, r.budget, r.percent, r.trend, r.open_alerts) for r in costs.students
    ] == [
        (
            alice,
            "Student 111111111111",
            Decimal("18.00"),
            Decimal("-3.00"),
            Decimal("100.00"),
            Decimal(18),
            [Decimal("4.00"), 0, 0, 0, 0, 0, Decimal("4.00")],
            1,
        ),
        (
            bob,
            "Student 222222222222",
            Decimal("30.00"),
            Decimal("-0.75"),
            Decimal("150.00"),
            Decimal(20),
            [0, 0, 0, 0, 0, Decimal("30.00"), 0],
            0,
        ),
        (
            carol,
            "Student 333333333333",
            Decimal(0),
            Decimal(0),
            Decimal("100.00"),
            Decimal(0),
            [0] * 7,
            0,
        ),
    ]
    assert (costs.spend, costs.credits, costs.budget, costs.percent) == (
        Decimal("48.00"),
        Decimal("-3.75"),
        Decimal("350.00"),
        Decimal(14),
    )
    # 48 spent, and the last week's 38 a week for the 56 days left of the course.
    assert costs.forecast == Decimal(352)
    assert selectors.account_totals(account=alice) == {
        "spend": Decimal("18.00"),
        "credits": Decimal("-3.00"),
    }
    assert selectors.account_services(account=alice) == [
        (ec2, Decimal("16.50")),
        (s3, Decimal("1.50")),
    ]


@pytest.mark.django_db
def test_the_forecast_follows_the_students_pace_not_an_account_no_student_holds(course, cost_explorer):
    alice, bob = student_accounts(course, [ALICE, BOB])
    ec2 = "Amazon Elastic Compute Cloud - Compute"
    seed(
        page(
            period(d(14), [(ALICE, ec2, "3.50")]),
            period(d(19), [(BOB, ec2, "30.00")]),
            period(d(20), [(ALICE, ec2, "3.50")]),
        )
    )
    costs_sync(days=DAYS, today=TODAY)
    # Bob leaves the course; his account stays the course's, held by no student.
    Membership.objects.filter(pk=bob.membership_id).delete()

    costs = selectors.course_costs(course=course, today=TODAY)

    assert [row.account for row in costs.students] == [alice]
    # Alice's 7 spent, and her 7 a week for the 56 days left: Bob's 30 last week is in neither.
    assert (costs.spend, costs.forecast) == (Decimal(7), Decimal(63))


def course_with_rollups(students: int, code: str):
    """A course whose students each spent $1 a day for ten days, with a credit, an alert and an
    override per student; daily rollup rows made directly, and summed as the sync sums them."""
    course = cast(Course, CourseFactory(code=code))  # factory_boy returns a Course, typed as the factory
    accounts = student_accounts(course, [f"{code[-1]}{i:011d}" for i in range(students)])
    AccountDailyCost.objects.bulk_create(
        AccountDailyCost(account=a, course=course, day=d(11 + i), usage=Decimal("1.00"), credits=Decimal("-0.10"))
        for a in accounts
        for i in range(10)
    )
    account_cost_totals_rebuild()
    StudentBudget.objects.bulk_create(StudentBudget(account=a, amount_override=Decimal("50.00")) for a in accounts)
    Alert.objects.bulk_create(
        Alert(
            account=a,
            course=course,
            kind=AlertKind.ACTUAL_50,
            period="course",
            message="half",
            spend=Decimal(10),
            budget=Decimal(50),
        )
        for a in accounts
    )
    return course


@pytest.mark.django_db
def test_course_costs_takes_two_queries_whatever_the_number_of_students_and_three_searched():
    small, large = course_with_rollups(3, "small3"), course_with_rollups(30, "large0")
    small_rows, large_rows = (
        Membership.objects.filter(course=small),
        Membership.objects.filter(course=large),
    )
    assert (small_rows.count(), large_rows.count()) == (3, 30)

    with CaptureQueriesContext(connection) as small_queries:
        small_costs = selectors.course_costs(course=small, today=TODAY)
        [(r.name, r.account.state) for r in small_costs.students]
    with CaptureQueriesContext(connection) as large_queries:
        large_costs = selectors.course_costs(course=large, today=TODAY)
        [(r.name, r.account.state) for r in large_costs.students]
    with CaptureQueriesContext(connection) as searched_queries:
        searched = selectors.course_costs(course=large, today=TODAY, query="Student")
        [(r.name, r.account.state) for r in searched.students]

    assert (len(small_queries), len(large_queries), len(searched_queries)) == (2, 2, 3)
    # Searched, the table is the students found and the totals still the course's.
    assert (searched.spend, searched.students.paginator.count) == (large_costs.spend, 30)
    assert (small_costs.spend, small_costs.credits, small_costs.budget) == (
        Decimal(30),
        Decimal(-3),
        Decimal(150),
    )
    assert (large_costs.spend, large_costs.credits, large_costs.budget) == (
        Decimal(300),
        Decimal(-30),
        Decimal(1500),
    )
    assert {(r.percent, r.open_alerts) for r in large_costs.students} == {(Decimal(20), 1)}
    assert large_costs.students[0].trend == [Decimal("1.00")] * 7  # Oct 14–20


@pytest.mark.django_db
def test_the_course_chart_stacks_the_top_six_services_and_the_rest_as_other(course):
    other_course = CourseFactory()
    services = [f"Service {letter}" for letter in "ABCDEFGH"]  # A spends most, H least
    CourseServiceDailyCost.objects.bulk_create(
        [
            CourseServiceDailyCost(course=course, day=day, service=name, usage=Decimal(8 - rank) + Decimal(offset) / 10)
            for offset, day in enumerate([d(1), d(2)])
            for rank, name in enumerate(services)
        ]
        + [CourseServiceDailyCost(course=other_course, day=d(1), service="Service Z", usage=Decimal(999))]
    )

    services = selectors.course_service_costs(course=course, start=d(1), end=d(3), top=3)

    assert services.chart == {
        "labels": ["2026-10-01", "2026-10-02", "2026-10-03"],
        "series": [
            {"label": "Service A", "data": [8.0, 8.1, 0.0]},
            {"label": "Service B", "data": [7.0, 7.1, 0.0]},
            {"label": "Service C", "data": [6.0, 6.1, 0.0]},
            {"label": "Service D", "data": [5.0, 5.1, 0.0]},
            {"label": "Service E", "data": [4.0, 4.1, 0.0]},
            {"label": "Service F", "data": [3.0, 3.1, 0.0]},
            {"label": "Other", "data": [3.0, 3.2, 0.0]},  # G and H
        ],
    }
    assert services.top == [
        ("Service A", Decimal("16.1")),
        ("Service B", Decimal("14.1")),
        ("Service C", Decimal("12.1")),
    ]


@pytest.mark.django_db
def test_the_course_chart_has_no_other_series_for_six_services_or_fewer(course):
    CourseServiceDailyCost.objects.bulk_create(
        CourseServiceDailyCost(course=course, day=d(1), service=f"Service {i}", usage=Decimal(i)) for i in range(1, 7)
    )

    chart = selectors.course_service_costs(course=course, start=d(1), end=d(1)).chart

    assert [s["label"] for s in chart["series"]] == [f"Service {i}" for i in range(6, 0, -1)]


@pytest.mark.parametrize(
    ("month", "today", "settled"),
    [
        (d(1), d(31), False),
        (d(1), d(13, 11), False),
        (d(1), d(14, 11), True),
        (date(2026, 12, 1), date(2027, 1, 13), False),
        (date(2026, 12, 1), date(2027, 1, 14), True),
    ],
)
def test_a_month_is_settled_only_after_the_13th_of_the_next_month(month, today, settled):
    assert selectors.month_is_settled(month, today) is settled


@pytest.mark.django_db
def test_the_monthly_statement_is_final_only_once_settled_and_with_no_estimated_day(course):
    alice, bob = student_accounts(course, [ALICE, BOB])
    AccountDailyCost.objects.bulk_create(
        [
            AccountDailyCost(account=alice, course=course, day=d(30, 9), usage=Decimal(90)),
            AccountDailyCost(account=alice, course=course, day=d(1), usage=Decimal(10), credits=Decimal(-2)),
            AccountDailyCost(account=bob, course=course, day=d(31), usage=Decimal(5), estimated=True),
            AccountDailyCost(account=alice, course=course, day=d(1, 11), usage=Decimal(99)),
        ]
    )

    estimated = selectors.monthly_statement(course=course, month_start=d(1), today=d(20, 11))
    AccountDailyCost.objects.filter(day=d(31)).update(estimated=False)
    too_early = selectors.monthly_statement(course=course, month_start=d(1), today=d(13, 11))
    settled = selectors.monthly_statement(course=course, month_start=d(1), today=d(14, 11))

    assert (estimated["final"], too_early["final"], settled["final"]) == (False, False, True)
    assert (settled["month"], settled["usage"], settled["credits"]) == (
        d(1),
        Decimal(15),
        Decimal(-2),
    )
    assert settled["students"] == [
        {
            "account__membership__name": "Student 111111111111",
            "account__membership__email": "student-111111111111@school.example",
            "account__aws_account_id": ALICE,
            "usage": Decimal(10),
            "credits": Decimal(-2),
        },
        {
            "account__membership__name": "Student 222222222222",
            "account__membership__email": "student-222222222222@school.example",
            "account__aws_account_id": BOB,
            "usage": Decimal(5),
            "credits": Decimal(0),
        },
    ]


@pytest.mark.django_db
def test_administrators_see_every_sync_and_what_it_cost(personas):
    CostSync.objects.create(window_start=date(2026, 11, 1), window_end=date(2026, 11, 15), requests=7, rows=90)
    admin = personas.client("admin")

    response = admin.get(reverse("admin:billing_app_costsync_changelist"))

    assert response.status_code == 200
    assert "$0.07" in response.content.decode()
    assert personas.client("instructor").get(reverse("admin:billing_app_costsync_changelist")).status_code == 302


@pytest.mark.django_db
def test_each_frozen_accounts_latest_freeze_alert_comes_in_one_query():
    frozen = MemberAccountFactory(state=AccountState.FROZEN)
    ready = MemberAccountFactory(state=AccountState.READY, course=frozen.course)

    def freeze_alert(account, limit: str) -> Alert:
        return Alert.objects.create(
            account=account,
            course=account.course,
            kind=AlertKind.FROZEN,
            limit=limit,
            period=limit,
            message="Frozen",
            spend=Decimal(1),
            budget=Decimal(1),
        )

    freeze_alert(frozen, SpendLimit.ACCELERATORS)
    latest = freeze_alert(frozen, SpendLimit.USD_PER_HOUR)
    freeze_alert(ready, SpendLimit.ACCELERATORS)  # an old freeze of an account unfrozen since

    with CaptureQueriesContext(connection) as queries:
        found = selectors.freeze_alerts(accounts=[frozen, ready])

    assert found == {frozen.pk: latest}
    assert len(queries) == 1


# --- The students' table: sorted, filtered and paged by the database ------------------------------

# (name, email, state, spend, raised budget, open alerts, dollars an hour read by the meter)
STUDENTS = [
    ("Zoë Zed", "zoe@school.example", AccountState.READY, "14.5", None, 2, "0.50"),  # 14.5%: 14, as Decimal rounds
    ("ada", "ada@school.example", AccountState.FROZEN, "13.6", None, 0, None),  # 14%
    ("", "bea@school.example", AccountState.READY, "15.5", None, 1, "5.00"),  # no name: the email; 16%
    ("Émile", "emile@school.example", AccountState.ENDED, "14.4", "200.00", 0, "1.25"),  # 7%
    ("Bob", "bob@school.example", AccountState.READY, None, None, 0, "0"),
    ("bob", "bob2@school.example", AccountState.READY, "14.5", "50.00", 3, "0.50"),  # 29%
]
# The table's keys as the page sorted the whole list in Python before, ties in roster order.
PYTHON_SORTS = {
    "name": lambda r: r.name.lower(),
    "spend": lambda r: r.spend,
    "percent": lambda r: r.percent,
    "alerts": lambda r: r.open_alerts,
    "rate": lambda r: r.rate,
    "state": lambda r: r.state,
}


@dataclass
class Expected:
    name: str
    spend: Decimal
    percent: Decimal
    open_alerts: int
    rate: Decimal
    state: str


def varied_course() -> tuple[Course, list[Expected]]:
    """A course of STUDENTS, and what the table shows of each in roster order (the database's)."""
    course = cast(Course, CourseFactory(code="cs102", budget_per_student=Decimal("100.00")))
    for name, email, state, spend, raised, alerts, rate in STUDENTS:
        membership = MembershipFactory(course=course, user=None, name=name, email=email)
        account = cast(MemberAccount, MemberAccountFactory(course=course, membership=membership, state=state))
        if spend:
            AccountDailyCost.objects.create(account=account, course=course, day=d(15), usage=Decimal(spend))
        if raised:
            StudentBudget.objects.create(account=account, amount_override=Decimal(raised))
        Alert.objects.bulk_create(
            Alert(account=account, course=course, kind=kind, period="course", message="", spend=1, budget=1)
            for kind in [AlertKind.ACTUAL_50, AlertKind.ACTUAL_80, AlertKind.ACTUAL_100][:alerts]
        )
        if rate is not None:
            # A reading not taken yet (the last student's first) shows no rate.
            taken = timezone.now() if rate != "5.00" else None
            MeterReading.objects.create(
                account=account, course=course, taken_at=taken, checked_at=timezone.now(), usd_per_hour=Decimal(rate)
            )
    Alert.objects.filter(course=course, kind=AlertKind.ACTUAL_100).update(resolved_at=timezone.now())
    account_cost_totals_rebuild()
    expected = []
    for entry in Membership.objects.filter(course=course).order_by("name", "email"):
        _, _, state, spend, raised, alerts, rate = next(s for s in STUDENTS if s[1] == entry.email)
        spent, budget = Decimal(spend or 0), Decimal(raised or 100)
        reading_taken = rate is not None and rate != "5.00"
        expected.append(
            Expected(
                name=entry.display_name,
                spend=spent,
                percent=(spent / budget * 100).quantize(Decimal(1)),
                open_alerts=min(alerts, 2),
                rate=Decimal(rate) if reading_taken else Decimal(0),
                state=state,
            )
        )
    return course, expected


@pytest.mark.django_db
@pytest.mark.parametrize("sort", [*PYTHON_SORTS, *(f"-{key}" for key in PYTHON_SORTS)])
def test_the_students_table_sorts_as_the_page_sorted_in_python(sort):
    course, roster = varied_course()
    key = sort.lstrip("-")
    # sorted() keeps ties in roster order, also in reverse.
    expected = sorted(roster, key=PYTHON_SORTS[key], reverse=sort.startswith("-"))

    costs = selectors.course_costs(course=course, today=TODAY, sort=sort)

    assert [(r.name, r.spend, r.percent, r.open_alerts) for r in costs.students] == [
        (e.name, e.spend, e.percent, e.open_alerts) for e in expected
    ]


@pytest.mark.django_db
def test_an_unknown_sort_is_by_name():
    course, roster = varied_course()

    assert [r.name for r in selectors.course_costs(course=course, today=TODAY, sort="-nonsense").students] == [
        e.name for e in sorted(roster, key=PYTHON_SORTS["name"], reverse=True)
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "state", "found"),
    [
        ("BOB", "", {"Bob", "bob"}),  # by name, whatever the case
        ("bea@", "", {"bea@school.example"}),  # by email
        ("", AccountState.FROZEN, {"ada"}),
        ("b", AccountState.READY, {"bea@school.example", "Bob", "bob"}),
        ("", "no-such-state", {"ada", "bea@school.example", "Bob", "bob", "Émile", "Zoë Zed"}),
        ("nobody", "", set()),
    ],
)
def test_the_students_table_is_searched_by_name_or_email_and_filtered_by_state(query, state, found):
    course, roster = varied_course()

    costs = selectors.course_costs(course=course, today=TODAY, sort="name", query=query, state=state)

    assert [r.name for r in costs.students] == [
        e.name for e in sorted(roster, key=PYTHON_SORTS["name"]) if e.name in found
    ]
    assert costs.students.paginator.count == len(found)
    # The totals are the whole course's.
    assert costs.spend == Decimal("72.5")


@pytest.mark.django_db
def test_the_students_table_comes_a_page_at_a_time():
    course, roster = varied_course()
    by_name = [e.name for e in sorted(roster, key=PYTHON_SORTS["name"])]

    pages = [selectors.course_costs(course=course, today=TODAY, page=n, per_page=4).students for n in (1, 2, 3, "x", 0)]

    # Past the end, or before the start, is the last page; not a number, the first.
    assert [[r.name for r in page] for page in pages] == [
        by_name[:4],
        by_name[4:],
        by_name[4:],
        by_name[:4],
        by_name[4:],
    ]
    assert (pages[1].paginator.num_pages, pages[1].start_index(), pages[1].end_index()) == (2, 5, 6)
