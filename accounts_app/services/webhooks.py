"""Webhook endpoints, and the alerts posted to them besides email.

An endpoint is a course's (its instructors add it on the course's settings) or the school's
(administrators, in the Django admin). `webhooks_send` is called where an alert's email is
decided: it writes one `WebhookDelivery` per endpoint that takes the alert's topic, with the body
already made, and queues `webhook_deliver_task` for each once the transaction commits, so that a
rolled-back change posts nothing and no request or AWS step waits on a receiver. The task makes
one attempt (`webhook_deliver`), records it on the delivery and the endpoint, and is retried with
backoff while the receiver is busy or down; a refusal (4xx) or an address that turned private is
final. Staff read what happened on the settings page.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from urllib.parse import urlsplit

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts_app import webhook_formats as formats
from accounts_app.choices import AuditAction, WebhookDeliveryStatus, WebhookKind, WebhookTopic
from accounts_app.crypto import WEBHOOK_PURPOSE, encrypt
from accounts_app.models import Course, MemberAccount, WebhookDelivery, WebhookEndpoint
from accounts_app.services.audit import audit_record
from accounts_app.services.notifications import absolute_url
from portal import outbound

SLACK_HOSTS = frozenset({"hooks.slack.com", "hooks.slack-gov.com"})
SLACK_PATH_PREFIX = "/services/"
# Teams' incoming webhooks: Workflows (Power Automate) and the older Office 365 connectors.
TEAMS_HOST_SUFFIXES = (".logic.azure.com", ".api.powerplatform.com", ".webhook.office.com")
ERROR_LENGTH = 500
OPEN = (WebhookDeliveryStatus.PENDING, WebhookDeliveryStatus.RETRYING)
UNREADABLE = (
    "its address or signing secret cannot be decrypted: DJANGO_SECRET_KEY changed. Put the previous "
    "key in DJANGO_SECRET_KEY_FALLBACKS, or add the webhook again."
)


class WebhookError(ValueError):
    """The address cannot be used for that kind of webhook; the message says why, for the form."""


class WebhookRetry(Exception):
    """The attempt failed in a way that may pass: try again later."""


# --- Endpoints -------------------------------------------------------------------------------------


def webhook_url_check(*, kind: str, url: str) -> str:
    """The address as it will be used, or WebhookError. Slack and Teams addresses must be
    theirs; the signed kind may be any https address whose host resolves to public addresses
    only (not this network's, nor the cloud's metadata service)."""
    try:
        target = outbound.parse_https_url(url)
    except outbound.UnsafeAddress as error:
        raise WebhookError(str(error)) from error
    if kind == WebhookKind.SLACK:
        slack = target.host in SLACK_HOSTS and target.path.startswith(SLACK_PATH_PREFIX)
        if not slack or target.port != 443:
            raise WebhookError(
                "A Slack incoming webhook address starts with https://hooks.slack.com/services/ "
                "(Slack shows it when you add the Incoming Webhooks app to a channel)."
            )
    elif kind == WebhookKind.TEAMS:
        if not target.host.endswith(TEAMS_HOST_SUFFIXES) or target.port != 443:
            raise WebhookError(
                "A Microsoft Teams webhook address is on logic.azure.com, api.powerplatform.com or "
                "webhook.office.com (Teams shows it when you add the “Post to a channel when a "
                "webhook request is received” workflow)."
            )
    elif kind == WebhookKind.SIGNED_JSON:
        try:
            outbound.public_addresses(target)
        except outbound.UnsafeAddress as error:
            raise WebhookError(str(error)) from error
    else:
        raise WebhookError(f"Unknown kind of webhook: {kind}.")
    return url.strip()


def url_shown(url: str) -> str:
    """The address without its path: for Slack and Teams the path is the key to the channel."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"


def webhook_create(
    *, actor, course: Course | None, name: str, kind: str, url: str, topics: Iterable[str]
) -> tuple[WebhookEndpoint, str]:
    """Add an endpoint. Returns it with its signing secret, to be shown once (the signed kind
    only; "" for Slack and Teams). WebhookError if the address does not do for the kind."""
    url = webhook_url_check(kind=kind, url=url)
    secret = formats.new_secret() if kind == WebhookKind.SIGNED_JSON else ""
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(
            course=course,
            name=name,
            kind=kind,
            topics=[topic for topic in WebhookTopic.values if topic in set(topics)],
            url_encrypted=encrypt(url, purpose=WEBHOOK_PURPOSE),
            url_shown=url_shown(url),
            secret_encrypted=encrypt(secret, purpose=WEBHOOK_PURPOSE) if secret else "",
            created_by=actor,
        )
        where = course.code if course is not None else "the whole school"
        audit_record(
            actor=actor,
            action=AuditAction.WEBHOOK_ADDED,
            course=course,
            target=endpoint,
            summary=f"Webhook {name} ({endpoint.get_kind_display()}, {endpoint.url_shown}) added for {where}",
        )
    return endpoint, secret


def webhook_remove(*, actor, endpoint: WebhookEndpoint) -> None:
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=AuditAction.WEBHOOK_REMOVED,
            course=endpoint.course,
            target=endpoint,
            summary=f"Webhook {endpoint.name} ({endpoint.get_kind_display()}, {endpoint.url_shown}) removed",
        )
        endpoint.delete()


# --- What the messages say about an account ------------------------------------------------------


def account_link(account: MemberAccount) -> str:
    """The staff's page of the account: its spend, alerts, freeze and budget."""
    return absolute_url("billing:student_costs", course_id=account.course_id, account_id=account.pk)


def account_name(account: MemberAccount) -> str:
    return account.membership.display_name if account.membership is not None else account.account_name


def account_data(account: MemberAccount) -> dict:
    """The course and account of a notice, for programs reading the signed kind."""
    course = account.course
    return {
        "course": {"id": course.pk, "code": course.code, "name": course.name},
        "account": {
            "id": account.pk,
            "aws_account_id": account.aws_account_id,
            "student": account_name(account),
            "state": account.state,
        },
    }


# --- Sending ---------------------------------------------------------------------------------------


def webhooks_send(*, course: Course, topic: WebhookTopic, notice: formats.Notice) -> list[WebhookDelivery]:
    """Queue the notice for every enabled endpoint of the course and of the school that takes
    the topic; each is posted after the current transaction commits."""
    # Topics are matched here, not in SQL: SQLite (`make run`) has no JSON containment lookup.
    endpoints = WebhookEndpoint.objects.filter(Q(course=course) | Q(course=None), enabled=True)
    return [_queue(endpoint, notice) for endpoint in endpoints if topic in endpoint.topics]


def webhook_test_send(*, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Queue a test message to the endpoint, whatever its topics."""
    if endpoint.course is not None:
        link = absolute_url("courses:webhooks", course_id=endpoint.course_id)
        where = f"alerts about money in {endpoint.course.code}"
    else:
        link, where = absolute_url("courses:list"), "the school's alerts about money"
    notice = formats.Notice(
        event="webhook.test",
        title="Test message from Classroom Cloud",
        text=f"If you can read this, the webhook “{endpoint.name}” works: {where} will arrive here.",
        link=link,
        link_label="Open the portal",
    )
    return _queue(endpoint, notice)


def _queue(endpoint: WebhookEndpoint, notice: formats.Notice) -> WebhookDelivery:
    from accounts_app.tasks import webhook_deliver_task

    payload = _payload(endpoint, notice)
    delivery = WebhookDelivery.objects.create(endpoint=endpoint, event=notice.event, payload=payload)
    webhook_deliver_task.delay_on_commit(delivery.pk)
    return delivery


def _payload(endpoint: WebhookEndpoint, notice: formats.Notice) -> dict:
    if endpoint.kind == WebhookKind.SLACK:
        return formats.slack_payload(notice)
    if endpoint.kind == WebhookKind.TEAMS:
        return formats.teams_payload(notice)
    return formats.signed_payload(notice, created_at=timezone.now().isoformat())


def webhook_deliver(*, delivery_id: int, final: bool) -> bool:
    """Make one attempt and record it. Returns whether the message was delivered (True also
    when an earlier attempt did; False when its endpoint was removed meanwhile, and the message
    with it); raises WebhookRetry when it may pass and this is not the `final` attempt, after
    which the message is given up."""
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None:
        return False
    if delivery.status not in OPEN:
        return delivery.status == WebhookDeliveryStatus.DELIVERED
    endpoint = delivery.endpoint
    url, secret = endpoint.url, endpoint.secret
    if not endpoint.enabled:
        _record(delivery, error="Not sent: the webhook was turned off.")
        return False
    if url is None or secret is None:
        _record(delivery, error=f"Not sent: {UNREADABLE}")
        return False
    try:
        answer = outbound.post_json(url, *_signed(delivery, secret))
    except outbound.UnsafeAddress as error:
        _record(delivery, error=f"Not sent: {error}")
    except outbound.DeliveryError as error:
        _record(delivery, error=str(error), transient=error.transient, final=final)
    else:
        if answer.ok:
            _record(delivery, status_code=answer.status)
            return True
        said = f": {answer.body}" if answer.body else ""
        refusal = f"HTTP {answer.status}{said}"
        _record(delivery, status_code=answer.status, error=refusal, transient=answer.transient, final=final)
    if delivery.status == WebhookDeliveryStatus.RETRYING:
        raise WebhookRetry(delivery.last_error)
    return False


def _signed(delivery: WebhookDelivery, secret: str) -> tuple[bytes, dict[str, str]]:
    """The body and its headers; the signed kind is signed afresh at each attempt, so that its
    timestamp is the attempt's and a receiver's replay window holds for a retried message."""
    body = formats.encode(delivery.payload)
    if delivery.endpoint.kind != WebhookKind.SIGNED_JSON:
        return body, {}
    timestamp = int(time.time())
    return body, formats.signed_headers(secret, message_id=delivery.message_id, timestamp=timestamp, body=body)


def _record(
    delivery: WebhookDelivery,
    *,
    status_code: int | None = None,
    error: str = "",
    transient: bool = False,
    final: bool = False,
) -> None:
    """Write down one attempt on the delivery and on its endpoint."""
    now = timezone.now()
    if not error:
        status = WebhookDeliveryStatus.DELIVERED
    elif transient and not final:
        status = WebhookDeliveryStatus.RETRYING
    else:
        status = WebhookDeliveryStatus.FAILED
    error = error[:ERROR_LENGTH]
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=status,
        attempts=F("attempts") + 1,
        last_attempt_at=now,
        last_status_code=status_code,
        last_error=error,
        delivered_at=now if status == WebhookDeliveryStatus.DELIVERED else None,
    )
    delivery.status, delivery.last_error, delivery.last_status_code = status, error, status_code
    endpoint_fields = {"last_attempt_at": now, "last_error": error}
    if not error:
        endpoint_fields["last_success_at"] = now
    WebhookEndpoint.objects.filter(pk=delivery.endpoint_id).update(**endpoint_fields)
