"""The two ways a sync's figures are stored (billing_app/services/cost_store.py): the set-based
path the suite's PostgreSQL takes (COPY, one upsert, one delete, rollups by INSERT … SELECT) and
the ORM's path SQLite takes (`make run`'s demo), which must store exactly the same rows. The
sync's behaviour itself is tested in test_costs.py, through the set-based path."""

from decimal import Decimal

import pytest
from botocore.stub import Stubber
from django.db import connection

from accounts_app.choices import AccountState
from billing_app.models import AccountDailyCost, CostKind, CostRecord, CostSync, CourseServiceDailyCost
from billing_app.services import cost_store
from billing_app.services.costs import costs_sync
from tests.factories import CourseFactory, MemberAccountFactory
from tests.support import cost_explorer as ce
from tests.support.billing import DAYS, TODAY, d
from tests.support.cost_explorer import ALICE, page, period, seed, student_accounts

EC2, S3 = "Amazon Elastic Compute Cloud - Compute", "Amazon Simple Storage Service"
RECYCLED = "444444444444"  # a course's, then another's from Oct 12, then the pool's from Oct 18
TIED = "555555555555"  # two records from Oct 16: the later one owns those days
STRANGER = "999999999999"  # not the portal's
postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="the set-based path is PostgreSQL's")


def owners(course, other_course) -> dict[str, object]:
    """Every record that can own a figure, by name."""
    (alice,) = student_accounts(course, [ALICE])
    return {
        "alice": alice,
        "first course's": MemberAccountFactory(course=course, state=AccountState.RECYCLED, aws_account_id=RECYCLED),
        "second course's": MemberAccountFactory(
            course=other_course, state=AccountState.RECYCLED, aws_account_id=RECYCLED, costs_since=d(12)
        ),
        "pool's": MemberAccountFactory(
            course=None, state=AccountState.POOLED, aws_account_id=RECYCLED, costs_since=d(18)
        ),
        "tied, first": MemberAccountFactory(
            course=course, state=AccountState.RECYCLED, aws_account_id=TIED, costs_since=d(16)
        ),
        "tied, second": MemberAccountFactory(course=other_course, aws_account_id=TIED, costs_since=d(16)),
    }


def first_answers() -> None:
    seed(
        page(
            period(
                d(10),
                [
                    (ALICE, EC2, "1.25"),
                    (RECYCLED, EC2, "0.50"),
                    (TIED, EC2, "0.0000005"),  # half a millionth: rounded as the database rounds
                    (STRANGER, EC2, "50.00"),
                ],
            ),
            period(d(12), [(RECYCLED, EC2, "2.3456785"), (RECYCLED, S3, "0.10")]),
            next_token="page-2",
        ),
        page(
            period(d(17), [(TIED, EC2, "3.00"), (ALICE, S3, "0.40")], estimated=True),
            period(d(19), [(RECYCLED, EC2, "4.00"), (ALICE, EC2, "2.00")], estimated=True),
        ),
        page(
            period(d(10), [(ALICE, "Credit", "-1.00"), (STRANGER, "Credit", "-5.00")]),
            period(d(17), [(TIED, "Refund", "-0.0000005")], estimated=True),
        ),
    )


def revised_answers() -> None:
    """AWS's next answers: Alice's S3 of Oct 17 revised away, Oct 19 final and revised, a new day."""
    seed(
        page(
            period(
                d(10),
                [(ALICE, EC2, "1.25"), (RECYCLED, EC2, "0.50"), (TIED, EC2, "0.0000005"), (STRANGER, EC2, "50.00")],
            ),
            period(d(12), [(RECYCLED, EC2, "2.3456785"), (RECYCLED, S3, "0.10")]),
            period(d(17), [(TIED, EC2, "3.00")]),
            period(d(19), [(RECYCLED, EC2, "4.00"), (ALICE, EC2, "2.20")]),
            period(d(20), [(ALICE, EC2, "0.75")], estimated=True),
        ),
        page(
            period(d(10), [(ALICE, "Credit", "-1.00"), (STRANGER, "Credit", "-5.00")]),
            period(d(17), [(TIED, "Refund", "-0.0000005")]),
        ),
    )


def stored(names: dict[int | None, str], latest: CostSync) -> dict[str, set[tuple]]:
    """Every table the sync writes, with records named and the sync reduced to "the latest"."""
    return {
        "records": {
            (aws_id, day, kind, service, amount, currency, estimated, names[account], course, sync == latest.pk)
            for aws_id, day, kind, service, amount, currency, estimated, account, course, sync in (
                CostRecord.objects.values_list(
                    "aws_account_id",
                    "day",
                    "kind",
                    "service",
                    "amount",
                    "currency",
                    "estimated",
                    "account_id",
                    "course__code",
                    "sync_id",
                )
            )
        },
        "account days": {
            (names[account], course, day, usage, credits, estimated)
            for account, course, day, usage, credits, estimated in AccountDailyCost.objects.values_list(
                "account_id", "course__code", "day", "usage", "credits", "estimated"
            )
        },
        "service days": set(CourseServiceDailyCost.objects.values_list("course__code", "day", "service", "usage")),
    }


def two_syncs(names: dict[int | None, str], old_sync: CostSync) -> dict[str, set[tuple]]:
    """A first sync, then one of AWS's revised answers; what the tables hold afterwards."""
    CostRecord.objects.create(
        aws_account_id=ALICE, day=d(30, 9), service=EC2, amount=Decimal("7.00"), sync=old_sync
    )  # before the window: kept
    ce.forget()
    first_answers()
    costs_sync(days=DAYS, today=TODAY)
    ce.forget()
    revised_answers()
    latest = costs_sync(days=DAYS, today=TODAY)
    return stored(names, latest)


@postgresql_only
@pytest.mark.django_db
def test_the_portable_path_stores_exactly_the_rows_of_the_set_based_path(course, cost_explorer, monkeypatch):
    records = owners(course, CourseFactory(code="bio200"))
    names: dict[int | None, str] = {record.pk: name for name, record in records.items()} | {None: "nobody's"}
    old_sync = CostSync.objects.create(window_start=d(1, 9), window_end=d(1))
    assert cost_store.set_based()

    set_based = two_syncs(names, old_sync)
    for model in (CostRecord, AccountDailyCost, CourseServiceDailyCost):
        model.objects.all().delete()
    monkeypatch.setattr(cost_store, "set_based", lambda: False)
    portable = two_syncs(names, old_sync)

    assert portable == set_based
    # Each day of a figure belongs to the record that owned the account that day.
    assert {(aws_id, day, name, course) for aws_id, day, _, _, _, _, _, name, course, _ in set_based["records"]} == {
        (ALICE, d(30, 9), "nobody's", None),
        (ALICE, d(10), "alice", "cs101"),
        (ALICE, d(19), "alice", "cs101"),
        (ALICE, d(20), "alice", "cs101"),
        (RECYCLED, d(10), "first course's", "cs101"),
        (RECYCLED, d(12), "second course's", "bio200"),
        (RECYCLED, d(19), "pool's", None),
        # Days before the first record's costs_since are the first record's.
        (TIED, d(10), "tied, first", "cs101"),
        (TIED, d(17), "tied, second", "bio200"),
        (STRANGER, d(10), "nobody's", None),
    }
    assert (
        RECYCLED,
        d(12),
        CostKind.USAGE,
        EC2,
        Decimal("2.345679"),
        "USD",
        False,
        "second course's",
        "bio200",
        True,
    ) in (set_based["records"])
    assert (
        TIED,
        d(17),
        CostKind.REFUND,
        "Refund",
        Decimal("-0.000001"),
        "USD",
        False,
        "tied, second",
        "bio200",
        True,
    ) in (set_based["records"])
    assert set_based["account days"] == {
        ("alice", "cs101", d(10), Decimal("1.25"), Decimal("-1.00"), False),
        ("alice", "cs101", d(19), Decimal("2.20"), Decimal(0), False),
        ("alice", "cs101", d(20), Decimal("0.75"), Decimal(0), True),
        ("first course's", "cs101", d(10), Decimal("0.50"), Decimal(0), False),
        ("second course's", "bio200", d(12), Decimal("2.445679"), Decimal(0), False),
        ("tied, first", "cs101", d(10), Decimal("0.000001"), Decimal(0), False),
        ("tied, second", "bio200", d(17), Decimal("3.00"), Decimal("-0.000001"), False),
    }
    assert set_based["service days"] == {
        ("cs101", d(10), EC2, Decimal("1.750001")),
        ("cs101", d(19), EC2, Decimal("2.20")),
        ("cs101", d(20), EC2, Decimal("0.75")),
        ("bio200", d(12), EC2, Decimal("2.345679")),
        ("bio200", d(12), S3, Decimal("0.10")),
        ("bio200", d(17), EC2, Decimal("3.00")),
    }


@pytest.mark.django_db
def test_a_sync_after_one_that_failed_part_way_stores_its_figures(course, cost_explorer):
    """The failed sync's staging table is gone with it: the next sync on the same connection
    starts a new one."""
    student_accounts(course, [ALICE])
    with Stubber(cost_explorer.client("ce")) as stubber:
        stubber.add_response("get_cost_and_usage", page(period(d(19), [(ALICE, EC2, "4.00")]), next_token="page-2"))
        stubber.add_client_error("get_cost_and_usage", service_error_code="AccessDeniedException")
        with pytest.raises(Exception, match="AccessDeniedException"):
            costs_sync(days=DAYS, today=TODAY)
    seed(page(period(d(19), [(ALICE, EC2, "4.50")])), page())

    sync = costs_sync(days=DAYS, today=TODAY)

    assert (sync.rows, sync.error) == (1, "")
    assert list(CostRecord.objects.values_list("day", "amount")) == [(d(19), Decimal("4.50"))]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "set_based", [pytest.param(True, marks=postgresql_only, id="set-based"), pytest.param(False, id="portable")]
)
def test_the_rollups_of_days_no_figure_stands_for_any_more_are_deleted_and_others_kept(course, set_based, monkeypatch):
    """rollups_rebuild on its own (the dashboard benchmark calls it): a rollup left from figures
    since deleted goes, one outside [start, end) stays, the others are the figures' sums."""
    monkeypatch.setattr(cost_store, "set_based", lambda: set_based)
    (alice,) = student_accounts(course, [ALICE])
    sync = CostSync.objects.create(window_start=d(10), window_end=d(20))
    CostRecord.objects.create(
        aws_account_id=ALICE, account=alice, course=course, day=d(12), service=EC2, amount=Decimal(3), sync=sync
    )
    for day in (d(5), d(11), d(12)):
        AccountDailyCost.objects.create(account=alice, course=course, day=day, usage=Decimal(9))
        CourseServiceDailyCost.objects.create(course=course, day=day, service=EC2, usage=Decimal(9))

    cost_store.rollups_rebuild(start=d(10), end=d(20))

    assert set(AccountDailyCost.objects.values_list("day", "usage")) == {(d(5), Decimal(9)), (d(12), Decimal(3))}
    assert set(CourseServiceDailyCost.objects.values_list("day", "usage")) == {(d(5), Decimal(9)), (d(12), Decimal(3))}
