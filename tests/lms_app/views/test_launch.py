"""Launches from the test LMS through the portal's pages: real JWTs signed by the platform, its
keys fetched from its live JWKS, the state cookie and nonce of a real login initiation."""

import time

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.test import Client
from django.urls import reverse
from lti_tool.models import LtiDeployment, LtiUser

from accounts_app.choices import CourseRole, MembershipSource
from accounts_app.models import Membership, User
from lms_app.signals import course_launched
from tests.factories import MembershipFactory, UserFactory
from tests.support.lti_launches import LAUNCH_URL, launch, login_initiation, portal_counts, signed_launch
from tests.support.lti_platform import LmsPerson, login_redirect_query


@pytest.fixture
def launched():
    """The course_launched signals sent, as (link, user)."""
    sent = []

    def receiver(sender, link, user, **kwargs):
        sent.append((link, user))

    course_launched.connect(receiver)
    yield sent
    course_launched.disconnect(receiver)


def course_page(course) -> str:
    return reverse("courses:detail", kwargs={"course_id": course.pk})


# --- Login initiation -------------------------------------------------------------------------------


def test_login_initiation_sends_the_browser_to_the_platform_at_once(client, lms, registration, lms_class):
    """No cookie check page: PyLTI1p3's runs an inline script the portal's CSP blocks."""
    params = lms.launch_request(lms_class.student, lms_class.course, target_link_uri=LAUNCH_URL)

    response = login_initiation(client, registration, params)

    assert response.status_code == 302
    assert response["Location"].startswith(lms.auth_url + "?")
    query = login_redirect_query(response["Location"])
    assert (query["client_id"], query["redirect_uri"], query["response_mode"]) == (
        lms.client_id,
        LAUNCH_URL,
        "form_post",
    )
    assert query["nonce"]
    assert client.cookies[f"lti1p3-{query['state']}"].value == query["state"]


def test_an_initiation_for_an_unknown_registration_answers_the_refusal_page(client, lms, registration, lms_class):
    params = lms.launch_request(lms_class.student, lms_class.course, target_link_uri=LAUNCH_URL)
    registration.is_active = False
    registration.save()

    response = login_initiation(client, registration, params)

    assert response.status_code == 400
    assert b"This LMS is not registered with the portal" in response.content
    assert b"Could not find registration details" in response.content


def test_an_initiation_without_its_target_answers_the_refusal_page(client, lms, registration, lms_class):
    params = lms.launch_request(lms_class.student, lms_class.course, target_link_uri=LAUNCH_URL)
    del params["target_link_uri"]

    response = login_initiation(client, registration, params)

    assert response.status_code == 400
    assert b"The LMS sent no launch the portal can read" in response.content


# --- Launching into a linked course -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "role"),
    [("student", CourseRole.STUDENT), ("ta", CourseRole.TA), ("instructor", CourseRole.INSTRUCTOR)],
)
def test_a_first_launch_makes_the_user_puts_them_on_the_roster_and_signs_them_in(
    client,
    lms,
    registration,
    lms_class,
    linked_course,
    launched,
    django_capture_on_commit_callbacks,
    persona,
    role,
):
    person = getattr(lms_class, persona)

    with django_capture_on_commit_callbacks(execute=True):
        response = launch(client, lms, registration, person, lms_class.course)

    assert (response.status_code, response["Location"]) == (302, course_page(linked_course))
    user = User.objects.get(email=person.email)
    assert user.name == person.name
    assert not user.has_usable_password()
    assert EmailAddress.objects.filter(user=user, email=person.email, verified=True, primary=True).exists()
    member = Membership.objects.get(course=linked_course, email=person.email)
    assert (member.user, member.role, member.source, member.name) == (user, role, MembershipSource.LMS, person.name)
    assert LtiUser.objects.get(registration=registration, sub=person.sub).auth_user == user
    assert [(link.course, sent_to) for link, sent_to in launched] == [(linked_course, user)]
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert page.context["user"] == user


def test_the_session_cookie_set_by_the_launch_is_sent_on_the_redirect_that_follows(
    client, lms, registration, lms_class, linked_course
):
    """The launch is a cross-site POST from the LMS's page: the browser sends no SameSite=Lax
    cookie with it, but keeps the one its answer sets, and sends it with the top-level GET of the
    redirect. SameSite=Strict would not be sent there, and the person would land signed out."""
    response = launch(client, lms, registration, lms_class.student, lms_class.course)

    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["samesite"] == "Lax"
    assert cookie["httponly"]


def test_an_existing_user_is_signed_in_whatever_the_case_of_the_address(
    client, lms, registration, lms_class, linked_course
):
    user = UserFactory(email="stella.student@example.edu")
    lms_class.student.email = "Stella.Student@EXAMPLE.edu"

    launch(client, lms, registration, lms_class.student, lms_class.course)

    assert User.objects.filter(email__iexact="stella.student@example.edu").count() == 1
    assert client.get(course_page(linked_course)).context["user"] == user
    assert user.has_usable_password()


def test_an_imported_roster_entry_is_bound_and_given_the_lms_role(client, lms, registration, lms_class, linked_course):
    entry = MembershipFactory(
        course=linked_course, user=None, email="theo.assistant@example.edu", role=CourseRole.STUDENT
    )

    launch(client, lms, registration, lms_class.ta, lms_class.course)

    entry.refresh_from_db()
    assert (entry.user.email, entry.role, entry.source) == ("theo.assistant@example.edu", CourseRole.TA, "import")


def test_a_student_following_the_my_account_link_lands_on_their_own_account_panel(
    client, lms, registration, lms_class, linked_course
):
    launch(client, lms, registration, lms_class.other_student, lms_class.course, custom={})

    response = launch(
        client, lms, registration, lms_class.student, lms_class.course, custom={"portal_target": "my_account"}
    )

    assert response["Location"] == course_page(linked_course) + "#account-panel"
    page = client.get(response["Location"])
    assert page.context["show_account_panel"]
    assert page.context["my_membership"].email == lms_class.student.email
    assert lms_class.other_student.email.encode() not in page.content


def test_a_student_signed_in_by_a_launch_sees_nothing_of_other_courses(
    client, lms, registration, lms_class, linked_course, personas
):
    launch(client, lms, registration, lms_class.student, lms_class.course)
    other_member = personas.course.memberships.get(role=CourseRole.STUDENT)

    assert client.get(course_page(personas.course)).status_code == 404
    foreign = reverse("courses:my_account", kwargs={"course_id": personas.course.pk})
    assert client.get(foreign).status_code == 404
    assert other_member.email.encode() not in client.get(course_page(linked_course)).content


def test_staff_following_the_my_account_link_land_on_the_course_page(
    client, lms, registration, lms_class, linked_course
):
    response = launch(client, lms, registration, lms_class.ta, lms_class.course, custom={"portal_target": "my_account"})

    assert response["Location"] == course_page(linked_course)


def test_a_launch_signs_out_whoever_was_signed_in_before(client, lms, registration, lms_class, linked_course):
    client.force_login(UserFactory(email="someone.else@example.edu"))

    launch(client, lms, registration, lms_class.student, lms_class.course)

    assert client.get(course_page(linked_course)).context["user"].email == lms_class.student.email


# --- Refused launches -------------------------------------------------------------------------------


def refused(response, status: int, title: str) -> None:
    assert response.status_code == status, response.content
    assert response.templates[0].name == "lms/refused.html"
    assert response.context["refusal"].title == title
    assert b"Nothing was changed in the portal." in response.content
    assert response.context["refusal"].detail


def post_launch(client: Client, posted: dict) -> object:
    return client.post(reverse("lms:launch"), posted)


def test_a_launch_whose_nonce_the_portal_never_issued_is_refused(client, lms, registration, lms_class, linked_course):
    before = portal_counts()
    posted = signed_launch(client, lms, registration, lms_class.student, lms_class.course, claims={"nonce": "n"})

    refused(post_launch(client, posted), 400, "This launch was not started by your browser")
    assert portal_counts() == before


@pytest.mark.parametrize("state", ["state-someone-elses", None])
def test_a_launch_without_the_state_of_this_browser_is_refused(
    client, lms, registration, lms_class, linked_course, state
):
    before = portal_counts()
    posted = signed_launch(client, lms, registration, lms_class.student, lms_class.course)
    if state is None:
        del posted["state"]
    else:
        posted["state"] = state

    refused(post_launch(client, posted), 400, "The portal could not match this launch to your browser")
    assert portal_counts() == before


def test_an_expired_launch_is_refused(client, lms, registration, lms_class, linked_course):
    before = portal_counts()
    past = int(time.time()) - 600
    posted = signed_launch(
        client, lms, registration, lms_class.student, lms_class.course, claims={"iat": past, "exp": past + 300}
    )

    refused(post_launch(client, posted), 400, "This launch has expired")
    assert portal_counts() == before


def test_a_launch_for_another_client_id_is_refused(client, lms, registration, lms_class, linked_course):
    before = portal_counts()
    posted = signed_launch(
        client, lms, registration, lms_class.student, lms_class.course, claims={"aud": "another-tool"}
    )

    refused(post_launch(client, posted), 400, "This LMS is not registered with the portal")
    assert portal_counts() == before


@pytest.mark.parametrize("kid", ["platform's", "unknown"])
def test_a_launch_signed_by_a_key_the_platform_does_not_publish_is_refused(
    client, lms, registration, lms_class, linked_course, kid
):
    from tests.support.lti_launches import resigned

    before = portal_counts()
    posted = signed_launch(client, lms, registration, lms_class.student, lms_class.course)
    posted["id_token"] = resigned(posted["id_token"], kid=lms.kid if kid == "platform's" else "unknown")

    refused(post_launch(client, posted), 400, "This launch's signature does not match the LMS's keys")
    assert portal_counts() == before


def test_a_launch_through_an_unknown_deployment_is_refused_and_it_stays_inactive(
    client, lms, registration, lms_class, linked_course
):
    before = portal_counts()
    deployment_claim = "https://purl.imsglobal.org/spec/lti/claim/deployment_id"
    posted = signed_launch(
        client, lms, registration, lms_class.student, lms_class.course, claims={deployment_claim: "unknown-one"}
    )

    refused(post_launch(client, posted), 403, "This installation of the tool is not turned on yet")
    assert portal_counts() == before
    assert not LtiDeployment.objects.get(registration=registration, deployment_id="unknown-one").is_active


def test_the_same_launch_posted_again_is_refused(client, lms, registration, lms_class, linked_course):
    posted = signed_launch(client, lms, registration, lms_class.student, lms_class.course)
    assert post_launch(client, posted).status_code == 302
    before = portal_counts()

    refused(post_launch(Client(cookies=client.cookies), posted), 400, "This launch was already used")
    assert portal_counts() == before


@pytest.mark.parametrize(
    ("email", "title"),
    [
        ("stella@gmail.com", "The portal does not take this address from this LMS"),
        ("", "The LMS did not send your email address"),
    ],
)
def test_a_launch_without_a_trusted_address_is_refused(
    client, lms, registration, lms_class, linked_course, email, title
):
    before = portal_counts()
    posted = signed_launch(client, lms, registration, lms_class.student, lms_class.course, claims={"email": email})

    refused(post_launch(client, posted), 403, title)
    assert portal_counts() == before


def test_a_portal_administrator_is_never_signed_in_by_a_launch(client, lms, registration, lms_class, linked_course):
    UserFactory(email=lms_class.instructor.email, is_staff=True, is_superuser=True)
    before = portal_counts()

    response = launch(client, lms, registration, lms_class.instructor, lms_class.course)

    refused(response, 403, "Portal administrators sign in to the portal directly")
    assert b"sign-in page" in response.content
    assert portal_counts() == before
    assert "_auth_user_id" not in client.session


def test_a_launch_with_no_role_the_portal_knows_is_refused(client, lms, registration, lms_class, linked_course):
    observer = lms_class.course.enrol(LmsPerson("owen.observer@example.edu", "Owen Observer"), "Administrator")
    before = portal_counts()

    response = launch(client, lms, registration, observer, lms_class.course)

    refused(response, 403, "The LMS gave you no role the portal knows in this course")
    assert portal_counts() == before
