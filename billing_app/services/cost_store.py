"""Writing a sync's Cost Explorer figures and rebuilding their rollups, two ways that store the same
rows. On PostgreSQL (production, the tests) the work is set-based: each answered page is copied
into a temporary staging table as it arrives, then one MERGE attaches every figure to its
account record by a join, one delete drops what AWS stopped reporting, and the rollups are
rebuilt by `INSERT … SELECT … GROUP BY`. Elsewhere (SQLite: `make run`'s demo) the same steps go
through the ORM, figure by figure, with AccountOwners deciding each day's record in Python.

A month of an organization of 10,000 accounts is millions of figures: the set-based path holds
one page in memory at a time, and the database does the rest."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from typing import Protocol

from django.db import connection
from django.db.models import Case, IntegerField, Max, Q, Sum, Value, When
from psycopg import pq

from accounts_app.models import MemberAccount
from billing_app.models import AccountDailyCost, CostKind, CostRecord, CostSync, CourseServiceDailyCost
from billing_app.services.cost_totals import account_cost_totals_rebuild
from portal.aws.costs import CostRow

BATCH = 5000
KindOf = Callable[[CostRow], str]


class Staging(Protocol):
    """The figures of one sync, gathered page by page while AWS answers, stored in one go."""

    def add(self, rows: Sequence[CostRow], kind_of: KindOf) -> None: ...

    def store(self, *, sync: CostSync, start: date, end: date) -> int:
        """Make CostRecord match the figures for [start, end): upsert every figure (attached to
        its account record and stamped with `sync`), delete the window's figures AWS no longer
        reports. Returns the number of figures."""
        ...


@contextmanager
def staging() -> Iterator[Staging]:
    if set_based():
        with _staging_table():
            yield SetBasedStaging()
    else:
        yield PortableStaging()


def rollups_rebuild(*, start: date, end: date) -> None:
    """Recompute the per-account and per-course-service rollups of [start, end) from raw rows.
    Costs of a recycled account while it waits in the organization's pool belong to no course,
    and rows of accounts the portal does not know belong to no account: both are left out."""
    if set_based():
        _rollups_rebuild_set_based(start=start, end=end)
    else:
        rollups_rebuild_portable(start=start, end=end)
    account_cost_totals_rebuild()


def set_based() -> bool:
    return connection.vendor == "postgresql"


# --- PostgreSQL: COPY, then set-based statements ---------------------------------------------------

STAGING_TABLE = "cost_staging"
# PostgreSQL lets a hash use twice this (hash_mem_multiplier), once per sync.
SYNC_WORK_MEM = "128MB"
# The columns of a CostRow, in its order, then the kind of figure.
STAGING_COLUMNS = "day, aws_account_id, service, amount, currency, estimated, kind"


@contextmanager
def _staging_table() -> Iterator[None]:
    """A temporary table, for this connection only and never written to the WAL. It is created
    outside the sync's transaction, so that copying pages needs no transaction held open while
    AWS answers, and dropped afterwards."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE {STAGING_TABLE} (day date NOT NULL, aws_account_id text NOT NULL, "
            "service text NOT NULL, amount numeric NOT NULL, currency text NOT NULL, "
            "estimated boolean NOT NULL, kind text NOT NULL)"
        )
    try:
        yield
    finally:
        # In a transaction that failed, PostgreSQL refuses every statement until the rollback,
        # which drops a table created in that transaction anyway.
        if not _transaction_failed():
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE {STAGING_TABLE}")


def _transaction_failed() -> bool:
    status = connection.connection.info.transaction_status if connection.connection else None
    return connection.needs_rollback or status == pq.TransactionStatus.INERROR


class SetBasedStaging:
    def __init__(self) -> None:
        self.figures = 0

    def add(self, rows: Sequence[CostRow], kind_of: KindOf) -> None:
        """One COPY per page: psycopg formats the rows, PostgreSQL parses AWS's decimal text."""
        with connection.cursor() as cursor, cursor.copy(f"COPY {STAGING_TABLE} ({STAGING_COLUMNS}) FROM STDIN") as copy:
            write_row = copy.write_row
            for row in rows:
                write_row((*row, kind_of(row)))
        self.figures += len(rows)

    def store(self, *, sync: CostSync, start: date, end: date) -> int:
        with connection.cursor() as cursor:
            # For this transaction only: the MERGE's hash of the window's stored figures (a month
            # of 10,000 accounts is 2.8 million) fits in memory instead of spilling to disk in
            # batches, which made re-reading that month half again as long.
            cursor.execute(f"SET LOCAL work_mem = '{SYNC_WORK_MEM}'")
            cursor.execute(UPSERT.format(**TABLES), {"sync": sync.pk, "start": start, "end": end})
            # Every figure AWS reported now carries this sync: any other in the window is one
            # AWS revised away.
            cursor.execute(
                f"DELETE FROM {TABLES['records']} WHERE day >= %s AND day < %s AND sync_id <> %s",
                [start, end, sync.pk],
            )
        return self.figures


TABLES = {
    "records": CostRecord._meta.db_table,
    "accounts": MemberAccount._meta.db_table,
    "account_days": AccountDailyCost._meta.db_table,
    "service_days": CourseServiceDailyCost._meta.db_table,
    "staging": STAGING_TABLE,
}

# AccountOwners in SQL: each record of an AWS account owns the days from its costs_since (none:
# from the start) until the next record's; the first record also owns the days before its own
# costs_since. Ties go to the later record, as in AccountOwners' sort. Unchanged figures are
# written too: each carries the last sync that reported it, which the delete relies on (and the
# table's half-empty pages make that rewrite a HOT update: migration 0010).
#
# MERGE rather than INSERT … ON CONFLICT: it joins the staged figures to the stored ones once,
# where ON CONFLICT probes the unique index for every row before inserting it: a first sync
# (every figure new) and a re-sync of 1,000 accounts both take about a third less time, a month
# of 10,000 accounts re-read a tenth less (docs/BENCHMARKS.md). The window's bounds, which every figure AWS
# answered lies in, let it read only the window's stored figures (the day index) instead of the
# whole table. MERGE would fail on a figure inserted meanwhile by another sync; there is none,
# syncs holding the cost-sync lock (services/refresh.py).
UPSERT = """
WITH owners AS (
    SELECT
        aws_account_id,
        id AS account_id,
        course_id,
        CASE WHEN row_number() OVER records = 1 THEN '-infinity'::date
             ELSE coalesce(costs_since, '-infinity') END AS owns_from,
        coalesce(lead(coalesce(costs_since, '-infinity'::date)) OVER records, 'infinity') AS owns_until
    FROM {accounts}
    WHERE aws_account_id IS NOT NULL
    WINDOW records AS (PARTITION BY aws_account_id ORDER BY costs_since ASC NULLS FIRST, id)
), figures AS (
    SELECT s.aws_account_id, o.account_id, o.course_id, s.day, s.kind, s.service, s.amount, s.currency, s.estimated
    FROM {staging} s
    LEFT JOIN owners o ON o.aws_account_id = s.aws_account_id AND s.day >= o.owns_from AND s.day < o.owns_until
)
MERGE INTO {records} r
USING figures f
ON r.aws_account_id = f.aws_account_id AND r.day = f.day AND r.kind = f.kind AND r.service = f.service
   AND r.day >= %(start)s AND r.day < %(end)s
WHEN MATCHED THEN UPDATE SET
    amount = f.amount, currency = f.currency, estimated = f.estimated, sync_id = %(sync)s,
    account_id = f.account_id, course_id = f.course_id
WHEN NOT MATCHED THEN
    INSERT (aws_account_id, account_id, course_id, day, kind, service, amount, currency, estimated, sync_id)
    VALUES (f.aws_account_id, f.account_id, f.course_id, f.day, f.kind, f.service, f.amount, f.currency,
            f.estimated, %(sync)s)
"""
# Each rollup of the window from the raw rows in one statement: the totals upserted, written only
# where they differ (a re-sync of unchanged figures writes no rollup row), and the rollups no
# total stands for any more deleted.
ROLLUPS = [
    """
    WITH totals AS (
        SELECT account_id, course_id, day,
               coalesce(sum(amount) FILTER (WHERE kind = %(usage)s), 0) AS usage,
               coalesce(sum(amount) FILTER (WHERE kind <> %(usage)s), 0) AS credits,
               bool_or(estimated) AS estimated
        FROM {records}
        WHERE day >= %(start)s AND day < %(end)s AND account_id IS NOT NULL AND course_id IS NOT NULL
        GROUP BY account_id, course_id, day
    ), gone AS (
        DELETE FROM {account_days} r
        WHERE r.day >= %(start)s AND r.day < %(end)s
          AND NOT EXISTS (SELECT FROM totals t WHERE t.account_id = r.account_id AND t.day = r.day)
    )
    INSERT INTO {account_days} AS r (account_id, course_id, day, usage, credits, estimated)
    SELECT account_id, course_id, day, usage, credits, estimated FROM totals
    ON CONFLICT (account_id, day) DO UPDATE SET
        course_id = excluded.course_id, usage = excluded.usage, credits = excluded.credits,
        estimated = excluded.estimated
    WHERE (r.course_id, r.usage, r.credits, r.estimated)
        IS DISTINCT FROM (excluded.course_id, excluded.usage, excluded.credits, excluded.estimated)
    """,
    """
    WITH totals AS (
        SELECT course_id, day, service, sum(amount) AS usage
        FROM {records}
        WHERE day >= %(start)s AND day < %(end)s AND account_id IS NOT NULL AND course_id IS NOT NULL
          AND kind = %(usage)s
        GROUP BY course_id, day, service
    ), gone AS (
        DELETE FROM {service_days} r
        WHERE r.day >= %(start)s AND r.day < %(end)s
          AND NOT EXISTS (
              SELECT FROM totals t WHERE t.course_id = r.course_id AND t.day = r.day AND t.service = r.service
          )
    )
    INSERT INTO {service_days} AS r (course_id, day, service, usage)
    SELECT course_id, day, service, usage FROM totals
    ON CONFLICT (course_id, day, service) DO UPDATE SET usage = excluded.usage
    WHERE r.usage <> excluded.usage
    """,
]


def _rollups_rebuild_set_based(*, start: date, end: date) -> None:
    parameters: dict[str, date | str] = {"start": start, "end": end, "usage": CostKind.USAGE.value}
    with connection.cursor() as cursor:
        for statement in ROLLUPS:
            cursor.execute(statement.format(**TABLES), parameters)


# --- Portable: the ORM --------------------------------------------------------------------------


class AccountOwners:
    """Which record a day's costs of an AWS account belong to. A recycled account has several
    records; each owns the days from its `costs_since` on, until the next one's."""

    def __init__(self) -> None:
        self._records: dict[str, list[tuple[date, int, int | None]]] = {}
        rows = MemberAccount.objects.exclude(aws_account_id=None).values_list(
            "aws_account_id", "costs_since", "pk", "course_id"
        )
        for aws_id, since, pk, course_id in rows:
            assert aws_id is not None  # for mypy: excluded above
            self._records.setdefault(aws_id, []).append((since or date.min, pk, course_id))
        for records in self._records.values():
            records.sort()

    def owner(self, aws_account_id: str, day: date) -> tuple[int | None, int | None]:
        """(record pk, course pk) for that day, or (None, None) for an account not the portal's."""
        records = self._records.get(aws_account_id)
        if not records:
            return None, None
        _, pk, course_id = next((r for r in reversed(records) if r[0] <= day), records[0])
        return pk, course_id


class PortableStaging:
    def __init__(self) -> None:
        self.rows: list[tuple[CostRow, str]] = []

    def add(self, rows: Sequence[CostRow], kind_of: KindOf) -> None:
        self.rows.extend((row, kind_of(row)) for row in rows)

    def store(self, *, sync: CostSync, start: date, end: date) -> int:
        owners = AccountOwners()
        records = []
        for (day, account_id, key, amount, currency, estimated), kind in self.rows:
            account_pk, course_pk = owners.owner(account_id, day)
            records.append(
                CostRecord(
                    aws_account_id=account_id,
                    account_id=account_pk,
                    course_id=course_pk,
                    day=day,
                    kind=kind,
                    service=key,
                    amount=amount,
                    currency=currency,
                    estimated=estimated,
                    sync=sync,
                )
            )
        CostRecord.objects.bulk_create(
            records,
            batch_size=BATCH,
            update_conflicts=True,
            unique_fields=["aws_account_id", "day", "kind", "service"],
            update_fields=["amount", "currency", "estimated", "sync", "account", "course"],
        )
        # What AWS no longer reports for the window (a revised-away charge) goes too.
        CostRecord.objects.filter(day__gte=start, day__lt=end).exclude(sync=sync).delete()
        return len(records)


def rollups_rebuild_portable(*, start: date, end: date) -> None:
    window = Q(day__gte=start, day__lt=end)
    AccountDailyCost.objects.filter(window).delete()
    CourseServiceDailyCost.objects.filter(window).delete()
    raw = CostRecord.objects.filter(window, account__isnull=False, course__isnull=False)
    per_account = raw.values("account_id", "course_id", "day").annotate(
        usage=Sum("amount", filter=Q(kind=CostKind.USAGE)),
        credits=Sum("amount", filter=~Q(kind=CostKind.USAGE)),
        estimated=_any_estimated(),
    )
    AccountDailyCost.objects.bulk_create(
        [
            AccountDailyCost(
                account_id=row["account_id"],
                course_id=row["course_id"],
                day=row["day"],
                usage=row["usage"] or 0,
                credits=row["credits"] or 0,
                estimated=row["estimated"] == 1,
            )
            for row in per_account
        ],
        batch_size=BATCH,
    )
    per_service = raw.filter(kind=CostKind.USAGE).values("course_id", "day", "service").annotate(usage=Sum("amount"))
    CourseServiceDailyCost.objects.bulk_create([CourseServiceDailyCost(**row) for row in per_service], batch_size=BATCH)


def _any_estimated() -> Max:
    """1 when any row of the group is still an estimate (portable: no boolean MAX in PostgreSQL)."""
    return Max(Case(When(estimated=True, then=Value(1)), default=Value(0), output_field=IntegerField()))
