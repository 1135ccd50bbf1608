"""The roster sync's pages: the roster page's LMS panel, Sync now, the preview that polls while the
LMS is asked and that the instructor applies, and who may do any of it."""

import pytest
from django.urls import reverse
from lti_tool.models import Key

from accounts_app.choices import AccountState, CourseRole, MembershipSource
from accounts_app.models import Course, MemberAccount, Membership
from lms_app.models import LmsRosterFetch, RosterFetchStatus, RosterFetchTrigger
from lms_app.services.roster_sync import lms_roster_sync
from tests.factories import MemberAccountFactory
from tests.lms_app.conftest import link_course
from tests.support.lti_platform import LmsPerson

pytestmark = pytest.mark.django_db

LOGIN, DONE = "login", "done"


def roster_url(course) -> str:
    return reverse("courses:roster", kwargs={"course_id": course.pk})


def sync_now_url(course) -> str:
    return reverse("lms:roster_sync", kwargs={"course_id": course.pk})


def preview_url(fetch) -> str:
    return reverse("lms:roster_sync_preview", kwargs={"course_id": fetch.link.course_id, "fetch_id": fetch.pk})


def fetched(linked, trigger=RosterFetchTrigger.ON_DEMAND) -> LmsRosterFetch:
    fetch = LmsRosterFetch.objects.create(link=linked.link, trigger=trigger)
    lms_roster_sync(fetch_id=fetch.pk)
    fetch.refresh_from_db()
    return fetch


@pytest.fixture
def synced(linked):
    """The course after a first sync: its roster is the LMS's."""
    for i in range(3):
        linked.lms_course.enrol(LmsPerson(f"student{i}@school.example", f"Student {i}"), "Learner")
    fetched(linked, RosterFetchTrigger.NIGHTLY)
    return linked


# --- The roster page ------------------------------------------------------------------------------


@pytest.mark.parametrize(("persona", "sync_button"), [("instructor", True), ("admin", True), ("ta", False)])
def test_the_roster_page_says_who_keeps_the_roster_and_offers_sync_now_to_instructors(
    synced, personas, persona, sync_button
):
    page = personas.client(persona).get(roster_url(synced.course)).content.decode()

    assert "Managed by <strong>Canvas: CS101</strong> ·" in page
    assert "last synced" in page
    assert (f'action="{sync_now_url(synced.course)}"' in page) is sync_button
    assert ("Sync now" in page) is sync_button


def test_a_student_sees_no_roster_page_and_no_sync(synced, personas):
    assert personas.client("student").get(roster_url(synced.course)).status_code == 403


def test_a_course_no_lms_keeps_shows_no_sync(personas):
    page = personas.client("instructor").get(roster_url(personas.course)).content.decode()

    assert "Managed by" not in page and "Sync now" not in page


def test_a_failed_sync_and_a_list_waiting_for_review_show_on_the_roster_page(synced, personas):
    synced.platform.trust_tool({"keys": []})
    fetched(synced, RosterFetchTrigger.NIGHTLY)
    page = personas.client("instructor").get(roster_url(synced.course)).content.decode()
    assert "Last sync failed: The LMS refused the portal&#x27;s token request (HTTP 401 UNAUTHORIZED)" in page

    synced.platform.trust_tool(Key.objects.as_jwks())
    waiting = fetched(synced)
    page = personas.client("instructor").get(roster_url(synced.course)).content.decode()

    assert "Last sync failed" not in page
    review = reverse("lms:roster_sync_review", kwargs={"course_id": synced.course.pk})
    assert f'href="{review}"' in page
    response = personas.client("instructor").get(review)
    assert response.status_code == 302 and response["Location"] == preview_url(waiting)


# --- Sync now, the preview, applying ---------------------------------------------------------------


def test_sync_now_previews_the_lms_list_while_polling_then_applies_it_once(
    synced, personas, queued, django_capture_on_commit_callbacks
):
    course = synced.course
    dropped = Membership.objects.get(email="student0@school.example")
    account = MemberAccountFactory(membership=dropped)
    synced.lms_course.drop(next(p for p, _, _ in synced.lms_course.members.values() if p.email == dropped.email))
    synced.lms_course.enrol(LmsPerson("new@school.example", "Nora New"), "Learner")
    client = personas.client("instructor")

    with django_capture_on_commit_callbacks(execute=False) as waiting_tasks:
        response = client.post(sync_now_url(course))
    fetch = LmsRosterFetch.objects.get(trigger=RosterFetchTrigger.ON_DEMAND)
    assert response.status_code == 302 and response["Location"] == preview_url(fetch)

    page = client.get(preview_url(fetch)).content.decode()
    assert "Asking the LMS who is in the course" in page
    assert f'hx-get="{preview_url(fetch)}" hx-trigger="every 2s"' in page

    for task in waiting_tasks:  # the worker's turn
        task()
    partial = client.get(preview_url(fetch), headers={"HX-Request": "true"}).content.decode()
    assert partial.lstrip().startswith('<div id="fetch-status"') and "hx-trigger" not in partial
    assert "<strong>1</strong> to add" in partial and "<strong>1</strong> to remove" in partial
    assert "new@school.example" in partial and "Removed: not in the list" in partial
    assert Membership.objects.filter(pk=dropped.pk).exists()  # nothing changed before the instructor applies

    response = client.post(preview_url(fetch), {"send_invitations": ""})
    assert response.status_code == 302 and response["Location"] == roster_url(course)
    assert not Membership.objects.filter(pk=dropped.pk).exists()
    assert course.memberships.get(email="new@school.example").source == MembershipSource.LMS
    assert MemberAccount.objects.get(pk=account.pk).state == AccountState.CLEANING
    page = client.get(roster_url(course)).content.decode()
    assert "Synced with Canvas: CS101: 1 added, 0 updated, 1 removed." in page

    roster_before = list(course.memberships.order_by("email").values_list("email", "role", "updated_at"))
    again = client.post(preview_url(fetch), {"send_invitations": ""}, follow=True)
    assert "This list was already applied." in again.content.decode()
    assert list(course.memberships.order_by("email").values_list("email", "role", "updated_at")) == roster_before


def test_a_held_list_says_why_it_waits_and_can_be_applied(synced, personas, settings):
    settings.PORTAL_LMS_SYNC_MAX_REMOVALS, settings.PORTAL_LMS_SYNC_MAX_REMOVAL_PERCENT = 1, 0
    for person, _, _ in list(synced.lms_course.members.values()):
        if person.email.startswith("student"):
            synced.lms_course.drop(person)
    fetch = fetched(synced, RosterFetchTrigger.NIGHTLY)
    client = personas.client("instructor")

    page = client.get(preview_url(fetch)).content.decode()

    assert fetch.status == RosterFetchStatus.FETCHED
    assert "The nightly sync stopped here: this list would remove 3" in page
    assert "of the 4 students" in page
    assert "<strong>3</strong> to remove" in page
    assert synced.course.memberships.filter(email__startswith="student", source=MembershipSource.LMS).count() == 3

    client.post(preview_url(fetch), {"send_invitations": ""})

    assert not synced.course.memberships.filter(email__startswith="student", source=MembershipSource.LMS).exists()


def test_a_list_with_problems_offers_no_apply(synced, personas):
    synced.lms_course.members.clear()  # the LMS lists no instructor: the one who linked the course stays
    Membership.objects.create(
        course=synced.course, email="co@school.example", role=CourseRole.INSTRUCTOR, source=MembershipSource.MANUAL
    )
    fetch = fetched(synced)

    page = personas.client("instructor").get(preview_url(fetch)).content.decode()

    assert "This list cannot be applied: 1 problem" in page
    assert "would remove instructor@school.example, who linked the course" in page
    assert "Apply this list" not in page


# --- Who may ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "expected"),
    [  # Sync now (POST), the preview (GET), applying it (POST)
        ("anonymous", (LOGIN, LOGIN, LOGIN)),
        ("student", (403, 403, 403)),
        ("other_student", (404, 404, 404)),
        ("ta", (403, 403, 403)),
        ("instructor", (DONE, 200, DONE)),
        ("other_instructor", (404, 404, 404)),
        ("admin", (DONE, 200, DONE)),
    ],
)
def test_only_the_courses_instructors_and_administrators_sync_preview_and_apply(
    synced, personas, persona, expected, django_capture_on_commit_callbacks
):
    fetch = fetched(synced)
    client = personas.client(persona)

    with django_capture_on_commit_callbacks(execute=False):
        answers = (
            answer(client.post(sync_now_url(synced.course))),
            answer(client.get(preview_url(fetch))),
            answer(client.post(preview_url(fetch), {"send_invitations": ""})),
        )

    assert answers == expected


def answer(response) -> str | int:
    if response.status_code == 302:
        return LOGIN if response["Location"].startswith(reverse("account_login")) else DONE
    return response.status_code


def test_another_courses_list_answers_404_under_ones_own_course(synced, personas, lms, lms_registration):
    other = link_course(lms, lms_registration, personas.other_course)
    other.lms_course.enrol(LmsPerson("other_instructor@school.example", "Otto Instructor"), "Instructor")
    foreign = fetched(other)
    path = reverse("lms:roster_sync_preview", kwargs={"course_id": synced.course.pk, "fetch_id": foreign.pk})
    client = personas.client("instructor")

    assert client.get(path).status_code == 404
    assert client.post(path, {"send_invitations": ""}).status_code == 404
    assert client.post(sync_now_url(personas.other_course)).status_code == 404
    assert LmsRosterFetch.objects.get(pk=foreign.pk).status == RosterFetchStatus.FETCHED


def test_sync_now_for_a_course_not_linked_answers_404(personas):
    assert personas.client("instructor").post(sync_now_url(personas.course)).status_code == 404


def test_an_archived_course_is_not_synced(synced, personas):
    Course.objects.filter(pk=synced.course.pk).update(archived_at="2026-12-01T00:00:00Z")

    assert personas.client("instructor").post(sync_now_url(synced.course)).status_code == 403
