"""Load the demo: an instructor, a TA and a course with ten students, all able to sign in."""

from datetime import timedelta
from decimal import Decimal

from allauth.account.models import EmailAddress
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from accounts_app.choices import AccessMode, CourseRole, EndPolicy, InviteStatus, MembershipSource
from accounts_app.models import Course, Membership, User
from accounts_app.services.courses import course_create
from portal.aws import emulator

DEMO_PASSWORD = "classroom-demo"
DEMO_DOMAIN = "demo.example.edu"
DEMO_COURSE_CODE = "cloud101-demo"
STUDENT_NAMES = [
    "Ada Lovelace",
    "Alan Turing",
    "Grace Hopper",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Donald Knuth",
    "Frances Allen",
    "Ken Thompson",
    "Margaret Hamilton",
    "Tim Berners-Lee",
    "Radia Perlman",
    "Leslie Lamport",
]
# The demo's story (billing_app/management/commands/demo_aws.py): Alan blows his budget (see
# billing_app/demo.py), Grace asks to keep her account, Ken drops the course, and the last two
# join late. Ada and Barbara keep a small instance running; Donald starts a GPU instance, which
# the course's spend limits do not allow: the portal freezes his account and stops it.
OVER_BUDGET = "Alan Turing"
KEEPER = "Grace Hopper"
DROPPED = "Ken Thompson"
LATE_JOINERS = ["Radia Perlman", "Leslie Lamport"]
SMALL_RUNNERS = ["Ada Lovelace", "Barbara Liskov"]
OVER_THE_LIMIT = "Donald Knuth"


def demo_email(name: str) -> str:
    return f"{name.split()[0].lower()}@{DEMO_DOMAIN}"


class Command(BaseCommand):
    help = "Local emulator only: create (or with --reset, recreate) the demo course and its people, and print logins."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--reset", action="store_true", help="Delete the demo and load it anew.")

    @transaction.atomic
    def handle(self, reset: bool, **options) -> None:
        refuse_unless_local_emulator("seed_demo")
        if reset:
            Membership.objects.filter(course__code=DEMO_COURSE_CODE).delete()
            User.objects.filter(email__endswith=f"@{DEMO_DOMAIN}").delete()
        admin = demo_user("admin@" + DEMO_DOMAIN, "Avery Admin", is_staff=True, is_superuser=True)
        instructor = demo_user("instructor@" + DEMO_DOMAIN, "Irene Instructor", is_instructor=True)
        ta = demo_user("ta@" + DEMO_DOMAIN, "Theo Assistant")
        students = [demo_user(demo_email(name), name) for name in STUDENT_NAMES]

        course = Course.objects.filter(code=DEMO_COURSE_CODE).first() or create_demo_course(instructor)
        enrol(course, instructor, CourseRole.INSTRUCTOR)
        enrol(course, ta, CourseRole.TA)
        for student in students:
            enrol(course, student, CourseRole.STUDENT)

        self.stdout.write(self.style.SUCCESS(f"Demo course {course.code}: {course.name}"))
        self.stdout.write(f"Every demo login uses the password: {DEMO_PASSWORD}")
        for label, user in [("administrator", admin), ("instructor", instructor), ("TA", ta), ("student", students[0])]:
            self.stdout.write(f"  {label:<14} {user.email}")
        self.stdout.write(f"  (and {len(students) - 1} more students @{DEMO_DOMAIN})")


def refuse_unless_local_emulator(command: str) -> None:
    """The demo's people share a published password, an administrator among them, and its story
    deletes and rewrites account records: it belongs on the local emulator only, never on an
    installation that holds real accounts."""
    try:
        emulator.endpoint()
    except ValueError as error:
        raise CommandError(f"{command} runs only against the local AWS emulator (`make run`): {error}") from None


def demo_user(email: str, name: str, **flags) -> User:
    user, created = User.objects.get_or_create(email=email, defaults={"name": name, **flags})
    if created:
        user.set_password(DEMO_PASSWORD)
        user.save(update_fields=["password"])
    EmailAddress.objects.update_or_create(user=user, email=email, defaults={"verified": True, "primary": True})
    return user


def create_demo_course(instructor: User) -> Course:
    today = timezone.localdate()
    return course_create(
        actor=instructor,
        instructor_email=instructor.email,
        name="Cloud Computing Foundations (demo)",
        code=DEMO_COURSE_CODE,
        term="Demo term",
        start_date=today - timedelta(weeks=6),
        end_date=today + timedelta(weeks=9),
        description="A demo course: every student gets their own AWS account in the emulator.",
        budget_per_student=Decimal("50.00"),
        access_mode=AccessMode.IDENTITY_CENTER,
        end_policy=EndPolicy.CLOSE,
        allowed_regions=["us-east-1", "us-west-2"],
        allowed_services=["cloudformation", "cloudwatch", "dynamodb", "ec2", "iam", "lambda", "logs", "s3"],
        billing_contact_email=instructor.email,
        usage_alert_email=instructor.email,
    )


def enrol(course: Course, user: User, role: CourseRole) -> None:
    Membership.objects.update_or_create(
        course=course,
        email=user.email,
        defaults={
            "name": user.name,
            "user": user,
            "role": role,
            "source": MembershipSource.IMPORT,
            "invite_status": InviteStatus.ACCEPTED,
            "accepted_at": timezone.now(),
        },
    )
