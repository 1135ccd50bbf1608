"""The student's account panel as htmx polls it: what a poll costs the database while the account
is being made (a class of students polls every 3 seconds at once), and the "stop polling" answer
(htmx's status 286) once the account has settled."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts_app.choices import AccountState, CourseRole
from accounts_app.lifecycle import PANEL_POLLED_STATES
from accounts_app.middleware import AUTO_REFRESH_HEADER
from accounts_app.models import MemberAccount, Membership
from tests.factories import MembershipFactory, UserFactory

# What htmx sends with each poll of the panel: its own header, and the panel's hx-headers.
POLL_HEADERS = {"HX-Request": "true", "HX-Trigger": "account-panel", AUTO_REFRESH_HEADER: "1"}


def account_of(membership: Membership, state: AccountState, aws_account_id: str | None = None) -> MemberAccount:
    return MemberAccount.objects.create(
        course=membership.course,
        membership=membership,
        state=state,
        root_email=f"aws+{membership.pk}@school.example",
        account_name=f"{membership.course.code}-{membership.email.split('@')[0]}",
        aws_account_id=aws_account_id,
    )


def panel_tag(response) -> str:
    return re.match(r'\s*(<section id="account-panel"[^>]*>)', response.content.decode()).group(1)


@pytest.mark.django_db
def test_a_poll_while_the_account_is_being_created_takes_three_queries_and_shows_only_ones_own(personas):
    student = Membership.objects.get(user=personas.student)
    account_of(student, AccountState.CREATING)
    # Classmates, and a student of another course, whose accounts are being made too.
    classmate = MembershipFactory(
        course=personas.course, user=UserFactory(email="classmate@school.example"), role=CourseRole.STUDENT
    )
    account_of(classmate, AccountState.CONFIGURING, aws_account_id="111122223333")
    account_of(Membership.objects.get(user=personas.other_student), AccountState.CREATING)
    client = personas.client("student")
    url = reverse("courses:my_account", args=[personas.course.pk])

    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, headers=POLL_HEADERS)

    # The session, the user (with what the middleware asks of them), and the entry with its
    # course and account.
    assert len(queries) <= 3, "\n".join(query["sql"] for query in queries)
    assert response.status_code == 200
    panel = panel_tag(response)
    assert f'hx-get="{url}"' in panel and 'hx-trigger="every 3s"' in panel
    content = response.content.decode()
    assert "This takes a few minutes" in content
    for someone_else in ("classmate", "111122223333", "other_student", personas.other_course.code):
        assert someone_else not in content


@pytest.mark.django_db
@pytest.mark.parametrize("state", sorted(PANEL_POLLED_STATES))
def test_every_state_in_progress_keeps_the_panel_polling(personas, state):
    account_of(Membership.objects.get(user=personas.student), state, aws_account_id="210987654321")

    response = personas.client("student").get(
        reverse("courses:my_account", args=[personas.course.pk]), headers=POLL_HEADERS
    )

    assert response.status_code == 200
    assert 'hx-trigger="every 3s"' in panel_tag(response)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("state", "says"),
    [
        (AccountState.READY, '<dd class="code">210987654321</dd>'),
        (AccountState.FAILED, "Your account could not be set up."),
        (AccountState.CLOSED, "was closed"),
    ],
)
def test_a_poll_that_finds_the_account_settled_is_told_to_stop(personas, state, says):
    account_of(Membership.objects.get(user=personas.student), state, aws_account_id="210987654321")
    client = personas.client("student")
    url = reverse("courses:my_account", args=[personas.course.pk])

    poll = client.get(url, headers=POLL_HEADERS)
    shown = client.get(url, headers={"HX-Request": "true"})

    # htmx swaps the settled panel in and stops polling on 286; the panel itself polls no more.
    assert poll.status_code == 286
    assert says in poll.content.decode()
    assert 'hx-trigger="every' not in panel_tag(poll)
    # Asked for otherwise than by a poll, the panel answers as any page does.
    assert shown.status_code == 200
    assert shown.content == poll.content
