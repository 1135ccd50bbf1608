"""Emails the portal sends: each one a subject, a plain-text and an HTML template under
templates/emails/<name>_subject.txt, <name>.txt and <name>.html, rendered with one context.

Rendering happens where the email is decided; sending never does. `emails_send` queues the
messages for `emails_deliver_task` once the current transaction commits, so that no request and
no step of a task waits on the mail server, a rolled-back change sends nothing, and what the
server refuses for now is sent again later, once (`emails_deliver`)."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Iterable
from typing import Any, TypedDict

from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives, mailers
from django.template.loader import render_to_string
from django.urls import reverse

from accounts_app.choices import AccountState

logger = logging.getLogger(__name__)


class QueuedEmail(TypedDict):
    """A message as the task carries it (JSON): all it needs to send it."""

    subject: str
    body: str
    content_subtype: str  # "plain", or "html" for a message with an HTML body only
    html: str  # the HTML alternative of a plain-text body, or ""
    from_email: str
    to: list[str]


class EmailsUndelivered(Exception):
    """The mail server failed part-way: `remaining` are the messages not sent, in order."""

    def __init__(self, remaining: list[QueuedEmail]):
        super().__init__(f"{len(remaining)} email(s) not sent yet")
        self.remaining = remaining


def absolute_url(viewname: str, **kwargs: Any) -> str:
    """A page's address for a message read outside the portal (an email, a chat channel)."""
    return settings.PORTAL_BASE_URL.rstrip("/") + reverse(viewname, kwargs=kwargs)


def email_build(name: str, context: dict[str, Any], to: Iterable[str]) -> EmailMultiAlternatives:
    # Emails are rendered without a request: AccountState is given here as
    # context_processors.account_states gives it to pages.
    context = {
        "base_url": settings.PORTAL_BASE_URL.rstrip("/"),
        "AccountState": AccountState,
        **context,
    }
    subject = render_to_string(f"emails/{name}_subject.txt", context).strip()
    message = EmailMultiAlternatives(
        subject=settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + " ".join(subject.split()),
        body=render_to_string(f"emails/{name}.txt", context),
        to=sorted(set(to)),
    )
    message.attach_alternative(render_to_string(f"emails/{name}.html", context), "text/html")
    return message


def emails_send(messages: list[EmailMessage]) -> None:
    """Queue the messages for sending after the current transaction commits (at once outside
    one), all in one task: a roster's worth of mail opens one SMTP session, not hundreds."""
    from accounts_app.tasks import emails_deliver_task

    if messages:
        emails_deliver_task.delay_on_commit([_queued(message) for message in messages])


def email_send(name: str, context: dict[str, Any], to: Iterable[str]) -> None:
    emails_send([email_build(name, context, to)])


def emails_deliver(messages: list[QueuedEmail]) -> None:
    """Send the messages in order over one connection. EmailsUndelivered with the ones not sent
    when the server fails; a message every recipient of which is refused for good (a 5xx answer)
    is logged and skipped, since sending it again cannot deliver it."""
    sent = 0
    try:
        with mailers.default as connection:
            for message in messages:
                try:
                    connection.send_messages([_message(message)])
                except smtplib.SMTPRecipientsRefused as refused:
                    if not _refused_for_good(refused):
                        raise
                    logger.error(
                        "Email %r refused for every recipient: %s",
                        message["subject"],
                        refused.recipients,
                    )
                sent += 1
    except OSError as error:  # smtplib's errors, timeouts and refused connections alike
        if sent < len(messages):  # not a failure to say goodbye once everything went
            raise EmailsUndelivered(messages[sent:]) from error


def _refused_for_good(refused: smtplib.SMTPRecipientsRefused) -> bool:
    return all(code >= 500 for code, _ in refused.recipients.values())


def _queued(message: EmailMessage) -> QueuedEmail:
    alternatives = getattr(message, "alternatives", [])
    return QueuedEmail(
        subject=message.subject,
        body=message.body,
        content_subtype=message.content_subtype,
        html=next((content for content, mimetype in alternatives if mimetype == "text/html"), ""),
        from_email=message.from_email,
        to=list(message.to),
    )


def _message(queued: QueuedEmail) -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(
        subject=queued["subject"],
        body=queued["body"],
        from_email=queued["from_email"],
        to=queued["to"],
    )
    message.content_subtype = queued["content_subtype"]
    if queued["html"]:
        message.attach_alternative(queued["html"], "text/html")
    return message
