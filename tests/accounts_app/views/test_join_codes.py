"""Join codes that cannot be guessed or overused: wrong codes are rate-limited per person and per
address (429), a code can expire and cap its joins, a course can admit only some email domains,
and a visitor who is not signed in learns nothing about whether a code exists."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import SESSION_KEY
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts_app.choices import AuditAction, CourseRole, MembershipSource
from accounts_app.models import AuditEvent, Course, Membership
from accounts_app.services.courses import (
    JoinCodeLimits,
    course_join_code_enable,
    course_join_code_rotate,
)
from tests.factories import PASSWORD, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

TOO_MANY = "You have tried too many course codes that do not work."
EXPIRED = "This course code stopped working on"
FULL = (
    "This course code has been used by as many people as your instructor allowed. "
    "Ask your instructor for a new code or an invitation."
)


@pytest.fixture(autouse=True)
def empty_cache():
    """Rate limits live in the (Redis) cache, which outlives a test: start and end clean."""
    cache.clear()
    yield
    cache.clear()


def join_path(code: str) -> str:
    return reverse("join_course", kwargs={"code": code})


def open_code(personas, **limits) -> str:
    course = course_join_code_enable(actor=personas.instructor, course=personas.course, limits=JoinCodeLimits(**limits))
    return course.join_code


def newcomer(email: str, *, address: str = "127.0.0.1") -> Client:
    """A signed-in person on no course, browsing from `address`."""
    client = Client(REMOTE_ADDR=address)
    client.force_login(UserFactory(email=email))
    return client


def wrong_code(n: int) -> str:
    return f"ZZZZ-{n:04d}"


def is_member(client: Client, course: Course) -> bool:
    return Membership.objects.filter(course=course, user_id=client.session[SESSION_KEY]).exists()


# --- Guessing -------------------------------------------------------------------------------------


def test_a_person_guessing_codes_gets_429_after_ten_wrong_ones_even_for_the_right_code(personas):
    code = open_code(personas)
    guesser = newcomer("guesser@school.example")

    statuses = [guesser.get(join_path(wrong_code(n))).status_code for n in range(10)]
    refused = guesser.get(join_path(wrong_code(10)))
    right_code_too = guesser.post(join_path(code))

    assert statuses == [404] * 10
    assert refused.status_code == 429
    assert TOO_MANY in refused.text
    # Past the limit a right code answers as a wrong one does: guessing on tells nothing.
    assert right_code_too.status_code == 429
    assert not is_member(guesser, personas.course)
    # Someone else at the same address is not held back by this person's guesses.
    assert newcomer("classmate@school.example").post(join_path(code)).status_code == 302


def test_wrong_codes_from_one_address_are_limited_across_people(personas):
    code = open_code(personas)
    for person in range(3):
        guesser = newcomer(f"guesser{person}@school.example", address="203.0.113.7")
        for n in range(10):
            assert guesser.get(join_path(wrong_code(person * 10 + n))).status_code == 404

    late = newcomer("late@school.example", address="203.0.113.7")
    elsewhere = newcomer("elsewhere@school.example", address="198.51.100.2")

    assert late.get(join_path(code)).status_code == 429
    assert elsewhere.post(join_path(code)).status_code == 302


def test_opening_a_right_code_again_and_again_is_not_limited(personas):
    code = open_code(personas)
    student = newcomer("keen@school.example")

    assert [student.get(join_path(code)).status_code for _ in range(15)] == [200] * 15
    assert student.post(join_path(code)).status_code == 302


# --- Not signed in --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_visitor_not_signed_in_gets_the_same_answer_for_a_real_code_and_a_made_up_one(personas, method):
    code = open_code(personas)
    made_up = "QQQQ-QQQQ"

    real = getattr(Client(), method)(join_path(code))
    fake = getattr(Client(), method)(join_path(made_up))

    assert real.status_code == fake.status_code == 302
    assert real["Location"] == f"{reverse('account_login')}?next={join_path(code)}"
    assert fake["Location"] == real["Location"].replace(code, made_up)
    assert real.content == fake.content == b""
    assert personas.course.memberships.count() == 3


def test_the_code_waits_through_the_sign_in(personas):
    code = open_code(personas)
    UserFactory(email="late.joiner@school.example")
    client = Client()
    to_sign_in = client.get(join_path(code))

    signed_in = client.post(to_sign_in["Location"], {"login": "late.joiner@school.example", "password": PASSWORD})
    confirm = client.get(signed_in["Location"])

    assert (signed_in.status_code, signed_in["Location"]) == (302, join_path(code))
    assert "Join Cloud Computing?" in confirm.text


# --- Expiry and cap -------------------------------------------------------------------------------


def test_an_expired_code_tells_the_signed_in_person_so(personas):
    code = open_code(personas, expires_at=timezone.now() + timedelta(hours=1))
    early, late = newcomer("early@school.example"), newcomer("late@school.example")
    assert early.post(join_path(code)).status_code == 302

    Course.objects.filter(pk=personas.course.pk).update(join_code_expires_at=timezone.now() - timedelta(minutes=1))
    page = late.get(join_path(code))
    post = late.post(join_path(code))

    assert page.status_code == post.status_code == 410
    assert EXPIRED in page.text and "Ask your instructor for a new code or an invitation." in page.text
    assert not is_member(late, personas.course)
    # Someone who joined in time is not turned away: joining again changes nothing.
    assert early.post(join_path(code)).status_code == 302


def test_a_full_code_turns_away_the_next_person_until_a_new_code_is_made(personas):
    code = open_code(personas, max_joins=2)
    first, second, third = (newcomer(f"n{i}@school.example") for i in range(3))
    assert first.post(join_path(code)).status_code == 302
    assert second.post(join_path(code)).status_code == 302

    page = third.get(join_path(code))
    post = third.post(join_path(code))

    assert page.status_code == post.status_code == 409
    assert FULL in post.text
    assert not is_member(third, personas.course)
    assert first.post(join_path(code)).status_code == 302  # already on it: harmless
    course = course_join_code_rotate(actor=personas.instructor, course=personas.course)
    assert (course.join_code_max_joins, course.join_code_joins) == (2, 0)
    assert third.post(join_path(course.join_code)).status_code == 302
    course.refresh_from_db()
    assert course.join_code_joins == 1


def test_claiming_a_roster_entry_through_the_code_counts_toward_the_cap(personas):
    code = open_code(personas, max_joins=1)
    MembershipFactory(course=personas.course, user=None, email="listed@school.example", role=CourseRole.TA)
    listed = newcomer("listed@school.example")

    assert listed.post(join_path(code)).status_code == 302
    assert newcomer("other@school.example").post(join_path(code)).status_code == 409


# --- Email domains --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "verified", "admitted"),
    [
        ("ada@school.edu", True, True),
        ("ada@cs.school.edu", True, True),
        ("ada@gmail.com", True, False),
        ("ada@school.edu.example.com", True, False),
        ("ada@notschool.edu", True, False),
        ("ada@school.edu", False, False),
    ],
)
def test_a_course_can_admit_only_verified_addresses_at_its_domains(personas, email, verified, admitted):
    code = open_code(personas, email_domains=("school.edu",))
    client = Client()
    user = UserFactory(email=email, verified=verified)
    client.force_login(user)

    response = client.post(join_path(code))

    assert is_member(client, personas.course) == admitted
    if not admitted:
        assert response.status_code == 403
        assert "This course is open only to people with an address at school.edu." in response.text


def test_a_second_verified_address_at_the_domain_is_enough(personas):
    code = open_code(personas, email_domains=("school.edu",))
    user = UserFactory(email="ada@gmail.com")
    EmailAddress.objects.create(user=user, email="ada@school.edu", verified=True, primary=False)
    client = Client()
    client.force_login(user)

    assert client.post(join_path(code)).status_code == 302
    assert is_member(client, personas.course)


# --- The instructor sets the limits ---------------------------------------------------------------


def post_join_code(personas, action: str, *, client: Client | None = None, **fields):
    client = client or personas.client("instructor")
    return client.post(
        reverse("courses:join_code", kwargs={"course_id": personas.course.pk}), {"action": action, **fields}
    )


def test_the_instructor_turns_the_code_on_with_its_limits(personas):
    expires = (timezone.localtime() + timedelta(days=7)).replace(second=0, microsecond=0)

    response = post_join_code(
        personas,
        "enable",
        expires_at=expires.strftime("%Y-%m-%dT%H:%M"),
        max_joins="40",
        email_domains="School.edu, @cs.school.edu",
    )

    assert response.status_code == 302
    course = Course.objects.get(pk=personas.course.pk)
    assert (course.join_code_enabled, course.join_code_expires_at, course.join_code_max_joins) == (True, expires, 40)
    assert course.join_email_domains == ["school.edu", "cs.school.edu"]
    event = AuditEvent.objects.get(action=AuditAction.JOIN_CODE_ENABLED)
    assert event.summary == (
        f"Join code is now {course.join_code}; until {expires:%Y-%m-%d %H:%M %Z}, at most 40 people, "
        "only school.edu, cs.school.edu"
    )
    page = personas.client("instructor").get(reverse("courses:detail", kwargs={"course_id": course.pk}))
    assert "0 of at most 40" in page.text
    assert "at school.edu, cs.school.edu only" in page.text


def test_changing_the_limits_keeps_the_code_and_the_joins_counted(personas):
    code = open_code(personas, max_joins=1)
    newcomer("first@school.example").post(join_path(code))

    post_join_code(personas, "limits", max_joins="5", email_domains="", expires_at="")

    course = Course.objects.get(pk=personas.course.pk)
    assert (course.join_code, course.join_code_joins, course.join_code_max_joins) == (code, 1, 5)
    assert AuditEvent.objects.filter(
        action=AuditAction.COURSE_UPDATED, summary="Set the join code's limits: at most 5 people"
    ).exists()
    assert newcomer("second@school.example").post(join_path(code)).status_code == 302


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"email_domains": "school"}, "Not an email domain: school."),
        ({"email_domains": "school.edu, not a domain!"}, "Not an email domain: not, a, domain!."),
        ({"expires_at": "2020-01-01T09:00"}, "Choose a moment in the future, or leave it empty."),
        ({"max_joins": "0"}, "Ensure this value is greater than or equal to 1."),
    ],
)
def test_bad_limits_change_nothing_and_say_why(personas, fields, problem):
    instructor = personas.client("instructor")

    response = post_join_code(personas, "enable", client=instructor, **fields)

    course = Course.objects.get(pk=personas.course.pk)
    assert (course.join_code, course.join_code_enabled) == (None, False)
    shown = instructor.get(response["Location"])
    assert "The join code was not changed. " in shown.text
    assert html.escape(problem) in shown.text
    assert not AuditEvent.objects.filter(course=course).exists()


def test_joining_with_a_code_records_the_source(personas):
    code = open_code(personas, max_joins=3, email_domains=("school.example",))
    client = newcomer("new@school.example")

    client.post(join_path(code))

    member = personas.course.memberships.get(email="new@school.example")
    assert (member.role, member.source) == (CourseRole.STUDENT, MembershipSource.JOIN_CODE)
