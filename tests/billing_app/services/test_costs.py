"""Cost Explorer → CostRecord → rollups (billing_app/services/costs.py): the sync, cost allocation
tags and hourly history, throttling and refusals, and the previous month re-read until final.
The dashboard's reads of the rollups are in tests/billing_app/test_selectors.py, the sync_costs
command in tests/billing_app/management/test_sync_costs.py.

Cost Explorer is moto's, seeded with the answers AWS would give (tests/support/cost_explorer.py).
"""

from datetime import date
from decimal import Decimal

import pytest
from botocore.stub import Stubber
from django.utils import timezone

from accounts_app.choices import AccountState
from accounts_app.models import MemberAccount
from billing_app import selectors
from billing_app.models import (
    AccountDailyCost,
    Alert,
    AlertKind,
    CostKind,
    CostRecord,
    CostSync,
    CourseServiceDailyCost,
    TagDailyCost,
)
from billing_app.services.costs import costs_sync
from billing_app.services.refresh import costs_refresh
from portal.aws.errors import PermanentAwsError, TransientAwsError
from tests.factories import CourseFactory
from tests.support import cost_explorer as ce
from tests.support.billing import DAYS, TODAY, d
from tests.support.cost_explorer import ALICE, BOB, CAROL, page, period, seed, student_accounts

STRANGER = "999999999999"


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
