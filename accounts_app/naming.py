"""Root emails and account names within AWS's lengths, unique per (course, student).

A course is named by its code for people and its id for uniqueness (`course_key`), a student by
their mailbox name and a hash of their address (`student_key`).

AWS refuses CreateAccount with an email over 64 characters or an account name over 50. A name that
would be longer keeps what fits of the course key and replaces the student's key by a hash of both
keys: two courses (or two students) never share a shortened name, because the hash covers what was
cut. A pattern with too little room for the hash is refused when the portal starts (checks.py).
"""

from __future__ import annotations

import hashlib
import re
from string import Formatter

from django.conf import settings

from accounts_app.models import Course
from portal.aws.organizations import ACCOUNT_NAME_MAX_LENGTH, ROOT_EMAIL_MAX_LENGTH

HASH_LENGTH = 12  # 48 bits: no collision among the accounts an organization can hold
ACCOUNT_NAME_PATTERN = "{course}-{student}"
FIELDS = frozenset({"course", "student"})


def fixed_length(pattern: str) -> int:
    """The characters of `pattern` that are not its fields."""
    return len(pattern.format(course="", student=""))


def pattern_fields(pattern: str) -> list[str]:
    return [field for _, field, _, _ in Formatter().parse(pattern) if field is not None]


def fitted(pattern: str, *, course: str, student: str, limit: int) -> str:
    """`pattern` filled with the course's and the student's keys, in at most `limit` characters."""
    full = pattern.format(course=course, student=student)
    if len(full) <= limit:
        return full
    room = limit - fixed_length(pattern) - HASH_LENGTH
    if room < 0:
        raise ValueError(f"{pattern!r} leaves no room for a {HASH_LENGTH}-character key in {limit} characters.")
    digest = hashlib.sha256(f"{course}\n{student}".encode()).hexdigest()[:HASH_LENGTH]
    return pattern.format(course=course[:room].rstrip("-"), student=digest)


def root_email(pattern: str, *, course: str, student: str) -> str:
    return fitted(pattern, course=course, student=student, limit=ROOT_EMAIL_MAX_LENGTH)


def account_name(*, course: str, student: str) -> str:
    return fitted(ACCOUNT_NAME_PATTERN, course=course, student=student, limit=ACCOUNT_NAME_MAX_LENGTH)


def slug(text: str, length: int) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:length].strip("-")


def student_key(email: str) -> str:
    """A short, stable, readable key for a student: their mailbox name and a hash of the address."""
    digest = hashlib.sha256(email.lower().encode()).hexdigest()[:6]
    return f"{slug(email.split('@')[0], 16)}-{digest}"


def course_key(course: Course) -> str:
    """The course in root emails and account names: its code for people, its id for uniqueness.
    A code can be freed and taken by a new course; the id cannot, so the new course's students
    never get an old student's root email or account name (nor, looked up, their account)."""
    return f"{slug(course.code, 16)}-{course.pk}"


def root_email_for(course: Course, student: str) -> str:
    """Within AWS's 64 characters; a longer address is shortened with a hash."""
    return root_email(settings.PORTAL_ROOT_EMAIL_PATTERN, course=course_key(course), student=student)


def account_name_for(course: Course, student: str) -> str:
    """Within AWS's 50 characters; a longer name is shortened with a hash."""
    return account_name(course=course_key(course), student=student)


def root_email_pattern_problems(pattern: str) -> list[str]:
    """Why AWS would refuse, or two students would share, the root emails of `pattern`."""
    try:
        fields = pattern_fields(pattern)
        pattern.format(course="", student="")
    except (ValueError, KeyError, IndexError) as error:
        return [f"it is not a valid pattern ({error}); use {{course}} and {{student}}"]
    problems = []
    if sorted(fields) != sorted(FIELDS):
        problems.append("it must contain {course} and {student} once each (one address per course and student)")
    if pattern.count("@") != 1 or "{" in pattern.rsplit("@", 1)[-1]:
        problems.append("it must be one address: a mailbox with the fields, then @ and a fixed domain")
    room = ROOT_EMAIL_MAX_LENGTH - fixed_length(pattern) if not problems else HASH_LENGTH
    if room < HASH_LENGTH:
        problems.append(
            f"its fixed text is {fixed_length(pattern)} characters: AWS allows {ROOT_EMAIL_MAX_LENGTH} in "
            f"all, which leaves {room}, fewer than the {HASH_LENGTH} needed for a unique key; "
            "use a shorter mailbox or domain"
        )
    return problems
