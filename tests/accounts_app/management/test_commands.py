"""The import_roster and create_course management commands."""

from datetime import date
from decimal import Decimal
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from accounts_app.choices import AuditAction, CourseRole, InviteStatus, MembershipSource
from accounts_app.models import AuditEvent, Course, Membership
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ROSTER = "email,name,role\nann@school.example,Ann Arbor,student\nbob@school.example,Bob Builder,ta\n"


def run(*args) -> tuple[str, str]:
    stdout, stderr = StringIO(), StringIO()
    call_command(*args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def roster_state(course) -> list[tuple]:
    return list(
        course.memberships.order_by("email").values_list("email", "name", "role", "invite_status", "updated_at")
    )


# --- import_roster --------------------------------------------------------------------------------


def test_import_roster_reports_what_it_did_and_invites_the_new_people(
    personas, tmp_path, django_capture_on_commit_callbacks
):
    path = tmp_path / "fall.csv"
    path.write_text(ROSTER, encoding="utf-8")

    with django_capture_on_commit_callbacks(execute=True):
        stdout, stderr = run("import_roster", "cs101", str(path))

    assert stdout == "Imported fall.csv into cs101: 2 added, 0 updated, 0 unchanged.\n"
    assert stderr == ""
    assert sorted(personas.course.memberships.filter(user=None).values_list("email", "name", "role", "source")) == [
        ("ann@school.example", "Ann Arbor", "student", "import"),
        ("bob@school.example", "Bob Builder", "ta", "import"),
    ]
    assert sorted(message.to[0] for message in mail.outbox) == [
        "ann@school.example",
        "bob@school.example",
    ]
    event = AuditEvent.objects.get(course=personas.course, action=AuditAction.ROSTER_IMPORTED)
    assert event.actor is None
    assert event.actor_label == "system"
    assert event.summary == "Imported fall.csv: 2 added, 0 updated, 0 unchanged"


def test_import_roster_counts_updates_and_unchanged_rows(personas, tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text(ROSTER, encoding="utf-8")
    run("import_roster", "cs101", str(path), "--no-invitations")
    path.write_text(ROSTER.replace("Bob Builder,ta", "Bob Builder,student"), encoding="utf-8")

    stdout, _ = run("import_roster", "CS101", str(path), "--no-invitations")

    assert stdout == "Imported roster.csv into cs101: 0 added, 1 updated, 1 unchanged.\n"
    assert personas.course.memberships.get(email="bob@school.example").role == CourseRole.STUDENT


def test_import_roster_without_invitations_sends_nothing(personas, tmp_path, django_capture_on_commit_callbacks):
    path = tmp_path / "roster.csv"
    path.write_bytes(("\ufeff" + ROSTER).encode("utf-8"))  # as Excel's "CSV UTF-8" writes it

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        run("import_roster", "cs101", str(path), "--no-invitations")

    assert callbacks == []
    assert mail.outbox == []
    assert set(personas.course.memberships.filter(user=None).values_list("invite_status", flat=True)) == {
        InviteStatus.NOT_SENT
    }


def test_import_roster_refuses_an_unknown_course(personas, tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text(ROSTER, encoding="utf-8")

    with pytest.raises(CommandError) as caught:
        run("import_roster", "cs999", str(path))

    assert str(caught.value) == "No course has the code “cs999”."
    assert not Membership.objects.filter(email="ann@school.example").exists()


def test_import_roster_refuses_a_missing_file(personas, tmp_path):
    path = tmp_path / "nowhere.csv"

    with pytest.raises(CommandError) as caught:
        run("import_roster", "cs101", str(path))

    assert str(caught.value) == f"Cannot read {path}: No such file or directory."


def test_import_roster_refuses_a_directory(personas, tmp_path):
    with pytest.raises(CommandError) as caught:
        run("import_roster", "cs101", str(tmp_path))

    assert str(caught.value) == f"Cannot read {tmp_path}: Is a directory."


def test_import_roster_refuses_a_latin1_file(personas, tmp_path):
    path = tmp_path / "roster.csv"
    path.write_bytes("email,name\nzoe@school.example,Zoë\n".encode("latin-1"))  # ë is byte 33
    before = roster_state(personas.course)

    with pytest.raises(CommandError) as caught:
        run("import_roster", "cs101", str(path))

    assert str(caught.value) == (
        "The file is not UTF-8 text (byte 33 is invalid). In your spreadsheet, save it as “CSV UTF-8”."
    )
    assert roster_state(personas.course) == before


def test_import_roster_with_bad_lines_prints_them_and_imports_nothing(
    personas, tmp_path, django_capture_on_commit_callbacks
):
    path = tmp_path / "roster.csv"
    path.write_text(
        "email,name,role\n"
        "ann@school.example,Ann Arbor,student\n"
        "\n"
        "not-an-email,Bob,student\n"
        "carl@school.example,Carl,dean\n"
        "ann@school.example,Ann again,ta\n",
        encoding="utf-8",
    )
    before = roster_state(personas.course)
    events_before = AuditEvent.objects.count()
    stderr = StringIO()

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(CommandError) as caught:
        call_command("import_roster", "cs101", str(path), stdout=StringIO(), stderr=stderr)

    assert str(caught.value) == "Nothing was imported: 3 problem(s) in roster.csv."
    assert stderr.getvalue().splitlines() == [
        "Line 4: “not-an-email” is not a valid email address.",
        "Line 5: Unknown role “dean”. Use instructor, ta or student.",
        "Line 6: ann@school.example is already on line 2. List each person once.",
    ]
    assert roster_state(personas.course) == before
    assert AuditEvent.objects.count() == events_before
    assert mail.outbox == []


def test_import_roster_refuses_to_leave_the_course_without_an_instructor(personas, tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text("email,role\ninstructor@school.example,student\n", encoding="utf-8")
    before = roster_state(personas.course)

    stderr = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("import_roster", "cs101", str(path), stdout=StringIO(), stderr=stderr)

    assert str(caught.value) == "Nothing was imported: 1 problem(s) in roster.csv."
    assert stderr.getvalue() == "This file would leave the course without an instructor.\n"
    assert roster_state(personas.course) == before


def test_import_roster_refuses_an_empty_file(personas, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")

    stderr = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("import_roster", "cs101", str(path), stdout=StringIO(), stderr=stderr)

    assert str(caught.value) == "Nothing was imported: 1 problem(s) in empty.csv."
    assert stderr.getvalue() == "The file is empty.\n"


# --- create_course --------------------------------------------------------------------------------


def create_course_args(**overrides) -> list[str]:
    options = {
        "code": "CS300",
        "name": "Data Systems",
        "instructor": "Prof.Ada@School.example",
        "budget": "75.50",
        "start": "2026-09-01",
        "end": "2026-12-18",
    } | overrides
    args = ["create_course"]
    for option, value in options.items():
        if value is not None:
            args += [f"--{option}", value]
    return args


def test_create_course_invites_an_instructor_without_an_account(db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        stdout, stderr = run(*create_course_args())

    course = Course.objects.get()
    assert stdout == (
        "Created cs300 (Fall 2026, 2026-09-01 to 2026-12-18); invited Prof.Ada@School.example as instructor.\n"
    )
    assert stderr == ""
    assert (course.code, course.name, course.term) == ("cs300", "Data Systems", "Fall 2026")
    assert (course.start_date, course.end_date) == (date(2026, 9, 1), date(2026, 12, 18))
    assert course.budget_per_student == Decimal("75.50")
    # The same safe defaults as a course made in the browser: burstable families, cheap services.
    assert course.allowed_instance_families == ["t3", "t3a", "t4g"]
    assert course.allowed_services == ["cloudformation", "cloudwatch", "dynamodb", "ec2", "iam", "lambda", "logs", "s3"]
    assert course.created_by is None
    member = course.memberships.get()
    assert (member.email, member.role, member.source, member.user) == (
        "prof.ada@school.example",
        CourseRole.INSTRUCTOR,
        MembershipSource.MANUAL,
        None,
    )
    assert member.invite_status == InviteStatus.SENT
    assert [message.to for message in mail.outbox] == [["prof.ada@school.example"]]
    assert mail.outbox[0].subject == "[Classroom Cloud] You are invited to cs300: Data Systems"
    assert "/invite/" in mail.outbox[0].body
    assert list(AuditEvent.objects.filter(course=course).values_list("action", "summary").order_by("id")) == [
        (
            AuditAction.COURSE_CREATED,
            "Created course cs300 (Data Systems) with instructor prof.ada@school.example",
        ),
        (AuditAction.INVITATIONS_SENT, "Sent 1 invitation(s)"),
    ]


def test_create_course_binds_an_instructor_who_already_has_an_account(db, django_capture_on_commit_callbacks):
    prof = UserFactory(email="prof.ada@school.example", name="Ada Lovelace")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        stdout, _ = run(*create_course_args())

    assert stdout == (
        "Created cs300 (Fall 2026, 2026-09-01 to 2026-12-18); added Prof.Ada@School.example as instructor.\n"
    )
    member = Course.objects.get(code="cs300").memberships.get()
    assert (member.user, member.name, member.invite_status) == (
        prof,
        "Ada Lovelace",
        InviteStatus.ACCEPTED,
    )
    assert member.accepted_at is not None
    assert callbacks == []
    assert mail.outbox == []


def test_create_course_without_an_end_runs_fifteen_weeks_and_names_the_term(db):
    run(*create_course_args(start="2026-01-12", end=None))

    course = Course.objects.get()
    assert (course.term, course.start_date, course.end_date) == (
        "Spring 2026",
        date(2026, 1, 12),
        date(2026, 4, 27),
    )


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        (
            "start",
            "2026-02-30",
            "Error: argument --start: invalid fromisoformat value: '2026-02-30'",
        ),
        ("end", "next friday", "Error: argument --end: invalid fromisoformat value: 'next friday'"),
    ],
)
def test_create_course_refuses_a_malformed_date(db, option, value, message):
    with pytest.raises(CommandError) as caught:
        run(*create_course_args(**{option: value}))

    assert str(caught.value) == message
    assert not Course.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        (
            {"start": "2026-12-01", "end": "2026-09-01"},
            "end_date: The course must end on or after its start date.",
        ),
        ({"budget": "lots"}, "budget_per_student: Enter a number."),
        ({"budget": "0"}, "budget_per_student: The budget per student must be more than $0."),
        ({"budget": "-20"}, "budget_per_student: The budget per student must be more than $0."),
        (
            {"budget": "10.505"},
            "budget_per_student: Ensure that there are no more than 2 decimal places.",
        ),
        (
            {"code": "cs 300!"},
            "code: Enter a valid “slug” consisting of letters, numbers, underscores or hyphens.",
        ),
    ],
)
def test_create_course_refuses_invalid_values_and_names_the_problem(db, overrides, problem):
    with pytest.raises(CommandError) as caught:
        run(*create_course_args(**overrides))

    assert str(caught.value) == f"The course was not created.\n{problem}"
    assert not Course.objects.exists()
    assert not Membership.objects.exists()
    assert mail.outbox == []


def test_create_course_refuses_a_code_already_in_use(db):
    run(*create_course_args())

    with pytest.raises(CommandError) as caught:
        run(*create_course_args(name="Another", instructor="other@school.example"))

    assert str(caught.value) == ("The course was not created.\ncode: Course with this Code already exists.")
    assert list(Course.objects.values_list("name", flat=True)) == ["Data Systems"]
