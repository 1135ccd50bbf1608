"""Handover: a student keeps their AWS account, and the portal walks them and the instructor
through it (accounts_app/services/handover.py, accounts_app/views/ending.py).

AWS is moto, with what moto 5.2.5 lacks answered as AWS answers at botocore's `before-call`
event (moto never sees those requests): the primary-email API of AWS Account Management
(GetPrimaryEmail, StartPrimaryEmailUpdate, AcceptPrimaryEmailUpdate, which `AccountApi` plays with
one-time codes), and the refusals of RemoveAccountFromOrganization (moto lets any account leave).

Journeys through the pages run with real transactions (`moto_db`), so the Celery tasks queued
"on commit" run eagerly as they would in production. The other tests run in a rolled-back
transaction and call `handover_advance` themselves, where the task would.

Here: the whole journey through the pages, then its steps one at a time. Asking, declining and
the staff's pages are in test_handover_requests.py; what AWS asks for before the account may
leave, the leaving OU, cancelling and timing out in test_handover_leaving.py.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts_app.choices import AccountState, AuditAction, HandoverStatus
from accounts_app.models import (
    AccountEvent,
    AuditEvent,
    AwsOrganization,
    Handover,
    Membership,
)
from accounts_app.services.account_requests import account_request
from accounts_app.services.ending import course_end, course_extend
from accounts_app.services.guardrails import freeze_policy_id
from accounts_app.services.handover import (
    REMOVAL_BLOCKERS,
    HandoverError,
    handover_advance,
    handover_approve,
    handover_decline,
    handover_request,
    handover_resend_code,
    handover_submit_code,
)
from accounts_app.services.ownership import MANAGED_BY_TAG
from billing_app.models import AccountDailyCost
from portal.aws.errors import TransientAwsError
from tests.factories import MembershipFactory
from tests.support.accounts import WorkerKilled
from tests.support.handover import (
    CONTACT,
    OWN_EMAIL,
    PAYMENT,
    approved,
    assignments_of_account,
    attached_policy_ids,
    budget_names,
    code_given,
    contacts_of,
    detached,
    handover_audit,
    identity_user_names,
    membership_of,
    moto_account,
    organization_account_ids,
    parent_of,
    sent,
    tags_of,
    text,
    vended_account,
)

moto_db = pytest.mark.django_db(transaction=True)
# Root emails on the school's domain, as the students' own school addresses are.
pytestmark = pytest.mark.usefixtures("school_addresses")


# --- The whole journey through the pages ----------------------------------------------------------


@moto_db
def test_an_approved_handover_goes_from_the_code_to_leaving_the_organization(personas, aws, account_api):
    account = vended_account(personas)
    account_id = account.aws_account_id
    student_user = account.identity_store_user_id
    assert assignments_of_account(aws, account_id)
    assert f"classroom-cloud-{account_id}" in budget_names(aws)
    AccountDailyCost.objects.create(
        account=account, course=personas.course, day=date(2026, 10, 20), usage=Decimal("12.34")
    )
    course_id = personas.course.pk
    student, instructor = personas.client("student"), personas.client("instructor")
    checklist = reverse("courses:my_handover", args=[course_id])
    student.post(reverse("courses:handover_start", args=[course_id]), CONTACT)
    mail.outbox.clear()

    # The instructor approves: the portal asks AWS to send the student a code, once.
    approved_page = instructor.post(reverse("courses:handover_approve", args=[course_id, account.pk]), follow=True)

    assert "Approved." in text(approved_page)
    record = Handover.objects.get(account=account)
    assert record.status == HandoverStatus.APPROVED
    assert record.decided_by == personas.instructor
    assert record.code_sent_at is not None
    assert account_api.calls["StartPrimaryEmailUpdate"] == 1
    assert account_api.params["StartPrimaryEmailUpdate"] == [{"AccountId": account_id, "PrimaryEmail": OWN_EMAIL}]
    handover_advance(handover_id=record.pk)  # a redelivered task, or the reconciler
    assert account_api.calls["StartPrimaryEmailUpdate"] == 1
    assert sent("you can keep your AWS account") == [["student@school.example"]]
    assert sent(f"type the code AWS sent to {OWN_EMAIL}") == [["student@school.example"]]
    assert "Type the code from AWS" in text(student.get(checklist))

    # A wrong code: a plain error, and nothing moves.
    wrong = student.post(reverse("courses:my_handover_code", args=[course_id]), {"code": "000000"}, follow=True)

    assert "AWS did not accept the code" in text(wrong)
    record.refresh_from_db()
    assert record.root_email_moved_at is None
    assert account_api.primary_email(account_id) == account.root_email
    assert account_api.calls["PutAlternateContact"] == 0
    assert tags_of(aws, account_id)["managed-by"] == "classroom-cloud-portal"
    not_a_code = student.post(reverse("courses:my_handover_code", args=[course_id]), {"code": "abc-12"}, follow=True)
    assert "The code is the 6 letters and digits in the email AWS sent you" in text(not_a_code)

    # The right code: the root email moves, and the portal does everything that is its to do.
    right = student.post(
        reverse("courses:my_handover_code", args=[course_id]),
        {"code": f" {account_api.code(account_id)} "},
        follow=True,
    )

    assert "AWS accepted the code" in text(right)
    record.refresh_from_db()
    assert record.root_email_moved_at is not None
    assert record.contacts_set_at is not None
    assert record.access_removed_at is not None
    assert account_api.primary_email(account_id) == OWN_EMAIL
    assert account_api.calls["AcceptPrimaryEmailUpdate"] == 2
    for kind, contact in contacts_of(account_id).items():
        assert contact is not None, kind
        assert (contact["Name"], contact["EmailAddress"], contact["PhoneNumber"]) == (
            "Ada Lovelace",
            OWN_EMAIL,
            "+44 20 7946 0958",
        ), kind
    assert assignments_of_account(aws, account_id) == []
    assert "student@school.example" not in identity_user_names(aws)
    assert {"ta@school.example", "instructor@school.example"} <= identity_user_names(aws)
    assert student_user
    # The budget stays until the account has left; the account waits in the leaving OU.
    assert f"classroom-cloud-{account_id}" in budget_names(aws)
    assert parent_of(aws, account_id) == AwsOrganization.load().leaving_ou_id
    # The portal's own tag stays until the account leaves (AWS deletes it then): the gate asks
    # for it before the last step too.
    assert tags_of(aws, account_id) == MANAGED_BY_TAG
    assert sent("your turn to set up") == [["student@school.example"]]
    account.refresh_from_db()
    assert account.state == AccountState.HANDOVER
    page = text(student.get(checklist))
    assert "I've done these steps" in page
    assert OWN_EMAIL in page

    # "I've done these steps", but AWS wants a payment method first.
    account_api.refusals.append(PAYMENT)
    blocked = student.post(reverse("courses:my_handover_ready", args=[course_id]), follow=True)

    record.refresh_from_db()
    account.refresh_from_db()
    assert account.state == AccountState.HANDOVER
    assert record.status == HandoverStatus.APPROVED
    assert record.student_ready_at is None
    assert record.blockers == [{"reason": PAYMENT, "message": REMOVAL_BLOCKERS[PAYMENT]}]
    assert record.last_error == "You cannot remove this account from the organization."
    assert account_id in organization_account_ids(aws)
    assert REMOVAL_BLOCKERS[PAYMENT] in text(blocked)
    assert "I've done these steps" in text(blocked)
    [blocked_mail] = [m for m in mail.outbox if "AWS needs something" in m.subject]
    assert blocked_mail.to == ["student@school.example"]
    assert REMOVAL_BLOCKERS[PAYMENT] in blocked_mail.body
    review = text(instructor.get(reverse("courses:handover_review", args=[course_id, account.pk])))
    assert REMOVAL_BLOCKERS[PAYMENT] in review

    # Pressed again once the card is in: the account leaves the organization.
    done = student.post(reverse("courses:my_handover_ready", args=[course_id]), follow=True)

    record.refresh_from_db()
    account.refresh_from_db()
    assert account_api.calls["RemoveAccountFromOrganization"] == 2
    assert account.state == AccountState.HANDED_OVER
    assert record.status == HandoverStatus.COMPLETED
    assert record.removed_at is not None
    assert record.blockers == []
    assert record.last_error == ""
    assert account_id not in organization_account_ids(aws)
    assert "The account is yours." in text(done)
    assert f"classroom-cloud-{account_id}" not in budget_names(aws)
    assert sent("your AWS account is yours now") == [["student@school.example"]]
    # The record, its costs and its audit trail stay.
    assert (account.course_id, account.membership_id, account.aws_account_id) == (
        personas.course.pk,
        membership_of(personas.student).pk,
        account_id,
    )
    assert list(AccountDailyCost.objects.filter(account=account).values_list("usage", flat=True)) == [Decimal("12.34")]
    assert handover_audit(account) == [
        (AuditAction.HANDOVER_REQUESTED, "student@school.example"),
        (AuditAction.HANDOVER_APPROVED, "instructor@school.example"),
        (AuditAction.HANDOVER_STEP, "system"),  # code sent
        (AuditAction.HANDOVER_STEP, "student@school.example"),  # root email moved
        (AuditAction.HANDOVER_STEP, "system"),  # contacts set
        (AuditAction.HANDOVER_STEP, "system"),  # access and tags removed, moved into the leaving OU
        (AuditAction.HANDOVER_STEP, "student@school.example"),  # ready
        (AuditAction.HANDOVER_STEP, "system"),  # blocked
        (AuditAction.HANDOVER_STEP, "student@school.example"),  # ready again
        (AuditAction.HANDOVER_COMPLETED, "system"),
    ]
    assert [e.to_state for e in AccountEvent.objects.filter(account=account).order_by("id")][-3:] == [
        AccountState.HANDOVER_REQUESTED,
        AccountState.HANDOVER,
        AccountState.HANDED_OVER,
    ]


@moto_db
def test_the_students_identity_center_user_stays_while_they_have_another_course(personas, aws, account_api):
    account = vended_account(personas)
    MembershipFactory(course=personas.other_course, user=personas.student)
    other = account_request(
        actor=personas.student,
        membership=Membership.objects.get(user=personas.student, course=personas.other_course),
    )
    other.refresh_from_db()
    assert other.state == AccountState.READY
    assert other.identity_store_user_id == account.identity_store_user_id

    detached(personas, account, account_api)

    assert assignments_of_account(aws, account.aws_account_id) == []
    assert "student@school.example" in identity_user_names(aws)
    assert len(assignments_of_account(aws, other.aws_account_id)) == 2  # the student and the other course's instructor


# --- Steps, one at a time -------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_new_code_can_be_sent_until_the_root_email_has_moved(
    personas, aws, account_api, django_capture_on_commit_callbacks
):
    account = moto_account(personas, aws)
    record = approved(personas, account, account_api)
    first = account_api.code(account.aws_account_id)
    student = personas.client("student")
    checklist = reverse("courses:my_handover", args=[personas.course.pk])

    with django_capture_on_commit_callbacks(execute=True):  # the task runs as the request commits
        student.post(reverse("courses:my_handover_resend", args=[personas.course.pk]))

    assert f"AWS is sending a new code to {OWN_EMAIL}" in text(student.get(checklist))
    assert account_api.calls["StartPrimaryEmailUpdate"] == 2
    second = account_api.code(account.aws_account_id)
    assert second != first
    code_given(personas, record, first)
    assert record.root_email_moved_at is None
    assert "AWS did not accept the code" in record.last_error
    assert "AWS did not accept the code" in text(student.get(checklist))
    code_given(personas, record, second)
    assert record.root_email_moved_at is not None
    assert record.last_error == ""
    with pytest.raises(HandoverError, match="no code to send"):
        handover_resend_code(actor=personas.student, handover=record)
    with pytest.raises(HandoverError, match="No code is expected"):
        handover_submit_code(actor=personas.student, handover=record, code=second)
    assert account_api.calls["StartPrimaryEmailUpdate"] == 2


@pytest.mark.django_db
def test_the_student_cannot_say_they_are_ready_before_the_school_has_let_go(personas, aws, account_api):
    account = moto_account(personas, aws)
    record = approved(personas, account, account_api)

    refused = personas.client("student").post(
        reverse("courses:my_handover_ready", args=[personas.course.pk]), follow=True
    )

    assert "Finish the earlier steps first." in text(refused)
    record.refresh_from_db()
    assert record.student_ready_at is None
    assert account_api.calls["RemoveAccountFromOrganization"] == 0


@pytest.mark.django_db
def test_a_root_email_already_moved_is_taken_as_done_without_sending_a_code(
    personas, aws, account_api, django_capture_on_commit_callbacks
):
    account = moto_account(personas, aws)
    record = handover_request(actor=personas.student, account=account, **CONTACT)
    handover_approve(actor=personas.instructor, handover=record)
    # An earlier run's AcceptPrimaryEmailUpdate reached AWS; its answer never came back.
    account_api.root_email[account.aws_account_id] = OWN_EMAIL

    with django_capture_on_commit_callbacks(execute=True):
        handover_advance(handover_id=record.pk)

    record.refresh_from_db()
    assert account_api.calls["StartPrimaryEmailUpdate"] == 0
    assert record.code_sent_at is None
    assert record.root_email_moved_at is not None
    assert record.contacts_set_at is not None
    assert record.access_removed_at is not None
    assert sent("type the code") == []
    assert sent("your turn to set up") == [["student@school.example"]]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "answer",
    [
        "timeout",  # AWS accepts the code; its answer is lost on the way
        "refused on the retry",  # …and botocore's retry of the same code is refused: no update is pending
    ],
)
def test_a_lost_answer_to_the_students_code_is_resolved_by_looking(
    personas, aws, account_api, answer, django_capture_on_commit_callbacks
):
    account = moto_account(personas, aws)
    approved(personas, account, account_api)
    account_api.lose_accept_answer = answer
    student = personas.client("student")

    with django_capture_on_commit_callbacks(execute=True):  # the tasks run as the request commits
        student.post(
            reverse("courses:my_handover_code", args=[personas.course.pk]),
            {"code": account_api.code(account.aws_account_id)},
        )

    response = student.get(reverse("courses:my_handover", args=[personas.course.pk]))
    assert response.status_code == 200
    assert "AWS accepted the code" in text(response)
    record = Handover.objects.get(account=account)
    assert record.root_email_moved_at is not None
    assert account_api.calls["AcceptPrimaryEmailUpdate"] == 1


@pytest.mark.django_db
def test_aws_not_answering_the_code_or_the_resend_gives_a_message_not_an_error_page(
    personas, aws, account_api, django_capture_on_commit_callbacks
):
    account = moto_account(personas, aws)
    record = approved(personas, account, account_api)
    account_api.throttled = {"AcceptPrimaryEmailUpdate", "StartPrimaryEmailUpdate"}
    student = personas.client("student")
    checklist = reverse("courses:my_handover", args=[personas.course.pk])

    with django_capture_on_commit_callbacks(execute=True):  # the task runs as the request commits
        code = student.post(
            reverse("courses:my_handover_code", args=[personas.course.pk]),
            {"code": account_api.code(account.aws_account_id)},
        )
    after_code = student.get(checklist)
    resend = student.post(reverse("courses:my_handover_resend", args=[personas.course.pk]), follow=True)
    # The task asking AWS for the new code meets the throttling: it is retried with backoff.
    with pytest.raises(TransientAwsError):
        handover_advance(handover_id=record.pk)

    assert code.status_code == 302
    assert after_code.status_code == resend.status_code == 200
    assert "AWS did not answer in time. Type the code again in a minute." in text(after_code)
    assert f"AWS is sending a new code to {OWN_EMAIL}" in text(resend)
    assert "the portal is on it" in text(student.get(checklist))
    record.refresh_from_db()
    assert record.root_email_moved_at is None
    assert record.code_sent_at is None  # until AWS takes the request
    assert account_api.primary_email(account.aws_account_id) == account.root_email


@pytest.mark.django_db
def test_a_request_declined_after_the_course_ended_freezes_the_account_like_the_others(
    personas, aws, account_api, django_capture_on_commit_callbacks
):
    account = moto_account(personas, aws)
    record = handover_request(actor=personas.student, account=account, **CONTACT)
    with django_capture_on_commit_callbacks(execute=True):
        assert course_end(actor=personas.instructor, course=personas.course) == 0  # the request is pending

    with django_capture_on_commit_callbacks(execute=True):
        assert handover_decline(actor=personas.instructor, handover=record, reason="Not this term.")

    account.refresh_from_db()
    assert account.state == AccountState.ENDED
    assert freeze_policy_id() in attached_policy_ids(aws, account.aws_account_id)
    assert [e.to_state for e in AccountEvent.objects.filter(account=account).order_by("id")][-2:] == [
        AccountState.READY,
        AccountState.ENDED,
    ]


@pytest.mark.django_db
def test_a_request_declined_after_the_course_was_extended_gives_the_account_back(
    personas, aws, account_api, django_capture_on_commit_callbacks
):
    account = moto_account(personas, aws)
    with django_capture_on_commit_callbacks(execute=True):
        course_end(actor=personas.instructor, course=personas.course)
    account.refresh_from_db()
    assert account.state == AccountState.ENDED
    record = handover_request(actor=personas.student, account=account, **CONTACT)
    with django_capture_on_commit_callbacks(execute=True):
        course_extend(
            actor=personas.instructor,
            course=personas.course,
            end_date=timezone.localdate() + timedelta(days=30),
        )

    with django_capture_on_commit_callbacks(execute=True):
        assert handover_decline(actor=personas.instructor, handover=record, reason="Not this term.")

    account.refresh_from_db()
    assert account.state == AccountState.READY
    assert freeze_policy_id() not in attached_policy_ids(aws, account.aws_account_id)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("service", "operation"),
    [
        ("account", "PutAlternateContact"),
        ("organizations", "UntagResource"),
        ("organizations", "MoveAccount"),
    ],
)
def test_a_worker_killed_mid_advance_resumes_without_repeating_done_steps(
    personas, aws, account_api, service, operation, django_capture_on_commit_callbacks
):
    account = moto_account(personas, aws)
    record = approved(personas, account, account_api)
    code_given(personas, record, account_api.code(account.aws_account_id))
    killed = []

    def kill_once(**kwargs):  # after AWS did the work, before the worker could go on
        if not killed:
            killed.append(True)
            raise WorkerKilled

    aws.add_hook(f"after-call.{service}.{operation}", kill_once)

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(WorkerKilled):
        handover_advance(handover_id=record.pk)
    record.refresh_from_db()
    assert record.access_removed_at is None

    with django_capture_on_commit_callbacks(execute=True):
        handover_advance(handover_id=record.pk)  # the task runs again

    record.refresh_from_db()
    assert record.root_email_moved_at and record.contacts_set_at and record.access_removed_at
    assert account_api.calls["StartPrimaryEmailUpdate"] == 1
    assert account_api.calls["PutAlternateContact"] == 3  # one per contact, crash or not
    assert all(contact["EmailAddress"] == OWN_EMAIL for contact in contacts_of(account.aws_account_id).values())
    assert tags_of(aws, account.aws_account_id) == MANAGED_BY_TAG
    assert f"classroom-cloud-{account.aws_account_id}" in budget_names(aws)
    assert parent_of(aws, account.aws_account_id) == AwsOrganization.load().leaving_ou_id
    summaries = list(
        AuditEvent.objects.filter(action=AuditAction.HANDOVER_STEP, object_id=str(account.pk)).values_list(
            "summary", flat=True
        )
    )
    assert sum("Alternate contacts set" in s for s in summaries) == 1
    assert sum("moved into the leaving OU" in s for s in summaries) == 1
    assert sent("your turn to set up") == [["student@school.example"]]
