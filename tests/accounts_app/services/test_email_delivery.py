"""Email goes out once, after the change that decided it commits, through `emails_deliver_task`:
a mail server that fails is tried again later with what it did not take, and a rolled-back change
sends nothing. The mail server is Django's locmem backend behind a script of answers."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest
from django.core import mail
from django.core.mail.backends import locmem
from django.db import transaction
from django.urls import reverse

from accounts_app import tasks
from accounts_app.services.notifications import email_build, emails_send
from portal.celery import app as celery_app


class ScriptedMailServer(locmem.EmailBackend):
    """Answers each message it is given with the next of `answers` (an error to raise, None to
    take it), then takes everything; `attempts` lists the subjects it was given, in order."""

    answers: list[Exception | None] = []
    attempts: list[str] = []

    def send_messages(self, messages):
        for message in messages:
            type(self).attempts.append(message.subject)
            answer = type(self).answers.pop(0) if type(self).answers else None
            if answer is not None:
                raise answer
        return super().send_messages(messages)


@pytest.fixture
def mail_server(settings) -> Iterator[type[ScriptedMailServer]]:
    settings.MAILERS = {"default": {"BACKEND": f"{__name__}.ScriptedMailServer"}}
    ScriptedMailServer.answers, ScriptedMailServer.attempts = [], []
    # Celery runs a task's retries inline (eager) only when its errors do not propagate: the
    # tests see every retry, and what came of them in the outbox and the log.
    celery_app.conf.task_eager_propagates = False
    yield ScriptedMailServer
    celery_app.conf.task_eager_propagates = True


def dropped() -> smtplib.SMTPServerDisconnected:
    return smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


def message(subject: str, to: str = "student@school.example") -> mail.EmailMultiAlternatives:
    return mail.EmailMultiAlternatives(subject=subject, body=f"About {subject}.", to=[to])


def subjects() -> list[str]:
    return [sent.subject for sent in mail.outbox]


@pytest.mark.django_db
def test_nothing_is_sent_before_the_change_commits(mail_server, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as queued:
        emails_send([message("Your account is ready")])
        assert mail_server.attempts == []

    assert mail.outbox == []
    assert [callback.func for callback in queued] == [tasks.emails_deliver_task.delay]


@pytest.mark.django_db
def test_a_change_rolled_back_sends_nothing(mail_server, django_capture_on_commit_callbacks):
    # The raise inside the block is the rollback under test.
    with (  # noqa: PT012
        django_capture_on_commit_callbacks(execute=True) as queued,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        emails_send([message("Your account is closed")])
        raise RuntimeError("the step fails after deciding the email")

    assert queued == []
    assert mail_server.attempts == []
    assert mail.outbox == []


@pytest.mark.django_db
def test_a_failing_mail_server_is_tried_again_and_every_email_goes_once(
    mail_server, django_capture_on_commit_callbacks
):
    """The connection drops at the second message, then the server is down for a retry: the
    retries carry only what was not sent, so the first message goes once."""
    mail_server.answers = [None, dropped(), ConnectionRefusedError(111, "Connection refused")]

    with django_capture_on_commit_callbacks(execute=True):
        emails_send([message("first"), message("second"), message("third")])

    assert mail_server.attempts == ["first", "second", "second", "second", "third"]
    assert subjects() == ["first", "second", "third"]


@pytest.mark.django_db
def test_a_message_refused_for_every_recipient_for_good_is_skipped_and_the_rest_goes(
    mail_server, django_capture_on_commit_callbacks, caplog
):
    """A 550 for every recipient will not change on a retry: the others are not held back by it.
    A 450 (mailbox busy) might: that message is tried again."""
    refused = {"gone@school.example": (550, b"5.1.1 No such user")}
    busy = {"busy@school.example": (450, b"4.2.1 Mailbox busy")}
    mail_server.answers = [
        smtplib.SMTPRecipientsRefused(refused),
        smtplib.SMTPRecipientsRefused(busy),
    ]

    with django_capture_on_commit_callbacks(execute=True):
        emails_send(
            [
                message("to nobody", to="gone@school.example"),
                message("to a busy mailbox", to="busy@school.example"),
                message("to the student"),
            ]
        )

    assert mail_server.attempts == [
        "to nobody",
        "to a busy mailbox",
        "to a busy mailbox",
        "to the student",
    ]
    assert subjects() == ["to a busy mailbox", "to the student"]
    assert "Email 'to nobody' refused for every recipient" in caplog.text


@pytest.mark.django_db
def test_after_its_last_retry_the_task_says_which_emails_were_not_sent(
    mail_server, monkeypatch, django_capture_on_commit_callbacks, caplog
):
    monkeypatch.setattr(tasks.emails_deliver_task, "max_retries", 2)
    mail_server.answers = [dropped()] * 3

    with django_capture_on_commit_callbacks(execute=True):
        emails_send([message("Your account is ready")])

    assert mail_server.attempts == ["Your account is ready"] * 3
    assert mail.outbox == []
    assert (
        "Gave up sending 1 email(s) after 3 attempts: [('Your account is ready', ['student@school.example'])]"
    ) in caplog.text


@pytest.mark.django_db
def test_an_email_keeps_its_sender_subject_and_both_bodies_through_the_queue(
    mail_server, personas, django_capture_on_commit_callbacks
):
    recipients = ["b@school.example", "a@school.example"]
    built = email_build("handover_requested", {"course": personas.course}, recipients)

    with django_capture_on_commit_callbacks(execute=True):
        emails_send([built])

    [sent] = mail.outbox
    assert (sent.from_email, sent.to, sent.subject, sent.body) == (
        built.from_email,
        ["a@school.example", "b@school.example"],
        built.subject,
        built.body,
    )
    assert sent.alternatives == built.alternatives


@pytest.mark.django_db
def test_allauths_emails_go_through_the_same_queue(personas, mail_server, django_capture_on_commit_callbacks):
    client = personas.client("anonymous")

    with django_capture_on_commit_callbacks() as queued:
        response = client.post(reverse("account_reset_password"), {"email": personas.student.email})
    assert response.status_code == 302
    assert mail.outbox == []
    for callback in queued:
        callback()

    [reset] = mail.outbox
    assert reset.to == [personas.student.email]
    assert "/accounts/password/reset/key/" in reset.body
