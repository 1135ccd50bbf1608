"""The course cost dashboard: time and queries for 10 and 1,000 students.

A course of STUDENTS students × DAYS days × 8 services of raw Cost Explorer rows (1.44 M
CostRecord rows by default, made in PostgreSQL with generate_series), rolled up by the sync's own
rollups_rebuild. The dashboard reads the rollups only, so it must take the same number of queries
for 10 and 1,000 students and be faster than the plainest aggregate over the raw rows. Run with
`make bench`; `--students` and `--days` change the run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import timedelta
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


def make_course(code: str, students: int, days: int, today, sync):
    """A course with `students` READY accounts and their raw rows, inserted by PostgreSQL itself."""
    from django.db import connection

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
            WHERE a.course_id = %(course)s
            """,
            {
                "start": course.start_date,
                "days": days,
                "sync": sync.pk,
                "names": [name for name, _ in SERVICES],
                "weights": [weight for _, weight in SERVICES],
                "course": course.pk,
            },
        )
        inserted = cursor.rowcount
    return course, instructor, inserted


def interleaved(works: dict) -> dict[str, tuple[float, int, object]]:
    """name → (median seconds, queries of one run, last result), over RUNS rounds after a warm-up.
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
    return {name: (statistics.median(times[name]), queries[name].pop(), results[name]) for name in works}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=1000)
    parser.add_argument("--days", type=int, default=180)
    options = parser.parse_args()

    setup_django()
    with test_database():
        from django.db import connection
        from django.test import Client
        from django.urls import reverse
        from django.utils import timezone

        from billing_app import selectors
        from billing_app.models import AccountDailyCost, CostSync, CourseServiceDailyCost
        from billing_app.services.cost_store import rollups_rebuild

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
        rollup_rows = AccountDailyCost.objects.count() + CourseServiceDailyCost.objects.count()
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")

        results = {}
        for students, (course, instructor, inserted) in courses.items():

            def dashboard_data(course=course):
                window = selectors.chart_window(course, today)
                return (
                    selectors.course_costs(course=course, today=today),
                    selectors.course_daily_by_service(course=course, start=window[0], end=window[1]),
                    selectors.course_top_services(course=course),
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
            url = reverse(VIEW_NAME, args=[course.pk])

            def render(client=client, url=url):
                response = client.get(url)
                assert response.status_code == 200, f"{url} answered {response.status_code}"
                return response

            works = {"data": dashboard_data, "sql": raw_aggregate, "page": render}
            measured = interleaved(works)
            data_time, data_queries, (costs, chart, _) = measured["data"]
            sql_time, _, sums = measured["sql"]
            # Both ways must agree on what the students spent.
            assert sum(total for _, total in sums) == costs.spend, (
                sum(total for _, total in sums),
                costs.spend,
            )
            assert len(costs.students) == students and len(chart["labels"]) == options.days
            page_time, page_queries, response = measured["page"]
            page = (page_time, page_queries, len(response.content))
            results[students] = (inserted, data_time, data_queries, sql_time, page, costs.spend)
        measured_on = machine()

    large, small = options.students, 10
    rows = []
    for students in (small, large):
        inserted, data_time, data_queries, sql_time, page, spend = results[students]
        page_cells = f"{page[0] * 1000:,.0f} ms | {page[1]} | {page[2] / 1024:,.0f} KiB" if page else "n/a | n/a | n/a"
        rows.append(
            f"| {students:,} | {inserted:,} | {data_time * 1000:,.1f} ms | {data_queries} | {page_cells} "
            f"| {sql_time * 1000:,.1f} ms | ${spend:,.2f} |"
        )
    big = results[large]
    page_note = (
        f"The page is `{VIEW_NAME}` rendered for an instructor through Django's test client (session, "
        "permission and template included; the student table shows 100 students a page)."
    )
    verdict_data = "faster" if big[1] < big[3] else "slower"
    verdict_page = ""
    if big[4]:
        verdict_page = (
            f"; the whole page is {'faster' if big[4][0] < big[3] else 'slower'} ({big[4][0] * 1000:,.0f} ms)"
        )
    same_queries = results[small][2] == big[2] and (not big[4] or results[small][4][1] == big[4][1])
    record(
        "dashboard",
        "Course cost dashboard",
        f"A course of {large:,} students × {options.days} days × {len(SERVICES)} services "
        f"({big[0]:,} raw `CostRecord` rows) next to a course of 10 students; {raw_rows:,} raw rows "
        f"in all, loaded with `INSERT … SELECT generate_series` in {load_seconds:.1f} s, then rolled up "
        f"by `rollups_rebuild` over the {options.days} days in {rollup_seconds:.1f} s ({rollup_rows:,} rollup "
        f"rows). Medians of {RUNS} warm runs, the three measurements taking turns.\n\n"
        "| students | raw rows | dashboard data | queries | page | queries | page size | raw SQL aggregate | spend |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n\n"
        "*Dashboard data* is `course_costs` + `course_daily_by_service` (the course's whole window) + "
        f"`course_top_services`, read from the rollups. {page_note} *Raw SQL aggregate* is "
        "`SELECT account_id, SUM(amount) FROM billing_app_costrecord WHERE course_id = … GROUP BY account_id` "
        "over the raw rows, the least any dashboard reading raw rows would do; both give the same spend.\n\n"
        f"With {large:,} students the dashboard data is **{verdict_data}** than the raw aggregate "
        f"({big[1] * 1000:,.0f} ms against {big[3] * 1000:,.0f} ms){verdict_page}. "
        f"Queries for 10 and {large:,} students: **{'the same' if same_queries else 'different'}**.",
        measured_on=measured_on,
    )


if __name__ == "__main__":
    main()
