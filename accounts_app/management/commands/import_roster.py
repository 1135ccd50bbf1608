from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from accounts_app.models import Course
from accounts_app.roster_csv import decode_roster
from accounts_app.services.rosters import RosterImportError, RowOutcome, roster_import


class Command(BaseCommand):
    help = "Import a roster CSV (columns email, name, role) into a course, all or nothing."

    def add_arguments(self, parser) -> None:
        parser.add_argument("course_code")
        parser.add_argument("csv_file", type=Path)
        parser.add_argument("--no-invitations", action="store_true", help="Do not email invitations.")

    def handle(self, course_code: str, csv_file: Path, no_invitations: bool, **options) -> None:
        course = Course.objects.filter(code=course_code.lower()).first()
        if course is None:
            raise CommandError(f"No course has the code “{course_code}”.")
        try:
            text = decode_roster(csv_file.read_bytes())
        except OSError as error:
            raise CommandError(f"Cannot read {csv_file}: {error.strerror}.") from None
        except ValueError as error:
            raise CommandError(str(error)) from None
        try:
            plan = roster_import(
                actor=None,
                course=course,
                text=text,
                send_invitations=not no_invitations,
                source_name=csv_file.name,
            )
        except RosterImportError as error:
            for problem in error.errors:
                self.stderr.write(str(problem))
            raise CommandError(f"Nothing was imported: {len(error.errors)} problem(s) in {csv_file.name}.") from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {csv_file.name} into {course.code}: "
                f"{plan.count(RowOutcome.ADD)} added, {plan.count(RowOutcome.UPDATE)} updated, "
                f"{plan.count(RowOutcome.UNCHANGED)} unchanged."
            )
        )
