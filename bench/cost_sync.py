"""The Cost Explorer sync: requests per sync and ingest rate, for 1,000 accounts and for a month of 10,000.

Cost Explorer bills $0.01 a request, so a sync must cost one request per page of results of its
one query family (usage grouped by linked account and service, then credits grouped by linked
account and record type), whatever the number of accounts. Two configurations:

- ACCOUNTS accounts × DAYS days × 8 services of usage split into P pages, and a daily credit per
  account in CREDIT_PAGES pages, served by moto in process. Each page count syncs RUNS times into
  an empty database (a first sync inserts every figure), each followed by a re-sync of the same
  answers (every figure is upserted and left as it was); medians are reported. The sync's own
  count of requests (CostSync.requests) must be P + CREDIT_PAGES.
- MONTH_ACCOUNTS accounts × MONTH_DAYS days × 8 services and a daily credit per account: a whole
  month, as the sync re-reads the previous month until AWS marks it final. That is 2.8 million
  figures, more than moto can hold and serialize in reasonable time and memory, so each page
  (one day) is built when asked, by a botocore before-call hook (as botocore's Stubber answers):
  the answers still go through portal/aws/costs.py (paging, the request meter, the parsing) and
  the whole sync. A first sync, then RUNS re-reads; their median is compared with the sync
  interval (CELERY_BEAT_SCHEDULE "sync-costs").

Run with `make bench`; `--accounts`, `--pages`, `--month-accounts` and `--runs` change the run.
The last line printed is the ingest rate of the re-sync of ACCOUNTS accounts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from datetime import date, timedelta

from common import machine, record, setup_django, test_database

DAYS = 14
MONTH_DAYS = 31
CREDIT_PAGES = 2
RUNS = 3
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
# The amounts cycle through 97 values, as AWS writes them (ten decimal places).
AMOUNTS = [f"{k / 37:.10f}" for k in range(97)]
CREDIT = "-0.0100000000"


def amount(account: int, service: int, day: int) -> str:
    return AMOUNTS[(account * 7 + service * 13 + day * 3) % 97]


def pages_of(cells: list[tuple], count: int, *, estimated_from: date) -> list[dict]:
    """`cells` of (day, account id, key, amount) in `count` GetCostAndUsage pages, in order, each
    chained to the next by a NextPageToken (a day may run over two pages, as in AWS)."""
    from tests.support.cost_explorer import page, period

    size = -(-len(cells) // count)
    pages = []
    for number in range(count):
        chunk = cells[number * size : (number + 1) * size]
        days: dict = {}
        for day, account_id, key, value in chunk:
            days.setdefault(day, []).append((account_id, key, value))
        token = f"page-{number + 2}" if number < count - 1 else None
        pages.append(
            page(
                *(period(day, groups, estimated=day >= estimated_from) for day, groups in days.items()),
                next_token=token,
            )
        )
    return pages


class MonthOfPages:
    """GetCostAndUsage's answers for a month of many accounts, one day a page, each built when it
    is asked for. A botocore before-call handler: what it returns is the call's parsed answer,
    and no request leaves the process."""

    def __init__(self, account_ids: list[str], days: list[date], *, estimated_from: date):
        self.account_ids, self.days, self.estimated_from = account_ids, days, estimated_from

    def __call__(self, params: dict, **_) -> tuple:
        from botocore.awsrequest import AWSResponse

        from tests.support.cost_explorer import page, period

        asked = json.loads(params["body"])
        token = asked.get("NextPageToken")
        number = int(token.removeprefix("day-")) if token else 0
        day = self.days[number]
        if asked["GroupBy"][1]["Key"] == "SERVICE":
            groups = [
                (account_id, service, amount(n, s, number))
                for n, account_id in enumerate(self.account_ids)
                for s, service in enumerate(SERVICES)
            ]
        else:
            groups = [(account_id, "Credit", CREDIT) for account_id in self.account_ids]
        more = number + 1 < len(self.days)
        answer = page(
            period(day, groups, estimated=day >= self.estimated_from), next_token=f"day-{number + 1}" if more else None
        )
        return AWSResponse(None, 200, {}, None), answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument(
        "--pages", type=int, nargs="+", default=[1, 8, 32], help="usage pages of the first configuration"
    )
    parser.add_argument("--month-accounts", type=int, default=10_000, help="accounts of the month's configuration")
    parser.add_argument("--runs", type=int, default=RUNS, help="runs of each measurement (the median is reported)")
    options = parser.parse_args()

    setup_django()
    load_before = os.getloadavg()[0]
    with test_database():
        from django.conf import settings
        from django.db import connection
        from django.utils import timezone
        from moto import mock_aws

        from billing_app.models import AccountDailyCost, CostRecord, CourseServiceDailyCost
        from billing_app.services.costs import costs_sync
        from portal.aws import session
        from tests.factories import CourseFactory
        from tests.support import cost_explorer

        today = timezone.localdate()
        estimated_from = today - timedelta(days=2)
        course = CourseFactory(code="bench", start_date=today - timedelta(days=60), end_date=today + timedelta(days=60))
        first_id = 100_000_000_000
        account_ids = [f"{i:012d}" for i in range(first_id, first_id + max(options.accounts, options.month_accounts))]
        cost_explorer.student_accounts(course, account_ids[: options.accounts])
        days = [today - timedelta(days=DAYS - i) for i in range(DAYS)]
        usage = [
            (day, account_id, service, amount(n, s, i))
            for i, day in enumerate(days)
            for n, account_id in enumerate(account_ids[: options.accounts])
            for s, service in enumerate(SERVICES)
        ]
        credits = [
            (day, account_id, "Credit", CREDIT) for day in days for account_id in account_ids[: options.accounts]
        ]
        in_aws = {"seconds": 0.0, "started": 0.0}

        def before(**_):
            in_aws["started"] = time.perf_counter()

        def after(**_):
            in_aws["seconds"] += time.perf_counter() - in_aws["started"]

        def hooks(*extra) -> None:
            session.reset()
            for event, handler in (
                ("before-call.ce.GetCostAndUsage", before),
                *extra,
                ("after-call.ce.GetCostAndUsage", after),
            ):
                session.add_hook(event, handler)

        def empty() -> None:
            with connection.cursor() as cursor:
                tables = (CostRecord, AccountDailyCost, CourseServiceDailyCost)
                cursor.execute(f"TRUNCATE {', '.join(model._meta.db_table for model in tables)}")

        def timed_sync(days_back: int, expected_requests: int) -> tuple[int, float, float]:
            in_aws["seconds"] = 0.0
            started = time.perf_counter()
            sync = costs_sync(days=days_back, today=today)
            seconds = time.perf_counter() - started
            assert sync.requests == expected_requests, (sync.requests, expected_requests)
            return sync.rows, seconds, in_aws["seconds"]

        small: dict[tuple[int, bool], list[tuple[int, float, float]]] = {}
        with mock_aws():
            hooks()
            for count in options.pages:
                cost_explorer.forget()
                cost_explorer.seed(
                    *pages_of(usage, count, estimated_from=estimated_from),
                    *pages_of(credits, CREDIT_PAGES, estimated_from=estimated_from),
                )
                for _ in range(options.runs):
                    empty()
                    for again in (False, True):
                        small.setdefault((count, again), []).append(timed_sync(DAYS, count + CREDIT_PAGES))
            stored = (
                CostRecord.objects.count(),
                AccountDailyCost.objects.count(),
                CourseServiceDailyCost.objects.count(),
            )

            cost_explorer.student_accounts(course, account_ids[options.accounts : options.month_accounts])
            month_days = [today - timedelta(days=MONTH_DAYS - i) for i in range(MONTH_DAYS)]
            month = MonthOfPages(account_ids[: options.month_accounts], month_days, estimated_from=estimated_from)
            hooks(("before-call.ce.GetCostAndUsage", month))
            empty()
            month_first = timed_sync(MONTH_DAYS, 2 * MONTH_DAYS)
            month_again = [timed_sync(MONTH_DAYS, 2 * MONTH_DAYS) for _ in range(options.runs)]
            month_stored = CostRecord.objects.count()
            session.reset()
        interval = settings.CELERY_BEAT_SCHEDULE["sync-costs"]["schedule"]
        measured_on = machine()
    load_after = os.getloadavg()[0]

    def medians(runs: list[tuple[int, float, float]]) -> tuple[int, float, float]:
        """(rows, median sync seconds, median seconds outside GetCostAndUsage)."""
        return runs[0][0], statistics.median(r[1] for r in runs), statistics.median(r[1] - r[2] for r in runs)

    def cells(rows: int, seconds: float, portal: float) -> str:
        return f"{rows:,} | {seconds:.2f} s | {rows / seconds:,.0f} | {portal:.2f} s | {rows / portal:,.0f}"

    table = []
    for (count, again), runs in small.items():
        requests = count + CREDIT_PAGES
        run = "re-sync, same figures" if again else "first sync, empty database"
        table.append(
            f"| {count} + {CREDIT_PAGES} | {run} | {requests} | ${requests * 0.01:.2f} | {cells(*medians(runs))} |"
        )
    month_rows, month_seconds, month_portal = medians(month_again)

    def month_line(run: str, rows: int, seconds: float, portal: float) -> str:
        return f"| {run} | {2 * MONTH_DAYS} | {cells(rows, seconds, portal)} | {seconds / interval:.2%} |"

    month_table = [
        month_line("first sync, empty database (one run)", *medians([month_first])),
        month_line(f"re-read, same figures (median of {options.runs})", month_rows, month_seconds, month_portal),
    ]
    resync_rows, resync_seconds, resync_portal = medians(small[(options.pages[0], True)])
    record(
        "cost_sync",
        "Cost Explorer sync",
        f"**{options.accounts:,} accounts** × {DAYS} days × {len(SERVICES)} services of usage "
        f"({len(usage):,} figures) and a daily credit per account ({len(credits):,} figures), served by "
        "moto in process. The usage answer is split into P pages, the credits into "
        f"{CREDIT_PAGES}; every sync asks one query family for the whole organization and follows "
        f"the pages. For each page count, {options.runs} rounds of a first sync into an empty database "
        "(every figure inserted) and a re-sync of the same answers (every figure upserted and left as "
        "it was, but for the sync that last reported it); medians of the rounds.\n\n"
        "| pages (usage + credits) | run | requests | cost | rows | sync time | rows/s | portal's part | rows/s |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|\n" + "\n".join(table) + "\n\n"
        f"**A month of {options.month_accounts:,} accounts**: {MONTH_DAYS} days × {len(SERVICES)} services "
        f"and a daily credit per account ({month_rows:,} figures), as the sync re-reads the previous "
        "month whole until AWS marks it final. moto cannot serve that many figures in reasonable "
        "time and memory (it would hold and serialize every one, and botocore parse them all), so "
        "each page, one day of every account, is built when the sync asks for it by a botocore "
        "`before-call` handler, the way botocore's Stubber answers: the pages still go through "
        "`portal/aws/costs.py` (paging, the request meter, the parsing into rows) and the whole sync, "
        "and what is left out is the HTTP round trip and botocore's parsing of the JSON (inside the "
        "GetCostAndUsage calls either way). Each page is copied into the staging table as it "
        "arrives, so the sync holds one page in memory, not the month.\n\n"
        "| run | requests | rows | sync time | rows/s | portal's part | rows/s | share of the sync interval |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|\n" + "\n".join(month_table) + "\n\n"
        f'The sync runs every {interval / 3600:g} hours (`CELERY_BEAT_SCHEDULE["sync-costs"]`): re-reading '
        f"the month took **{month_seconds / interval:.2%}** of the interval ({month_seconds:.0f} s of "
        f"{interval:,} s).\n\n"
        "*Requests* is `CostSync.requests`, the sync's own count of GetCostAndUsage calls: always the "
        f"number of pages (P + {CREDIT_PAGES}; a page a day for each query of the month), never a "
        "request per account. *Sync time* is `costs_sync` from start to end (the requests, the COPY of "
        "each page into a temporary staging table, one `MERGE` of the window that attaches "
        "every figure to its account record by a join, one `DELETE` of the figures AWS stopped "
        "reporting, the window's rollups upserted from `INSERT … SELECT … GROUP BY` where they changed, "
        "the commit); "
        "*portal's part* leaves out the time inside the GetCostAndUsage calls (moto building and "
        "botocore parsing the pages, or the handler building them). After the first configuration "
        f"the database held {stored[0]:,} raw rows, {stored[1]:,} account-day and {stored[2]:,} "
        f"course-service-day rollup rows, after the month {month_stored:,} raw rows: the re-syncs "
        "changed no row count. The machine is shared: its load average was "
        f"{load_before:.1f} when the run started and {load_after:.1f} when it ended.",
        measured_on=measured_on,
    )
    print(
        f"Cost sync ingest, re-sync of {options.accounts:,} accounts: {resync_rows / resync_portal:,.0f} rows/s "
        f"outside GetCostAndUsage ({resync_rows / resync_seconds:,.0f} rows/s with moto's answers)"
    )


if __name__ == "__main__":
    main()
