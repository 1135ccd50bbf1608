"""The AWS-account pages through the test client: the student's panel, the instructor's roster
actions, the administrator's overview and the access-role template. Tests that need AWS use the
moto organization of the `aws` fixture; Celery tasks run eagerly as transactions commit."""

import html
import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from accounts_app.choices import AccessMode, AccountState, AuditAction
from accounts_app.crypto import decrypt
from accounts_app.lifecycle import transition
from accounts_app.models import AuditEvent, AwsOrganization, Course, MemberAccount, Membership
from accounts_app.naming import account_name_for, root_email_for, student_key
from tests.factories import MembershipFactory

moto_db = pytest.mark.django_db(transaction=True)


def hrefs(response) -> list[str]:
    return [html.unescape(href) for href in re.findall(r'href="([^"]*)"', response.content.decode())]


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def queued_account(membership: Membership) -> MemberAccount:
    """An account in the vending queue, made without queueing anything."""
    key = student_key(membership.email)
    return MemberAccount.objects.create(
        course=membership.course,
        membership=membership,
        root_email=root_email_for(membership.course, key),
        account_name=account_name_for(membership.course, key),
    )


def failed_account(membership: Membership, why: str = "AWS refused to create the account: no.") -> MemberAccount:
    account = queued_account(membership)
    assert transition(
        account,
        expected=AccountState.REQUESTED,
        to=AccountState.FAILED,
        reason="test",
        last_error=why,
    )
    return account


def ready_account(membership: Membership, aws_account_id: str) -> MemberAccount:
    account = queued_account(membership)
    transition(
        account,
        expected=AccountState.REQUESTED,
        to=AccountState.CONFIGURING,
        aws_account_id=aws_account_id,
    )
    transition(account, expected=AccountState.CONFIGURING, to=AccountState.READY)
    return account


def panel_tag(response) -> str:
    """The opening tag of the status panel, where htmx's polling attributes are."""
    return re.match(r'\s*(<section id="account-panel"[^>]*>)', response.content.decode()).group(1)


def student_membership(personas) -> Membership:
    return Membership.objects.get(user=personas.student)


# --- The student's panel --------------------------------------------------------------------------


@pytest.mark.django_db
def test_student_sees_the_request_button_on_the_course_page(personas):
    response = personas.client("student").get(reverse("courses:detail", args=[personas.course.pk]))

    assert response.status_code == 200
    assert "Request my AWS account" in response.content.decode()
    assert reverse("courses:account_request", args=[personas.course.pk]) in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["ta", "instructor"])
def test_course_staff_see_no_account_panel(personas, persona):
    response = personas.client(persona).get(reverse("courses:detail", args=[personas.course.pk]))

    assert response.status_code == 200
    assert "Request my AWS account" not in response.content.decode()
    assert 'id="account-panel"' not in response.content.decode()


@moto_db
def test_requesting_an_account_redirects_and_the_course_page_shows_the_console_link(personas, aws):
    client = personas.client("student")
    detail = reverse("courses:detail", args=[personas.course.pk])

    response = client.post(reverse("courses:account_request", args=[personas.course.pk]))

    assert response.status_code == 302
    assert response.url == detail
    account = MemberAccount.objects.get(membership=student_membership(personas))
    assert account.state == AccountState.READY
    page = client.get(detail)
    content = page.content.decode()
    assert f'<dd class="code">{account.aws_account_id}</dd>' in content
    portal_url = AwsOrganization.load().access_portal_url
    assert portal_url.startswith("https://") and portal_url.endswith(".awsapps.com/start")
    deep_link = f"{portal_url}/#/console?account_id={account.aws_account_id}&role_name=ClassroomStudent"
    assert deep_link in hrefs(page)
    assert "Request my AWS account" not in content


@pytest.mark.django_db
def test_account_panel_partial_has_no_polling_before_a_request(personas):
    response = personas.client("student").get(
        reverse("courses:my_account", args=[personas.course.pk]), headers={"HX-Request": "true"}
    )

    assert response.status_code == 200
    assert response.templates[0].name == "accounts/_account_panel.html"
    assert "base.html" not in [t.name for t in response.templates]
    assert "hx-trigger" not in response.content.decode()
    assert "Request my AWS account" in response.content.decode()


@pytest.mark.django_db
def test_account_panel_partial_polls_only_while_the_account_is_in_progress(personas):
    client = personas.client("student")
    url = reverse("courses:my_account", args=[personas.course.pk])
    account = queued_account(student_membership(personas))

    in_queue = client.get(url, headers={"HX-Request": "true"})
    transition(
        account,
        expected=AccountState.REQUESTED,
        to=AccountState.CONFIGURING,
        aws_account_id="210987654321",
    )
    configuring = client.get(url, headers={"HX-Request": "true"})
    transition(account, expected=AccountState.CONFIGURING, to=AccountState.READY)
    ready = client.get(url, headers={"HX-Request": "true"})

    for response in (in_queue, configuring, ready):
        assert response.status_code == 200
        names = [t.name for t in response.templates]
        assert names[0] == "accounts/_account_panel.html" and "base.html" not in names  # the panel alone
    for response in (in_queue, configuring):
        panel = panel_tag(response)
        assert f'hx-get="{url}"' in panel
        assert 'hx-trigger="every 3s"' in panel
    # Settled: the panel no longer polls (the usage meter inside it loads once).
    assert "hx-trigger" not in panel_tag(ready)
    assert '<dd class="code">210987654321</dd>' in ready.content.decode()


@pytest.mark.django_db
def test_account_panel_of_a_failed_account_stops_polling_and_hides_the_error(personas):
    failed_account(student_membership(personas), why="The portal is not allowed to CreateAccount in AWS.")

    response = personas.client("student").get(
        reverse("courses:my_account", args=[personas.course.pk]), headers={"HX-Request": "true"}
    )

    content = response.content.decode()
    assert "hx-trigger" not in content
    assert "Your account could not be set up. Your instructor has been shown why and can retry." in content
    assert "The portal is not allowed" not in content


STUDENT_ENDPOINTS = [
    ("GET", "courses:my_account"),
    ("POST", "courses:account_request"),
    ("POST", "courses:account_bring"),
    ("POST", "courses:account_check_role"),
    ("POST", "courses:account_password"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["ta", "instructor"])
@pytest.mark.parametrize(("method", "url_name"), STUDENT_ENDPOINTS)
def test_course_staff_cannot_use_the_student_account_endpoints(personas, persona, method, url_name):
    client = personas.client(persona)
    url = reverse(url_name, args=[personas.course.pk])

    response = client.get(url) if method == "GET" else client.post(url, {"aws_account_id": "123456789012"})

    assert response.status_code == 404
    assert not MemberAccount.objects.exists()


# --- Instructors' actions on the roster -----------------------------------------------------------


@moto_db
def test_instructor_provision_all_queues_every_student(personas, aws):
    MembershipFactory(course=personas.course, user=None, email="ann@school.example", name="Ann Arbor")
    client = personas.client("instructor")
    url = reverse("courses:provision_all", args=[personas.course.pk])

    response = client.post(url)

    assert response.status_code == 302
    assert response.url == reverse("courses:roster", args=[personas.course.pk])
    assert messages_of(response) == ["Queued 2 account(s)."]
    assert "Queued 2 account(s)." in client.get(response.url).content.decode()  # shown, so used up
    accounts = MemberAccount.objects.filter(course=personas.course).select_related("membership")
    assert sorted((a.membership.email, a.state) for a in accounts) == [
        ("ann@school.example", "ready"),
        ("student@school.example", "ready"),
    ]

    again = client.post(url)

    assert messages_of(again) == ["Every student already has an account."]
    assert MemberAccount.objects.count() == 2


@pytest.mark.django_db
def test_ta_cannot_provision_all(personas):
    response = personas.client("ta").post(reverse("courses:provision_all", args=[personas.course.pk]))

    assert response.status_code == 403
    assert not MemberAccount.objects.exists()


@pytest.mark.django_db
def test_precreate_with_count_zero_is_refused_and_creates_nothing(personas):
    response = personas.client("instructor").post(
        reverse("courses:precreate", args=[personas.course.pk]), {"count": "0"}
    )

    assert response.status_code == 302
    assert response.url == reverse("courses:roster", args=[personas.course.pk])
    assert messages_of(response) == ["Ensure this value is greater than or equal to 1."]
    assert not MemberAccount.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.ACCOUNTS_PRECREATED).exists()


@moto_db
def test_retrying_a_failed_account_sends_it_back_and_it_becomes_ready(personas, aws):
    account = failed_account(student_membership(personas))

    response = personas.client("instructor").post(
        reverse("courses:account_retry", args=[personas.course.pk, account.pk])
    )

    assert response.status_code == 302
    assert response.url == reverse("courses:roster", args=[personas.course.pk])
    assert messages_of(response) == [f"Retrying {account.account_name}."]
    account.refresh_from_db()
    assert account.state == AccountState.READY
    assert account.last_error == ""
    assert list(account.events.values_list("from_state", "to_state")) == [
        ("requested", "failed"),
        ("failed", "requested"),
        ("requested", "creating"),
        ("creating", "configuring"),
        ("configuring", "ready"),
    ]
    event = AuditEvent.objects.get(action=AuditAction.ACCOUNT_RETRIED)
    assert event.actor == personas.instructor
    assert event.summary == f"Retried {account.account_name} from “Waiting in the queue”"


@pytest.mark.django_db
def test_retrying_an_account_that_is_no_longer_failed_says_so(personas):
    account = queued_account(student_membership(personas))

    response = personas.client("instructor").post(
        reverse("courses:account_retry", args=[personas.course.pk, account.pk])
    )

    assert messages_of(response) == [f"{account.account_name} is no longer failed."]
    account.refresh_from_db()
    assert account.state == AccountState.REQUESTED
    assert not account.events.exists()


@pytest.mark.django_db
def test_retrying_another_courses_account_is_not_found(personas):
    other = failed_account(Membership.objects.get(user=personas.other_student))

    response = personas.client("instructor").post(reverse("courses:account_retry", args=[personas.course.pk, other.pk]))

    assert response.status_code == 404
    other.refresh_from_db()
    assert other.state == AccountState.FAILED
    assert not AuditEvent.objects.filter(action=AuditAction.ACCOUNT_RETRIED).exists()


@pytest.mark.django_db
def test_roster_shows_each_students_account_state(personas):
    course = personas.course
    ann = MembershipFactory(course=course, user=None, email="ann@school.example", name="Ann Arbor")
    MembershipFactory(course=course, user=None, email="bob@school.example", name="Bob Builder")
    cy = MembershipFactory(course=course, user=None, email="cy@school.example", name="Cy Young")
    ready = ready_account(student_membership(personas), "111122223333")
    failed = failed_account(ann, why="AWS refused the root email address as invalid.")
    queued_account(cy)

    response = personas.client("instructor").get(reverse("courses:roster", args=[course.pk]))

    assert response.status_code == 200
    rows = {
        email: row
        for row in re.findall(r'<tr id="member-\d+">.*?</tr>', response.content.decode(), flags=re.DOTALL)
        for email in re.findall(r"<td>([^<@]+@school\.example)</td>", row)
    }
    assert '<span class="state state-ready">Ready</span>' in rows["student@school.example"]
    assert "111122223333" in rows["student@school.example"]
    assert '<span class="state state-failed">Needs attention</span>' in rows["ann@school.example"]
    assert "AWS refused the root email address as invalid." in rows["ann@school.example"]
    assert reverse("courses:account_retry", args=[course.pk, failed.pk]) in rows["ann@school.example"]
    assert reverse("courses:account_retry", args=[course.pk, ready.pk]) not in rows["student@school.example"]
    assert "None yet" in rows["bob@school.example"]
    assert '<span class="state state-requested">Waiting in the queue</span>' in rows["cy@school.example"]
    # The roster polls while an account is still being made.
    assert 'hx-trigger="every 5s"' in response.content.decode()


@pytest.mark.django_db
def test_ta_sees_account_states_on_the_roster_without_retry(personas):
    failed = failed_account(student_membership(personas))

    response = personas.client("ta").get(reverse("courses:roster", args=[personas.course.pk]))

    assert response.status_code == 200
    assert '<span class="state state-failed">Needs attention</span>' in response.content.decode()
    assert reverse("courses:account_retry", args=[personas.course.pk, failed.pk]) not in response.content.decode()


# --- Administrators -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_aws_overview_shows_the_organization_and_the_quota_to_administrators(personas, aws, settings):
    settings.PORTAL_AWS_ACCOUNT_LIMIT = 37  # moto's Service Quotas does not know the account quota
    organization_id = aws.client("organizations").describe_organization()["Organization"]["Id"]
    failed_account(student_membership(personas), why="The management account has no valid payment method.")

    response = personas.client("admin").get(reverse("aws_overview"))

    assert response.status_code == 200
    content = response.content.decode()
    assert f'<dd class="code">{organization_id}</dd>' in content
    assert "of a quota of <strong>37</strong>" in " ".join(content.split())
    assert "The management account has no valid payment method." in content


@pytest.mark.django_db
def test_aws_overview_is_forbidden_to_instructors(personas):
    response = personas.client("instructor").get(reverse("aws_overview"))

    assert response.status_code == 403


@pytest.mark.django_db
def test_access_role_template_names_the_management_account(personas, aws):
    management_id = aws.client("organizations").describe_organization()["Organization"]["MasterAccountId"]

    response = personas.client("student").get(reverse("access_role_template"))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/yaml; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="classroom-cloud-access-role.yaml"'
    content = response.content.decode()
    assert content.startswith('AWSTemplateFormatVersion: "2010-09-09"')
    assert f"AWS: arn:aws:iam::{management_id}:root" in content
    assert "RoleName: OrganizationAccountAccessRole" in content


@pytest.mark.django_db
def test_access_role_template_is_not_found_before_bootstrap(personas):
    response = personas.client("student").get(reverse("access_role_template"))

    assert response.status_code == 404


# --- The first password (IAM-user mode) -----------------------------------------------------------


@moto_db
def test_password_page_shows_the_first_password_once_then_redirects(personas, aws):
    Course.objects.filter(pk=personas.course.pk).update(access_mode=AccessMode.IAM_USER)
    client = personas.client("student")
    detail = reverse("courses:detail", args=[personas.course.pk])
    client.post(reverse("courses:account_request", args=[personas.course.pk]))
    account = MemberAccount.objects.get(membership=student_membership(personas))
    assert account.state == AccountState.READY
    password = decrypt(account.one_time_password)
    assert "Show my first password (once)" in client.get(detail).content.decode()
    url = reverse("courses:account_password", args=[personas.course.pk])

    shown = client.post(url)

    assert shown.status_code == 200
    assert shown["Cache-Control"] == "no-store"
    content = shown.content.decode()
    assert f'<dd class="code secret">{html.escape(password)}</dd>' in content
    assert f'<dd class="code">{account.iam_user_name}</dd>' in content
    assert f"https://{account.account_alias}.signin.aws.amazon.com/console" in hrefs(shown)

    again = client.post(url)

    assert again.status_code == 302
    assert again.url == detail
    assert messages_of(again) == [
        "Your first password was already shown. If you lost it, ask your instructor to reset it."
    ]
    page = client.get(detail).content.decode()
    assert "Your first password has been shown." in page
    assert html.escape(password) not in page
