"""Webhooks: what each kind receives, which addresses are refused, and how a message gets there.

The receivers and the DNS are in process (`tests/support/webhooks.py`): the portal's own code
checks the address, dials the address it chose and sends the bytes it signed; the test reads
what arrived. A signed message is checked here with the algorithm docs/OPERATIONS.md gives
receivers, written out again, not with the portal's own signing code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction
from django.urls import reverse

from accounts_app import tasks
from accounts_app.choices import (
    AccountState,
    AuditAction,
    WebhookDeliveryStatus,
    WebhookKind,
    WebhookTopic,
)
from accounts_app.crypto import WEBHOOK_PURPOSE, decrypt
from accounts_app.models import (
    AuditEvent,
    MemberAccount,
    Membership,
    WebhookDelivery,
    WebhookEndpoint,
)
from accounts_app.services.webhooks import (
    WebhookError,
    webhook_create,
    webhook_deliver,
    webhook_test_send,
    webhook_url_check,
    webhooks_send,
)
from accounts_app.webhook_formats import REPLAY_WINDOW_SECONDS, Notice, slack_payload, teams_payload
from billing_app.models import Alert, AlertKind
from billing_app.services.budgets import alert_notify
from portal.celery import app as celery_app
from tests.support.webhooks import Received, timed_out, webhook_receivers

SLACK_URL = "https://hooks.slack.com/services/T0001/B0002/abcdefghijklmnop"
TEAMS_URL = "https://prod-42.westeurope.logic.azure.com:443/workflows/0a1b/triggers/manual/paths/invoke?sig=s3cr3t"
SIGNED_URL = "https://alerts.school.example/portal-alerts"

NOTICE = Notice(
    event="budget.alert",
    title="cs101: 80% of the budget spent (Ada <Lovelace> & co)",
    text="Ada passed 80% of the $100.00 budget: $85.00 spent (85%).",
    link="https://cloud.school.example/courses/1/costs/students/2/",
    link_label="Open the account's spend",
    facts=(("Course", "Cloud Computing & DevOps (cs101)"), ("Spend", "$85.00 of a $100.00 budget")),
    data={"course": {"id": 1, "code": "cs101"}},
)


@pytest.fixture
def receivers(monkeypatch):
    return webhook_receivers(monkeypatch)


@pytest.fixture
def retries_inline():
    """Celery runs a task's retries inline (eager) only when its errors do not propagate."""
    celery_app.conf.task_eager_propagates = False
    yield
    celery_app.conf.task_eager_propagates = True


def add(course, kind: str = WebhookKind.SLACK, url: str = SLACK_URL, topics=WebhookTopic.values, actor=None):
    return webhook_create(actor=actor, course=course, name=f"{kind} hook", kind=kind, url=url, topics=topics)


def verify_standard_webhook(secret: str, message: Received, *, now: int | None = None) -> bool:
    """A receiver's check, as docs/OPERATIONS.md describes it."""
    message_id = message.headers["webhook-id"]
    timestamp = message.headers["webhook-timestamp"]
    if abs((now or int(time.time())) - int(timestamp)) > REPLAY_WINDOW_SECONDS:
        return False
    key = base64.b64decode(secret.split("_", 1)[1])
    expected = base64.b64encode(
        hmac.new(key, f"{message_id}.{timestamp}.".encode() + message.body, hashlib.sha256).digest()
    ).decode()
    offered = [part.split(",", 1)[1] for part in message.headers["webhook-signature"].split(" ")]
    return any(hmac.compare_digest(expected, signature) for signature in offered)


# --- What each kind receives ---------------------------------------------------------------------


def test_slack_gets_its_text_and_blocks_with_its_markup_escaped_and_a_link():
    payload = slack_payload(NOTICE)

    assert payload["text"] == f"{NOTICE.title}: {NOTICE.text}"
    header, text, facts, link = payload["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "cs101: 80% of the budget spent (Ada <Lovelace> & co)", "emoji": False},
    }
    assert text["text"] == {"type": "mrkdwn", "text": NOTICE.text}
    assert facts["text"]["text"] == (
        "*Course:* Cloud Computing &amp; DevOps (cs101)\n*Spend:* $85.00 of a $100.00 budget"
    )
    assert link["text"]["text"] == f"<{NOTICE.link}|Open the account's spend>"


def test_teams_gets_a_message_with_an_adaptive_card_that_opens_the_page():
    payload = teams_payload(NOTICE)

    assert payload["type"] == "message"
    [attachment] = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"], card["$schema"]) == (
        "AdaptiveCard",
        "1.4",
        "http://adaptivecards.io/schemas/adaptive-card.json",
    )
    title, text, facts = card["body"]
    assert (title["text"], title["weight"], text["text"]) == (NOTICE.title, "Bolder", NOTICE.text)
    assert facts == {
        "type": "FactSet",
        "facts": [
            {"title": "Course", "value": "Cloud Computing & DevOps (cs101)"},
            {"title": "Spend", "value": "$85.00 of a $100.00 budget"},
        ],
    }
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open the account's spend", "url": NOTICE.link}]


@pytest.mark.django_db
def test_a_signed_message_verifies_with_the_documented_algorithm_and_a_changed_one_does_not(
    personas, receivers, django_capture_on_commit_callbacks
):
    _, secret = add(personas.course, WebhookKind.SIGNED_JSON, SIGNED_URL)

    with django_capture_on_commit_callbacks(execute=True):
        webhooks_send(course=personas.course, topic=WebhookTopic.BUDGET_ALERTS, notice=NOTICE)

    [message] = receivers.received
    delivery = WebhookDelivery.objects.get()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    assert message.headers["webhook-id"] == delivery.message_id
    assert message.headers["Content-Type"] == "application/json"
    assert verify_standard_webhook(secret, message)
    assert message.json["type"] == "budget.alert"
    assert message.json["data"]["url"] == NOTICE.link
    assert message.json["data"]["course"] == {"id": 1, "code": "cs101"}
    # The signature covers the body, the id and the timestamp; the window refuses an old message.
    changed = Received(**{**message.__dict__, "body": message.body.replace(b"85.00", b"8.50")})
    assert not verify_standard_webhook(secret, changed)
    replayed = Received(**{**message.__dict__, "headers": {**message.headers, "webhook-id": "msg_other"}})
    assert not verify_standard_webhook(secret, replayed)
    assert not verify_standard_webhook(secret, message, now=int(time.time()) + REPLAY_WINDOW_SECONDS + 60)
    assert not verify_standard_webhook("whsec_" + base64.b64encode(b"x" * 32).decode(), message)


def documented_verify():
    """The `verify` function docs/OPERATIONS.md gives receivers, as printed there."""
    operations = (Path(settings.BASE_DIR) / "docs" / "OPERATIONS.md").read_text()
    section = operations.split("## Alerts and webhooks", 1)[1]
    [code] = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.DOTALL)
    namespace: dict = {}
    exec(code, namespace)
    return namespace["verify"]


@pytest.mark.django_db
def test_the_verification_the_operations_guide_prints_accepts_the_portals_messages_only(
    personas, receivers, django_capture_on_commit_callbacks
):
    _, secret = add(personas.course, WebhookKind.SIGNED_JSON, SIGNED_URL)
    verify = documented_verify()

    with django_capture_on_commit_callbacks(execute=True):
        webhooks_send(course=personas.course, topic=WebhookTopic.BUDGET_ALERTS, notice=NOTICE)

    [message] = receivers.received
    assert verify(secret, message.headers, message.body) is True
    assert verify(secret, message.headers, message.body + b" ") is False
    stale = {**message.headers, "webhook-timestamp": str(int(message.headers["webhook-timestamp"]) - 600)}
    assert verify(secret, stale, message.body) is False


@pytest.mark.django_db
def test_the_address_and_the_secret_are_stored_encrypted(personas, receivers):
    endpoint, secret = add(personas.course, WebhookKind.SIGNED_JSON, SIGNED_URL)

    row = WebhookEndpoint.objects.filter(pk=endpoint.pk).values().get()
    assert SIGNED_URL not in str(row) and secret not in str(row)
    assert decrypt(row["url_encrypted"], purpose=WEBHOOK_PURPOSE) == SIGNED_URL
    assert decrypt(row["secret_encrypted"], purpose=WEBHOOK_PURPOSE) == secret
    assert decrypt(row["secret_encrypted"]) is None  # another purpose's key reads nothing
    assert row["url_shown"] == "https://alerts.school.example/…"


# --- Which addresses are refused (SSRF) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "url", "says"),
    [
        (WebhookKind.SIGNED_JSON, "http://alerts.school.example/hook", "must start with https://"),
        (WebhookKind.SIGNED_JSON, "https://localhost/hook", "localhost is a private, loopback or reserved address"),
        (WebhookKind.SIGNED_JSON, "https://nowhere.school.example/hook", "nowhere.school.example does not resolve"),
        (WebhookKind.SIGNED_JSON, "https://127.0.0.1/hook", "private, loopback or reserved address (127.0.0.1)"),
        (WebhookKind.SIGNED_JSON, "https://10.0.0.5:8443/hook", "(10.0.0.5)"),
        (WebhookKind.SIGNED_JSON, "https://169.254.169.254/latest/meta-data/", "(169.254.169.254)"),
        (WebhookKind.SIGNED_JSON, "https://[::1]/hook", "(::1)"),
        (WebhookKind.SIGNED_JSON, "https://[::ffff:10.0.0.1]/hook", "(::ffff:10.0.0.1)"),
        (WebhookKind.SIGNED_JSON, "https://100.64.0.1/hook", "(100.64.0.1)"),
        (WebhookKind.SIGNED_JSON, "https://intranet.school.example/hook", "(10.20.30.40)"),
        (WebhookKind.SIGNED_JSON, "https://split.school.example/hook", "(192.168.1.9)"),
        (WebhookKind.SIGNED_JSON, "https://admin:pw@alerts.school.example/hook", "user name or password"),
        (WebhookKind.SLACK, "https://alerts.school.example/services/T/B/x", "https://hooks.slack.com/services/"),
        (WebhookKind.SLACK, "https://hooks.slack.com/triggers/T/1/x", "https://hooks.slack.com/services/"),
        (WebhookKind.SLACK, "https://hooks.slack.com.evil.example/services/T/B/x", "https://hooks.slack.com/services/"),
        (WebhookKind.TEAMS, SLACK_URL, "logic.azure.com"),
        (WebhookKind.TEAMS, "https://prod-1.logic.azure.com:8443/workflows/x", "logic.azure.com"),
    ],
)
def test_addresses_that_are_not_https_public_or_the_kinds_own_are_refused(receivers, kind, url, says):
    receivers.dns["localhost"] = ["127.0.0.1", "::1"]
    receivers.dns["intranet.school.example"] = ["10.20.30.40"]
    receivers.dns["split.school.example"] = ["129.97.0.8", "192.168.1.9"]  # one private is enough

    with pytest.raises(WebhookError) as refused:
        webhook_url_check(kind=kind, url=url)

    assert says in str(refused.value)


@pytest.mark.parametrize(
    ("kind", "url"),
    [
        (WebhookKind.SLACK, SLACK_URL),
        (WebhookKind.TEAMS, TEAMS_URL),
        (WebhookKind.TEAMS, "https://default0a1b.2c.environment.api.powerplatform.com:443/powerautomate/x"),
        (WebhookKind.SIGNED_JSON, SIGNED_URL),
        (WebhookKind.SIGNED_JSON, "https://93.184.216.34:8443/hook?token=1"),
    ],
)
def test_the_kinds_own_addresses_and_public_ones_are_accepted(receivers, kind, url):
    assert webhook_url_check(kind=kind, url=f"  {url} ") == url


@pytest.mark.django_db
def test_the_form_says_why_an_address_is_refused_and_adds_nothing(personas, receivers):
    receivers.dns["metadata.school.example"] = ["169.254.169.254"]
    page = reverse("courses:webhooks", kwargs={"course_id": personas.course.pk})

    response = personas.client("instructor").post(
        page,
        {
            "name": "Our service",
            "kind": WebhookKind.SIGNED_JSON,
            "url": "https://metadata.school.example/x",
            "topics": [WebhookTopic.BUDGET_ALERTS],
        },
    )

    assert response.status_code == 200
    assert (
        "metadata.school.example is a private, loopback or reserved address (169.254.169.254): "
        "the portal only sends to public addresses." in response.content.decode()
    )
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
def test_a_name_that_turned_private_after_it_was_added_is_not_dialled(
    personas, receivers, django_capture_on_commit_callbacks
):
    """DNS rebinding: the address checked when the webhook was added is not the one used later;
    every delivery resolves the name again and dials only the address it checked."""
    add(personas.course, WebhookKind.SIGNED_JSON, SIGNED_URL)
    receivers.dns["alerts.school.example"] = ["127.0.0.1"]

    with django_capture_on_commit_callbacks(execute=True):
        webhooks_send(course=personas.course, topic=WebhookTopic.BUDGET_ALERTS, notice=NOTICE)

    assert receivers.received == []
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == (WebhookDeliveryStatus.FAILED, 1)
    assert delivery.last_error.startswith("Not sent: alerts.school.example is a private, loopback or reserved address")


@pytest.mark.django_db
def test_the_portal_dials_the_address_it_checked_and_verifies_the_certificate_for_the_name(
    personas, receivers, django_capture_on_commit_callbacks
):
    add(personas.course, WebhookKind.TEAMS, TEAMS_URL)

    with django_capture_on_commit_callbacks(execute=True):
        webhooks_send(course=personas.course, topic=WebhookTopic.BUDGET_ALERTS, notice=NOTICE)

    [message] = receivers.received
    assert (message.address, message.port) == ("20.50.0.7", 443)
    assert message.server_hostname == "prod-42.westeurope.logic.azure.com"
    assert message.headers["Host"] == "prod-42.westeurope.logic.azure.com"
    assert message.path == "/workflows/0a1b/triggers/manual/paths/invoke?sig=s3cr3t"
    assert message.json == teams_payload(NOTICE)


# --- Delivery ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_failing_endpoint_is_retried_then_succeeds_and_each_attempt_is_recorded(
    personas, receivers, retries_inline, django_capture_on_commit_callbacks
):
    endpoint, secret = add(personas.course, WebhookKind.SIGNED_JSON, SIGNED_URL)
    receivers.answers = [503, timed_out(), 429]
    attempts: list[tuple] = []
    original = webhook_deliver

    def watched(*, delivery_id, final):
        try:
            return original(delivery_id=delivery_id, final=final)
        finally:
            row = WebhookDelivery.objects.get(pk=delivery_id)
            attempts.append((row.status, row.attempts, row.last_status_code, row.last_error[:36]))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("accounts_app.services.webhooks.webhook_deliver", watched)
        with django_capture_on_commit_callbacks(execute=True):
            webhooks_send(course=personas.course, topic=WebhookTopic.BUDGET_ALERTS, notice=NOTICE)

    assert attempts == [
        (WebhookDeliveryStatus.RETRYING, 1, 503, "HTTP 503: no_service"),
        (WebhookDeliveryStatus.RETRYING, 2, None, "No answer from alerts.school.example"),
        (WebhookDeliveryStatus.RETRYING, 3, 429, "HTTP 429: no_service"),
        (WebhookDeliveryStatus.DELIVERED, 4, 200, ""),
    ]
    delivery = WebhookDelivery.objects.get()
    assert delivery.delivered_at is not None
    # The same message each time, signed afresh: a receiver drops what it already has by its id.
    assert len(receivers.received) == 4
    assert {m.headers["webhook-id"] for m in receivers.received} == {delivery.message_id}
    assert {m.body for m in receivers.received} == {receivers.received[0].body}
    assert all(verify_standard_webhook(secret, m) for m in receivers.received)
    endpoint.refresh_from_db()
    assert not endpoint.is_failing and endpoint.last_error == ""


@pytest.mark.django_db
def test_a_refusal_is_not_retried_and_the_settings_page_shows_the_failing_endpoint(
    personas, receivers, retries_inline, django_capture_on_commit_callbacks
):
    add(personas.course)
    receivers.answers = [404]

    with django_capture_on_commit_callbacks(execute=True):
        webhooks_send(course=personas.course, topic=WebhookTopic.BUDGET_ALERTS, notice=NOTICE)

    assert len(receivers.received) == 1
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        WebhookDeliveryStatus.FAILED,
        1,
        "HTTP 404: no_service",
    )
    page = personas.client("instructor").get(reverse("courses:webhooks", kwargs={"course_id": personas.course.pk}))
    html = page.content.decode()
    assert '<p class="error" role="alert">Failing: HTTP 404: no_service</p>' in html
    assert "budget.alert: <strong>Not delivered</strong>" in html
    assert "(1 attempt, HTTP 404)" in html
    assert SLACK_URL not in html and "https://hooks.slack.com/…" in html


@pytest.mark.django_db
def test_a_receiver_down_for_good_is_given_up_after_the_last_retry(
    personas, receivers, retries_inline, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(tasks.webhook_deliver_task, "max_retries", 2)
    add(personas.course)
    receivers.answers = [502, 502, 502, 200]

    with django_capture_on_commit_callbacks(execute=True):
        webhooks_send(course=personas.course, topic=WebhookTopic.BUDGET_ALERTS, notice=NOTICE)

    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        WebhookDeliveryStatus.FAILED,
        3,
        "HTTP 502: no_service",
    )
    assert len(receivers.received) == 3


@pytest.mark.django_db
def test_nothing_is_posted_before_the_change_commits_nor_when_it_rolls_back(
    personas, receivers, django_capture_on_commit_callbacks
):
    add(personas.course)

    def decide_then_fail() -> None:
        with transaction.atomic():
            webhooks_send(course=personas.course, topic=WebhookTopic.BUDGET_ALERTS, notice=NOTICE)
            assert receivers.received == []
            raise RuntimeError("the step fails after deciding the alert")

    with django_capture_on_commit_callbacks(execute=True) as queued, pytest.raises(RuntimeError):
        decide_then_fail()

    assert queued == []
    assert receivers.received == []
    assert not WebhookDelivery.objects.exists()


@pytest.mark.django_db
def test_an_alert_goes_to_the_course_and_the_school_endpoints_that_take_its_topic_only(
    personas, receivers, django_capture_on_commit_callbacks
):
    add(personas.other_course)
    webhook_create(
        actor=personas.admin,
        course=None,
        name="#money",
        kind=WebhookKind.TEAMS,
        url=TEAMS_URL,
        topics=[WebhookTopic.BUDGET_ALERTS],
    )
    webhook_create(
        actor=None,
        course=personas.course,
        name="#freezes",
        kind=WebhookKind.SLACK,
        url=SLACK_URL,
        topics=[WebhookTopic.FREEZES],
    )
    add(personas.course, WebhookKind.SIGNED_JSON, SIGNED_URL)
    account = MemberAccount.objects.create(
        course=personas.course,
        membership=Membership.objects.get(user=personas.student),
        state=AccountState.READY,
        account_name="cs101-student",
        root_email="aws+cs101-student@school.example",
        aws_account_id="111111111111",
    )
    alert = Alert.objects.create(
        account=account,
        course=personas.course,
        kind=AlertKind.ACTUAL_80,
        period="course",
        message="Stella Student passed 80% of the $100.00 budget: $85.00 spent (85%).",
        spend=Decimal("85.00"),
        budget=Decimal("100.00"),
    )

    with django_capture_on_commit_callbacks(execute=True):
        alert_notify(alert)

    assert sorted(d.endpoint.name for d in WebhookDelivery.objects.all()) == ["#money", "signed_json hook"]
    by_host = {m.server_hostname: m.json for m in receivers.received}
    link = f"http://localhost:8000/courses/{personas.course.pk}/costs/students/{account.pk}/"
    signed = by_host["alerts.school.example"]
    assert signed["type"] == "budget.alert"
    assert signed["data"]["url"] == link
    assert signed["data"]["alert"] == {
        "kind": "actual_80",
        "period": "course",
        "spend": "85.00",
        "budget": "100.00",
        "limit": "",  # no course spend limit: not a freeze
    }
    assert signed["data"]["account"]["aws_account_id"] == "111111111111"
    card = by_host["prod-42.westeurope.logic.azure.com"]["attachments"][0]["content"]
    assert card["body"][0]["text"] == "cs101: 80% of the budget spent (Stella Student)"
    assert card["actions"][0]["url"] == link


# --- The settings page -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_signed_webhook_added_on_the_settings_page_shows_its_secret_once(personas, receivers):
    page = reverse("courses:webhooks", kwargs={"course_id": personas.course.pk})
    client = personas.client("instructor")

    added = client.post(
        page, {"name": "Grades bot", "kind": WebhookKind.SIGNED_JSON, "url": SIGNED_URL, "topics": WebhookTopic.values}
    )
    again = client.get(page)

    endpoint = WebhookEndpoint.objects.get()
    assert added.status_code == 200 and added["Cache-Control"] == "no-store"
    assert endpoint.secret in added.content.decode()
    assert endpoint.secret not in again.content.decode()
    assert (endpoint.course, endpoint.created_by, endpoint.topics) == (
        personas.course,
        personas.instructor,
        WebhookTopic.values,
    )
    assert AuditEvent.objects.filter(action=AuditAction.WEBHOOK_ADDED, course=personas.course).count() == 1


@pytest.mark.django_db
def test_the_test_button_queues_a_message_and_the_request_posts_nothing(
    personas, receivers, django_capture_on_commit_callbacks
):
    endpoint, _ = add(personas.course)
    path = reverse("courses:webhook_test", kwargs={"course_id": personas.course.pk, "endpoint_id": endpoint.pk})

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = personas.client("instructor").post(path)

    assert response.status_code == 302
    assert receivers.received == []
    delivery = WebhookDelivery.objects.get()
    assert [(c.func, c.args) for c in queued] == [(tasks.webhook_deliver_task.delay, (delivery.pk,))]
    queued[0]()  # the worker's turn
    [message] = receivers.received
    assert message.json["text"].startswith("Test message from Classroom Cloud: If you can read this, the webhook")
    assert f"http://localhost:8000/courses/{personas.course.pk}/settings/webhooks/" in str(message.json["blocks"])


@pytest.mark.django_db
def test_a_removed_endpoints_queued_message_is_dropped(personas, receivers, django_capture_on_commit_callbacks):
    endpoint, _ = add(personas.course)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        webhook_test_send(endpoint=endpoint)
    path = reverse("courses:webhook_remove", kwargs={"course_id": personas.course.pk, "endpoint_id": endpoint.pk})

    personas.client("instructor").post(path)
    queued[0]()

    assert receivers.received == []
    assert not WebhookEndpoint.objects.exists()
    assert AuditEvent.objects.filter(action=AuditAction.WEBHOOK_REMOVED).count() == 1


@pytest.mark.django_db
def test_an_administrator_adds_a_school_webhook_in_the_admin_and_sees_its_secret_once(personas, receivers):
    client = personas.client("admin")

    response = client.post(
        reverse("admin:accounts_app_webhookendpoint_add"),
        {
            "course": "",
            "name": "School finance",
            "kind": WebhookKind.SIGNED_JSON,
            "url": SIGNED_URL,
            "topics": [WebhookTopic.FREEZES],
        },
    )

    endpoint = WebhookEndpoint.objects.get()
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    assert endpoint.secret in response.content.decode()
    assert (endpoint.course, endpoint.topics, endpoint.created_by) == (None, [WebhookTopic.FREEZES], personas.admin)
    change = client.get(reverse("admin:accounts_app_webhookendpoint_change", args=[endpoint.pk])).content.decode()
    assert endpoint.secret not in change and SIGNED_URL not in change
