"""Emails the portal sends: each one a subject, a plain-text and an HTML template under
templates/emails/<name>_subject.txt, <name>.txt and <name>.html, rendered with one context."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, mailers
from django.template.loader import render_to_string


def email_build(name: str, context: dict[str, Any], to: Iterable[str]) -> EmailMultiAlternatives:
    context = {"base_url": settings.PORTAL_BASE_URL.rstrip("/"), **context}
    subject = render_to_string(f"emails/{name}_subject.txt", context).strip()
    message = EmailMultiAlternatives(
        subject=settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + " ".join(subject.split()),
        body=render_to_string(f"emails/{name}.txt", context),
        to=sorted(set(to)),
    )
    message.attach_alternative(render_to_string(f"emails/{name}.html", context), "text/html")
    return message


def emails_send(messages: list[EmailMultiAlternatives]) -> None:
    """Send over one connection (a roster's worth of mail opens one SMTP session, not hundreds)."""
    if not messages:
        return
    with mailers.default as connection:
        connection.send_messages(messages)


def email_send(name: str, context: dict[str, Any], to: Iterable[str]) -> None:
    emails_send([email_build(name, context, to)])
