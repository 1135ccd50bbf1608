from django.core.management.base import BaseCommand, CommandError

from accounts_app.models import Course
from accounts_app.services.account_requests import VendingError, course_provision_all


class Command(BaseCommand):
    help = "Queue an AWS account for every student of the course who has none."

    def add_arguments(self, parser) -> None:
        parser.add_argument("course_code")

    def handle(self, course_code: str, **options) -> None:
        course = Course.objects.filter(code=course_code.lower()).first()
        if course is None:
            raise CommandError(f"No course has the code “{course_code}”.")
        try:
            count = course_provision_all(actor=None, course=course)
        except VendingError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(self.style.SUCCESS(f"Queued {count} account(s) for {course.code}."))
