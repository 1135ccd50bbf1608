"""Invitation links, signing up or in from one, claiming roster entries by email, and join codes."""

import html
import re
import time

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import SESSION_KEY
from django.core import mail
from django.core.cache import cache
from django.core.signing import TimestampSigner, b62_encode
from django.test import Client
from django.urls import reverse

from accounts_app.choices import AuditAction, CourseRole, InviteStatus, MembershipSource
from accounts_app.models import AuditEvent, Membership, User
from accounts_app.services.courses import (
    course_archive,
    course_join_code_disable,
    course_join_code_enable,
    course_join_code_rotate,
)
from accounts_app.services.invitations import (
    INVITATION_SESSION_KEY,
    invitation_token,
    memberships_claim_by_email,
)
from tests.factories import PASSWORD, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

DAY = 24 * 60 * 60
NEW_PASSWORD = "Unusual-Pass-Phrase-2026"

EXPIRED = "This invitation has expired. Ask your instructor to send you a new one."
NOT_VALID = "This invitation link is not valid. Check that it was copied whole."
NO_LONGER_VALID = (
    "This invitation is no longer valid: you were removed from the roster "
    "or your address changed. Ask your instructor for a new invitation."
)


@pytest.fixture(autouse=True)
def no_rate_limits_left_from_earlier_runs():
    """allauth keeps rate limits (e.g. one confirmation email per address every 3 minutes) in the
    cache, which is Redis and outlives a test run: start every test from an empty cache."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def invited(personas) -> Membership:
    """Someone on the cs101 roster who has no account yet."""
    return MembershipFactory(
        course=personas.course,
        user=None,
        email="newbie@school.example",
        name="",
        role=CourseRole.TA,
    )


def invite_path(member: Membership) -> str:
    return reverse("invitation", kwargs={"token": invitation_token(member)})


def token_signed_days_ago(member: Membership, days: int, monkeypatch) -> str:
    """An invitation token as if it had been emailed `days` ago."""
    signed_at = b62_encode(int(time.time()) - days * DAY)
    with monkeypatch.context() as patch:
        patch.setattr(TimestampSigner, "timestamp", lambda signer: signed_at)
        return invitation_token(member)


def logged_in_user_id(client: Client) -> int | None:
    user_id = client.session.get(SESSION_KEY)
    return int(user_id) if user_id else None


# --- Opening an invitation link -------------------------------------------------------------------


def test_a_valid_link_shows_the_course_and_keeps_the_token_for_after_sign_in(invited):
    client = Client()
    path = invite_path(invited)

    response = client.get(path)

    assert response.status_code == 200
    assert response.context["member"] == invited
    assert "You are invited to Cloud Computing" in response.text
    assert "cs101 · Fall 2026 · as <strong>TA</strong>" in response.text
    assert "Create your portal account with <strong>newbie@school.example</strong>" in response.text
    assert client.session[INVITATION_SESSION_KEY] == path.split("/")[2]
    invited.refresh_from_db()
    assert invited.user is None


def test_a_link_older_than_the_allowed_age_has_expired(invited, monkeypatch):
    client = Client()
    token = token_signed_days_ago(invited, 15, monkeypatch)  # the default limit is 14 days

    response = client.get(reverse("invitation", kwargs={"token": token}))

    assert response.status_code == 410
    assert str(response.context["error"]) == EXPIRED
    assert f'<p role="alert">{EXPIRED}</p>' in response.text
    assert INVITATION_SESSION_KEY not in client.session


def test_a_link_within_the_allowed_age_still_works(invited, monkeypatch):
    token = token_signed_days_ago(invited, 13, monkeypatch)

    response = Client().get(reverse("invitation", kwargs={"token": token}))

    assert response.status_code == 200
    assert response.context["member"] == invited


def test_the_allowed_age_comes_from_settings(invited, monkeypatch, settings):
    settings.PORTAL_INVITATION_MAX_AGE_DAYS = 1
    token = token_signed_days_ago(invited, 2, monkeypatch)

    response = Client().get(reverse("invitation", kwargs={"token": token}))

    assert response.status_code == 410
    assert str(response.context["error"]) == EXPIRED


def test_a_tampered_link_is_refused(invited, personas):
    token = invitation_token(invited)
    payload, timestamp, signature = token.split(":")
    other = invitation_token(personas.course.memberships.get(email="student@school.example"))
    forged_payload = other.split(":")[0] + ":" + timestamp + ":" + signature
    bad_signature = f"{payload}:{timestamp}:{signature[:-1]}{'B' if signature.endswith('A') else 'A'}"

    for tampered in (forged_payload, bad_signature, "not-a-token"):
        response = Client().get(reverse("invitation", kwargs={"token": tampered}))

        assert response.status_code == 410
        assert str(response.context["error"]) == NOT_VALID


def test_a_link_for_someone_removed_from_the_roster_is_refused(invited):
    path = invite_path(invited)
    invited.delete()

    response = Client().get(path)

    assert response.status_code == 410
    assert str(response.context["error"]) == NO_LONGER_VALID
    assert f'<p role="alert">{NO_LONGER_VALID}</p>' in response.text


def test_a_link_sent_to_an_address_that_was_since_changed_is_refused(invited):
    path = invite_path(invited)
    Membership.objects.filter(pk=invited.pk).update(email="renamed@school.example")

    response = Client().get(path)

    assert response.status_code == 410
    assert str(response.context["error"]) == NO_LONGER_VALID


# --- Accepting while signed in --------------------------------------------------------------------


def test_a_signed_in_user_accepts_and_is_bound_to_the_roster_entry(invited, personas):
    user = UserFactory(email="newbie@school.example", name="New Bie")
    client = Client()
    client.force_login(user)
    path = invite_path(invited)

    page = client.get(path)

    assert page.status_code == 200
    assert "Join cs101" in page.text
    invited.refresh_from_db()
    assert invited.user is None  # looking at the page binds nothing

    response = client.post(path, follow=True)

    detail = reverse("courses:detail", kwargs={"course_id": personas.course.pk})
    assert response.redirect_chain == [(detail, 302)]
    assert "Welcome to Cloud Computing." in response.text
    invited.refresh_from_db()
    assert (invited.user, invited.invite_status, invited.name, invited.role) == (
        user,
        InviteStatus.ACCEPTED,
        "New Bie",
        CourseRole.TA,
    )
    assert invited.accepted_at is not None
    event = AuditEvent.objects.get(action=AuditAction.INVITE_ACCEPTED)
    assert (event.actor, event.course, event.object_id) == (user, personas.course, str(invited.pk))
    assert event.summary == "newbie@school.example accepted the invitation sent to newbie@school.example"


def test_a_user_may_accept_an_invitation_sent_to_another_of_their_addresses(invited):
    user = UserFactory(email="newbie.home@home.example")
    client = Client()
    client.force_login(user)
    path = invite_path(invited)

    page = client.get(path)
    client.post(path)

    assert (
        "You are signed in as newbie.home@home.example; the invitation was sent to newbie@school.example." in page.text
    )
    invited.refresh_from_db()
    assert invited.user == user
    assert AuditEvent.objects.get(action=AuditAction.INVITE_ACCEPTED).summary == (
        "newbie.home@home.example accepted the invitation sent to newbie@school.example"
    )


def test_opening_an_invitation_already_accepted_goes_straight_to_the_course(invited, personas):
    user = UserFactory(email="newbie@school.example")
    client = Client()
    client.force_login(user)
    path = invite_path(invited)
    client.post(path)

    response = client.get(path)

    assert response.status_code == 302
    assert response.url == reverse("courses:detail", kwargs={"course_id": personas.course.pk})
    assert AuditEvent.objects.filter(action=AuditAction.INVITE_ACCEPTED).count() == 1


def test_a_user_already_on_the_course_with_another_entry_gets_a_clear_error(invited, personas):
    client = personas.client("student")

    response = client.post(invite_path(invited))

    message = "You are already on cs101 as Student (with student@school.example)."
    assert response.status_code == 409
    assert str(response.context["error"]) == message
    assert f'<p role="alert">{message}</p>' in response.text
    invited.refresh_from_db()
    assert invited.user is None
    assert invited.invite_status == InviteStatus.NOT_SENT
    assert not AuditEvent.objects.filter(action=AuditAction.INVITE_ACCEPTED).exists()


def test_an_invitation_used_by_someone_else_cannot_be_used_again(invited):
    first, second = UserFactory(), UserFactory()
    path = invite_path(invited)
    first_client, second_client = Client(), Client()
    first_client.force_login(first)
    second_client.force_login(second)
    first_client.post(path)

    response = second_client.post(path)

    assert response.status_code == 409
    assert str(response.context["error"]) == "This invitation has already been used by another person."
    invited.refresh_from_db()
    assert invited.user == first


# --- From the link, anonymously, through sign-up or sign-in --------------------------------------


def confirmation_path(message) -> str:
    return re.search(r"http://testserver(/accounts/confirm-email/\S+/)", message.body).group(1)


def sign_up_from_invitation(client: Client, invited: Membership, email: str):
    """Open the invitation, follow its "Create an account" link and submit the sign-up form."""
    page = client.get(invite_path(invited))
    link = re.search(r'<a class="button" href="([^"]+)">Create an account</a>', page.text)
    signup_href = html.unescape(link.group(1))
    signup_page = client.get(signup_href)
    response = client.post(signup_href, {"email": email, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    return signup_page, response


def test_anonymous_journey_sign_up_verify_and_land_in_the_course(invited, personas, django_capture_on_commit_callbacks):
    client = Client()

    with django_capture_on_commit_callbacks(execute=True):  # the email goes as the request commits
        signup_page, signed_up = sign_up_from_invitation(client, invited, "newbie@school.example")

    # The sign-up form starts with the invited address.
    assert signup_page.status_code == 200
    assert signup_page.context["form"]["email"].value() == "newbie@school.example"
    # Signed up but not signed in: the address must be verified first.
    assert signed_up.status_code == 302
    assert signed_up.url == reverse("account_email_verification_sent")
    user = User.objects.get(email="newbie@school.example")
    assert logged_in_user_id(client) is None
    assert not EmailAddress.objects.get(user=user).verified
    invited.refresh_from_db()
    assert invited.user is None
    assert [message.to for message in mail.outbox] == [["newbie@school.example"]]

    link = confirmation_path(mail.outbox[0])
    confirm_page = client.get(link)

    assert confirm_page.status_code == 200
    assert 'method="post"' in confirm_page.text
    assert not EmailAddress.objects.get(user=user).verified  # a GET confirms nothing

    confirmed = client.post(link, follow=True)

    detail = reverse("courses:detail", kwargs={"course_id": personas.course.pk})
    assert confirmed.redirect_chain[-1] == (detail, 302)
    assert confirmed.status_code == 200
    assert logged_in_user_id(client) == user.pk
    assert EmailAddress.objects.get(user=user).verified
    invited.refresh_from_db()
    assert (invited.user, invited.invite_status) == (user, InviteStatus.ACCEPTED)
    assert INVITATION_SESSION_KEY not in client.session
    assert AuditEvent.objects.filter(action=AuditAction.INVITE_ACCEPTED, actor=user).count() == 1


def test_signing_up_from_an_invitation_with_another_address_still_binds_through_the_token(
    invited, django_capture_on_commit_callbacks
):
    client = Client()

    with django_capture_on_commit_callbacks(execute=True):  # the email goes as the request commits
        sign_up_from_invitation(client, invited, "newbie.home@home.example")
    invited.refresh_from_db()
    assert invited.user is None
    client.post(confirmation_path(mail.outbox[0]))

    user = User.objects.get(email="newbie.home@home.example")
    assert logged_in_user_id(client) == user.pk
    invited.refresh_from_db()
    # The roster address is not one of the user's, so only the token in the session bound it.
    assert (invited.user, invited.invite_status) == (user, InviteStatus.ACCEPTED)
    assert AuditEvent.objects.get(action=AuditAction.INVITE_ACCEPTED).summary == (
        "newbie.home@home.example accepted the invitation sent to newbie@school.example"
    )


def test_signing_in_from_an_invitation_binds_an_existing_account(invited, personas):
    user = UserFactory(email="returning@home.example")
    client = Client()
    path = invite_path(invited)
    client.get(path)

    response = client.post(
        f"{reverse('account_login')}?next={path}",
        {"login": "returning@home.example", "password": PASSWORD},
        follow=True,
    )

    assert response.redirect_chain[-1] == (
        reverse("courses:detail", kwargs={"course_id": personas.course.pk}),
        302,
    )
    invited.refresh_from_db()
    assert invited.user == user
    assert INVITATION_SESSION_KEY not in client.session


def test_an_expired_token_in_the_session_binds_nothing_at_sign_in(invited, monkeypatch):
    user = UserFactory(email="returning@home.example")
    client = Client()
    session = client.session
    session[INVITATION_SESSION_KEY] = token_signed_days_ago(invited, 30, monkeypatch)
    session.save()

    client.post(reverse("account_login"), {"login": "returning@home.example", "password": PASSWORD})

    assert logged_in_user_id(client) == user.pk
    assert INVITATION_SESSION_KEY not in client.session
    invited.refresh_from_db()
    assert invited.user is None


# --- Claiming roster entries by verified email at sign-in -----------------------------------------


def sign_in(email: str) -> Client:
    client = Client()
    response = client.post(reverse("account_login"), {"login": email, "password": PASSWORD})
    assert response.status_code == 302
    return client


def test_signing_in_claims_entries_that_name_a_verified_address(personas):
    user = UserFactory(email="claire@school.example")
    cs101 = MembershipFactory(course=personas.course, user=None, email="claire@school.example")
    bio200 = MembershipFactory(course=personas.other_course, user=None, email="claire@school.example")

    client = sign_in("Claire@School.example")

    assert logged_in_user_id(client) == user.pk
    for member in (cs101, bio200):
        member.refresh_from_db()
        assert (member.user, member.invite_status) == (user, InviteStatus.ACCEPTED)
    assert sorted(
        AuditEvent.objects.filter(action=AuditAction.INVITE_ACCEPTED).values_list("course__code", "summary")
    ) == [
        ("bio200", "claire@school.example accepted the invitation sent to claire@school.example"),
        ("cs101", "claire@school.example accepted the invitation sent to claire@school.example"),
    ]


def test_an_unverified_address_claims_nothing(personas):
    user = UserFactory(email="dana@school.example")
    EmailAddress.objects.create(user=user, email="dana@home.example", verified=False, primary=False)
    unverified = MembershipFactory(course=personas.course, user=None, email="dana@home.example")
    verified = MembershipFactory(course=personas.other_course, user=None, email="dana@school.example")

    client = sign_in("dana@school.example")

    assert logged_in_user_id(client) == user.pk
    unverified.refresh_from_db()
    verified.refresh_from_db()
    assert unverified.user is None
    assert unverified.invite_status == InviteStatus.NOT_SENT
    assert verified.user == user


def test_claiming_needs_a_verified_address_at_all(personas):
    user = UserFactory(email="eve@school.example", verified=False)
    EmailAddress.objects.create(user=user, email="eve@school.example", verified=False, primary=True)
    member = MembershipFactory(course=personas.course, user=None, email="eve@school.example")

    assert memberships_claim_by_email(user=user) == 0

    member.refresh_from_db()
    assert member.user is None


def test_claiming_skips_a_course_the_user_is_already_on(personas):
    EmailAddress.objects.create(user=personas.student, email="student@home.example", verified=True, primary=False)
    second_entry = MembershipFactory(course=personas.course, user=None, email="student@home.example")

    assert memberships_claim_by_email(user=personas.student) == 0

    second_entry.refresh_from_db()
    assert second_entry.user is None
    assert personas.course.memberships.filter(user=personas.student).count() == 1


# --- Join codes -----------------------------------------------------------------------------------


@pytest.fixture
def join_code(personas) -> str:
    course = course_join_code_enable(actor=personas.instructor, course=personas.course)
    return course.join_code


def join_path(code: str) -> str:
    return reverse("join_course", kwargs={"code": code})


def not_open_message(code: str) -> str:
    return f"No course is open for joining with the code “{code}”. Check the code with your instructor."


def test_join_form_accepts_the_code_in_lower_case_without_the_hyphen(personas, join_code):
    client = personas.client("other_student")
    typed = join_code.replace("-", "").lower()

    response = client.post(reverse("join"), {"code": f" {typed} "})

    assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", join_code)
    assert response.status_code == 302
    assert response.url == join_path(join_code)


def test_join_page_asks_before_enrolling(personas, join_code):
    client = personas.client("other_student")

    response = client.get(join_path(join_code.lower()))

    assert response.status_code == 200
    assert "Join Cloud Computing?" in response.text
    assert "You will join as a student, signed in as other_student@school.example." in response.text
    assert not personas.course.memberships.filter(user=personas.other_student).exists()


def test_joining_with_the_code_enrols_a_student(personas, join_code):
    client = personas.client("other_student")

    response = client.post(join_path(join_code), follow=True)

    detail = reverse("courses:detail", kwargs={"course_id": personas.course.pk})
    assert response.redirect_chain == [(detail, 302)]
    assert "You joined Cloud Computing." in response.text
    member = personas.course.memberships.get(user=personas.other_student)
    assert (member.email, member.name, member.role, member.source, member.invite_status) == (
        "other_student@school.example",
        personas.other_student.name,
        CourseRole.STUDENT,
        MembershipSource.JOIN_CODE,
        InviteStatus.ACCEPTED,
    )
    event = AuditEvent.objects.get(action=AuditAction.JOINED_WITH_CODE)
    assert (event.actor, event.course, event.object_id) == (
        personas.other_student,
        personas.course,
        str(member.pk),
    )
    assert event.summary == "other_student@school.example joined as a student with the course code"
    roster = personas.client("instructor").get(reverse("courses:roster", kwargs={"course_id": personas.course.pk}))
    assert member in roster.context["members"]
    assert "<td>other_student@school.example</td>" in roster.text


def test_joining_twice_is_harmless(personas, join_code):
    client = personas.client("other_student")
    client.post(join_path(join_code))

    second = client.post(join_path(join_code.replace("-", "").lower()))

    assert second.status_code == 302
    assert personas.course.memberships.filter(user=personas.other_student).count() == 1
    assert AuditEvent.objects.filter(action=AuditAction.JOINED_WITH_CODE).count() == 1


def test_joining_does_not_change_the_role_of_someone_already_on_the_course(personas, join_code):
    personas.client("ta").post(join_path(join_code))

    assert personas.course.memberships.get(user=personas.ta).role == CourseRole.TA
    assert personas.course.memberships.count() == 3
    assert not AuditEvent.objects.filter(action=AuditAction.JOINED_WITH_CODE).exists()


def test_joining_with_an_address_already_on_the_roster_claims_that_entry(personas, join_code):
    invited = MembershipFactory(
        course=personas.course, user=None, email="other_student@school.example", role=CourseRole.TA
    )

    personas.client("other_student").post(join_path(join_code))

    invited.refresh_from_db()
    assert (invited.user, invited.role, invited.source) == (
        personas.other_student,
        CourseRole.TA,
        MembershipSource.IMPORT,
    )
    assert personas.course.memberships.filter(email="other_student@school.example").count() == 1


def assert_not_open(response, code: str) -> None:
    assert response.status_code == 404
    assert response.context["form"].non_field_errors() == [not_open_message(code)]
    assert not_open_message(code) in response.text


def test_a_disabled_code_cannot_be_used(personas, join_code):
    course_join_code_disable(actor=personas.instructor, course=personas.course)
    client = personas.client("other_student")

    assert_not_open(client.get(join_path(join_code)), join_code)
    assert_not_open(client.post(join_path(join_code)), join_code)
    assert not personas.course.memberships.filter(user=personas.other_student).exists()


def test_a_rotated_code_stops_working_and_the_new_one_works(personas, join_code):
    course = course_join_code_rotate(actor=personas.instructor, course=personas.course)
    client = personas.client("other_student")

    assert course.join_code != join_code
    assert_not_open(client.post(join_path(join_code)), join_code)
    assert not personas.course.memberships.filter(user=personas.other_student).exists()

    assert client.post(join_path(course.join_code)).status_code == 302
    assert personas.course.memberships.filter(user=personas.other_student).exists()


def test_an_archived_course_cannot_be_joined(personas, join_code):
    course_archive(actor=personas.instructor, course=personas.course)
    client = personas.client("other_student")

    assert_not_open(client.get(join_path(join_code)), join_code)
    assert_not_open(client.post(join_path(join_code)), join_code)
    assert not personas.course.memberships.filter(user=personas.other_student).exists()


@pytest.mark.parametrize(
    ("typed", "understood"),
    [("zzzz zzzz", "ZZZZ-ZZZZ"), ("k7qf-3mzp-k7qf-3mzp-k7qf-3mzp", "K7QF3MZPK7QF3MZPK7QF3MZP")],
)
def test_an_unknown_code_is_refused_with_the_code_as_understood(personas, typed, understood):
    response = personas.client("other_student").post(join_path(typed))

    assert_not_open(response, understood)
    assert not Membership.objects.filter(user=personas.other_student, course=personas.course).exists()


def test_joining_requires_signing_in(personas, join_code):
    response = Client().post(join_path(join_code))

    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))
    assert personas.course.memberships.count() == 3
