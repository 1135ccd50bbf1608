"""A handover that can finish: what AWS asks for before the account may leave, the leaving OU,
the freeze and budget kept until the account has left, cancellation by the student or an
instructor, a stalled handover timing out, and the request form's checks with AWS's own rules.

moto enforces no SCP: what the leaving OU's SCP lets a root user do is decided by the policy
evaluator in tests/portal/aws/test_scp_semantics.py; here AWS's Account Management API is played by
tests/support/account_api.py (moto lacks it), as in test_handover.py.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts_app.choices import AccountOrigin, AccountState, AuditAction, HandoverStatus
from accounts_app.lifecycle import transition
from accounts_app.models import AuditEvent, AwsOrganization, Handover, MemberAccount
from accounts_app.services.freezing import account_freeze_sync
from accounts_app.services.guardrails import freeze_policy_id, portal_role
from accounts_app.services.handover import (
    REMOVAL_BLOCKERS,
    handover_advance,
    handover_approve,
    handover_cancel,
    handover_request,
    handover_return,
    handover_student_ready,
    handover_timeouts,
)
from accounts_app.services.identity import account_tags
from accounts_app.services.ownership import NotOurs, ownership_check
from portal.aws import organizations
from portal.aws.guardrails import LEAVING_POLICY_NAME, leaving_policy
from tests.support.aws_script import Fault
from tests.support.handover import (
    CONTACT,
    approved,
    assignments_of_account,
    attached_policy_ids,
    budget_names,
    code_given,
    db_account,
    detached,
    handover_audit,
    moto_account,
    organization_account_ids,
    parent_of,
    sent,
    tags_of,
    text,
)

# Root emails on the school's domain, as the students' own school addresses are.
pytestmark = pytest.mark.usefixtures("school_addresses")


def leaving_ou() -> str:
    return AwsOrganization.load().leaving_ou_id


# --- aws_bootstrap ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_bootstrap_makes_the_leaving_ou_under_the_root_with_its_scp(aws):
    """Under the organization's root, not the portal's OU: the baseline's deny-root SCP on the
    portal's OU would be inherited, and no SCP lower down undoes a Deny."""
    organization = AwsOrganization.load()
    client = aws.client("organizations")
    ou = organization.leaving_ou_id

    assert ou and ou not in (organization.parent_ou_id, organization.pool_ou_id)
    assert client.list_parents(ChildId=ou)["Parents"][0]["Id"] == organization.root_id
    tags = {t["Key"]: t["Value"] for t in client.list_tags_for_resource(ResourceId=ou)["Tags"]}
    assert tags["managed-by"] == "classroom-cloud-portal"
    policies = client.list_policies_for_target(TargetId=ou, Filter="SERVICE_CONTROL_POLICY")["Policies"]
    [ours] = [p for p in policies if p["Name"] == LEAVING_POLICY_NAME]
    assert ours["Id"] == organization.leaving_policy_id
    content = client.describe_policy(PolicyId=ours["Id"])["Policy"]["Content"]
    assert json.loads(content) == leaving_policy(portal_role=portal_role())


# --- The gate ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_leaving_ou_is_the_portals_only_for_an_account_being_handed_over(personas, aws):
    account = moto_account(personas, aws)
    organizations.move_account(account.aws_account_id, leaving_ou())

    with pytest.raises(NotOurs):
        ownership_check(account, AwsOrganization.load())
    MemberAccount.objects.filter(pk=account.pk).update(state=AccountState.HANDOVER)
    account.refresh_from_db()
    ownership_check(account, AwsOrganization.load())


# --- Budget and freeze kept until the account has left -----------------------------------------


@pytest.mark.django_db
def test_a_frozen_account_keeps_its_freeze_and_budget_until_it_has_left(personas, aws, account_api):
    account = moto_account(personas, aws)
    account_id = account.aws_account_id
    assert transition(account, expected=AccountState.READY, to=AccountState.FROZEN, reason="Over budget")
    assert account_freeze_sync(account_id=account.pk)
    assert freeze_policy_id() in attached_policy_ids(aws, account_id)

    record = detached(personas, account, account_api)

    assert parent_of(aws, account_id) == leaving_ou()
    assert freeze_policy_id() in attached_policy_ids(aws, account_id)
    assert f"classroom-cloud-{account_id}" in budget_names(aws)

    handover_student_ready(actor=personas.student, handover=record)
    handover_advance(handover_id=record.pk)

    record.refresh_from_db()
    assert record.status == HandoverStatus.COMPLETED
    assert f"classroom-cloud-{account_id}" not in budget_names(aws)


# --- Cancelling ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_instructor_cancels_after_the_school_let_go_and_the_account_returns(
    personas, aws, account_api, django_capture_on_commit_callbacks
):
    account = moto_account(personas, aws)
    account_id = account.aws_account_id
    record = detached(personas, account, account_api)
    assert parent_of(aws, account_id) == leaving_ou()
    assert assignments_of_account(aws, account_id) == []
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        page = personas.client("instructor").post(
            reverse("courses:handover_cancel", args=[personas.course.pk, account.pk]),
            {"reason": "Wrong account"},
            follow=True,
        )

    assert "Cancelled." in text(page)
    record.refresh_from_db()
    account.refresh_from_db()
    assert record.status == HandoverStatus.CANCELLED
    assert record.cancel_reason == "Cancelled by an instructor: Wrong account"
    assert record.returned_at is not None
    assert account.state == AccountState.READY
    assert parent_of(aws, account_id) == personas.course.aws_ou_id
    assert tags_of(aws, account_id) == account_tags(account)
    assert f"classroom-cloud-{account_id}" in budget_names(aws)
    assert {a["PermissionSetArn"] for a in assignments_of_account(aws, account_id)} == set(
        AwsOrganization.load().permission_sets.values()
    )  # the student's, the TA's and the instructor's access are back
    [recipients] = sent("was cancelled")
    assert "student@school.example" in recipients and "instructor@school.example" in recipients
    assert AuditEvent.objects.filter(
        action=AuditAction.HANDOVER_STEP, actor=personas.instructor, summary__contains="cancelled"
    ).exists()
    # The account is the course's again: the handover does not go on.
    handover_advance(handover_id=record.pk)
    assert parent_of(aws, account_id) == personas.course.aws_ou_id


@pytest.mark.django_db
def test_the_student_cancels_a_request_not_yet_decided(personas):
    account = db_account(personas, state=AccountState.FROZEN)
    handover_request(actor=personas.student, account=account, **CONTACT)

    personas.client("student").post(reverse("courses:my_handover_cancel", args=[personas.course.pk]))

    record = Handover.objects.get(account=account)
    account.refresh_from_db()
    assert record.status == HandoverStatus.CANCELLED
    assert record.cancel_reason == "Cancelled by the student."
    assert account.state == AccountState.FROZEN


@pytest.mark.django_db
def test_a_finished_handover_cannot_be_cancelled(personas):
    account = db_account(personas, state=AccountState.HANDED_OVER)
    record = Handover.objects.create(
        account=account,
        status=HandoverStatus.COMPLETED,
        previous_state=AccountState.READY,
        removed_at=timezone.now(),
        **CONTACT,
    )

    assert not handover_cancel(actor=personas.student, handover=record, reason="Too late")
    record.refresh_from_db()
    assert record.status == HandoverStatus.COMPLETED


@pytest.mark.django_db
def test_a_cancelled_handover_whose_account_already_left_is_completed(personas, aws, account_api):
    account = moto_account(personas, aws)
    record = detached(personas, account, account_api)
    assert handover_cancel(actor=personas.student, handover=record, reason="Changed my mind")
    aws.client("organizations").remove_account_from_organization(AccountId=account.aws_account_id)

    handover_return(handover_id=record.pk)

    record.refresh_from_db()
    account.refresh_from_db()
    assert record.status == HandoverStatus.COMPLETED
    assert account.state == AccountState.HANDED_OVER


@pytest.mark.django_db
def test_a_handover_cancelled_while_the_school_lets_go_keeps_the_account_in_its_course(
    personas, aws, account_api, django_capture_on_commit_callbacks
):
    account = moto_account(personas, aws)
    record = approved(personas, account, account_api)
    code_given(personas, record, account_api.code(account.aws_account_id))

    def cancel_now(**kwargs):  # the instructor presses Cancel while the worker removes the tags
        with django_capture_on_commit_callbacks(execute=True):
            assert handover_cancel(actor=personas.instructor, handover=record, reason="Stop")

    aws.add_hook("after-call.organizations.UntagResource", cancel_now)
    handover_advance(handover_id=record.pk)

    record.refresh_from_db()
    account.refresh_from_db()
    assert record.access_removed_at is None
    assert record.status == HandoverStatus.CANCELLED and record.returned_at is not None
    assert account.state == AccountState.READY
    assert parent_of(aws, account.aws_account_id) == personas.course.aws_ou_id
    assert tags_of(aws, account.aws_account_id) == account_tags(account)


# --- Timing out -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_stalled_handover_times_out_and_the_instructor_is_told(
    personas, aws, account_api, settings, django_capture_on_commit_callbacks
):
    settings.PORTAL_HANDOVER_TIMEOUT_DAYS = 30
    account = moto_account(personas, aws)
    record = detached(personas, account, account_api)
    mail.outbox.clear()

    assert handover_timeouts(now=timezone.now() + timedelta(days=29)) == []
    with django_capture_on_commit_callbacks(execute=True):
        report = handover_timeouts(now=timezone.now() + timedelta(days=31))

    assert report == [f"Handover of {account.account_name} timed out: returning it to its course."]
    record.refresh_from_db()
    account.refresh_from_db()
    assert record.status == HandoverStatus.CANCELLED
    assert record.cancel_reason.startswith("Timed out")
    assert account.state == AccountState.READY
    assert parent_of(aws, account.aws_account_id) == personas.course.aws_ou_id
    [recipients] = sent("was cancelled")
    assert "instructor@school.example" in recipients


# --- What the student types ---------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("contact_phone", "+1 555 0100 ext. 5", "Write the number with digits, spaces, +, -, ( and ) only"),
        ("contact_phone", "+1 555 0100 0100 0100 0100 01", "at most 25 characters"),
        ("contact_phone", "555.0100.12", "Write the number with digits, spaces, +, -, ( and ) only"),
        ("contact_name", "A" * 65, "at most 64 characters"),
        ("contact_name", "Ada\u0007Lovelace", "AWS refuses control characters"),
    ],
)
def test_contacts_aws_would_refuse_are_refused_by_the_form(personas, field, value, error):
    account = db_account(personas)

    response = personas.client("student").post(
        reverse("courses:handover_start", args=[personas.course.pk]), {**CONTACT, field: value}
    )

    assert response.status_code == 200
    assert error in text(response)
    assert not Handover.objects.filter(account=account).exists()


@pytest.mark.django_db
def test_a_code_with_letters_from_aws_is_accepted(personas, aws, account_api):
    account_api.codes_with_letters = True
    account = moto_account(personas, aws)
    record = approved(personas, account, account_api)
    code = account_api.code(account.aws_account_id)
    assert not code.isdigit()

    code_given(personas, record, code)

    assert record.root_email_moved_at is not None


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
        handover_advance(handover_id=record.pk)

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

    handover_advance(handover_id=record.pk)

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

    handover_advance(handover_id=record.pk)
    handover_advance(handover_id=record.pk)

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

    handover_advance(handover_id=record.pk)

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

    handover_advance(handover_id=record.pk)  # the reconciler's next try, once AWS agrees

    record.refresh_from_db()
    assert record.code_sent_at is not None
    assert record.last_error == ""
