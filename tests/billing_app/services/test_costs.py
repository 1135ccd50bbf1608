"""Cost Explorer → CostRecord → rollups, and the dashboard's reads of them.

Cost Explorer is moto's, seeded with the answers AWS would give (tests/support/cost_explorer.py).
"""

from datetime import date, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from botocore.stub import Stubber
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts_app.choices import AccountState
from accounts_app.models import MemberAccount, Membership
from billing_app import selectors
from billing_app.models import (
    AccountDailyCost,
    Alert,
    AlertKind,
    CostKind,
    CostRecord,
    CostSync,
    CourseServiceDailyCost,
    StudentBudget,
    TagDailyCost,
)
from billing_app.services.costs import costs_sync
from billing_app.services.refresh import costs_refresh
from portal.aws.errors import PermanentAwsError, TransientAwsError
from tests.factories import CourseFactory
from tests.support import cost_explorer as ce
from tests.support.cost_explorer import page, period, seed, student_accounts

TODAY = date(2026, 10, 20)  # the course runs from Sep 1 to Dec 15, 2026
DAYS = 14  # the sync re-reads Oct 6 up to Oct 20 included
ALICE, BOB, CAROL, STRANGER = "111111111111", "222222222222", "333333333333", "999999999999"


@pytest.fixture
def cost_explorer():
    """moto for Cost Explorer only: no organization is needed to sync costs."""
    from moto import mock_aws

    from portal.aws import session

    with mock_aws():
        session.reset()
        yield session
        session.reset()


@pytest.fixture
def course(db):
    return CourseFactory(code="cs101", name="Cloud Computing", budget_per_student=Decimal("100.00"))


def d(day: int, month: int = 10) -> date:
    return date(2026, month, day)


def records() -> set[tuple]:
    return set(
        CostRecord.objects.values_list("aws_account_id", "day", "kind", "service", "amount", "currency", "estimated")
    )


def account_days() -> set[tuple]:
    return set(
        AccountDailyCost.objects.values_list(
            "account__aws_account_id", "course__code", "day", "usage", "credits", "estimated"
        )
    )


def service_days() -> set[tuple]:
    return set(CourseServiceDailyCost.objects.values_list("course__code", "day", "service", "usage"))


def seed_two_students() -> None:
    """Usage in two pages, then the credits query."""
    seed(
        page(
            period(
                d(18),
                [
                    (ALICE, "Amazon Elastic Compute Cloud - Compute", "1.25"),
                    (ALICE, "Amazon Simple Storage Service", "0.5"),
                ],
            ),
            next_token="page-2",
        ),
        page(
            period(
                d(19),
                [
                    (ALICE, "Amazon Elastic Compute Cloud - Compute", "2.3456789"),
                    (BOB, "Amazon Elastic Compute Cloud - Compute", "3.10"),
                ],
                estimated=True,
            )
        ),
        page(
            period(d(18), [(ALICE, "Credit", "-1.00")]),
            period(d(19), [(BOB, "Refund", "-0.10")], estimated=True),
        ),
    )


# --- Ingest ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_sync_stores_every_usage_credit_and_refund_figure_as_a_decimal(course, cost_explorer):
    student_accounts(course, [ALICE, BOB])
    seed_two_students()

    costs_sync(days=DAYS, today=TODAY)

    ec2, s3 = "Amazon Elastic Compute Cloud - Compute", "Amazon Simple Storage Service"
    assert records() == {
        (ALICE, d(18), CostKind.USAGE, ec2, Decimal("1.25"), "USD", False),
        (ALICE, d(18), CostKind.USAGE, s3, Decimal("0.50"), "USD", False),
        # Six decimal places are kept; AWS's seventh is rounded.
        (ALICE, d(19), CostKind.USAGE, ec2, Decimal("2.345679"), "USD", True),
        (BOB, d(19), CostKind.USAGE, ec2, Decimal("3.10"), "USD", True),
        (ALICE, d(18), CostKind.CREDIT, "Credit", Decimal("-1.00"), "USD", False),
        (BOB, d(19), CostKind.REFUND, "Refund", Decimal("-0.10"), "USD", True),
    }
    assert {type(amount) for amount in CostRecord.objects.values_list("amount", flat=True)} == {Decimal}
    alice, bob = (
        MemberAccount.objects.get(aws_account_id=ALICE),
        MemberAccount.objects.get(aws_account_id=BOB),
    )
    assert set(CostRecord.objects.values_list("aws_account_id", "account_id", "course_id")) == {
        (ALICE, alice.pk, course.pk),
        (BOB, bob.pk, course.pk),
    }


@pytest.mark.django_db
def test_a_sync_rebuilds_the_rollups_with_usage_and_credits_apart_and_the_estimated_flag(course, cost_explorer):
    student_accounts(course, [ALICE, BOB])
    seed_two_students()

    costs_sync(days=DAYS, today=TODAY)

    assert account_days() == {
        (ALICE, "cs101", d(18), Decimal("1.75"), Decimal("-1.00"), False),
        (ALICE, "cs101", d(19), Decimal("2.345679"), Decimal(0), True),
        (BOB, "cs101", d(19), Decimal("3.10"), Decimal("-0.10"), True),
    }
    assert service_days() == {
        ("cs101", d(18), "Amazon Elastic Compute Cloud - Compute", Decimal("1.25")),
        ("cs101", d(18), "Amazon Simple Storage Service", Decimal("0.50")),
        ("cs101", d(19), "Amazon Elastic Compute Cloud - Compute", Decimal("5.445679")),
    }
    # Credits never reach the per-service chart.
    assert not CourseServiceDailyCost.objects.filter(service__in=["Credit", "Refund"]).exists()


@pytest.mark.django_db
def test_the_sync_asks_one_query_family_for_the_whole_organization_and_follows_every_page(course, cost_explorer):
    student_accounts(course, [ALICE, BOB])
    seed_two_students()
    asked: list[dict] = []
    cost_explorer.add_hook("before-parameter-build.ce.GetCostAndUsage", lambda params, **_: asked.append(dict(params)))

    sync = costs_sync(days=DAYS, today=TODAY)

    window = {"Start": "2026-10-06", "End": "2026-10-21"}
    usage_filter = {"Not": {"Dimensions": {"Key": "RECORD_TYPE", "Values": ["Credit", "Refund"]}}}
    credits_filter = {"Dimensions": {"Key": "RECORD_TYPE", "Values": ["Credit", "Refund"]}}

    def by(second):
        return [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}, {"Type": "DIMENSION", "Key": second}]

    assert [
        (
            p["TimePeriod"],
            p["Granularity"],
            p["Metrics"],
            p["GroupBy"],
            p["Filter"],
            p.get("NextPageToken"),
        )
        for p in asked
    ] == [
        (window, "DAILY", ["UnblendedCost"], by("SERVICE"), usage_filter, None),
        (window, "DAILY", ["UnblendedCost"], by("SERVICE"), usage_filter, "page-2"),
        (window, "DAILY", ["UnblendedCost"], by("RECORD_TYPE"), credits_filter, None),
    ]
    sync.refresh_from_db()
    assert (sync.window_start, sync.window_end, sync.requests, sync.rows, sync.error) == (
        d(6),
        d(21),
        3,
        6,
        "",
    )
    assert sync.finished_at is not None and sync.duration_seconds >= 0
    assert str(sync) == "Sync 2026-10-06–2026-10-21: 3 requests, 6 rows"


@pytest.mark.django_db
def test_running_the_sync_twice_with_the_same_answers_changes_no_figure_and_no_row_count(course, cost_explorer):
    student_accounts(course, [ALICE, BOB])
    seed_two_students()
    first = costs_sync(days=DAYS, today=TODAY)
    before = (records(), account_days(), service_days())
    counts = (
        CostRecord.objects.count(),
        AccountDailyCost.objects.count(),
        CourseServiceDailyCost.objects.count(),
    )

    second = costs_sync(days=DAYS, today=TODAY)

    assert (records(), account_days(), service_days()) == before
    assert (
        CostRecord.objects.count(),
        AccountDailyCost.objects.count(),
        CourseServiceDailyCost.objects.count(),
    ) == counts
    assert counts == (6, 3, 3)
    assert (first.rows, second.rows, first.requests, second.requests) == (6, 6, 3, 3)
    assert set(CostRecord.objects.values_list("sync_id", flat=True)) == {second.pk}


@pytest.mark.django_db
def test_an_estimated_figure_revised_by_aws_is_updated_and_becomes_final(course, cost_explorer):
    student_accounts(course, [ALICE])
    ec2 = "Amazon Elastic Compute Cloud - Compute"
    seed(page(period(d(19), [(ALICE, ec2, "2.00")], estimated=True)), page())
    costs_sync(days=DAYS, today=TODAY)
    assert records() == {(ALICE, d(19), CostKind.USAGE, ec2, Decimal("2.00"), "USD", True)}

    ce.forget()
    seed(page(period(d(19), [(ALICE, ec2, "2.35")], estimated=False)), page())
    costs_sync(days=DAYS, today=TODAY)

    assert records() == {(ALICE, d(19), CostKind.USAGE, ec2, Decimal("2.35"), "USD", False)}
    assert account_days() == {(ALICE, "cs101", d(19), Decimal("2.35"), Decimal(0), False)}
    assert service_days() == {("cs101", d(19), ec2, Decimal("2.35"))}


@pytest.mark.django_db
def test_a_figure_aws_stops_reporting_is_deleted_but_days_before_the_window_are_kept(course, cost_explorer):
    (alice,) = student_accounts(course, [ALICE])
    ec2, s3 = "Amazon Elastic Compute Cloud - Compute", "Amazon Simple Storage Service"
    old_sync = CostSync.objects.create(window_start=d(1, 9), window_end=d(1))
    CostRecord.objects.create(
        aws_account_id=ALICE,
        account=alice,
        course=course,
        day=d(30, 9),
        service=ec2,
        amount=Decimal("7.00"),
        sync=old_sync,
    )
    seed(
        page(period(d(19), [(ALICE, ec2, "2.00"), (ALICE, s3, "0.40")], estimated=True)),
        page(period(d(19), [(ALICE, "Credit", "-0.40")], estimated=True)),
    )
    costs_sync(days=DAYS, today=TODAY)

    ce.forget()
    seed(page(period(d(19), [(ALICE, ec2, "2.00")])), page())
    costs_sync(days=DAYS, today=TODAY)

    assert records() == {
        (ALICE, d(30, 9), CostKind.USAGE, ec2, Decimal("7.00"), "USD", False),
        (ALICE, d(19), CostKind.USAGE, ec2, Decimal("2.00"), "USD", False),
    }
    # Rollups are rebuilt for the window only: September's day was never rolled up by this sync.
    assert account_days() == {(ALICE, "cs101", d(19), Decimal("2.00"), Decimal(0), False)}
    assert service_days() == {("cs101", d(19), ec2, Decimal("2.00"))}


@pytest.mark.django_db
def test_rows_of_accounts_the_portal_does_not_know_are_stored_without_an_account_and_left_out_of_rollups(
    course, cost_explorer
):
    student_accounts(course, [ALICE])
    ec2 = "Amazon Elastic Compute Cloud - Compute"
    seed(
        page(period(d(19), [(ALICE, ec2, "2.00"), (STRANGER, ec2, "50.00")])),
        page(period(d(19), [(STRANGER, "Credit", "-5.00")])),
    )

    costs_sync(days=DAYS, today=TODAY)

    assert set(
        CostRecord.objects.filter(aws_account_id=STRANGER).values_list("kind", "amount", "account", "course")
    ) == {
        (CostKind.USAGE, Decimal("50.00"), None, None),
        (CostKind.CREDIT, Decimal("-5.00"), None, None),
    }
    assert account_days() == {(ALICE, "cs101", d(19), Decimal("2.00"), Decimal(0), False)}
    assert service_days() == {("cs101", d(19), ec2, Decimal("2.00"))}


@pytest.mark.django_db
def test_rows_of_an_account_the_portal_learns_about_later_are_attached_at_the_next_sync(course, cost_explorer):
    ec2 = "Amazon Elastic Compute Cloud - Compute"
    seed(page(period(d(19), [(CAROL, ec2, "4.00")])), page())
    costs_sync(days=DAYS, today=TODAY)
    assert AccountDailyCost.objects.count() == 0

    (carol,) = student_accounts(course, [CAROL])
    costs_sync(days=DAYS, today=TODAY)

    assert list(CostRecord.objects.values_list("account_id", "course_id")) == [(carol.pk, course.pk)]
    assert account_days() == {(CAROL, "cs101", d(19), Decimal("4.00"), Decimal(0), False)}


@pytest.mark.django_db
def test_a_refused_sync_records_the_error_and_stores_nothing(course, cost_explorer):
    student_accounts(course, [ALICE])
    with Stubber(cost_explorer.client("ce")) as stubber:
        stubber.add_client_error(
            "get_cost_and_usage",
            service_error_code="AccessDeniedException",
            service_message="ce:GetCostAndUsage denied",
        )
        with pytest.raises(Exception, match="AccessDeniedException"):
            costs_sync(days=DAYS, today=TODAY)

    sync = CostSync.objects.get()
    assert sync.error == "GetCostAndUsage: AccessDeniedException: ce:GetCostAndUsage denied"
    assert sync.finished_at is not None
    assert (sync.requests, sync.rows, CostRecord.objects.count()) == (0, 0, 0)


# --- Cost allocation tags and hourly history -------------------------------------------------------


@pytest.mark.django_db
def test_a_course_naming_a_cost_tag_gets_one_tag_query_and_a_per_value_breakdown(course, cost_explorer):
    course.cost_tag_key = "project"
    course.save()
    alice, _ = student_accounts(course, [ALICE, BOB])
    student_accounts(CourseFactory(code="untagged"), [CAROL])
    ec2 = "Amazon Elastic Compute Cloud - Compute"
    seed(
        page(period(d(19), [(ALICE, ec2, "4.00"), (BOB, ec2, "1.00"), (CAROL, ec2, "2.00")])),
        page(),
        page(
            period(d(18), [(ALICE, "project$web", "1.00")]),
            period(
                d(19),
                [
                    (ALICE, "project$web", "3.00"),
                    (ALICE, "project$", "1.00"),
                    (BOB, "project$ml", "1.00"),
                ],
            ),
        ),
    )
    asked: list[dict] = []
    cost_explorer.add_hook("before-parameter-build.ce.GetCostAndUsage", lambda params, **_: asked.append(dict(params)))

    sync = costs_sync(days=DAYS, today=TODAY)

    assert sync.requests == 3
    assert (asked[2]["GroupBy"], asked[2]["Filter"]) == (
        [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}, {"Type": "TAG", "Key": "project"}],
        {"Dimensions": {"Key": "LINKED_ACCOUNT", "Values": [ALICE, BOB]}},
    )
    assert selectors.account_tag_breakdown(account=alice) == [
        ("web", Decimal("4.00")),
        ("", Decimal("1.00")),
    ]


@pytest.mark.django_db
def test_the_hourly_history_is_kept_after_aws_stops_reporting_it(course, cost_explorer, settings):
    settings.PORTAL_COST_HOURLY = True
    (alice,) = student_accounts(course, [ALICE])

    def hours(*amounts: tuple[str, str]) -> dict:
        return page(
            *(
                {
                    "TimePeriod": {"Start": start, "End": start},
                    "Total": {},
                    "Estimated": True,
                    "Groups": [
                        {
                            "Keys": [ALICE],
                            "Metrics": {"UnblendedCost": {"Amount": amount, "Unit": "USD"}},
                        }
                    ],
                }
                for start, amount in amounts
            )
        )

    seed(page(), page(), hours(("2026-10-19T10:00:00Z", "0.50"), ("2026-10-19T11:00:00Z", "0.75")))
    first = costs_sync(days=DAYS, today=TODAY)
    ce.forget()
    seed(page(), page(), hours(("2026-10-19T11:00:00Z", "0.80")))
    costs_sync(days=DAYS, today=TODAY)

    assert first.requests == 3
    assert list(alice.hourly_costs.order_by("hour").values_list("hour__hour", "amount")) == [
        (10, Decimal("0.50")),
        (11, Decimal("0.80")),
    ]
    assert selectors.account_hourly(account=alice, since=timezone.make_aware(timezone.datetime(2026, 10, 19))) == {
        "labels": ["Oct 19 10:00", "Oct 19 11:00"],
        "series": [{"label": "Spend", "data": [0.5, 0.8]}],
    }


@pytest.mark.django_db
def test_refused_optional_queries_are_warnings_and_the_sync_stores_the_rest(course, cost_explorer, settings):
    """Stubber: moto answers every query. AWS refuses a tag that is not (yet) a cost allocation
    tag with DataUnavailableException, and HOURLY granularity unless it is enabled in billing."""
    settings.PORTAL_COST_HOURLY = True
    course.cost_tag_key = "project"
    course.save()
    (alice,) = student_accounts(course, [ALICE])
    TagDailyCost.objects.create(account=alice, course=course, day=d(18), tag_value="web", amount=Decimal(2))
    ec2 = "Amazon Elastic Compute Cloud - Compute"
    with Stubber(cost_explorer.client("ce")) as stubber:
        stubber.add_response("get_cost_and_usage", page(period(d(19), [(ALICE, ec2, "4.00")])))
        stubber.add_response("get_cost_and_usage", page())
        stubber.add_client_error(
            "get_cost_and_usage", service_error_code="DataUnavailableException", service_message="tag not active"
        )
        stubber.add_client_error(
            "get_cost_and_usage",
            service_error_code="AccessDeniedException",
            service_message="Hourly granularity is not enabled",
        )
        sync = costs_sync(days=DAYS, today=TODAY)
        stubber.assert_no_pending_responses()

    sync.refresh_from_db()
    assert (sync.error, sync.requests, sync.rows) == ("", 2, 1)
    assert sync.warnings.splitlines() == [
        "Tag costs of cs101 not read: GetCostAndUsage: DataUnavailableException: tag not active",
        "Hourly costs not read: GetCostAndUsage: AccessDeniedException: Hourly granularity is not enabled",
    ]
    assert account_days() == {(ALICE, "cs101", d(19), Decimal("4.00"), Decimal(0), False)}
    # The tag figures already read are kept rather than wiped by a query that was not answered.
    assert list(TagDailyCost.objects.values_list("day", "tag_value", "amount")) == [(d(18), "web", Decimal(2))]


@pytest.mark.django_db
def test_a_refused_tag_query_does_not_stop_the_budget_check(course, cost_explorer, monkeypatch):
    """Stubber: AWS refuses the tag query (moto never does); the freeze still happens."""
    course.cost_tag_key = "project"
    course.save()
    student_accounts(course, [ALICE])
    monkeypatch.setattr(timezone, "localdate", lambda *args: TODAY)
    ec2 = "Amazon Elastic Compute Cloud - Compute"
    with Stubber(cost_explorer.client("ce")) as stubber:
        stubber.add_response("get_cost_and_usage", page(period(d(19), [(ALICE, ec2, "150.00")])))
        stubber.add_response("get_cost_and_usage", page())
        stubber.add_client_error(
            "get_cost_and_usage", service_error_code="DataUnavailableException", service_message="tag not active"
        )
        costs_refresh(days=DAYS)

    assert MemberAccount.objects.get().state == AccountState.FROZEN
    assert Alert.objects.filter(kind=AlertKind.ACTUAL_100).exists()


def throttled(stubber: Stubber, times: int) -> None:
    for _ in range(times):
        stubber.add_client_error(
            "get_cost_and_usage", service_error_code="LimitExceededException", service_message="Rate exceeded"
        )


@pytest.mark.django_db
def test_a_throttled_query_is_asked_again_and_only_answered_pages_count(course, cost_explorer, monkeypatch):
    """Stubber: Cost Explorer throttles with LimitExceededException (moto never does); botocore's
    own retries are bypassed by the Stubber, so these are the portal's waits."""
    student_accounts(course, [ALICE])
    waits: list[float] = []
    monkeypatch.setattr("portal.aws.costs.time.sleep", waits.append)
    ec2 = "Amazon Elastic Compute Cloud - Compute"
    with Stubber(cost_explorer.client("ce")) as stubber:
        throttled(stubber, 2)
        stubber.add_response("get_cost_and_usage", page(period(d(19), [(ALICE, ec2, "4.00")])))
        throttled(stubber, 1)
        stubber.add_response("get_cost_and_usage", page())
        sync = costs_sync(days=DAYS, today=TODAY)
        stubber.assert_no_pending_responses()

    assert waits == [2, 5, 2]
    assert (sync.error, sync.requests, sync.rows) == ("", 2, 1)


@pytest.mark.django_db
def test_a_sync_still_throttled_after_every_wait_is_transient_and_keeps_its_requests(
    course, cost_explorer, monkeypatch
):
    """Stubber: two pages answered, then the credits query stays throttled."""
    student_accounts(course, [ALICE])
    monkeypatch.setattr("portal.aws.costs.time.sleep", lambda seconds: None)
    with Stubber(cost_explorer.client("ce")) as stubber:
        stubber.add_response("get_cost_and_usage", page(next_token="page-2"))
        stubber.add_response("get_cost_and_usage", page())
        throttled(stubber, 5)
        with pytest.raises(TransientAwsError, match="LimitExceededException"):
            costs_sync(days=DAYS, today=TODAY)

    sync = CostSync.objects.get()
    assert (sync.requests, sync.rows, sync.error) == (
        2,
        0,
        "GetCostAndUsage: LimitExceededException: Rate exceeded",
    )


@pytest.mark.django_db
def test_a_sync_failing_part_way_records_the_requests_it_made(course, cost_explorer):
    student_accounts(course, [ALICE])
    with Stubber(cost_explorer.client("ce")) as stubber:
        stubber.add_response("get_cost_and_usage", page(next_token="page-2"))
        stubber.add_response("get_cost_and_usage", page(next_token="page-3"))
        stubber.add_response("get_cost_and_usage", page())
        stubber.add_client_error(
            "get_cost_and_usage", service_error_code="AccessDeniedException", service_message="denied"
        )
        with pytest.raises(PermanentAwsError):
            costs_sync(days=DAYS, today=TODAY)

    assert CostSync.objects.values_list("requests", flat=True).get() == 3


# --- The previous month is re-read until AWS marks it final -----------------------------------------


@pytest.mark.django_db
def test_last_month_is_re_read_until_aws_marks_it_final_so_its_statement_becomes_final(course, cost_explorer):
    """Stubber: AWS keeps the last days of a month Estimated past the 13th of the next; moto
    answers whatever was seeded, whatever the window."""
    student_accounts(course, [ALICE])
    ec2 = "Amazon Elastic Compute Cloud - Compute"
    asked: list[str] = []
    cost_explorer.add_hook(
        "before-parameter-build.ce.GetCostAndUsage",
        lambda params, **_: asked.append(params["TimePeriod"]["Start"]),
    )

    def sync_answering(today: date, *, estimated: bool) -> CostSync:
        with Stubber(cost_explorer.client("ce")) as stubber:
            stubber.add_response("get_cost_and_usage", page(period(d(31), [(ALICE, ec2, "9.00")], estimated=estimated)))
            stubber.add_response("get_cost_and_usage", page())
            return costs_sync(days=DAYS, today=today)

    def october_is_final(today: date) -> bool:
        return selectors.monthly_statement(course=course, month_start=d(1), today=today)["final"]

    sync_answering(date(2026, 11, 5), estimated=True)  # before AWS settles October
    sync_answering(date(2026, 11, 20), estimated=True)  # settled by the calendar, not by AWS
    assert not october_is_final(date(2026, 11, 20))
    sync_answering(date(2026, 11, 21), estimated=False)  # AWS marks October final
    assert october_is_final(date(2026, 11, 21))
    # October is settled and final: the next sync is back to the trailing window.
    with Stubber(cost_explorer.client("ce")) as stubber:
        stubber.add_response("get_cost_and_usage", page())
        stubber.add_response("get_cost_and_usage", page())
        costs_sync(days=DAYS, today=date(2026, 11, 22))

    assert asked == ["2026-10-01"] * 6 + ["2026-11-08"] * 2
    assert CostRecord.objects.get().estimated is False


# --- The sync_costs command -----------------------------------------------------------------------


@pytest.mark.django_db
def test_sync_costs_reports_the_window_rows_requests_and_their_price(course, cost_explorer):
    student_accounts(course, [ALICE])
    today = timezone.localdate()
    ec2 = "Amazon Elastic Compute Cloud - Compute"
    seed(
        page(
            period(today - timedelta(days=2), [(ALICE, ec2, "1.00")]),
            period(today - timedelta(days=1), [(ALICE, ec2, "1.50")]),
        ),
        page(period(today - timedelta(days=1), [(ALICE, "Credit", "-0.25")])),
    )
    out = StringIO()

    call_command("sync_costs", "--days", "3", stdout=out)

    # Before the 14th AWS has not settled the previous month yet: the sync re-reads it whole.
    previous_month = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    start = previous_month if today.day < 14 else today - timedelta(days=3)
    end = today + timedelta(days=1)
    assert out.getvalue() == (f"Synced {start} to {end}: 3 rows from 2 Cost Explorer request(s) ($0.02).\n")
    assert CostRecord.objects.count() == 3
    assert AccountDailyCost.objects.get(day=today - timedelta(days=1)).credits == Decimal("-0.25")


@pytest.mark.django_db
def test_sync_costs_prints_the_warnings_of_a_refused_optional_query(course, cost_explorer):
    """Stubber: AWS refuses the tag query (moto never does)."""
    course.cost_tag_key = "project"
    course.save()
    student_accounts(course, [ALICE])
    out = StringIO()
    with Stubber(cost_explorer.client("ce")) as stubber:
        stubber.add_response("get_cost_and_usage", page())
        stubber.add_response("get_cost_and_usage", page())
        stubber.add_client_error(
            "get_cost_and_usage", service_error_code="DataUnavailableException", service_message="tag not active"
        )
        call_command("sync_costs", "--days", "3", stdout=out)

    assert out.getvalue().splitlines()[1:] == [
        "Warning: Tag costs of cs101 not read: GetCostAndUsage: DataUnavailableException: tag not active"
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("days", ["0", "366"])
def test_sync_costs_refuses_a_window_out_of_range(days):
    with pytest.raises(CommandError, match=r"--days must be between 1 and 365\."):
        call_command("sync_costs", "--days", days)
    assert CostSync.objects.count() == 0


@pytest.mark.django_db
def test_sync_costs_turns_a_cost_explorer_refusal_into_a_command_error(cost_explorer):
    with Stubber(cost_explorer.client("ce")) as stubber:
        stubber.add_client_error(
            "get_cost_and_usage",
            service_error_code="AccessDeniedException",
            service_message="denied",
        )
        with pytest.raises(CommandError) as raised:
            call_command("sync_costs")
    assert str(raised.value) == "Cost Explorer refused: GetCostAndUsage: AccessDeniedException: denied"


# --- Dashboard selectors --------------------------------------------------------------------------


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


def course_with_rollups(students: int, code: str):
    """A course whose students each spent $1 a day for ten days, with a credit, an alert and an
    override per student; rollup rows made directly."""
    course = CourseFactory(code=code)
    accounts = student_accounts(course, [f"{code[-1]}{i:011d}" for i in range(students)])
    AccountDailyCost.objects.bulk_create(
        AccountDailyCost(account=a, course=course, day=d(11 + i), usage=Decimal("1.00"), credits=Decimal("-0.10"))
        for a in accounts
        for i in range(10)
    )
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
def test_course_costs_takes_five_queries_whatever_the_number_of_students():
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

    assert (len(small_queries), len(large_queries)) == (5, 5)
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
def test_course_daily_by_service_stacks_the_top_six_services_and_the_rest_as_other(course):
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

    chart = selectors.course_daily_by_service(course=course, start=d(1), end=d(3))

    assert chart == {
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
    assert selectors.course_top_services(course=course, limit=3) == [
        ("Service A", Decimal("16.1")),
        ("Service B", Decimal("14.1")),
        ("Service C", Decimal("12.1")),
    ]


@pytest.mark.django_db
def test_course_daily_by_service_has_no_other_series_for_six_services_or_fewer(course):
    CourseServiceDailyCost.objects.bulk_create(
        CourseServiceDailyCost(course=course, day=d(1), service=f"Service {i}", usage=Decimal(i)) for i in range(1, 7)
    )

    chart = selectors.course_daily_by_service(course=course, start=d(1), end=d(1))

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
