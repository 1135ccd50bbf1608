"""A launch from an LMS course the portal has no course for: its instructor sets one up (a new
course, prefilled from the LMS, or one they teach), everyone else is told to wait."""

from datetime import date

import pytest
from django.urls import reverse
from lti_tool.models import LtiContext

from accounts_app.choices import AuditAction, CourseRole, MembershipSource
from accounts_app.models import AuditEvent, Course, Membership, User
from lms_app.models import LmsCourseLink
from lms_app.signals import course_launched
from tests.factories import CourseFactory, MembershipFactory, UserFactory
from tests.support.lti_launches import launch, portal_counts

DATES = {"course_start": "2026-09-01T07:00:00Z", "course_end": "2026-12-18T07:59:59Z"}
PREFILL = {"term_name": "Fall 2026", **DATES}


@pytest.fixture
def launched():
    sent = []

    def receiver(sender, link, user, **kwargs):
        sent.append((link.course.code, link.context.id_on_platform, user.email))

    course_launched.connect(receiver)
    yield sent
    course_launched.disconnect(receiver)


def setup_url(response) -> str:
    assert response.status_code == 302, response.content
    assert response["Location"].startswith("/lti/setup/")
    return response["Location"]


def new_course_post(**fields) -> dict:
    """The course form as an instructor sends it after reading the prefilled page."""
    return {
        "name": "Cloud Computing (Fall 2026)",
        "code": "cs-101-a",
        "term": "Fall 2026",
        "start_date": "2026-09-01",
        "end_date": "2026-12-18",
        "budget_per_student": "50",
        "budget_period": "course",
        "freeze_at_percent": "100",
        "spike_multiple": "3",
        "access_mode": "identity_center",
        "end_policy": "close",
        "end_notice_days": "14",
        "grace_days": "7",
        "allowed_regions": ["us-east-1"],
        "allowed_services": "ec2, s3",
        "allowed_instance_families": "t3",
        "billing_contact_email": "ines.instructor@example.edu",
        "usage_alert_email": "ines.instructor@example.edu",
        **fields,
    }


def test_an_instructors_first_launch_offers_a_new_course_filled_in_from_the_lms(client, lms, registration, lms_class):
    response = launch(client, lms, registration, lms_class.instructor, lms_class.course, custom=PREFILL)

    page = client.get(setup_url(response))

    assert page.status_code == 200
    assert b"Set up this course in the portal" in page.content
    form = page.context["form"]
    assert form["name"].value() == "Cloud Computing (Fall 2026)"
    assert form["code"].value() == "cs-101-a"
    assert form["term"].value() == "Fall 2026"
    assert (form["start_date"].value(), form["end_date"].value()) == (date(2026, 9, 1), date(2026, 12, 18))
    assert form["billing_contact_email"].value() == lms_class.instructor.email
    assert b'value="cs-101-a"' in page.content
    assert b'value="2026-09-01"' in page.content
    assert not LmsCourseLink.objects.exists()


def test_creating_the_course_links_it_makes_the_launcher_its_instructor_and_lands_on_it(
    client, lms, registration, lms_class, launched, django_capture_on_commit_callbacks
):
    page = setup_url(launch(client, lms, registration, lms_class.instructor, lms_class.course, custom=PREFILL))
    context_id = client.get(page).context["setup"].context_id

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("lms:setup_create", kwargs={"context_id": context_id}), new_course_post())

    course = Course.objects.get(code="cs-101-a")
    assert (response.status_code, response["Location"]) == (
        302,
        reverse("courses:detail", kwargs={"course_id": course.pk}),
    )
    assert course.lms_link.context.id_on_platform == lms_class.course.id
    instructor = User.objects.get(email=lms_class.instructor.email)
    assert course.memberships.get(user=instructor).role == CourseRole.INSTRUCTOR
    assert not instructor.is_instructor  # the right to create this course, not others
    assert launched == [("cs-101-a", lms_class.course.id, lms_class.instructor.email)]
    actions = set(AuditEvent.objects.filter(course=course).values_list("action", flat=True))
    assert {AuditAction.COURSE_CREATED, AuditAction.COURSE_UPDATED} <= actions
    assert client.get(response["Location"]).status_code == 200
    assert client.get(page).status_code == 404  # the set-up is done


def test_a_student_launching_afterwards_lands_in_the_new_course(client, lms, registration, lms_class):
    page = setup_url(launch(client, lms, registration, lms_class.instructor, lms_class.course, custom=PREFILL))
    context_id = client.get(page).context["setup"].context_id
    client.post(reverse("lms:setup_create", kwargs={"context_id": context_id}), new_course_post())

    response = launch(client, lms, registration, lms_class.student, lms_class.course)

    course = Course.objects.get(code="cs-101-a")
    assert response["Location"] == reverse("courses:detail", kwargs={"course_id": course.pk})
    member = course.memberships.get(email=lms_class.student.email)
    assert (member.role, member.source) == (CourseRole.STUDENT, MembershipSource.LMS)


def test_a_form_with_errors_is_shown_again_and_nothing_is_made(client, lms, registration, lms_class):
    page = setup_url(launch(client, lms, registration, lms_class.instructor, lms_class.course))
    context_id = client.get(page).context["setup"].context_id
    before = portal_counts()

    response = client.post(
        reverse("lms:setup_create", kwargs={"context_id": context_id}), new_course_post(budget_per_student="0")
    )

    assert response.status_code == 200
    assert response.context["form"].errors["budget_per_student"]
    assert portal_counts() == before


def test_linking_offers_only_the_courses_the_launcher_teaches_and_no_linked_one(client, lms, registration, lms_class):
    instructor = UserFactory(email=lms_class.instructor.email)
    taught = CourseFactory(code="cloud-old")
    MembershipFactory(course=taught, user=instructor, role=CourseRole.INSTRUCTOR)
    already_linked = CourseFactory(code="cloud-linked")
    MembershipFactory(course=already_linked, user=instructor, role=CourseRole.INSTRUCTOR)
    elsewhere = LtiContext.objects.create(deployment=registration.deployments.get(), id_on_platform="other", title="X")
    LmsCourseLink.objects.create(course=already_linked, context=elsewhere)
    assisted = CourseFactory(code="cloud-ta")
    MembershipFactory(course=assisted, user=instructor, role=CourseRole.TA)
    CourseFactory(code="cloud-not-mine")

    page = client.get(setup_url(launch(client, lms, registration, lms_class.instructor, lms_class.course)))

    assert list(page.context["link_form"].fields["course"].queryset) == [taught]
    assert list(page.context["linked_elsewhere"]) == [already_linked]
    context_id = page.context["setup"].context_id
    link = reverse("lms:setup_link", kwargs={"context_id": context_id})
    for course in (already_linked, assisted):
        refused = client.post(link, {"course": course.pk})
        assert refused.status_code == 200
        assert refused.context["link_form"].errors["course"]
    response = client.post(link, {"course": taught.pk})

    assert response["Location"] == reverse("courses:detail", kwargs={"course_id": taught.pk})
    assert taught.lms_link.context.id_on_platform == lms_class.course.id


@pytest.mark.parametrize("persona", ["student", "ta"])
def test_before_the_course_is_set_up_others_are_told_to_wait(client, lms, registration, lms_class, persona):
    before = portal_counts()

    response = launch(client, lms, registration, getattr(lms_class, persona), lms_class.course)

    assert response.status_code == 200
    assert b"Your instructor has not set up this course in the portal yet" in response.content
    assert "_auth_user_id" not in client.session
    after = portal_counts()
    assert after.pop("UsedLaunchNonce") == before.pop("UsedLaunchNonce") + 1
    assert after == before


def test_the_set_up_belongs_to_the_session_and_the_user_of_the_launch(client, lms, registration, lms_class):
    page = setup_url(launch(client, lms, registration, lms_class.instructor, lms_class.course))
    context_id = client.get(page).context["setup"].context_id
    other = client.__class__()
    other.force_login(UserFactory(email="intruder@example.edu"))

    assert other.get(page).status_code == 404
    create = reverse("lms:setup_create", kwargs={"context_id": context_id})
    assert other.post(create, new_course_post()).status_code == 404
    assert client.get(reverse("lms:setup", kwargs={"context_id": context_id + 1})).status_code == 404
    assert not Membership.objects.filter(email="intruder@example.edu").exists()


def test_a_course_linked_meanwhile_cannot_be_linked_again(client, lms, registration, lms_class):
    page = setup_url(launch(client, lms, registration, lms_class.instructor, lms_class.course))
    context_id = client.get(page).context["setup"].context_id
    LmsCourseLink.objects.create(course=CourseFactory(code="first"), context=LtiContext.objects.get(pk=context_id))

    response = client.post(reverse("lms:setup_create", kwargs={"context_id": context_id}), new_course_post())

    assert response.status_code == 409
    assert b"This LMS course is set up already" in response.content
    assert not Course.objects.filter(code="cs-101-a").exists()
