"""Configuring a new account (accounts_app/services/account_setup.py) when AWS answers as AWS
does, not as moto does: a brand-new account refusing its role and Identity Center for some
minutes, a configure message delivered twice or a worker killed mid-step, and Identity Center's
assignments in progress, failed, lost or in conflict.

An `AwsScript` answers chosen calls at botocore's `before-call` event (moto never sees those
requests), lets others reach moto and then loses the answer, or lets moto do the work and edits
what it says. Services are called directly (account_configure, …): these tests run inside a
transaction that is rolled back, so the Celery tasks the services queue "on commit" never run
unless a test calls them.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from accounts_app import tasks
from accounts_app.choices import AccountState as S
from accounts_app.choices import CourseRole
from accounts_app.models import AccountEvent, AwsOrganization, MemberAccount, Membership
from accounts_app.services import account_setup
from accounts_app.services.account_setup import account_configure
from accounts_app.services.vending_queue import vending_dispatch
from portal.aws import identity_center, organizations
from portal.aws.errors import TransientAwsError, UnknownOutcome
from tests.support.accounts import (
    WorkerKilled,
    queued_account,
    ready_account,
    record_transitions,
    second_worker_meanwhile,
    transitions,
)
from tests.support.aws_script import LOST_AFTER_AWS, NEVER_REACHED, Edit, Fault

# --- Helpers --------------------------------------------------------------------------------------


def configuring_account(personas) -> MemberAccount:
    """The student's account, created by moto and ready to be configured."""
    account = queued_account(personas)
    vending_dispatch()
    vending_dispatch()  # the creation's look
    account.refresh_from_db()
    assert account.state == S.CONFIGURING
    return account


def assignments_of(aws, account: MemberAccount, role: str, user_id: str) -> list[dict]:
    organization = AwsOrganization.load()
    listed = aws.client("sso-admin").list_account_assignments(
        InstanceArn=organization.sso_instance_arn,
        AccountId=account.aws_account_id,
        PermissionSetArn=organization.permission_sets[role],
    )["AccountAssignments"]
    return [a for a in listed if a["PrincipalId"] == user_id]


# --- A brand-new account is not ready at once ----------------------------------------------------
# moto lets every new account be entered and assigned at once; AWS refuses for some minutes after
# CreateAccount succeeds. These tests script AWS's refusals (AssumeRole on the portal's base
# session, whose STS clients inherit its handlers; Identity Center through AwsScript).

ASSUME_ROLE_REFUSALS = {
    "AccessDenied": Fault(
        "AccessDenied",
        "User: arn:aws:sts::123456789012:assumed-role/portal/classroom-cloud-portal is not authorized to "
        "perform: sts:AssumeRole on resource: arn:aws:iam::210987654321:role/OrganizationAccountAccessRole",
        status=403,
    ),
    "RegionDisabledException": Fault(
        "RegionDisabledException",
        "STS is not activated in this region for account:210987654321. Your account administrator can "
        "activate STS in this region using the IAM Console.",
        status=403,
    ),
}


class AssumeRoleRefusals:
    """AssumeRole into member accounts answered with `fault` while `refusing`."""

    def __init__(self, aws, fault: Fault):
        self.fault, self.refusing, self.refused = fault, True, 0
        aws.base_session().events.register("before-call.sts.AssumeRole", self._answer)

    def _answer(self, **kwargs):
        if self.refusing:
            self.refused += 1
            return self.fault.response()
        return None


@pytest.mark.django_db
@pytest.mark.parametrize("code", sorted(ASSUME_ROLE_REFUSALS))
def test_a_new_account_refusing_its_role_is_tried_again_not_failed(personas, aws, clock, code):
    account = configuring_account(personas)
    aws.forget_member_session(account.aws_account_id)
    refusals = AssumeRoleRefusals(aws, ASSUME_ROLE_REFUSALS[code])

    for _ in range(2):
        with pytest.raises(TransientAwsError, match="still being set up"):
            account_configure(account_id=account.pk)
        clock.advance(timedelta(minutes=6))
    account.refresh_from_db()
    assert account.state == S.CONFIGURING
    assert refusals.refused == 2

    refusals.refusing = False  # AWS has finished setting the account up
    account_configure(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.READY


@pytest.mark.django_db
def test_an_account_still_refusing_its_role_after_the_grace_window_fails(personas, aws, clock, settings):
    settings.PORTAL_AWS_NEW_ACCOUNT_GRACE_MINUTES = 15
    account = configuring_account(personas)
    aws.forget_member_session(account.aws_account_id)
    AssumeRoleRefusals(aws, ASSUME_ROLE_REFUSALS["AccessDenied"])
    clock.advance(timedelta(minutes=16))

    account_configure(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.FAILED
    assert "not allowed to AssumeRole" in account.last_error


ASSIGNMENT_REFUSALS = {
    "AccessDeniedException": Fault("AccessDeniedException", "User is not authorized to perform this action."),
    "FAILED status": lambda params: {
        "AccountAssignmentCreationStatus": {
            "Status": "FAILED",
            "RequestId": str(uuid.uuid4()),
            "FailureReason": "Received a 404 status error: Not supported account.",
            "TargetId": params["TargetId"],
        }
    },
}


@pytest.mark.django_db
@pytest.mark.parametrize("answer", sorted(ASSIGNMENT_REFUSALS))
def test_a_new_account_refused_by_identity_center_is_tried_again_not_failed(personas, aws, script, clock, answer):
    account = configuring_account(personas)
    script.answer("sso-admin", "CreateAccountAssignment", ASSIGNMENT_REFUSALS[answer])

    with pytest.raises(TransientAwsError):
        account_configure(account_id=account.pk)
    account.refresh_from_db()
    assert account.state == S.CONFIGURING

    clock.advance(timedelta(minutes=3))
    account_configure(account_id=account.pk)  # AWS assigns this time (moto)

    account.refresh_from_db()
    assert account.state == S.READY


# --- Messages delivered twice ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_configure_message_delivered_twice_has_one_set_of_aws_side_effects(personas, aws, script):
    account = configuring_account(personas)

    tasks.account_configure_task(account.pk)
    calls_after_first = Counter(script.calls)
    tasks.account_configure_task(account.pk)

    account.refresh_from_db()
    assert account.state == S.READY
    assert script.calls == calls_after_first  # the second delivery did not call AWS at all
    assert script.calls["MoveAccount"] == 1
    assert script.calls["TagResource"] == 0  # its CreateAccount gave it every tag already
    assert script.calls["CreateAccountAssignment"] == 3  # the student, the TA, the instructor
    assert len(assignments_of(aws, account, "student", account.identity_store_user_id)) == 1
    assert AccountEvent.objects.filter(account=account, to_state=S.READY).count() == 1


@pytest.mark.django_db
def test_two_overlapping_configure_workers_assign_once_and_move_the_account_once(personas, aws, script, monkeypatch):
    account = configuring_account(personas)
    outcomes = record_transitions(monkeypatch, account_setup)
    second_worker_meanwhile(
        aws,
        "after-call.organizations.MoveAccount",
        lambda: account_configure(account_id=account.pk),
    )

    account_configure(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.READY
    assert outcomes == [(S.READY, True), (S.READY, False)]
    assert script.calls["MoveAccount"] == 1  # the second worker found it in the course OU already
    assert script.calls["CreateAccountAssignment"] == 3  # the first worker found them all made
    assert len(assignments_of(aws, account, "student", account.identity_store_user_id)) == 1
    assert AccountEvent.objects.filter(account=account, to_state=S.READY).count() == 1


# --- Workers killed mid-step ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("service", "operation"),
    [
        ("organizations", "MoveAccount"),
        ("sso-admin", "CreateAccountAssignment"),
        ("identitystore", "CreateUser"),
    ],
)
def test_configure_resumes_after_a_worker_is_killed_mid_step(personas, aws, script, service, operation):
    account = configuring_account(personas)
    killed = []

    def kill_once(**kwargs):  # after AWS did the work, before the worker could go on
        if not killed:
            killed.append(True)
            raise WorkerKilled

    aws.add_hook(f"after-call.{service}.{operation}", kill_once)

    with pytest.raises(WorkerKilled):
        account_configure(account_id=account.pk)
    account.refresh_from_db()
    assert account.state == S.CONFIGURING

    account_configure(account_id=account.pk)  # the message is delivered again

    account.refresh_from_db()
    assert account.state == S.READY
    assert script.calls["MoveAccount"] == 1
    assert script.calls["CreateAccountAssignment"] == 3
    assert script.calls["CreateUser"] == 3  # the student, the TA, the instructor: once each
    assert len(assignments_of(aws, account, "student", account.identity_store_user_id)) == 1
    personas.course.refresh_from_db()
    assert organizations.parent_id(account.aws_account_id) == personas.course.aws_ou_id
    assert transitions(account)[-1] == (S.CONFIGURING, S.READY)
    assert AccountEvent.objects.filter(account=account, to_state=S.READY).count() == 1


# --- Identity Center assignments ------------------------------------------------------------------


def assignment_in_progress(parsed: dict) -> None:
    parsed["AccountAssignmentCreationStatus"]["Status"] = "IN_PROGRESS"


def assignment_status(status: str, **fields) -> dict:
    return {
        "AccountAssignmentCreationStatus": {
            "Status": status,
            "RequestId": str(uuid.uuid4()),
            "TargetId": "210987654321",
            "TargetType": "AWS_ACCOUNT",
            "PrincipalType": "USER",
            "CreatedDate": datetime.now(UTC),
            **fields,
        }
    }


@pytest.mark.django_db
def test_an_assignment_in_progress_is_described_until_it_succeeds(personas, aws, script):
    account = configuring_account(personas)
    script.answer("sso-admin", "CreateAccountAssignment", Edit(assignment_in_progress))

    account_configure(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.READY
    assert script.calls["DescribeAccountAssignmentCreationStatus"] == 1
    created = script.params["CreateAccountAssignment"][0]
    assert created["PrincipalId"] == account.identity_store_user_id
    assert len(assignments_of(aws, account, "student", account.identity_store_user_id)) == 1


@pytest.mark.django_db
def test_an_assignment_still_in_progress_is_retried_and_not_created_twice(personas, aws, script):
    account = configuring_account(personas)
    script.answer("sso-admin", "CreateAccountAssignment", Edit(assignment_in_progress))
    script.answer(
        "sso-admin",
        "DescribeAccountAssignmentCreationStatus",
        Edit(lambda parsed: parsed["AccountAssignmentCreationStatus"].update(Status="IN_PROGRESS")),
    )

    with pytest.raises(TransientAwsError, match="still being created"):
        account_configure(account_id=account.pk)
    account.refresh_from_db()
    assert account.state == S.CONFIGURING

    account_configure(account_id=account.pk)  # the task's retry

    account.refresh_from_db()
    assert account.state == S.READY
    assert script.calls["CreateAccountAssignment"] == 3  # the student once, then the TA and the instructor
    assert len(assignments_of(aws, account, "student", account.identity_store_user_id)) == 1


@pytest.mark.django_db
def test_a_failed_assignment_fails_the_account_with_the_reason(personas, aws, script, clock, settings):
    account = configuring_account(personas)
    # Past the window in which a new account's refusals are waited out.
    clock.advance(timedelta(minutes=settings.PORTAL_AWS_NEW_ACCOUNT_GRACE_MINUTES + 1))
    reason = (
        "Received a 404 status error: Not supported account ID. "
        "Please verify that the account exists in your organization."
    )
    script.answer(
        "sso-admin",
        "CreateAccountAssignment",
        lambda params: assignment_status(
            "IN_PROGRESS",
            PermissionSetArn=params["PermissionSetArn"],
            PrincipalId=params["PrincipalId"],
        ),
    )
    script.answer(
        "sso-admin",
        "DescribeAccountAssignmentCreationStatus",
        assignment_status("FAILED", FailureReason=reason),
    )

    account_configure(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.FAILED
    assert account.last_error == f"AWS refused CreateAccountAssignment: {reason}"
    assert transitions(account)[-1] == (S.CONFIGURING, S.FAILED)
    assert script.calls["CreateAccountAssignment"] == 1  # nothing more after the failure


@pytest.mark.django_db
def test_a_lost_assignment_answer_is_found_by_has_assignment_and_not_sent_again(personas, aws, script):
    account = configuring_account(personas)
    script.answer("sso-admin", "CreateAccountAssignment", LOST_AFTER_AWS)

    account_configure(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.READY
    assert script.sent["CreateAccountAssignment"] == 3  # the student once (lost), the TA, the instructor
    assert len(assignments_of(aws, account, "student", account.identity_store_user_id)) == 1


@pytest.mark.django_db
def test_an_assignment_request_that_never_reached_aws_is_sent_on_the_retry(personas, aws, script):
    account = configuring_account(personas)
    script.answer("sso-admin", "CreateAccountAssignment", NEVER_REACHED)

    with pytest.raises(UnknownOutcome):
        account_configure(account_id=account.pk)
    account.refresh_from_db()
    assert account.state == S.CONFIGURING
    assert assignments_of(aws, account, "student", account.identity_store_user_id) == []

    account_configure(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.READY
    assert len(assignments_of(aws, account, "student", account.identity_store_user_id)) == 1


@pytest.mark.django_db
def test_an_identity_center_conflict_is_retried_not_failed(personas, aws, script):
    # Identity Center's ConflictException: "a previous write did not have time to propagate …
    # a retry (with appropriate backoff logic) is the recommended response".
    account = configuring_account(personas)
    script.answer(
        "sso-admin",
        "CreateAccountAssignment",
        Fault("ConflictException", "A conflicting request is already in progress.", status=409),
    )

    with pytest.raises(TransientAwsError):
        account_configure(account_id=account.pk)
    account.refresh_from_db()
    assert account.state == S.CONFIGURING
    assert account.last_error == ""

    account_configure(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.READY
    assert len(assignments_of(aws, account, "student", account.identity_store_user_id)) == 1


@pytest.mark.django_db
def test_a_member_of_a_course_with_staff_gets_every_role_assigned_exactly_once(personas, aws, script):
    account = configuring_account(personas)

    account_configure(account_id=account.pk)
    account_configure(account_id=account.pk)

    organization = AwsOrganization.load()
    store = organization.identity_store_id
    for role in (CourseRole.TA, CourseRole.INSTRUCTOR):
        member = Membership.objects.get(course=personas.course, role=role)
        user_id = identity_center.find_user(store, member.email)
        assert len(assignments_of(aws, account, role, user_id)) == 1


# --- What a first setup asks AWS --------------------------------------------------------------------


@pytest.mark.django_db
def test_a_first_setup_creates_the_assignments_without_listing_them_first(personas, aws, script):
    account = configuring_account(personas)

    account_configure(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.READY
    assert script.calls["CreateAccountAssignment"] == 3  # the student, the TA, the instructor
    assert script.calls["ListAccountAssignments"] == 0  # a new account has none: AWS's answers confirm them


@pytest.mark.django_db
def test_an_assignment_aws_refuses_as_a_conflict_is_looked_for_and_found_made(personas, aws, script):
    """Created without looking first, an assignment AWS has after all (made by hand, or by a worker
    that ran the same step) may be refused with a ConflictException: the portal then looks."""
    account = configuring_account(personas)
    organization = AwsOrganization.load()
    student = account.membership
    user_id = identity_center.create_user(
        organization.identity_store_id, user_name=student.email, display_name=student.display_name, email=student.email
    )
    aws.client("sso-admin").create_account_assignment(
        InstanceArn=organization.sso_instance_arn,
        TargetId=account.aws_account_id,
        TargetType="AWS_ACCOUNT",
        PermissionSetArn=organization.permission_sets["student"],
        PrincipalType="USER",
        PrincipalId=user_id,
    )
    script.answer(
        "sso-admin",
        "CreateAccountAssignment",
        Fault("ConflictException", "The assignment exists already.", status=409),
    )

    account_configure(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.READY
    assert script.calls["ListAccountAssignments"] == 1  # the look after the conflict, nothing more
    assert len(assignments_of(aws, account, "student", user_id)) == 1


@pytest.mark.django_db
def test_the_courses_staff_are_looked_up_once_for_its_accounts_set_up_in_a_row(personas, aws, script):
    second = Membership.objects.create(
        course=personas.course, email="second.student@school.example", name="Second Student", role=CourseRole.STUDENT
    )
    first = configuring_account(personas)
    account_configure(account_id=first.pk)
    found_after_first = script.calls["GetUserId"]

    other = ready_account(second)

    assert other.state == S.READY
    # The second student alone: the TA and the instructor were found for the first account.
    assert script.calls["GetUserId"] - found_after_first == 1
    for role in (CourseRole.TA, CourseRole.INSTRUCTOR):
        member = Membership.objects.get(course=personas.course, role=role)
        staff_id = identity_center.find_user(AwsOrganization.load().identity_store_id, member.email)
        assert len(assignments_of(aws, other, role, staff_id)) == 1


@pytest.mark.django_db
def test_setup_puts_back_only_the_tags_the_account_lacks(personas, aws, script):
    account = configuring_account(personas)
    aws.client("organizations").untag_resource(ResourceId=account.aws_account_id, TagKeys=["student"])

    account_configure(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.READY
    assert [call["Tags"] for call in script.params["TagResource"]] == [
        [{"Key": "student", "Value": account.membership.email}]
    ]
