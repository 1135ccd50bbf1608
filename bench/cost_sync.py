"""The Cost Explorer sync for 1,000 accounts: requests per sync and ingest rate.

Cost Explorer bills $0.01 a request, so a sync must cost one request per page of results of its
one query family (usage grouped by linked account and service, then credits grouped by linked
account and record type), whatever the number of accounts. moto (in process) is seeded with
ACCOUNTS accounts × DAYS days × 8 services of usage split into P pages, and the credits in
CREDIT_PAGES pages; the sync's own count of requests (CostSync.requests) must be P + CREDIT_PAGES.
Run with `make bench`; `--accounts` and `--pages` change the run.
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

from common import machine, record, setup_django, test_database

DAYS = 14
CREDIT_PAGES = 2
SERVICES = [
    "Amazon Elastic Compute Cloud - Compute",
    "Amazon Relational Database Service",
    "Amazon Simple Storage Service",
    "Amazon SageMaker",
    "AWS Lambda",
    "Amazon CloudWatch",
    "Amazon DynamoDB",
    "Amazon Simple Notification Service",
]


def pages_of(cells: list[tuple], count: int, *, estimated_from) -> list[dict]:
    """`cells` of (day, account id, key, amount) in `count` GetCostAndUsage pages, in order, each
    chained to the next by a NextPageToken (a day may run over two pages, as in AWS)."""
    from tests.support.cost_explorer import page, period

    size = -(-len(cells) // count)
    pages = []
    for number in range(count):
        chunk = cells[number * size : (number + 1) * size]
        days: dict = {}
        for day, account_id, key, amount in chunk:
            days.setdefault(day, []).append((account_id, key, amount))
        token = f"page-{number + 2}" if number < count - 1 else None
        pages.append(
            page(
                *(period(day, groups, estimated=day >= estimated_from) for day, groups in days.items()),
                next_token=token,
            )
        )
    return pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--pages", type=int, nargs="+", default=[1, 8, 32], help="usage pages, one sync each")
    options = parser.parse_args()

    setup_django()
    with test_database():
        from django.utils import timezone
        from moto import mock_aws

        from billing_app.models import AccountDailyCost, CostRecord, CourseServiceDailyCost
        from billing_app.services.costs import costs_sync
        from portal.aws import session
        from tests.factories import CourseFactory
        from tests.support import cost_explorer

        today = timezone.localdate()
        course = CourseFactory(code="bench", start_date=today - timedelta(days=60), end_date=today + timedelta(days=60))
        account_ids = [f"{i:012d}" for i in range(100_000_000_000, 100_000_000_000 + options.accounts)]
        cost_explorer.student_accounts(course, account_ids)
        days = [today - timedelta(days=DAYS - i) for i in range(DAYS)]
        usage = [
            (day, account_id, service, f"{((n * 7 + s * 13 + i * 3) % 97) / 37:.10f}")
            for i, day in enumerate(days)
            for n, account_id in enumerate(account_ids)
            for s, service in enumerate(SERVICES)
        ]
        credits = [(day, account_id, "Credit", "-0.0100000000") for day in days for account_id in account_ids]
        estimated_from = today - timedelta(days=2)

        runs = []
        with mock_aws():
            session.reset()
            in_aws = {"seconds": 0.0, "started": 0.0}

            def before(**_):
                in_aws["started"] = time.perf_counter()

            def after(**_):
                in_aws["seconds"] += time.perf_counter() - in_aws["started"]

            session.add_hook("before-call.ce.GetCostAndUsage", before)
            session.add_hook("after-call.ce.GetCostAndUsage", after)
            for count in options.pages:
                for again in (False, True):
                    if not again:
                        # Each page count starts from an empty database: its first sync inserts.
                        for model in (CostRecord, AccountDailyCost, CourseServiceDailyCost):
                            model.objects.all().delete()
                        cost_explorer.forget()
                        cost_explorer.seed(
                            *pages_of(usage, count, estimated_from=estimated_from),
                            *pages_of(credits, CREDIT_PAGES, estimated_from=estimated_from),
                        )
                    in_aws["seconds"] = 0.0
                    started = time.perf_counter()
                    sync = costs_sync(days=DAYS, today=today)
                    seconds = time.perf_counter() - started
                    runs.append((count, again, sync.requests, sync.rows, seconds, in_aws["seconds"]))
                    assert sync.requests == count + CREDIT_PAGES, (sync.requests, count)
            session.reset()
        stored = (
            CostRecord.objects.count(),
            AccountDailyCost.objects.count(),
            CourseServiceDailyCost.objects.count(),
        )
        measured_on = machine()

    rows = []
    for count, again, requests, synced, seconds, in_aws_seconds in runs:
        portal = seconds - in_aws_seconds
        rows.append(
            f"| {count} + {CREDIT_PAGES} | {'re-sync, same figures' if again else 'first sync, empty database'} "
            f"| {requests} "
            f"| ${requests * 0.01:.2f} | {synced:,} | {seconds:.1f} s | {synced / seconds:,.0f} "
            f"| {portal:.1f} s | {synced / portal:,.0f} |"
        )
    record(
        "cost_sync",
        "Cost Explorer sync",
        f"{options.accounts:,} accounts × {DAYS} days × {len(SERVICES)} services of usage "
        f"({len(usage):,} figures) and a daily credit per account ({len(credits):,} figures), served by "
        "moto in process. The usage answer is split into P pages, the credits into "
        f"{CREDIT_PAGES}; every sync asks one query family for the whole organization and follows "
        "the pages. Each page count starts from an empty database (the first sync inserts every "
        "figure), then syncs the same answers again (every figure is upserted and left as it was).\n\n"
        "| pages (usage + credits) | run | requests | cost | rows | sync time | rows/s | portal's part | rows/s |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n\n"
        "*Requests* is `CostSync.requests`, the sync's own count of GetCostAndUsage calls: always the "
        f"number of pages, P + {CREDIT_PAGES}, and never a request per account. *Sync time* is "
        "`costs_sync` from start to end (the requests, the upsert of every figure, the deletion of "
        "figures AWS stopped reporting and the rebuild of the window's rollups); *portal's part* "
        "leaves out the time inside the GetCostAndUsage calls (moto building and botocore parsing "
        f"the pages). Afterwards the database held {stored[0]:,} raw rows, {stored[1]:,} account-day "
        f"and {stored[2]:,} course-service-day rollup rows: the re-syncs changed no row count.",
        measured_on=measured_on,
    )


if __name__ == "__main__":
    main()
