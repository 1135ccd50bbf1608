"""The cost report as CSV: per student, per day, per service. Formula-looking cells are
neutralised so that spreadsheets show them as text."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date

from accounts_app.models import Course
from accounts_app.roster_csv import spreadsheet_safe
from billing_app.selectors import report_rows

REPORT_HEADER = ["email", "name", "aws_account_id", "day", "kind", "service", "amount", "currency", "estimated"]


def report_lines(course: Course, start: date, end: date) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values: list) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([spreadsheet_safe(value) for value in values])
        return buffer.getvalue()

    yield line(REPORT_HEADER)
    for record in report_rows(course=course, start=start, end=end):
        member = record.account.membership
        yield line(
            [
                member.email,
                member.name,
                record.aws_account_id,
                record.day,
                record.kind,
                record.service,
                record.amount,
                record.currency,
                record.estimated,
            ]
        )
