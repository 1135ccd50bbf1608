"""Staff sessions (administrators, instructors, TAs) end after PORTAL_STAFF_IDLE_TIMEOUT_MINUTES
without a request of theirs; students' sessions do not. Time is moved on by hand, never waited."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest
from django.contrib.auth import SESSION_KEY
from django.urls import reverse

from accounts_app.middleware import AUTO_REFRESH_HEADER


class Clock:
    """time.time(), frozen, moved on by hand."""

    def __init__(self):
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, *, minutes: float) -> None:
        self.now += minutes * 60


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(time, "time", clock)
    return clock


def sign_in_again_url(next_path: str) -> str:
    return f"{reverse('account_login')}?{urlencode({'next': next_path})}"


@pytest.mark.parametrize("persona", ["instructor", "ta", "admin"])
def test_a_staff_session_ends_after_thirty_idle_minutes(personas, clock, persona):
    client = personas.client(persona)
    courses = reverse("courses:list")
    assert client.get(courses).status_code == 200

    # Activity keeps the session going, however long it lasts in all.
    for _ in range(3):
        clock.advance(minutes=29)
        assert client.get(courses).status_code == 200
    clock.advance(minutes=31)
    response = client.get(courses)

    assert (response.status_code, response["Location"]) == (302, sign_in_again_url(courses))
    assert SESSION_KEY not in client.session
    sign_in_page = client.get(response["Location"])
    assert "You were signed out after 30 minutes without activity. Sign in again to continue." in sign_in_page.text
    assert client.get(courses).status_code == 302


def test_a_students_session_does_not_end_when_idle(personas, clock):
    client = personas.client("student")
    client.get(reverse("courses:list"))

    clock.advance(minutes=8 * 60)

    assert client.get(reverse("courses:list")).status_code == 200
    assert client.session[SESSION_KEY] == str(personas.student.pk)


def test_a_page_that_refreshes_itself_does_not_keep_the_session_alive(personas, clock):
    client = personas.client("instructor")
    roster = reverse("courses:roster", kwargs={"course_id": personas.course.pk})
    poll = {"HX-Request": "true", "HX-Current-URL": f"http://testserver{roster}", AUTO_REFRESH_HEADER: "1"}
    assert client.get(roster).status_code == 200

    clock.advance(minutes=20)
    assert client.get(roster, headers=poll).status_code == 200
    clock.advance(minutes=11)
    response = client.get(roster, headers=poll)

    # htmx is told to load the sign-in page in place of the whole page, not inside the table.
    assert response.status_code == 200
    assert response["HX-Redirect"] == sign_in_again_url(roster)
    assert SESSION_KEY not in client.session


def test_a_request_made_by_the_person_counts_as_activity_even_through_htmx(personas, clock):
    client = personas.client("instructor")
    roster = reverse("courses:roster", kwargs={"course_id": personas.course.pk})
    client.get(roster)

    clock.advance(minutes=20)
    client.get(roster, headers={"HX-Request": "true"})  # typing in the roster's search box
    clock.advance(minutes=20)

    assert client.get(roster).status_code == 200


def test_the_idle_time_is_a_setting(personas, clock, settings):
    settings.PORTAL_STAFF_IDLE_TIMEOUT_MINUTES = 5
    client = personas.client("instructor")
    client.get(reverse("courses:list"))

    clock.advance(minutes=4)
    assert client.get(reverse("courses:list")).status_code == 200
    clock.advance(minutes=6)

    assert client.get(reverse("courses:list")).status_code == 302
    assert SESSION_KEY not in client.session
