from datetime import date
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from accounts_app.models import Course
from billing_app.reports import report_lines


class Command(BaseCommand):
    help = "Write a course's cost report (per student, per day, per service) as CSV."

    def add_arguments(self, parser) -> None:
        parser.add_argument("course_code")
        parser.add_argument("--from", dest="start", type=date.fromisoformat, required=True, metavar="YYYY-MM-DD")
        parser.add_argument("--to", dest="end", type=date.fromisoformat, required=True, metavar="YYYY-MM-DD")
        parser.add_argument("--format", choices=["csv"], default="csv")
        parser.add_argument("--output", type=Path, help="File to write (default: standard output).")

    def handle(self, course_code: str, start: date, end: date, output: Path | None, **options) -> None:
        course = Course.objects.filter(code=course_code.lower()).first()
        if course is None:
            raise CommandError(f"No course has the code “{course_code}”.")
        if end < start:
            raise CommandError("--to must be on or after --from.")
        lines = report_lines(course, start, end)
        if output is None:
            for line in lines:
                self.stdout.write(line, ending="")
            return
        with output.open("w", encoding="utf-8", newline="") as handle:
            handle.writelines(lines)
        self.stderr.write(self.style.SUCCESS(f"Wrote {output}."))
