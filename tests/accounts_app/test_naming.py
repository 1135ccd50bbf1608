"""Root emails and account names stay within AWS's lengths (64 and 50 characters) and never collide
between courses or students; a pattern with no room for a unique key is refused at start.

moto accepts any length; AWS refuses CreateAccount with a longer email or name, so the portal must
never send one (checked by counting the requests that leave the client)."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from accounts_app.naming import account_name_for, root_email_for, student_key
from portal.aws import organizations
from portal.aws.errors import PermanentAwsError
from tests.factories import CourseFactory
from tests.support.aws_script import AwsScript

LONG_PATTERN = "aws-students+{course}-{student}@cloud.engineering.school.example.edu"
# Students whose keys share their readable part (the mailbox's first 16 characters).
STUDENTS = [f"firstname.lastname.middle@{school}.example.edu" for school in ("north", "south", "east", "west")]


@pytest.fixture
def long_courses(db):
    # The same long code prefix twice, with large ids: their keys differ only past what fits.
    return [CourseFactory(pk=10**15 + n, code=f"distributed-systems-engineering-{n}") for n in range(2)]


def test_long_root_emails_fit_in_64_characters_and_stay_unique(settings, long_courses):
    settings.PORTAL_ROOT_EMAIL_PATTERN = LONG_PATTERN
    emails = [root_email_for(course, student_key(email)) for course in long_courses for email in STUDENTS]

    assert max(len(email) for email in emails) <= 64
    assert len(set(emails)) == len(emails)
    assert all(email.startswith("aws-students+d") for email in emails)
    assert all(email.endswith("@cloud.engineering.school.example.edu") for email in emails)


def test_a_root_email_that_fits_is_not_changed(settings, db):
    settings.PORTAL_ROOT_EMAIL_PATTERN = "aws+{course}-{student}@school.example.edu"
    course = CourseFactory(code="cs101")
    assert root_email_for(course, "ann-abc123") == f"aws+cs101-{course.pk}-ann-abc123@school.example.edu"


def test_long_account_names_fit_in_50_characters_and_stay_unique(long_courses):
    names = [account_name_for(course, student_key(email)) for course in long_courses for email in STUDENTS]

    assert max(len(name) for name in names) <= 50
    assert len(set(names)) == len(names)


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("a-very-long-mailbox-for-the-school+{course}-{student}@students.school.example.edu", "fewer than the 12"),
        ("aws+{student}@school.example.edu", "{course} and {student}"),
        ("aws+{course}-{student}", "one address"),
    ],
)
def test_a_root_email_pattern_that_cannot_work_is_refused_by_manage_py_check(settings, pattern, problem):
    settings.PORTAL_ROOT_EMAIL_PATTERN = pattern
    with pytest.raises(SystemCheckError) as refused:
        call_command("check")
    assert "PORTAL_ROOT_EMAIL_PATTERN" in str(refused.value)
    assert problem in str(refused.value)


def test_the_default_pattern_passes_the_check(settings):
    settings.PORTAL_ROOT_EMAIL_PATTERN = "aws+{course}-{student}@school.example.edu"
    call_command("check")


def test_create_account_is_never_sent_with_an_email_aws_would_refuse(db, aws):
    script = AwsScript(aws)
    script.always("organizations", "CreateAccount", "moto answers")
    too_long = "a" * 50 + "@school.example.edu"

    with pytest.raises(PermanentAwsError, match="too long"):
        organizations.create_account(email=too_long, account_name="ok", tags={}, role_name="Admin")

    assert script.sent["CreateAccount"] == 0
