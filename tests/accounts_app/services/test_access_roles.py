"""The access role of an account a student brings, made the portal's alone once the account is in
the course (accounts_app/services/access_roles.py, portal/aws/access_role.py): a forged trust,
extra policies and a boundary undone on configure, and the reconciler repairing and reporting a
role changed later.

moto's CreateAccount makes the member account whose access role stands for the one a student
created before their account joined. Services are called directly inside a rolled-back
transaction: the tasks they queue on commit never run unless a test says so.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from accounts_app.choices import AccountState as S
from accounts_app.choices import AuditAction
from accounts_app.lifecycle import transition
from accounts_app.models import AuditEvent, AwsOrganization, Course, MemberAccount
from accounts_app.services.account_setup import account_configure
from accounts_app.services.reconcile import reconcile
from portal.aws import access_role
from tests.support.brought_accounts import ROLE, bring, joined, students_own_account


@pytest.fixture
def managed_policies(monkeypatch):
    """AWS's managed policies (AdministratorAccess, …) in the IAM of accounts moto makes from now
    on; moto leaves them out unless asked, to start faster."""
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")


def forge_the_role(aws, account_id: str) -> None:
    """What a student could have done to the role before the account joined: trust themselves
    too, give it more policies, fence the portal with a permissions boundary."""
    iam = aws.client("iam", account_id=account_id)
    management = AwsOrganization.load().management_account_id
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": [f"arn:aws:iam::{management}:root", f"arn:aws:iam::{account_id}:user/stella"]},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    iam.update_assume_role_policy(RoleName=ROLE, PolicyDocument=json.dumps(trust))
    iam.attach_role_policy(RoleName=ROLE, PolicyArn="arn:aws:iam::aws:policy/IAMFullAccess")
    iam.put_role_policy(
        RoleName=ROLE,
        PolicyName="stay-in",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        ),
    )
    iam.put_role_permissions_boundary(RoleName=ROLE, PermissionsBoundary="arn:aws:iam::aws:policy/ReadOnlyAccess")


def configuring_brought_account(personas, aws, aws_account_id: str) -> MemberAccount:
    account = bring(personas, aws_account_id)
    joined(aws, account)
    for before, after in [
        (S.AWAITING_APPROVAL, S.INVITING),
        (S.INVITING, S.INVITED),
        (S.INVITED, S.AWAITING_ACCESS_ROLE),
        (S.AWAITING_ACCESS_ROLE, S.CONFIGURING),
    ]:
        assert transition(account, expected=before, to=after)
    return account


def role_as_it_is(aws, account_id: str) -> dict:
    iam = aws.client("iam", account_id=account_id)
    role = iam.get_role(RoleName=ROLE)["Role"]
    return {
        "trust": role["AssumeRolePolicyDocument"],
        "attached": [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"]],
        "inline": iam.list_role_policies(RoleName=ROLE)["PolicyNames"],
        "boundary": role.get("PermissionsBoundary"),
    }


@pytest.mark.django_db
def test_a_forged_access_role_is_made_the_portals_alone_on_configure(personas, aws, managed_policies, clock):
    account_id = students_own_account(aws)
    forge_the_role(aws, account_id)
    account = configuring_brought_account(personas, aws, account_id)

    account_configure(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.READY, account.last_error
    management = AwsOrganization.load().management_account_id
    assert role_as_it_is(aws, account_id) == {
        "trust": {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{management}:root"}, "Action": "sts:AssumeRole"}
            ],
        },
        "attached": [access_role.ADMINISTRATOR_ACCESS],
        "inline": [access_role.REVOKE_POLICY_NAME],
        "boundary": None,
    }
    revoked_from = clock.now + timedelta(minutes=1)
    revocation = aws.client("iam", account_id=account_id).get_role_policy(
        RoleName=ROLE, PolicyName=access_role.REVOKE_POLICY_NAME
    )["PolicyDocument"]
    assert revocation == access_role.revoke_policy(revoked_from)
    assert account.access_role_secured_at == revoked_from
    audit = AuditEvent.objects.get(action=AuditAction.ACCESS_ROLE_SECURED)
    assert "user/stella" in audit.summary
    assert "detached arn:aws:iam::aws:policy/IAMFullAccess" in audit.summary
    assert "deleted the inline policy stay-in" in audit.summary


@pytest.mark.django_db
def test_the_portals_principal_is_its_management_role_when_it_uses_one(personas, aws, managed_policies, settings):
    account_id = students_own_account(aws)
    account = configuring_brought_account(personas, aws, account_id)
    portal_role = f"arn:aws:iam::{AwsOrganization.load().management_account_id}:role/classroom-portal"
    settings.PORTAL_AWS_MANAGEMENT_ROLE_ARN = portal_role
    aws.reset()  # the portal's sessions now come from that role

    account_configure(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.READY, account.last_error
    assert role_as_it_is(aws, account_id)["trust"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"AWS": portal_role}, "Action": "sts:AssumeRole"}
    ]


@pytest.mark.django_db
def test_an_access_role_under_another_path_fails_the_account_with_what_to_do(personas, aws, managed_policies):
    account_id = students_own_account(aws)
    iam = aws.client("iam", account_id=account_id)
    trust = iam.get_role(RoleName=ROLE)["Role"]["AssumeRolePolicyDocument"]
    iam.delete_role(RoleName=ROLE)
    iam.create_role(RoleName=ROLE, Path="/student/", AssumeRolePolicyDocument=json.dumps(trust))
    account = configuring_brought_account(personas, aws, account_id)

    account_configure(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.FAILED
    assert account.last_error == (
        f"The role {ROLE} in account {account_id} was created under the path /student/. Delete it and create "
        "it again from the portal's template, then retry."
    )


@pytest.mark.django_db
def test_the_reconciler_repairs_and_reports_a_changed_access_role(personas, aws, managed_policies, clock):
    account_id = students_own_account(aws)
    account = configuring_brought_account(personas, aws, account_id)
    account_configure(account_id=account.pk)
    clean = role_as_it_is(aws, account_id)
    assert [line for line in reconcile() if account_id in line] == []  # nothing to repair yet

    clock.advance(timedelta(minutes=2))  # past the revocation moment
    forge_the_role(aws, account_id)
    drift = [line for line in reconcile() if account_id in line]

    assert len(drift) == 1
    assert drift[0].startswith(f"{account.account_name} ({account_id}): ")
    assert "its access role had changed and was repaired: trust policy replaced" in drift[0]
    assert "detached arn:aws:iam::aws:policy/IAMFullAccess" in drift[0]
    assert role_as_it_is(aws, account_id) == clean
    assert [line for line in reconcile() if account_id in line] == []  # repaired: quiet again


@pytest.mark.django_db
def test_the_reconciler_checks_only_a_brought_account_still_in_its_course_ou(personas, aws, managed_policies, clock):
    account_id = students_own_account(aws)
    account = configuring_brought_account(personas, aws, account_id)
    account_configure(account_id=account.pk)
    clock.advance(timedelta(minutes=2))
    aws.client("organizations").move_account(
        AccountId=account_id,
        SourceParentId=Course.objects.get(pk=personas.course.pk).aws_ou_id,
        DestinationParentId=AwsOrganization.load().root_id,
    )
    forge_the_role(aws, account_id)

    drift = [line for line in reconcile() if account_id in line]

    assert len(drift) == 1
    assert "its access role was not checked" in drift[0]
    assert "user/stella" in json.dumps(role_as_it_is(aws, account_id)["trust"])  # not touched
