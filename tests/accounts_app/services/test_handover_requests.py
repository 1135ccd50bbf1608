"""Asking for a handover, declining it and the staff's pages (accounts_app/services/handover.py,
accounts_app/views/ending.py). These run in a rolled-back transaction against the database alone
or moto, with AWS's Account Management API played by tests/support/account_api.py; the journey
through the handover is in test_handover.py.
"""

from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts_app.choices import AccountState, AuditAction, EndPolicy, HandoverStatus
from accounts_app.lifecycle import transition
from accounts_app.models import AccountEvent, AuditEvent, Handover, MemberAccount
from accounts_app.services.handover import HandoverError, handover_approve, handover_decline, handover_request
from tests.factories import MemberAccountFactory
from tests.support.handover import (
    CONTACT,
    OWN_EMAIL,
    db_account,
    handover_audit,
    membership_of,
    moto_account,
    sent,
    text,
)

# Root emails on the school's domain, as the students' own school addresses are.
pytestmark = pytest.mark.usefixtures("school_addresses")


# --- Asking ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_student_asks_through_the_form_and_the_instructor_is_emailed(personas, django_capture_on_commit_callbacks):
    account = db_account(personas)
    student = personas.client("student")
    url = reverse("courses:handover_start", args=[personas.course.pk])

    form_page = student.get(url)
    with django_capture_on_commit_callbacks(execute=True):  # the email goes as the request commits
        response = student.post(url, {**CONTACT, "new_root_email": "  Ada.Lovelace@Home.example "})

    assert form_page.status_code == 200
    assert 'name="contact_phone"' in text(form_page)
    assert response.status_code == 302
    assert response["Location"] == reverse("courses:my_handover", args=[personas.course.pk])
    account.refresh_from_db()
    assert account.state == AccountState.HANDOVER_REQUESTED
    record = Handover.objects.get(account=account)
    assert (record.status, record.new_root_email, record.contact_name, record.contact_phone) == (
        HandoverStatus.REQUESTED,
        OWN_EMAIL,
        "Ada Lovelace",
        "+44 20 7946 0958",
    )
    assert record.previous_state == AccountState.READY
    assert record.requested_by == personas.student
    assert AccountEvent.objects.filter(
        account=account,
        from_state=AccountState.READY,
        to_state=AccountState.HANDOVER_REQUESTED,
        actor=personas.student,
    ).exists()
    assert handover_audit(account) == [(AuditAction.HANDOVER_REQUESTED, "student@school.example")]
    assert sent("asks to keep their AWS account") == [["instructor@school.example"]]
    assert "waiting for an instructor" in text(student.get(response["Location"]))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("new_root_email", "student@school.example", "Use an address of your own"),
        ("new_root_email", "not an address", "Enter a valid email address."),
        ("contact_phone", "call me maybe", "Write the number with digits"),
        ("contact_phone", "+1 2", "Write the number with digits"),
    ],
)
def test_bad_input_gives_the_form_error_and_changes_nothing(personas, field, value, error):
    account = db_account(personas)

    response = personas.client("student").post(
        reverse("courses:handover_start", args=[personas.course.pk]), {**CONTACT, field: value}
    )

    assert response.status_code == 200
    assert error in text(response)
    account.refresh_from_db()
    assert account.state == AccountState.READY
    assert not Handover.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="handover.").exists()
    assert mail.outbox == []


@pytest.mark.django_db
def test_the_service_refuses_the_accounts_own_root_email(personas):
    account = db_account(personas)

    with pytest.raises(HandoverError, match="your own email address"):
        handover_request(
            actor=personas.student,
            account=account,
            **{**CONTACT, "new_root_email": account.root_email.upper()},
        )

    account.refresh_from_db()
    assert account.state == AccountState.READY
    assert not Handover.objects.exists()


@pytest.mark.django_db
def test_asking_twice_is_refused(personas, django_capture_on_commit_callbacks):
    account = db_account(personas)
    with django_capture_on_commit_callbacks(execute=True):
        first = handover_request(actor=personas.student, account=account, **CONTACT)
    stale = MemberAccount.objects.get(pk=account.pk)
    stale.state = AccountState.READY  # a page loaded before the first request

    with pytest.raises(HandoverError, match="cannot be handed over now"):
        handover_request(actor=personas.student, account=MemberAccount.objects.get(pk=account.pk), **CONTACT)
    with pytest.raises(HandoverError, match="already asked"):
        handover_request(actor=personas.student, account=stale, **CONTACT)
    student = personas.client("student")
    url = reverse("courses:handover_start", args=[personas.course.pk])
    with django_capture_on_commit_callbacks(execute=True):
        again = student.post(url, {**CONTACT, "new_root_email": "other@home.example"})

    assert again.status_code == 302
    assert again["Location"] == reverse("courses:my_handover", args=[personas.course.pk])
    assert list(Handover.objects.values_list("pk", "new_root_email")) == [(first.pk, OWN_EMAIL)]
    assert handover_audit(account) == [(AuditAction.HANDOVER_REQUESTED, "student@school.example")]
    assert len(sent("asks to keep their AWS account")) == 1


@pytest.mark.django_db
def test_a_course_that_does_not_allow_handovers_refuses(personas):
    personas.course.handover_allowed = False
    personas.course.save()
    account = db_account(personas)
    student = personas.client("student")
    url = reverse("courses:handover_start", args=[personas.course.pk])

    assert student.get(url).status_code == 404
    assert student.post(url, CONTACT).status_code == 404
    with pytest.raises(HandoverError):
        handover_request(actor=personas.student, account=MemberAccount.objects.get(pk=account.pk), **CONTACT)
    account.refresh_from_db()
    assert account.state == AccountState.READY
    assert not Handover.objects.exists()
    assert mail.outbox == []


@pytest.mark.django_db
@pytest.mark.parametrize("state", [AccountState.CONFIGURING, AccountState.CLEANING, AccountState.FAILED])
def test_an_account_that_is_not_in_use_or_ended_cannot_be_asked_for(personas, state):
    account = db_account(personas, state=state)

    assert (
        personas.client("student").get(reverse("courses:handover_start", args=[personas.course.pk])).status_code == 404
    )
    with pytest.raises(HandoverError):
        handover_request(actor=personas.student, account=account, **CONTACT)
    assert not Handover.objects.exists()


# --- Declining ------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("previous", [AccountState.READY, AccountState.ENDED])
def test_a_declined_request_puts_the_account_back_and_tells_the_student_why(
    personas, previous, django_capture_on_commit_callbacks
):
    account = db_account(personas)
    if previous == AccountState.ENDED:  # the student asks during the grace period
        personas.course.ended_at = timezone.now()
        personas.course.save()
        assert transition(account, expected=AccountState.READY, to=AccountState.ENDED, reason="Course ended")
    handover_request(actor=personas.student, account=account, **CONTACT)
    instructor = personas.client("instructor")
    decline_url = reverse("courses:handover_decline", args=[personas.course.pk, account.pk])
    mail.outbox.clear()

    blank = instructor.post(decline_url, {"reason": "   "}, follow=True)
    record = Handover.objects.get(account=account)
    assert "Say why the request is declined" in text(blank)
    assert record.status == HandoverStatus.REQUESTED
    with pytest.raises(HandoverError, match="Say why"):
        handover_decline(actor=personas.instructor, handover=record, reason=" \n ")

    with django_capture_on_commit_callbacks(execute=True):  # the email goes as the request commits
        declined = instructor.post(
            decline_url, {"reason": "The account holds the course's shared dataset."}, follow=True
        )

    assert "has been told why" in text(declined)
    record.refresh_from_db()
    account.refresh_from_db()
    assert account.state == previous
    assert record.status == HandoverStatus.DECLINED
    assert record.decline_reason == "The account holds the course's shared dataset."
    assert record.decided_by == personas.instructor
    assert record.decided_at is not None
    assert AccountEvent.objects.filter(
        account=account,
        from_state=AccountState.HANDOVER_REQUESTED,
        to_state=previous,
        actor=personas.instructor,
    ).exists()
    assert handover_audit(account) == [
        (AuditAction.HANDOVER_REQUESTED, "student@school.example"),
        (AuditAction.HANDOVER_DECLINED, "instructor@school.example"),
    ]
    [message] = mail.outbox
    assert message.to == ["student@school.example"]
    assert "declined" in message.subject
    assert "The account holds the course's shared dataset." in message.body
    checklist = personas.client("student").get(reverse("courses:my_handover", args=[personas.course.pk]))
    assert "Your request was declined: The account holds the course's shared dataset." in text(checklist)
    # Decided is decided: approving now changes nothing.
    again = instructor.post(reverse("courses:handover_approve", args=[personas.course.pk, account.pk]), follow=True)
    assert "already decided" in text(again)
    assert not handover_approve(actor=personas.instructor, handover=record)
    account.refresh_from_db()
    assert account.state == previous


# --- Staff pages ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_instructor_sees_approve_and_decline_and_the_ta_only_the_request(personas):
    account = db_account(personas)
    handover_request(actor=personas.student, account=account, **CONTACT)
    review = reverse("courses:handover_review", args=[personas.course.pk, account.pk])
    approve = reverse("courses:handover_approve", args=[personas.course.pk, account.pk])
    decline = reverse("courses:handover_decline", args=[personas.course.pk, account.pk])

    instructor_page = personas.client("instructor").get(review)
    ta = personas.client("ta")
    ta_page = ta.get(review)

    assert instructor_page.status_code == 200
    assert f'action="{approve}"' in text(instructor_page)
    assert f'action="{decline}"' in text(instructor_page)
    assert ">Approve</button>" in text(instructor_page)
    assert ta_page.status_code == 200
    assert OWN_EMAIL in text(ta_page)
    assert approve not in text(ta_page)
    assert decline not in text(ta_page)
    assert ">Approve</button>" not in text(ta_page)
    assert ta.post(approve).status_code == 403
    assert ta.post(decline, {"reason": "No."}).status_code == 403
    assert personas.client("student").get(review).status_code == 403
    assert personas.client("other_instructor").get(review).status_code == 404
    record = Handover.objects.get(account=account)
    assert record.status == HandoverStatus.REQUESTED
    account.refresh_from_db()
    assert account.state == AccountState.HANDOVER_REQUESTED
    assert handover_audit(account) == [(AuditAction.HANDOVER_REQUESTED, "student@school.example")]


@pytest.mark.django_db
def test_a_course_whose_end_policy_is_keep_approves_the_request_at_once(
    personas, aws, account_api, django_capture_on_commit_callbacks
):
    personas.course.end_policy = EndPolicy.KEEP
    personas.course.save()
    account = moto_account(personas, aws)

    with django_capture_on_commit_callbacks(execute=True) as queued:
        record = handover_request(actor=personas.student, account=account, **CONTACT)

    record.refresh_from_db()
    account.refresh_from_db()
    assert record.status == HandoverStatus.APPROVED
    assert record.decided_by is None
    assert account.state == AccountState.HANDOVER
    assert len(queued) == 3  # the advance task, which sent the code, and the two emails
    assert account_api.calls["StartPrimaryEmailUpdate"] == 1
    assert account_api.params["StartPrimaryEmailUpdate"][0] == {
        "AccountId": account.aws_account_id,
        "PrimaryEmail": OWN_EMAIL,
    }
    assert record.code_sent_at is not None
    assert handover_audit(account)[:2] == [
        (AuditAction.HANDOVER_REQUESTED, "student@school.example"),
        (AuditAction.HANDOVER_APPROVED, "system"),
    ]
    assert sent("asks to keep their AWS account") == []  # no instructor has anything to decide
    assert sent("you can keep your AWS account") == [["student@school.example"]]
    assert sent("type the code AWS sent") == [["student@school.example"]]


@pytest.mark.django_db
def test_the_roster_shows_a_pending_handover_to_the_courses_staff(personas):
    account = MemberAccountFactory(membership=membership_of(personas.student))
    handover_request(actor=personas.student, account=account, **CONTACT)
    review = reverse("courses:handover_review", args=[personas.course.pk, account.pk])

    for persona in ("instructor", "ta"):
        roster = personas.client(persona).get(reverse("courses:roster", args=[personas.course.pk]))
        assert "Asked to keep the account" in text(roster)
        assert f'href="{review}"' in roster.content.decode()
