"""Handover: a student keeps their AWS account, and the portal walks them and the instructor
through it (accounts_app/services/handover.py, accounts_app/views/ending.py).

AWS is moto, with what moto 5.2.5 lacks answered as AWS answers at botocore's `before-call`
event (moto never sees those requests): the primary-email API of AWS Account Management
(GetPrimaryEmail, StartPrimaryEmailUpdate, AcceptPrimaryEmailUpdate, which `AccountApi` plays with
one-time codes), and the refusals of RemoveAccountFromOrganization (moto lets any account leave).

Journeys through the pages run with real transactions (`moto_db`), so the Celery tasks queued
"on commit" run eagerly as they would in production. The other tests run in a rolled-back
transaction and call `handover_advance` themselves, where the task would.
"""

from __future__ import annotations

import html
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts_app.choices import AccountOrigin, AccountState, AuditAction, EndPolicy, HandoverStatus
from accounts_app.lifecycle import transition
from accounts_app.models import (
    AccountEvent,
    AuditEvent,
    AwsOrganization,
    Handover,
    MemberAccount,
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
    handover_code_check,
    handover_decline,
    handover_request,
    handover_resend_code,
    handover_student_ready,
    handover_submit_code,
)
from accounts_app.services.ownership import MANAGED_BY_TAG
from billing_app.models import AccountDailyCost
from billing_app.services.budgets import budget_ensure
from portal.aws import account_mgmt
from portal.aws.errors import TransientAwsError
from tests.factories import MemberAccountFactory, MembershipFactory
from tests.support.account_api import AccountApi
from tests.support.aws_calls import place_as_configured
from tests.support.aws_script import Fault

moto_db = pytest.mark.django_db(transaction=True)

OWN_EMAIL = "ada.lovelace@home.example"
CONTACT = {
    "new_root_email": OWN_EMAIL,
    "contact_name": "Ada Lovelace",
    "contact_phone": "+44 20 7946 0958",
}
CONTACT_TYPES = ("BILLING", "OPERATIONS", "SECURITY")
PAYMENT = "MEMBER_ACCOUNT_PAYMENT_INSTRUMENT_REQUIRED"


# --- AWS as it answers where moto does not --------------------------------------------------------


class WorkerKilled(BaseException):
    """The worker dies (SIGKILL, OOM): nothing after this point runs."""


@pytest.fixture
def account_api(aws) -> AccountApi:
    return AccountApi(aws)


@pytest.fixture(autouse=True)
def school_addresses(settings):
    """Root emails live on the school's domain, as the students' own school addresses do."""
    settings.PORTAL_ROOT_EMAIL_PATTERN = "aws+{course}-{student}@school.example"
    settings.PORTAL_HANDOVER_WAIT_DAYS = 4


# --- Helpers --------------------------------------------------------------------------------------


def membership_of(user) -> Membership:
    return Membership.objects.get(user=user)


def db_account(personas, *, state: str = AccountState.READY) -> MemberAccount:
    """The student's account as the database knows it; nothing in AWS (for what calls no AWS)."""
    return MemberAccountFactory(course=personas.course, membership=membership_of(personas.student), state=state)


def moto_account(personas, aws, *, origin: str = AccountOrigin.CREATED) -> MemberAccount:
    """The student's READY account, created in moto's organization, in the course's OU with the
    portal's tags and its AWS Budget (not vended through the queue: quicker, and no task runs)."""
    email = "aws+cs101-student@school.example"
    created = aws.client("organizations").create_account(Email=email, AccountName="cs101-student")
    account = MemberAccountFactory(
        course=personas.course,  # the OU it is placed in is set on this very course
        membership=membership_of(personas.student),
        origin=origin,
        root_email=email,
        account_name="cs101-student",
        aws_account_id=created["CreateAccountStatus"]["AccountId"],
    )
    place_as_configured(account)
    budget_ensure(account=account)
    return account


def vended_account(personas) -> MemberAccount:
    """The student's account through the whole vending (only with `moto_db`)."""
    account = account_request(actor=personas.student, membership=membership_of(personas.student))
    account.refresh_from_db()
    assert account.state == AccountState.READY
    return account


def approved(personas, account: MemberAccount, account_api: AccountApi) -> Handover:
    """Asked and approved, the code sent (the advance task's first run, done by hand)."""
    record = handover_request(actor=personas.student, account=account, **CONTACT)
    assert handover_approve(actor=personas.instructor, handover=record)
    handover_advance(handover=record)
    record.refresh_from_db()
    assert record.code_sent_at is not None
    return record


def code_given(personas, record: Handover, code: str) -> None:
    """The student types the code; the task gives it to AWS (its run, done by hand)."""
    handover_submit_code(actor=personas.student, handover=record, code=code)
    handover_code_check(actor=personas.student, handover=record)
    record.refresh_from_db()


def detached(personas, account: MemberAccount, account_api: AccountApi) -> Handover:
    """Up to the student's turn: root email moved, contacts set, the school's access gone."""
    record = approved(personas, account, account_api)
    code_given(personas, record, account_api.code(account.aws_account_id))
    handover_advance(handover=record)
    record.refresh_from_db()
    assert record.access_removed_at is not None
    return record


def sent(subject_part: str) -> list[list[str]]:
    """Recipients of each email sent so far whose subject contains `subject_part`."""
    return [message.to for message in mail.outbox if subject_part in message.subject]


def handover_audit(account: MemberAccount) -> list[tuple[str, str]]:
    events = AuditEvent.objects.filter(
        object_type="memberaccount", object_id=str(account.pk), action__startswith="handover."
    )
    return [(event.action, event.actor_label) for event in events.order_by("id")]


def text(response) -> str:
    return html.unescape(response.content.decode())


def organization_account_ids(aws) -> set[str]:
    return {a["Id"] for a in aws.client("organizations").list_accounts()["Accounts"]}


def tags_of(aws, account_id: str) -> dict[str, str]:
    tags = aws.client("organizations").list_tags_for_resource(ResourceId=account_id)["Tags"]
    return {tag["Key"]: tag["Value"] for tag in tags}


def parent_of(aws, account_id: str) -> str:
    return aws.client("organizations").list_parents(ChildId=account_id)["Parents"][0]["Id"]


def budget_names(aws) -> set[str]:
    organization = AwsOrganization.load()
    budgets = aws.client("budgets").describe_budgets(AccountId=organization.management_account_id)
    return {budget["BudgetName"] for budget in budgets.get("Budgets", [])}


def assignments_of_account(aws, account_id: str) -> list[dict]:
    organization = AwsOrganization.load()
    return [
        assignment
        for arn in organization.permission_sets.values()
        for assignment in aws.client("sso-admin").list_account_assignments(
            InstanceArn=organization.sso_instance_arn, AccountId=account_id, PermissionSetArn=arn
        )["AccountAssignments"]
    ]


def identity_user_names(aws) -> set[str]:
    store = AwsOrganization.load().identity_store_id
    return {user["UserName"] for user in aws.client("identitystore").list_users(IdentityStoreId=store)["Users"]}


def attached_policy_ids(aws, account_id: str) -> set[str]:
    found = aws.client("organizations").list_policies_for_target(TargetId=account_id, Filter="SERVICE_CONTROL_POLICY")
    return {policy["Id"] for policy in found["Policies"]}


def contacts_of(account_id: str) -> dict[str, dict | None]:
    return {kind: account_mgmt.alternate_contact(account_id, kind) for kind in CONTACT_TYPES}


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
    handover_advance(handover=record)  # a redelivered task, or the reconciler
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
        handover_advance(handover=record)

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
        handover_advance(handover=record)

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
        handover_advance(handover=record)
    record.refresh_from_db()
    assert record.access_removed_at is None

    with django_capture_on_commit_callbacks(execute=True):
        handover_advance(handover=record)  # the task runs again

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


# --- What AWS asks for before the account may leave ----------------------------------------------


def ready_to_leave(personas, aws, account_api, *, origin=AccountOrigin.CREATED) -> Handover:
    account = moto_account(personas, aws, origin=origin)
    record = detached(personas, account, account_api)
    handover_student_ready(actor=personas.student, handover=record)
    return record


@pytest.mark.django_db
def test_the_wait_period_message_names_the_day_the_account_may_leave(
    personas, aws, account_api, django_capture_on_commit_callbacks
):
    record = ready_to_leave(personas, aws, account_api)
    account_api.refusals.append("WAIT_PERIOD_ACTIVE")
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        handover_advance(handover=record)

    record.refresh_from_db()
    joined = aws.client("organizations").describe_account(AccountId=record.account.aws_account_id)["Account"][
        "JoinedTimestamp"
    ]
    possible = timezone.localtime(joined + timedelta(days=4))
    message = (
        "AWS lets a newly created account leave its organization only 4 days after it was created: "
        f"possible from {possible:%b %-d, %Y, %H:%M}."
    )
    assert record.blockers == [{"reason": "WAIT_PERIOD_ACTIVE", "message": message}]
    assert record.account.state == AccountState.HANDOVER
    assert sent("AWS needs something") == [["student@school.example"]]
    assert message in mail.outbox[0].body
    page = personas.client("student").get(reverse("courses:my_handover", args=[personas.course.pk]))
    assert message in text(page)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("reason", "origin", "expected"),
    [
        (
            "ACCOUNT_CANNOT_LEAVE_WITHOUT_PHONE_VERIFICATION",
            AccountOrigin.CREATED,
            REMOVAL_BLOCKERS["ACCOUNT_CANNOT_LEAVE_WITHOUT_PHONE_VERIFICATION"],
        ),
        (
            "ACCOUNT_CANNOT_LEAVE_WITHOUT_EULA",
            AccountOrigin.CREATED,
            REMOVAL_BLOCKERS["ACCOUNT_CANNOT_LEAVE_WITHOUT_EULA"],
        ),
        (
            "WAIT_PERIOD_ACTIVE",
            AccountOrigin.INVITED,
            (
                "AWS lets a newly created account leave its organization only 4 days after it was created: "
                "possible from a few days after its creation."
            ),
        ),
        (
            "CANNOT_REMOVE_DELEGATED_ADMINISTRATOR_FROM_ORG",
            AccountOrigin.CREATED,
            (
                "AWS would not let the account leave the organization yet "
                "(CANNOT_REMOVE_DELEGATED_ADMINISTRATOR_FROM_ORG). Your instructor can see AWS's "
                "explanation and help."
            ),
        ),
    ],
)
def test_each_reason_aws_gives_becomes_a_plain_checklist_item(personas, aws, account_api, reason, origin, expected):
    record = ready_to_leave(personas, aws, account_api, origin=origin)
    account_api.refusals.append(reason)

    handover_advance(handover=record)

    record.refresh_from_db()
    assert record.blockers == [{"reason": reason, "message": expected}]
    assert record.student_ready_at is None
    assert record.account.state == AccountState.HANDOVER
    assert record.account.aws_account_id in organization_account_ids(aws)
    page = personas.client("student").get(reverse("courses:my_handover", args=[personas.course.pk]))
    assert expected in text(page)


@pytest.mark.django_db
def test_an_account_already_out_of_the_organization_completes_the_handover(personas, aws, account_api):
    record = ready_to_leave(personas, aws, account_api)
    # The answer to an earlier RemoveAccountFromOrganization was lost: the account is gone already.
    aws.client("organizations").remove_account_from_organization(AccountId=record.account.aws_account_id)
    removals = account_api.calls["RemoveAccountFromOrganization"]

    handover_advance(handover=record)
    handover_advance(handover=record)

    record.refresh_from_db()
    assert account_api.calls["RemoveAccountFromOrganization"] == removals
    assert record.status == HandoverStatus.COMPLETED
    assert record.account.state == AccountState.HANDED_OVER
    assert handover_audit(record.account)[-1] == (AuditAction.HANDOVER_COMPLETED, "system")
    assert AuditEvent.objects.filter(action=AuditAction.HANDOVER_COMPLETED).count() == 1


@pytest.mark.django_db
def test_aws_refusing_to_send_the_code_is_shown_on_the_checklist_and_retried(personas, aws, account_api):
    account = moto_account(personas, aws)
    record = handover_request(actor=personas.student, account=account, **CONTACT)
    account_api.start_refusal = Fault("ConflictException", "The email address is already in use by another account.")
    assert handover_approve(actor=personas.instructor, handover=record)

    handover_advance(handover=record)

    record.refresh_from_db()
    assert record.code_sent_at is None
    assert "already in use by another account" in record.last_error
    page = personas.client("student").get(reverse("courses:my_handover", args=[personas.course.pk]))
    assert "AWS would not send a code" in text(page)
    assert "already in use by another account" not in text(page)  # AWS's words are for the staff
    review = personas.client("instructor").get(
        reverse("courses:handover_review", args=[personas.course.pk, account.pk])
    )
    assert "AWS said: AWS would not send a code" in text(review)
    assert "already in use by another account" in text(review)

    handover_advance(handover=record)  # the reconciler's next try, once AWS agrees

    record.refresh_from_db()
    assert record.code_sent_at is not None
    assert record.last_error == ""


@pytest.mark.django_db
def test_the_roster_shows_a_pending_handover_to_the_courses_staff(personas):
    account = MemberAccountFactory(membership=membership_of(personas.student))
    handover_request(actor=personas.student, account=account, **CONTACT)
    review = reverse("courses:handover_review", args=[personas.course.pk, account.pk])

    for persona in ("instructor", "ta"):
        roster = personas.client(persona).get(reverse("courses:roster", args=[personas.course.pk]))
        assert "Asked to keep the account" in text(roster)
        assert f'href="{review}"' in roster.content.decode()
