"""What a checked launch does (lms_app/services/launches.py), with launches PyLTI1p3 checked."""

from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.utils import timezone
from pylti1p3.exception import LtiException, OIDCException
from pylti1p3.session import SessionService

from accounts_app.choices import CourseRole, MembershipSource
from accounts_app.models import Membership, User
from lms_app.models import LmsCourseLink, UsedLaunchNonce
from lms_app.services import launches
from lms_app.services.launches import Destination, LaunchRefused
from lms_app.signals import course_launched
from tests.factories import CourseFactory, MembershipFactory, UserFactory
from tests.support.lti_launches import LAUNCH_URL, checked_launch, portal_counts
from tests.support.lti_platform import LmsPerson


def accept(client, lms, registration, person, course, **launch):
    lti_launch = checked_launch(client, lms, registration, person, course, **launch)
    return launches.launch_accept(lti_launch=lti_launch, launch_url=LAUNCH_URL)


# --- Nonces -----------------------------------------------------------------------------------------


def test_nonces_are_kept_as_long_as_pylti1p3_keeps_the_ones_it_issued():
    assert timedelta(seconds=SessionService._launch_data_lifetime) == launches.NONCE_LIFETIME


def test_the_purge_forgets_only_nonces_older_than_their_lifetime(db):
    old = UsedLaunchNonce.objects.create(issuer="https://lms.example.edu", nonce="old")
    recent = UsedLaunchNonce.objects.create(issuer="https://lms.example.edu", nonce="recent")
    UsedLaunchNonce.objects.filter(pk=old.pk).update(used_at=timezone.now() - launches.NONCE_LIFETIME - timedelta(1))

    assert launches.launch_nonces_purge() == 1

    assert list(UsedLaunchNonce.objects.all()) == [recent]


# --- What PyLTI1p3 refused, in words ------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "title"),
    [
        (LtiException("State not found"), "The portal could not match this launch to your browser"),
        (LtiException("Invalid Nonce"), "This launch was not started by your browser"),
        (LtiException("Registration not found."), "This LMS is not registered with the portal"),
        (OIDCException("Could not find registration details"), "This LMS is not registered with the portal"),
        (LtiException("Can't decode id_token: Signature has expired"), "This launch has expired"),
        (
            LtiException("Can't decode id_token: Signature verification failed"),
            "This launch's signature does not match the LMS's keys",
        ),
        (LtiException("Error during fetch URL https://lms/jwks: boom"), "The portal could not fetch the LMS's keys"),
        (LtiException("Missing Roles Claim"), "The launch is missing something LTI requires"),
    ],
)
def test_each_pylti1p3_refusal_is_named_in_plain_words_with_its_message_as_the_detail(error, title):
    refusal = launches.lti_error_refusal(error)

    assert (refusal.title, refusal.detail, refusal.status) == (title, str(error), 400)
    assert refusal.explanation


# --- Signing in -----------------------------------------------------------------------------------


def test_a_user_whose_address_was_never_verified_loses_the_password_someone_set(
    client, lms, registration, lms_class, linked_course
):
    """Whoever signed up with the address without owning it is locked out, as a campus sign-in
    does (docs/SSO.md)."""
    squatter = UserFactory(email=lms_class.student.email, verified=False)

    landing = accept(client, lms, registration, lms_class.student, lms_class.course)

    squatter.refresh_from_db()
    assert landing.user == squatter
    assert not squatter.has_usable_password()
    assert EmailAddress.objects.get(user=squatter, email=lms_class.student.email).verified


def test_someone_on_the_roster_under_another_of_their_addresses_keeps_that_entry(
    client, lms, registration, lms_class, linked_course
):
    user = UserFactory(email="stella@school.example")
    EmailAddress.objects.create(user=user, email=lms_class.student.email, verified=True)
    entry = MembershipFactory(course=linked_course, user=user, role=CourseRole.TA)

    landing = accept(client, lms, registration, lms_class.student, lms_class.course)

    assert landing.user == user
    assert list(linked_course.memberships.filter(user=user)) == [entry]
    entry.refresh_from_db()
    assert (entry.email, entry.role) == ("stella@school.example", CourseRole.STUDENT)


def test_the_launched_signal_waits_for_the_commit(
    client, lms, registration, lms_class, linked_course, django_capture_on_commit_callbacks
):
    sent = []

    def receiver(sender, link, user, **kwargs):
        sent.append(user.email)

    course_launched.connect(receiver)
    try:
        with django_capture_on_commit_callbacks() as callbacks:
            accept(client, lms, registration, lms_class.student, lms_class.course)
            assert sent == []
        for callback in callbacks:
            callback()
    finally:
        course_launched.disconnect(receiver)

    assert sent == [lms_class.student.email]


# --- Refusals after the first writes --------------------------------------------------------------


def test_a_launch_that_would_demote_the_last_instructor_is_refused_and_writes_nothing(
    client, lms, registration, lms_class, linked_course
):
    owner = LmsPerson("owner@example.edu", "Olive Owner")
    lms_class.course.enrol(owner, "Learner")
    lti_launch = checked_launch(client, lms, registration, owner, lms_class.course)
    before = portal_counts()

    with pytest.raises(LaunchRefused) as refused:
        launches.launch_accept(lti_launch=lti_launch, launch_url=LAUNCH_URL)

    assert (refused.value.status, refused.value.title) == (409, "The LMS gives you another role in this course")
    assert portal_counts() == before
    assert linked_course.memberships.get(email="owner@example.edu").role == CourseRole.INSTRUCTOR


def test_an_archived_course_lands_its_members_and_refuses_others(client, lms, registration, lms_class, linked_course):
    member = UserFactory(email=lms_class.student.email)
    MembershipFactory(course=linked_course, user=member, role=CourseRole.STUDENT)
    linked_course.archived_at = timezone.now()
    linked_course.save()

    landing = accept(client, lms, registration, lms_class.student, lms_class.course)
    with pytest.raises(LaunchRefused) as refused:
        accept(client, lms, registration, lms_class.other_student, lms_class.course)

    assert (landing.destination, landing.user) == (Destination.COURSE, member)
    assert refused.value.title == f"{linked_course.code} is archived in the portal"
    assert not Membership.objects.filter(email=lms_class.other_student.email).exists()


# --- The new course's prefilled fields ------------------------------------------------------------


@pytest.mark.parametrize(
    ("custom", "start", "end"),
    [
        # Canvas: $Canvas.course.startAt / endAt, UTC times; the portal's calendar is Los Angeles's.
        ({"course_start": "2026-09-01T07:00:00Z", "course_end": "2026-12-19T03:00:00Z"}, "2026-09-01", "2026-12-18"),
        ({"course_start": "2026-09-01T09:00:00+02:00", "course_end": "2026-12-18"}, "2026-09-01", "2026-12-18"),
        # Moodle: $CourseSection.timeFrom / timeTo, Unix seconds.
        ({"course_start": "1788246000", "course_end": "1797624000"}, "2026-09-01", "2026-12-18"),
        # Canvas leaves a variable the course has no value for as it is.
        ({"course_start": "$Canvas.course.startAt", "course_end": ""}, "", ""),
        ({}, "", ""),
    ],
)
def test_the_new_courses_dates_come_from_the_lms_on_the_portals_calendar(
    client, settings, lms, registration, lms_class, custom, start, end
):
    settings.TIME_ZONE = "America/Los_Angeles"

    landing = accept(client, lms, registration, lms_class.instructor, lms_class.course, custom=custom)

    assert landing.destination == Destination.SETUP
    assert (landing.setup.start_date, landing.setup.end_date) == (start, end)


def test_the_new_courses_code_is_the_lms_label_made_unique(db):
    assert launches.course_code_free("CS 101-A") == "cs-101-a"
    assert launches.course_code_free("") == "course"


def test_a_taken_code_gets_the_next_free_number(db):
    CourseFactory(code="cs-101-a")
    CourseFactory(code="cs-101-a-2")
    long_label = "Introduction to Cloud Computing and Distributed Systems, Section 42"
    CourseFactory(code=launches.course_code_free(long_label))

    assert launches.course_code_free("CS 101-A") == "cs-101-a-3"
    code = launches.course_code_free(long_label)
    assert code == "introduction-to-cloud-computing-and-distributed-2"


def test_the_setup_keeps_what_the_pages_need_and_survives_the_session(client, lms, registration, lms_class):
    landing = accept(
        client, lms, registration, lms_class.instructor, lms_class.course, custom={"term_name": "Fall 2026"}
    )

    setup = launches.CourseSetup.from_session(landing.setup.as_session())
    assert setup == landing.setup
    assert setup.user_id == User.objects.get(email=lms_class.instructor.email).pk
    assert setup.initial() == {"name": lms_class.course.title, "code": "cs-101-a", "term": "Fall 2026"}


# --- Linking ----------------------------------------------------------------------------------------


def test_only_a_course_the_launcher_teaches_can_be_linked(client, lms, registration, lms_class):
    landing = accept(client, lms, registration, lms_class.instructor, lms_class.course)
    assisted = CourseFactory()
    MembershipFactory(course=assisted, user=landing.user, role=CourseRole.TA)

    with pytest.raises(LaunchRefused) as refused:
        launches.lms_course_link(actor=landing.user, setup=landing.setup, course=assisted)

    assert refused.value.title == "You do not teach this course in the portal"
    assert not LmsCourseLink.objects.exists()


def test_a_linked_course_keeps_its_roster_entries_and_the_launcher_stays_its_instructor(
    client, lms, registration, lms_class
):
    landing = accept(client, lms, registration, lms_class.instructor, lms_class.course)
    taught = CourseFactory()
    MembershipFactory(course=taught, user=landing.user, role=CourseRole.INSTRUCTOR, source=MembershipSource.MANUAL)

    link = launches.lms_course_link(actor=landing.user, setup=landing.setup, course=taught)

    assert (link.course, link.context.id_on_platform, link.linked_by) == (taught, lms_class.course.id, landing.user)
    assert taught.memberships.get().role == CourseRole.INSTRUCTOR
