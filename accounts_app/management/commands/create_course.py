from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts_app.forms import (
    DEFAULT_INSTANCE_FAMILIES,
    DEFAULT_REGIONS,
    DEFAULT_SERVICES,
    CourseForm,
)
from accounts_app.models import Course
from accounts_app.services.courses import course_create
from accounts_app.services.invitations import invitations_enqueue

DEFAULT_LENGTH = timedelta(weeks=15)


def term_of(day: date) -> str:
    season = "Spring" if day.month <= 5 else "Summer" if day.month <= 8 else "Fall"
    return f"{season} {day.year}"


# Left at the model's defaults; an instructor changes them in the course settings.
END_OF_COURSE_FIELDS = ("end_notice_days", "grace_days", "handover_allowed")


class Command(BaseCommand):
    help = "Create a course with its first instructor (who is invited by email)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--code", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument("--instructor", required=True, metavar="EMAIL")
        parser.add_argument("--budget", default="100", metavar="USD", help="Per student (100).")
        parser.add_argument("--start", type=date.fromisoformat, metavar="YYYY-MM-DD")
        parser.add_argument("--end", type=date.fromisoformat, metavar="YYYY-MM-DD")
        parser.add_argument("--term", help="e.g. 'Fall 2026' (default: from the start date)")

    def handle(self, **options) -> None:
        start = options["start"] or timezone.localdate()
        end = options["end"] or start + DEFAULT_LENGTH
        form = CourseForm(
            data={
                "name": options["name"],
                "code": options["code"],
                "term": options["term"] or term_of(start),
                "start_date": start,
                "end_date": end,
                "budget_per_student": options["budget"],
                "budget_period": "course",
                "freeze_at_percent": 100,
                "spike_multiple": "3",
                "access_mode": "identity_center",
                "end_policy": "close",
                **{name: Course._meta.get_field(name).default for name in END_OF_COURSE_FIELDS},
                "allowed_regions": DEFAULT_REGIONS,
                "allowed_services": ", ".join(DEFAULT_SERVICES),
                "allowed_instance_families": ", ".join(DEFAULT_INSTANCE_FAMILIES),
                "billing_contact_email": options["instructor"],
                "usage_alert_email": options["instructor"],
            }
        )
        if not form.is_valid():
            problems = [
                f"{name}: {' '.join(errors)}" if name != "__all__" else " ".join(errors)
                for name, errors in form.errors.items()
            ]
            raise CommandError("The course was not created.\n" + "\n".join(problems))
        course = course_create(actor=None, instructor_email=options["instructor"], **form.cleaned_data)
        invited = invitations_enqueue(actor=None, course=course)
        self.stdout.write(
            self.style.SUCCESS(
                f"Created {course.code} ({course.term}, {course.start_date} to {course.end_date}); "
                f"{'invited' if invited else 'added'} {options['instructor']} as instructor."
            )
        )
