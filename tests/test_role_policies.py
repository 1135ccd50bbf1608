"""The portal's two IAM roles are fenced: checked against AWS's Service Authorization Reference
and evaluated, request by request, by an IAM policy evaluator (tests/support/policy_eval.py).

tests/test_iam_policy.py keeps each role's actions in step with the code; here, what each role
may do those actions to. The runtime role (web, workers) acts only on what carries the portal's
tag, works only inside accounts under the portal's OU, passes only the budget action role, and
assigns no permission set in the management account; the bootstrap role (aws_bootstrap, run by
an administrator) sets the organization up and nothing else.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from accounts_app.models import AwsOrganization
from accounts_app.services.bootstrap import (
    PLACEHOLDER_ACCOUNT,
    PLACEHOLDER_BUDGET_ACTION_ROLE,
    PLACEHOLDER_IDENTITY_STORE,
    PLACEHOLDER_ORG_PATH,
    TRUSTED_SERVICES,
)
from accounts_app.services.ownership import MANAGED_BY_TAG
from portal.aws.guardrails import MANAGED_BUDGET_PREFIX
from portal.aws.quotas import ORGANIZATIONS_ACCOUNT_QUOTA
from tests.support.iam_scan import BOOTSTRAP_ROLE_PATH, ROOT, RUNTIME_ROLE_PATH
from tests.support.policy_eval import (
    ALLOWED,
    EXPLICITLY_DENIED,
    IMPLICITLY_DENIED,
    decision,
    describe_actions,
    global_condition_keys,
)

# The role AWS Budgets assumes to run a course's budget action (PORTAL_AWS_BUDGET_ACTION_ROLE_ARN).
BUDGET_ACTION_ROLE_PATH = ROOT / "docs" / "iam" / "budget-action-role.json"
ROLES = {"runtime": RUNTIME_ROLE_PATH, "bootstrap": BOOTSTRAP_ROLE_PATH, "budget-action": BUDGET_ACTION_ROLE_PATH}
MANAGEMENT = PLACEHOLDER_ACCOUNT
MEMBER = "222233334444"
PORTAL = f"arn:aws:iam::{MANAGEMENT}:role/ClassroomCloudPortal"
[(TAG_KEY, TAG_VALUE)] = MANAGED_BY_TAG.items()
OURS = {f"aws:ResourceTag/{TAG_KEY}": TAG_VALUE}
SCP = {"organizations:PolicyType": "SERVICE_CONTROL_POLICY"}
ORG = "arn:aws:organizations::111122223333"
PORTAL_ACCOUNT = f"{ORG}:account/o-EXAMPLE/{MEMBER}"
COURSE_OU = f"{ORG}:ou/o-EXAMPLE/ou-exam-course01"
COURSE_SCP = f"{ORG}:policy/o-EXAMPLE/service_control_policy/p-course01"
ROOT = f"{ORG}:root/o-EXAMPLE/r-EXAMPLE"
# Organizations puts this trust policy on the role it creates in every new member account.
MEMBER_ROLE_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{MANAGEMENT}:root"}, "Action": "sts:AssumeRole"}
    ],
}


def policy(role: str) -> dict:
    return json.loads(ROLES[role].read_text())


def listed(value) -> list:
    return [value] if isinstance(value, str) else list(value)


def condition_keys(statement: dict) -> set[str]:
    return {key for operator in statement.get("Condition", {}).values() for key in operator}


def ask(action: str, resource: str, role_policy: dict | None = None, **context) -> str:
    """The decision for a role of the management account (which SCPs never bind) holding
    `role_policy`, by default the runtime role's."""
    member_role = resource.startswith("arn:aws:iam::") and ":role/" in resource and action == "sts:AssumeRole"
    return decision(
        principal_arn=PORTAL,
        action=action,
        resource=resource,
        resource_account=resource.split(":")[4] if member_role else MANAGEMENT,
        identity_policies={"role": role_policy or policy("runtime")},
        resource_policy=MEMBER_ROLE_TRUST if member_role else None,
        context=context,
    )


# --- Against AWS's Service Authorization Reference ------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_every_action_exists_and_every_statement_has_a_sid_of_its_own(role):
    statements = policy(role)["Statement"]
    sids = [statement["Sid"] for statement in statements]
    assert len(sids) == len(set(sids))
    actions = {action for statement in statements for action in listed(statement["Action"])}
    unknown = sorted(name for name, found in describe_actions(sorted(actions)).items() if found is None)
    assert not unknown, f"AWS has no such actions: {unknown}"


@pytest.mark.parametrize("role", ROLES)
def test_every_condition_key_is_one_aws_evaluates_for_the_statements_actions(role):
    """A condition key an action never carries makes a Deny match nothing, or an Allow never
    apply: each key is a global one, or listed for the action or the resource types it takes."""
    unsupported = []
    for statement in policy(role)["Statement"]:
        keys = condition_keys(statement)
        if not keys:
            continue
        tag_keys = {key for key in keys if key.startswith(("aws:RequestTag/", "aws:ResourceTag/", "aws:TagKeys"))}
        is_global = global_condition_keys(sorted(keys - tag_keys))
        for action, details in describe_actions(listed(statement["Action"])).items():
            supported = {*details["conditionKeys"], *(k for t in details["resourceTypes"] for k in t["conditionKeys"])}
            for key in sorted(keys):
                template = key.split("/")[0] + "/${TagKey}" if "/" in key else key
                if not (is_global.get(key) or key in supported or template in supported):
                    unsupported.append(f"{statement['Sid']}: {action} has no condition key {key}")
    assert not unsupported, "\n".join(unsupported)


def test_runtime_writes_are_scoped_by_resource_or_condition():
    """Resource "*" with no condition only where the action reads, or takes no resource at all."""
    loose = []
    for statement in policy("runtime")["Statement"]:
        if statement["Effect"] != "Allow" or statement["Resource"] != "*" or "Condition" in statement:
            continue
        for action, details in describe_actions(listed(statement["Action"])).items():
            if details["accessLevel"] not in {"Read", "List"} and not details["wildcardOnly"]:
                loose.append(f"{statement['Sid']}: {action}")
    assert not loose, f"Writes on every resource: {loose}"


def test_every_runtime_organizations_write_needs_the_portals_tag():
    """On the resource (aws:ResourceTag) or in the request that creates it (aws:RequestTag);
    the one exception is moving an account out of the root, where AWS puts new and joined
    accounts, and which carries no tag."""
    untagged = []
    for statement in policy("runtime")["Statement"]:
        organizations = [a for a in listed(statement["Action"]) if a.startswith("organizations:")]
        if statement["Effect"] != "Allow" or not organizations:
            continue
        writes = [a for a, d in describe_actions(organizations).items() if d["accessLevel"] not in {"Read", "List"}]
        tag = statement.get("Condition", {}).get("StringEquals", {})
        tagged = TAG_VALUE in {tag.get(f"aws:ResourceTag/{TAG_KEY}"), tag.get(f"aws:RequestTag/{TAG_KEY}")}
        out_of_the_root = writes == ["organizations:MoveAccount"] and listed(statement["Resource"]) == [
            "arn:aws:organizations::*:root/o-*/r-*"
        ]
        if writes and not tagged and not out_of_the_root:
            untagged.append(statement["Sid"])
    assert not untagged, f"Organizations writes without the portal's tag: {untagged}"


def test_the_roles_name_the_codes_resources():
    runtime = {s["Sid"]: s for s in policy("runtime")["Statement"]}
    assume = runtime["WorkInsideMemberAccountsOnlyUnderThePortalsOU"]
    assert assume["Resource"] == f"arn:aws:iam::*:role/{settings.PORTAL_AWS_MEMBER_ROLE_NAME}"
    assert assume["Condition"] == {"ForAnyValue:StringLike": {"aws:ResourceOrgPaths": [PLACEHOLDER_ORG_PATH + "*"]}}
    assert runtime["OnlyThePortalsOwnBudgets"]["Resource"] == f"arn:aws:budgets::*:budget/{MANAGED_BUDGET_PREFIX}*"
    assert runtime["PassOnlyTheBudgetActionRoleAndOnlyToBudgets"]["Resource"] == PLACEHOLDER_BUDGET_ACTION_ROLE
    assert PLACEHOLDER_IDENTITY_STORE in json.dumps(runtime["DeleteUsersOnlyInThePortalsIdentityStore"])
    bootstrap = {s["Sid"]: s for s in policy("bootstrap")["Statement"]}
    trusted = bootstrap["TrustIdentityCenterAndAccountManagement"]["Condition"]["StringEquals"]
    assert sorted(trusted["organizations:ServicePrincipal"]) == sorted(TRUSTED_SERVICES)
    service_code, quota_code = ORGANIZATIONS_ACCOUNT_QUOTA
    quota = f"arn:aws:servicequotas:*:*:{service_code}/{quota_code}"
    assert bootstrap["ReadTheOrganizationsAccountQuota"]["Resource"] == quota


# --- Evaluated: what the runtime role may and may not do ------------------------------------------


@pytest.mark.parametrize(
    ("org_path", "expected"),
    [
        ("o-EXAMPLE/r-EXAMPLE/ou-EXAMPLE-PORTAL/ou-exam-course01/", ALLOWED),  # a course's account
        ("o-EXAMPLE/r-EXAMPLE/ou-EXAMPLE-PORTAL/ou-exam-pool0001/", ALLOWED),  # a pooled account
        ("o-EXAMPLE/r-EXAMPLE/", IMPLICITLY_DENIED),  # the school's account under the root
        ("o-EXAMPLE/r-EXAMPLE/ou-exam-security/", IMPLICITLY_DENIED),  # the school's security OU
    ],
)
def test_the_portal_works_only_inside_accounts_under_its_ou(org_path, expected):
    member_role = f"arn:aws:iam::{MEMBER}:role/{settings.PORTAL_AWS_MEMBER_ROLE_NAME}"
    assert ask("sts:AssumeRole", member_role, **{"aws:ResourceOrgPaths": [org_path]}) == expected


def test_the_portal_assumes_no_other_role_in_its_accounts():
    other = f"arn:aws:iam::{MEMBER}:role/StudentAdmin"
    path = {"aws:ResourceOrgPaths": ["o-EXAMPLE/r-EXAMPLE/ou-EXAMPLE-PORTAL/ou-exam-course01/"]}
    assert ask("sts:AssumeRole", other, **path) == IMPLICITLY_DENIED


@pytest.mark.parametrize("action", ["organizations:CloseAccount", "organizations:RemoveAccountFromOrganization"])
def test_only_accounts_with_the_portals_tag_are_closed_or_handed_over(action):
    assert ask(action, PORTAL_ACCOUNT, **OURS) == ALLOWED
    assert ask(action, PORTAL_ACCOUNT) == IMPLICITLY_DENIED
    assert ask(action, PORTAL_ACCOUNT, **{f"aws:ResourceTag/{TAG_KEY}": "someone-else"}) == IMPLICITLY_DENIED


@pytest.mark.parametrize("action", ["organizations:AttachPolicy", "organizations:DetachPolicy"])
@pytest.mark.parametrize("resource", [COURSE_SCP, COURSE_OU, PORTAL_ACCOUNT])
def test_only_the_portals_scps_are_attached_and_only_to_its_ous_and_accounts(action, resource):
    """AWS authorizes an attachment on both the policy and the target: each must be the portal's."""
    assert ask(action, resource, **OURS, **SCP) == ALLOWED
    assert ask(action, resource, **SCP) == IMPLICITLY_DENIED
    assert ask(action, resource, **OURS, **{"organizations:PolicyType": "TAG_POLICY"}) == IMPLICITLY_DENIED


def test_no_scp_is_attached_to_the_root():
    assert ask("organizations:AttachPolicy", ROOT, **OURS, **SCP) == IMPLICITLY_DENIED


def test_accounts_move_only_into_the_portals_ous():
    assert ask("organizations:MoveAccount", COURSE_OU, **OURS) == ALLOWED
    assert ask("organizations:MoveAccount", COURSE_OU) == IMPLICITLY_DENIED  # the school's OU
    assert ask("organizations:MoveAccount", PORTAL_ACCOUNT, **OURS) == ALLOWED
    assert ask("organizations:MoveAccount", PORTAL_ACCOUNT) == IMPLICITLY_DENIED  # the school's account
    assert ask("organizations:MoveAccount", ROOT) == ALLOWED  # new and joined accounts start there


def test_tags_change_only_on_what_carries_the_portals_tag():
    course_tag = {"aws:RequestTag/course": "cs101", "aws:TagKeys": ["course"]}
    assert ask("organizations:TagResource", PORTAL_ACCOUNT, **OURS, **course_tag) == ALLOWED
    assert ask("organizations:TagResource", PORTAL_ACCOUNT, **course_tag) == IMPLICITLY_DENIED
    course_tags = {"aws:TagKeys": ["course", "student"]}
    assert ask("organizations:UntagResource", PORTAL_ACCOUNT, **OURS, **course_tags) == ALLOWED
    assert ask("organizations:UntagResource", PORTAL_ACCOUNT, **{"aws:TagKeys": ["course"]}) == IMPLICITLY_DENIED


def test_the_portals_tag_is_never_removed():
    removal = {"aws:TagKeys": ["course", TAG_KEY]}
    assert ask("organizations:UntagResource", PORTAL_ACCOUNT, **OURS, **removal) == EXPLICITLY_DENIED


@pytest.mark.parametrize(
    ("action", "resource", "context"),
    [
        ("organizations:CreateAccount", "*", {}),
        ("organizations:InviteAccountToOrganization", f"{ORG}:account/o-EXAMPLE/333344445555", {}),
        ("organizations:CreateOrganizationalUnit", COURSE_OU, {}),
        ("organizations:CreatePolicy", COURSE_SCP, SCP),
    ],
)
def test_what_the_portal_creates_or_invites_carries_its_tag(action, resource, context):
    tagged = {f"aws:RequestTag/{TAG_KEY}": TAG_VALUE, "aws:TagKeys": [TAG_KEY, "course"]}
    assert ask(action, resource, **context, **tagged) == ALLOWED
    assert ask(action, resource, **context, **{"aws:RequestTag/course": "cs101", "aws:TagKeys": ["course"]}) == (
        IMPLICITLY_DENIED
    )


def test_ous_are_created_inside_an_ou_never_at_the_root():
    tagged = {f"aws:RequestTag/{TAG_KEY}": TAG_VALUE}
    assert ask("organizations:CreateOrganizationalUnit", ROOT, **tagged) == IMPLICITLY_DENIED


def test_only_the_portals_scps_change():
    assert ask("organizations:UpdatePolicy", COURSE_SCP, **OURS, **SCP) == ALLOWED
    assert ask("organizations:UpdatePolicy", COURSE_SCP, **SCP) == IMPLICITLY_DENIED


def test_only_the_budget_action_role_is_passed_and_only_to_budgets():
    to_budgets = {"iam:PassedToService": "budgets.amazonaws.com"}
    assert ask("iam:PassRole", PLACEHOLDER_BUDGET_ACTION_ROLE, **to_budgets) == ALLOWED
    assert ask("iam:PassRole", PLACEHOLDER_BUDGET_ACTION_ROLE, **{"iam:PassedToService": "ec2.amazonaws.com"}) == (
        IMPLICITLY_DENIED
    )
    assert ask("iam:PassRole", f"arn:aws:iam::{MANAGEMENT}:role/OrganizationAdmin", **to_budgets) == IMPLICITLY_DENIED


@pytest.mark.parametrize("action", ["sso:CreateAccountAssignment", "sso:DeleteAccountAssignment"])
def test_permission_sets_are_assigned_in_member_accounts_never_in_the_management_account(action):
    assert ask(action, f"arn:aws:sso:::account/{MEMBER}") == ALLOWED
    assert ask(action, f"arn:aws:sso:::account/{MANAGEMENT}") == EXPLICITLY_DENIED


def test_users_are_deleted_only_in_the_portals_identity_store():
    store = f"arn:aws:identitystore::{MANAGEMENT}:identitystore/{PLACEHOLDER_IDENTITY_STORE}"
    other_store = f"arn:aws:identitystore::{MANAGEMENT}:identitystore/d-0123456789"
    assert ask("identitystore:DeleteUser", store) == ALLOWED
    assert ask("identitystore:DeleteUser", other_store) == IMPLICITLY_DENIED


@pytest.mark.parametrize(
    ("action", "resource", "context"),
    [
        ("organizations:EnableAWSServiceAccess", "*", {"organizations:ServicePrincipal": "sso.amazonaws.com"}),
        ("organizations:EnablePolicyType", ROOT, SCP),
        ("sso:CreatePermissionSet", "arn:aws:sso:::permissionSet/ssoins-0123456789abcdef/ps-0123456789abcdef", {}),
        ("iam:CreateRole", f"arn:aws:iam::{MANAGEMENT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_X_1", {}),
        ("iam:PutRolePolicy", f"arn:aws:iam::{MANAGEMENT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_X_1", {}),
    ],
)
def test_the_runtime_role_cannot_set_up_the_organization_or_make_roles_in_the_management_account(
    action, resource, context
):
    assert ask(action, resource, **context) == IMPLICITLY_DENIED


@pytest.mark.parametrize("action", ["organizations:AttachPolicy", "organizations:DetachPolicy"])
def test_a_budget_action_freezes_only_the_portals_accounts_with_its_scps(action):
    budget_action = policy("budget-action")
    for resource in (PORTAL_ACCOUNT, COURSE_SCP):
        assert ask(action, resource, budget_action, **OURS, **SCP) == ALLOWED
        assert ask(action, resource, budget_action, **SCP) == IMPLICITLY_DENIED
    assert ask(action, COURSE_OU, budget_action, **OURS, **SCP) == IMPLICITLY_DENIED  # accounts, not OUs


def test_the_bootstrap_role_trusts_only_the_portals_services():
    bootstrap = policy("bootstrap")
    enable = "organizations:EnableAWSServiceAccess"
    for service in TRUSTED_SERVICES:
        assert ask(enable, "*", bootstrap, **{"organizations:ServicePrincipal": service}) == ALLOWED
    assert ask(enable, "*", bootstrap, **{"organizations:ServicePrincipal": "config.amazonaws.com"}) == (
        IMPLICITLY_DENIED
    )


# --- aws_role_policy: the runtime role with the organization's own values -------------------------


def render(role: str) -> dict:
    stdout = StringIO()
    call_command("aws_role_policy", role, stdout=stdout)
    return json.loads(stdout.getvalue())


@pytest.mark.django_db
def test_aws_role_policy_fills_in_the_organizations_ou_path_accounts_and_identity_store(aws, settings):
    settings.PORTAL_AWS_BUDGET_ACTION_ROLE_ARN = "arn:aws:iam::123456789012:role/ClassroomCloudBudgetActions"
    organization = AwsOrganization.load()
    rendered = render("runtime")

    text = json.dumps(rendered)
    assert "EXAMPLE" not in text and PLACEHOLDER_ACCOUNT not in text
    portal_path = f"{organization.organization_id}/{organization.root_id}/{organization.parent_ou_id}/"
    member_role = f"arn:aws:iam::{MEMBER}:role/{settings.PORTAL_AWS_MEMBER_ROLE_NAME}"
    inside = {"aws:ResourceOrgPaths": [f"{portal_path}{organization.pool_ou_id}/"]}
    outside = {"aws:ResourceOrgPaths": [f"{organization.organization_id}/{organization.root_id}/"]}
    assert ask("sts:AssumeRole", member_role, rendered, **inside) == ALLOWED
    assert ask("sts:AssumeRole", member_role, rendered, **outside) == IMPLICITLY_DENIED
    management = f"arn:aws:sso:::account/{organization.management_account_id}"
    assert ask("sso:CreateAccountAssignment", management, rendered) == EXPLICITLY_DENIED
    to_budgets = {"iam:PassedToService": "budgets.amazonaws.com"}
    assert ask("iam:PassRole", settings.PORTAL_AWS_BUDGET_ACTION_ROLE_ARN, rendered, **to_budgets) == ALLOWED
    assert render("bootstrap") == policy("bootstrap")


@pytest.mark.django_db
def test_aws_role_policy_without_budget_actions_passes_no_role(aws, settings):
    settings.PORTAL_AWS_BUDGET_ACTION_ROLE_ARN = ""
    actions = {action for statement in render("runtime")["Statement"] for action in listed(statement["Action"])}
    assert "iam:PassRole" not in actions


@pytest.mark.django_db
def test_aws_role_policy_needs_the_organization_set_up_first():
    with pytest.raises(CommandError, match="aws_bootstrap"):
        render("runtime")
