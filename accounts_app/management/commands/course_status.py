import json

from django.core.management.base import BaseCommand, CommandError

from accounts_app.choices import CourseRole
from accounts_app.models import Course
from accounts_app.selectors import course_account_counts, roster_members


class Command(BaseCommand):
    help = "Show where every student's AWS account is."

    def add_arguments(self, parser) -> None:
        parser.add_argument("course_code")
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print JSON for scripts.")

    def handle(self, course_code: str, as_json: bool, **options) -> None:
        course = Course.objects.filter(code=course_code.lower()).first()
        if course is None:
            raise CommandError(f"No course has the code “{course_code}”.")
        status = course_status(course)
        if as_json:
            self.stdout.write(json.dumps(status, indent=2))
            return
        self.stdout.write(f"{course.code}: " + ", ".join(f"{n} {s}" for s, n in status["counts"].items()))
        for student in status["students"]:
            state = student["state"] or "no account"
            line = f"  {student['email']:<40} {state:<22} {student['account_id'] or ''}"
            self.stdout.write(line + (f"  {student['last_error']}" if student["last_error"] else ""))


def course_status(course: Course) -> dict:
    students = []
    for member in roster_members(course=course, role=CourseRole.STUDENT):
        account = getattr(member, "aws_account", None)
        students.append(
            {
                "email": member.email,
                "state": account.state if account else None,
                "account_id": account.aws_account_id if account else None,
                "last_error": account.last_error if account else "",
            }
        )
    return {"course": course.code, "counts": course_account_counts(course=course), "students": students}
