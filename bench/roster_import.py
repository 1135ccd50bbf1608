"""Roster import: queries and time for rosters of growing size.

The import must take a constant number of queries, whatever the number of people (bulk inserts
and updates). Run with `make bench`.
"""

from __future__ import annotations

import time

from common import machine, record, setup_django, test_database

SIZES = [10, 1000, 5000]


def roster_csv(size: int, role: str = "student") -> str:
    lines = ["email,name,role"]
    lines += [f"student{i}@bench.example.edu,Student Number {i},{role}" for i in range(size)]
    return "\n".join(lines) + "\n"


def measure(course, text: str) -> tuple[int, float]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts_app.services.rosters import roster_import

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        roster_import(actor=None, course=course, text=text, send_invitations=False)
        elapsed = time.perf_counter() - started
    return len(queries), elapsed


def main() -> None:
    setup_django()
    with test_database():
        from tests.factories import CourseFactory, MembershipFactory

        rows = []
        for size in SIZES:
            course = CourseFactory()
            MembershipFactory(course=course, role="instructor")
            first_queries, first_time = measure(course, roster_csv(size))
            again_queries, again_time = measure(course, roster_csv(size, role="ta"))
            rows.append(
                f"| {size:,} | {first_queries} | {first_time * 1000:,.0f} ms "
                f"| {again_queries} | {again_time * 1000:,.0f} ms |"
            )
        measured_on = machine()

    record(
        "roster_import",
        "Roster import",
        "A first import adds everyone; the re-import changes every role.\n\n"
        "| people | queries, first import | time | queries, re-import | time |\n"
        "|---:|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n\n"
        "Queries are those of `roster_import` itself: a savepoint, one read of the roster, one "
        "`INSERT … ON CONFLICT DO UPDATE` for every added or changed person, one audit row and "
        "the release. The count does not depend on the number of people; the time is mostly "
        "parsing and validating each address.",
        measured_on=measured_on,
    )


if __name__ == "__main__":
    main()
