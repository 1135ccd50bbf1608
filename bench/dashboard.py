"""The course cost dashboard and the administrators' organization overview: time and queries.

A course of STUDENTS students × DAYS days × 8 services of raw Cost Explorer rows (1.44 M
CostRecord rows by default, made in PostgreSQL with generate_series), rolled up by the sync's own
rollups_rebuild, next to a course of 10 students. The dashboard reads the rollups only (each
account's total, the course's days by service), so it must take the same number of queries for 10
and 1,000 students, and its data at most a tenth of the time of the plainest aggregate over the
raw rows, measured in the same run. Then COURSES courses × 200 students join the organization,
their daily rollups made with generate_series, for the administrators' overview. Run with
`make bench`; `--students`, `--days` and `--courses` change the run. The last line printed is the
ratio of the dashboard's data to the raw aggregate.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date, timedelta
from decimal import Decimal

from common import machine, record, setup_django, test_database

SERVICES = [
    ("Amazon Elastic Compute Cloud - Compute", 3.0),
    ("Amazon Relational Database Service", 1.5),
    ("Amazon Simple Storage Service", 0.8),
    ("Amazon SageMaker", 0.5),
    ("AWS Lambda", 0.3),
    ("Amazon CloudWatch", 0.2),
    ("Amazon DynamoDB", 0.1),
    ("Amazon Simple Notification Service", 0.05),
]
RUNS = 7  # measured runs after one warm-up; the median is reported
VIEW_NAME = "billing:costs"
OVERVIEW_NAME = "billing:organization"
TARGET_RATIO = 0.1  # dashboard data ÷ raw aggregate
STUDENTS_PER_COURSE = 200  # in the organization's courses
# How the organization's students' accounts are spread over states, per course of 200.
ORGANIZATION_STATES = [("ready", 180), ("frozen", 10), ("ended", 6), ("closed", 4)]


def make_course(code: str, students: int, days: int, today, sync):
    """A course with `students` READY accounts and their raw rows, inserted by PostgreSQL itself."""
    from accounts_app.choices import CourseRole
    from billing_app.models import Alert, AlertKind, StudentBudget
    from tests.factories import CourseFactory, MembershipFactory, UserFactory
    from tests.support.cost_explorer import student_accounts

    course = CourseFactory(
        code=code,
        start_date=today - timedelta(days=days - 1),
        end_date=today + timedelta(days=30),
        budget_per_student=Decimal("600.00"),
    )
    instructor = UserFactory(email=f"instructor-{code}@bench.example.edu")
    MembershipFactory(course=course, user=instructor, role=CourseRole.INSTRUCTOR)
    prefix = {"large": "1", "small": "2"}[code.split("-")[0]]
    accounts = student_accounts(course, [f"{prefix}{i:011d}" for i in range(students)])
    # Some raised budgets and open alerts, as a real course has.
    StudentBudget.objects.bulk_create(StudentBudget(account=a, amount_override=Decimal(900)) for a in accounts[::10])
    Alert.objects.bulk_create(
        Alert(
            account=a,
            course=course,
            kind=AlertKind.ACTUAL_50,
            period="course",
            message="Half of the budget spent",
            spend=Decimal(300),
            budget=Decimal(600),
        )
        for a in accounts[::7]
    )
    inserted = usage_rows_insert(course, start=course.start_date, days=days, sync=sync)
    return course, instructor, inserted


def usage_rows_insert(course, *, start: date, days: int, sync) -> int:
    """`days` days from `start` of usage of every READY account of `course`, a row per service of
    SERVICES, inserted by PostgreSQL itself. Returns the number of rows."""
    from django.db import connection

    from accounts_app.choices import AccountState

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO billing_app_costrecord
                (aws_account_id, account_id, course_id, day, kind, service, amount, currency, estimated, sync_id)
            SELECT a.aws_account_id, a.id, a.course_id, %(start)s::date + d.i, 'usage', s.name,
                   round((((a.id * 31 + d.i * 17 + s.i * 7) %% 97) / 97.0 * s.weight)::numeric, 6),
                   'USD', d.i >= %(days)s - 3, %(sync)s
            FROM accounts_app_memberaccount a
            CROSS JOIN generate_series(0, %(days)s - 1) AS d(i)
            CROSS JOIN unnest(%(names)s::text[], %(weights)s::float8[]) WITH ORDINALITY AS s(name, weight, i)
            WHERE a.course_id = %(course)s AND a.state = %(ready)s
            """,
            {
                "start": start,
                "days": days,
                "sync": sync.pk,
                "names": [name for name, _ in SERVICES],
                "weights": [weight for _, weight in SERVICES],
                "course": course.pk,
                "ready": AccountState.READY,
            },
        )
        return cursor.rowcount


def make_organization(courses: int, days: int, today) -> int:
    """`courses` courses of STUDENTS_PER_COURSE students in ORGANIZATION_STATES, an open alert for
    every seventh, and their daily rollups (one row per account and day) inserted by PostgreSQL.
    Returns the number of daily rows."""
    from django.db import connection

    from billing_app.models import Alert, AlertKind
    from tests.factories import CourseFactory
    from tests.support.cost_explorer import student_accounts

    course_ids = []
    for number in range(courses):
        course = CourseFactory(
            code=f"org-{number:03d}", start_date=today - timedelta(days=days - 1), end_date=today + timedelta(days=30)
        )
        course_ids.append(course.pk)
        accounts, first = [], 0
        for state, count in ORGANIZATION_STATES:
            ids = [f"3{number:03d}{i:08d}" for i in range(first, first + count)]
            accounts += student_accounts(course, ids, state=state)
            first += count
        Alert.objects.bulk_create(
            Alert(
                account=a,
                course=course,
                kind=AlertKind.ACTUAL_80,
                period="course",
                message="80% of the budget spent",
                spend=Decimal(80),
                budget=Decimal(100),
            )
            for a in accounts[::7]
        )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO billing_app_accountdailycost (account_id, course_id, day, usage, credits, estimated)
            SELECT a.id, a.course_id, %(start)s::date + d.i,
                   round((((a.id * 31 + d.i * 17) %% 97) / 97.0 * 6.45)::numeric, 6), 0, d.i >= %(days)s - 3
            FROM accounts_app_memberaccount a
            CROSS JOIN generate_series(0, %(days)s - 1) AS d(i)
            WHERE a.course_id = ANY(%(courses)s)
            """,
            {"start": today - timedelta(days=days - 1), "days": days, "courses": course_ids},
        )
        return cursor.rowcount


def interleaved(works: dict) -> dict[str, tuple[list[float], int, object]]:
    """name → (seconds of each of RUNS rounds after a warm-up, queries of one run, last result).
    The works take turns, so that a busy machine slows them alike."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for work in works.values():
        work()
    times: dict[str, list[float]] = {name: [] for name in works}
    queries: dict[str, set[int]] = {name: set() for name in works}
    results: dict[str, object] = {}
    for _ in range(RUNS):
        for name, work in works.items():
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                results[name] = work()
                times[name].append(time.perf_counter() - started)
            queries[name].add(len(captured))
    assert all(len(q) == 1 for q in queries.values()), f"query counts changed between runs: {queries}"
    return {name: (times[name], queries[name].pop(), results[name]) for name in works}


def page_render(client, url: str):
    def render():
        response = client.get(url)
        assert response.status_code == 200, f"{url} answered {response.status_code}"
        return response

    return render


def measure_overview(client, urls: dict[str, str]) -> dict[str, tuple[float, int, int]]:
    """name → (median seconds, queries, page bytes) of each overview page, taking turns."""
    measured = interleaved({name: page_render(client, url) for name, url in urls.items()})
    return {
        name: (statistics.median(runs), queries, len(response.content))
        for name, (runs, queries, response) in measured.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=1000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--courses", type=int, default=50, help=f"organization courses of {STUDENTS_PER_COURSE}")
    options = parser.parse_args()

    setup_django()
    with test_database():
        from django.db import connection
        from django.test import Client
        from django.urls import reverse
        from django.utils import timezone

        from accounts_app.models import Course, MemberAccount
        from billing_app import selectors
        from billing_app.models import AccountCostTotal, AccountDailyCost, CostSync, CourseServiceDailyCost
        from billing_app.services.cost_store import rollups_rebuild
        from billing_app.services.cost_totals import account_cost_totals_rebuild
        from tests.factories import UserFactory

        today = timezone.localdate()
        start = today - timedelta(days=options.days - 1)
        sync = CostSync.objects.create(window_start=start, window_end=today + timedelta(days=1))
        started = time.perf_counter()
        courses = {}
        for code, students in ((f"large-{options.students}", options.students), ("small-10", 10)):
            courses[students] = make_course(code, students, options.days, today, sync)
        raw_rows = sum(inserted for _, _, inserted in courses.values())
        load_seconds = time.perf_counter() - started
        started = time.perf_counter()
        rollups_rebuild(start=start, end=today + timedelta(days=1))
        rollup_seconds = time.perf_counter() - started
        rollup_rows = (
            AccountDailyCost.objects.count() + CourseServiceDailyCost.objects.count() + AccountCostTotal.objects.count()
        )
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")

        results = {}
        for students, (course, instructor, inserted) in courses.items():

            def dashboard_data(course=course):
                window = selectors.chart_window(course, today)
                return (
                    selectors.course_costs(course=course, today=today, sort="-spend"),
                    selectors.course_service_costs(course=course, start=window[0], end=window[1]),
                )

            def raw_aggregate(course=course):
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT account_id, SUM(amount) FROM billing_app_costrecord "
                        "WHERE course_id = %s GROUP BY account_id",
                        [course.pk],
                    )
                    return cursor.fetchall()

            client = Client()
            client.force_login(instructor)
            works = {
                "data": dashboard_data,
                "sql": raw_aggregate,
                "page": page_render(client, reverse(VIEW_NAME, args=[course.pk])),
            }
            measured = interleaved(works)
            data_runs, data_queries, (costs, services) = measured["data"]
            sql_runs, _, sums = measured["sql"]
            # Both ways must agree on what the students spent.
            assert sum(total for _, total in sums) == costs.spend, (sum(total for _, total in sums), costs.spend)
            assert costs.students.paginator.count == students and len(services.chart["labels"]) == options.days
            page_runs, page_queries, response = measured["page"]
            results[students] = {
                "inserted": inserted,
                "data": statistics.median(data_runs),
                "data_queries": data_queries,
                "sql": statistics.median(sql_runs),
                # Round by round: a busy moment slows both sides of a ratio alike.
                "ratio": statistics.median(data / sql for data, sql in zip(data_runs, sql_runs, strict=True)),
                "page": (statistics.median(page_runs), page_queries, len(response.content)),
                "spend": costs.spend,
            }

        admin = UserFactory(email="admin@bench.example.edu", is_staff=True, is_superuser=True)
        admin_client = Client()
        admin_client.force_login(admin)
        overview_url = reverse(OVERVIEW_NAME)
        before = measure_overview(admin_client, {"overview": overview_url})["overview"]
        accounts_before = MemberAccount.objects.count()

        started = time.perf_counter()
        daily_rows = make_organization(options.courses, options.days, today)
        organization_load_seconds = time.perf_counter() - started
        started = time.perf_counter()
        account_cost_totals_rebuild()
        totals_seconds = time.perf_counter() - started
        all_daily_rows = AccountDailyCost.objects.count()
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        accounts = MemberAccount.objects.count()
        a_course = Course.objects.get(code=f"org-{options.courses // 2:03d}")
        filtered_url = f"{overview_url}?course={a_course.pk}&state=ready&q=student-3&sort=email"
        searched_url = f"{overview_url}?q=3{options.courses // 3:03d}&sort=-alerts&page=2"
        overview = measure_overview(
            admin_client, {"overview": overview_url, "filtered": filtered_url, "searched": searched_url}
        )
        measured_on = machine()

    large, small = options.students, 10
    rows = []
    for students in (small, large):
        result = results[students]
        page_time, page_queries, page_bytes = result["page"]
        rows.append(
            f"| {students:,} | {result['inserted']:,} | {result['data'] * 1000:,.1f} ms | {result['data_queries']} "
            f"| {page_time * 1000:,.0f} ms | {page_queries} | {page_bytes / 1024:,.0f} KiB "
            f"| {result['sql'] * 1000:,.1f} ms | {result['ratio']:.3f} | ${result['spend']:,.2f} |"
        )
    big = results[large]
    same_queries = results[small]["data_queries"] == big["data_queries"] and (
        results[small]["page"][1] == big["page"][1]
    )
    overview_rows = [
        (
            f"| {accounts_before:,} (the two courses above) | default: most spent first | "
            f"{before[0] * 1000:,.0f} ms | {before[1]} | {before[2] / 1024:,.0f} KiB |"
        )
    ]
    for name, what in (
        ("overview", "default: most spent first"),
        ("filtered", "one course, ready accounts, searched, by email"),
        ("searched", "searched by account id, by open alerts, page 2"),
    ):
        seconds, queries, size = overview[name]
        overview_rows.append(
            f"| {accounts:,} | {what} | {seconds * 1000:,.0f} ms | {queries} | {size / 1024:,.0f} KiB |"
        )
    slowest = max(seconds for seconds, _, _ in overview.values())
    overview_same_queries = before[1] == overview["overview"][1]
    verdict = "within" if big["ratio"] <= TARGET_RATIO else "over"
    record(
        "dashboard",
        "Course cost dashboard and organization overview",
        f"A course of {large:,} students × {options.days} days × {len(SERVICES)} services "
        f"({big['inserted']:,} raw `CostRecord` rows) next to a course of 10 students; {raw_rows:,} raw rows "
        f"in all, loaded with `INSERT … SELECT generate_series` in {load_seconds:.1f} s, then rolled up "
        f"by `rollups_rebuild` over the {options.days} days in {rollup_seconds:.1f} s ({rollup_rows:,} rollup "
        f"rows: account-days, course-service-days and each account's total). Medians of {RUNS} warm runs, the "
        "three measurements taking turns.\n\n"
        "| students | raw rows | dashboard data | queries | page | queries | page size | raw SQL aggregate "
        "| data ÷ raw | spend |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n\n"
        "*Dashboard data* is what the page shows of the course: `course_costs` (the course's totals and the "
        "first page of its students' table, 100 students sorted by spend, read from each account's total) "
        "and `course_service_costs` (the chart of the course's whole window and its top services). "
        f"The page is `{VIEW_NAME}` rendered for an instructor through Django's test client (session, permission, "
        "the course's meter figures and the template included). *Raw SQL aggregate* is "
        "`SELECT account_id, SUM(amount) FROM billing_app_costrecord WHERE course_id = … GROUP BY account_id` "
        "over the raw rows, the least any dashboard reading raw rows would do; both give the same spend. "
        "*Data ÷ raw* is the median of the rounds' ratios, both measured in the same round. "
        f"Queries for 10 and {large:,} students: **{'the same' if same_queries else 'different'}**.\n\n"
        f"**Organization overview.** Then {options.courses} courses × {STUDENTS_PER_COURSE} students join "
        f"({', '.join(f'{n} {state}' for state, n in ORGANIZATION_STATES)} per course, an open alert for every "
        f"seventh), their {daily_rows:,} account-days inserted with `generate_series`: {accounts:,} accounts in "
        f"all, loaded in {organization_load_seconds:.1f} s. `account_cost_totals_rebuild`, which every "
        f"`rollups_rebuild` runs, summed all {all_daily_rows:,} account-days into each account's total in "
        f"{totals_seconds:.1f} s. `{OVERVIEW_NAME}` rendered for an administrator through Django's test client, "
        f"medians of {RUNS} warm runs taking turns:\n\n"
        "| accounts | table | page | queries | page size |\n"
        "|---:|---|---:|---:|---:|\n" + "\n".join(overview_rows) + "\n\n"
        f"The slowest overview at {accounts:,} accounts takes **{slowest * 1000:,.0f} ms** (target < 300 ms); "
        f"queries at {accounts_before:,} and {accounts:,} accounts: "
        f"**{'the same' if overview_same_queries else 'different'}**.\n\n"
        f"**Dashboard data ÷ raw SQL aggregate at {large:,} students: {big['ratio']:.3f}** "
        f"({big['data'] * 1000:,.1f} ms against {big['sql'] * 1000:,.1f} ms; {verdict} the target of "
        f"{TARGET_RATIO}).",
        measured_on=measured_on,
    )


if __name__ == "__main__":
    main()
