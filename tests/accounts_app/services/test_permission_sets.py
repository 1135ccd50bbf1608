"""The permission sets aws_bootstrap keeps: TAs view, they do not read students' data; an older
TA permission set (ReadOnlyAccess) is brought up to date and provisioned again to the accounts
that still have it.

moto neither provisions a permission set when an assignment is made nor filters
ListAccountsForProvisionedPermissionSet by provisioning status, and lacks
DescribePermissionSetProvisioningStatus: those answers are scripted as AWS gives them."""

from __future__ import annotations

import json

import pytest
from moto.iam.access_control import IAMPolicy, PermissionResult
from moto.iam.aws_managed_policies import aws_managed_policies_data

from accounts_app.models import AwsOrganization
from accounts_app.services import bootstrap
from accounts_app.services.bootstrap import BootstrapError, aws_bootstrap
from portal.aws.guardrails import PERMISSION_SETS
from tests.support.aws_script import Edit

VIEW_ONLY = "arn:aws:iam::aws:policy/job-function/ViewOnlyAccess"
BILLING_VIEW = "arn:aws:iam::aws:policy/AWSBillingReadOnlyAccess"
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
OLD_TA_DESCRIPTION = "Teaching assistants: read everything, including billing, change nothing."
# What a student keeps in their account, and what only lists or describes it.
STUDENT_DATA_READS = [
    ("s3:GetObject", "arn:aws:s3:::lab-results-2026/data.csv"),
    ("dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:111122223333:table/lab-scores"),
    ("dynamodb:Scan", "arn:aws:dynamodb:us-east-1:111122223333:table/lab-scores"),
    ("logs:GetLogEvents", "arn:aws:logs:us-east-1:111122223333:log-group:app:log-stream:1"),
    ("ssm:GetParameter", "arn:aws:ssm:us-east-1:111122223333:parameter/db-password"),
    ("sqs:ReceiveMessage", "arn:aws:sqs:us-east-1:111122223333:jobs"),
    ("kinesis:GetRecords", "arn:aws:kinesis:us-east-1:111122223333:stream/clicks"),
    ("athena:GetQueryResults", "*"),
]
VIEWS = [("ec2:DescribeInstances", "*"), ("s3:ListAllMyBuckets", "*"), ("ce:GetCostAndUsage", "*")]


def managed_policy(arn: str) -> IAMPolicy:
    """AWS's managed policy document, from moto's copy of them, for moto's policy evaluator."""
    document = json.loads(aws_managed_policies_data)[arn.rsplit("/", 1)[-1]]["Document"]
    return IAMPolicy(json.dumps(document))


def permitted(policy_arns: list[str], action: str, resource: str) -> bool:
    results = [managed_policy(arn).is_action_permitted(action, resource) for arn in policy_arns]
    return PermissionResult.PERMITTED in results and PermissionResult.DENIED not in results


def ta_policies(aws) -> set[str]:
    organization = AwsOrganization.load()
    attached = aws.client("sso-admin").list_managed_policies_in_permission_set(
        InstanceArn=organization.sso_instance_arn, PermissionSetArn=organization.permission_sets["ta"]
    )["AttachedManagedPolicies"]
    return {policy["Arn"] for policy in attached}


@pytest.fixture
def old_ta_permission_set(aws):
    """The TA permission set as earlier versions of the portal made it."""
    organization = AwsOrganization.load()
    sso = aws.client("sso-admin")
    ta = {"InstanceArn": organization.sso_instance_arn, "PermissionSetArn": organization.permission_sets["ta"]}
    sso.detach_managed_policy_from_permission_set(**ta, ManagedPolicyArn=VIEW_ONLY)
    sso.attach_managed_policy_to_permission_set(**ta, ManagedPolicyArn=READ_ONLY)
    sso.update_permission_set(**ta, Description=OLD_TA_DESCRIPTION)
    return ta["PermissionSetArn"]


def outdated_accounts(ta_arn: str, account_ids: list[str]):
    """AWS's answer to ListAccountsForProvisionedPermissionSet filtered on
    LATEST_PERMISSION_SET_NOT_PROVISIONED: these accounts for the TA set, none for the others."""

    def answer(params: dict) -> dict:
        assert params["ProvisioningStatus"] == "LATEST_PERMISSION_SET_NOT_PROVISIONED"
        return {"AccountIds": account_ids if params["PermissionSetArn"] == ta_arn else []}

    return answer


# moto provisions at once; AWS answers IN_PROGRESS and finishes a moment later.
STILL_IN_PROGRESS = Edit(lambda parsed: parsed["PermissionSetProvisioningStatus"].update(Status="IN_PROGRESS"))


def provisioning(state: str, reason: str = ""):
    """AWS's DescribePermissionSetProvisioningStatus answer."""

    def answer(params: dict) -> dict:
        status = {"Status": state, "RequestId": params["ProvisionPermissionSetRequestId"]}
        return {"PermissionSetProvisioningStatus": {**status, **({"FailureReason": reason} if reason else {})}}

    return answer


@pytest.mark.django_db
def test_the_ta_permission_set_is_view_only_with_billing_view(aws):
    assert ta_policies(aws) == {VIEW_ONLY, BILLING_VIEW}
    assert PERMISSION_SETS["ta"].managed_policy_arns == [VIEW_ONLY, BILLING_VIEW]


@pytest.mark.parametrize(("action", "resource"), STUDENT_DATA_READS)
def test_tas_cannot_read_students_data_which_read_only_access_would_let_them(action, resource):
    assert not permitted(PERMISSION_SETS["ta"].managed_policy_arns, action, resource)
    assert permitted([READ_ONLY], action, resource)


@pytest.mark.parametrize(("action", "resource"), VIEWS)
def test_tas_still_see_resources_and_billing(action, resource):
    assert permitted(PERMISSION_SETS["ta"].managed_policy_arns, action, resource)


@pytest.mark.django_db
def test_aws_bootstrap_brings_an_old_ta_permission_set_up_to_date_and_provisions_it_again(
    aws, old_ta_permission_set, script, monkeypatch
):
    monkeypatch.setattr(bootstrap, "PROVISIONING_CHECK_SECONDS", 0)
    ta_arn = old_ta_permission_set
    script.always("sso-admin", "ListAccountsForProvisionedPermissionSet", outdated_accounts(ta_arn, ["111122223333"]))
    script.answer("sso-admin", "ProvisionPermissionSet", STILL_IN_PROGRESS)
    script.answer(
        "sso-admin",
        "DescribePermissionSetProvisioningStatus",
        provisioning("IN_PROGRESS"),
        provisioning("SUCCEEDED"),
    )

    report = aws_bootstrap(actor=None)

    assert ta_policies(aws) == {VIEW_ONLY, BILLING_VIEW}
    described = aws.client("sso-admin").describe_permission_set(
        InstanceArn=AwsOrganization.load().sso_instance_arn, PermissionSetArn=ta_arn
    )["PermissionSet"]
    assert described["Description"] == PERMISSION_SETS["ta"].description
    assert (
        f"Permission set ClassroomTA: attached job-function/ViewOnlyAccess, detached ReadOnlyAccess, "
        f"description updated, {ta_arn}." in report
    )
    assert "Permission set ClassroomTA: provisioned again to 1 account(s) that had an earlier version." in report
    assert script.params["ProvisionPermissionSet"] == [
        {
            "InstanceArn": AwsOrganization.load().sso_instance_arn,
            "PermissionSetArn": ta_arn,
            "TargetType": "ALL_PROVISIONED_ACCOUNTS",
        }
    ]
    assert script.calls["DescribePermissionSetProvisioningStatus"] == 2
    assert AwsOrganization.load().permission_sets["ta"] == ta_arn

    # Up to date everywhere: a second run changes nothing.
    script.always("sso-admin", "ListAccountsForProvisionedPermissionSet", outdated_accounts(ta_arn, []))
    again = aws_bootstrap(actor=None)

    assert f"Permission set ClassroomTA: up to date, {ta_arn}." in again
    assert script.calls["ProvisionPermissionSet"] == 1
    assert script.calls["AttachManagedPolicyToPermissionSet"] == 1
    assert script.calls["DetachManagedPolicyFromPermissionSet"] == 1


@pytest.mark.django_db
def test_a_failed_provisioning_stops_aws_bootstrap_with_aws_reason(aws, old_ta_permission_set, script, monkeypatch):
    monkeypatch.setattr(bootstrap, "PROVISIONING_CHECK_SECONDS", 0)
    outdated = outdated_accounts(old_ta_permission_set, ["111122223333"])
    script.always("sso-admin", "ListAccountsForProvisionedPermissionSet", outdated)
    script.answer("sso-admin", "ProvisionPermissionSet", STILL_IN_PROGRESS)
    script.answer("sso-admin", "DescribePermissionSetProvisioningStatus", provisioning("FAILED", "Role quota reached"))

    with pytest.raises(BootstrapError) as stopped:
        aws_bootstrap(actor=None)

    assert str(stopped.value) == (
        "AWS could not provision the permission set ClassroomTA again to 1 account(s): Role quota reached. "
        "Fix that and run aws_bootstrap again."
    )
