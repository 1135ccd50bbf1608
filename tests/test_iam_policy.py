"""The portal's two IAM roles grant exactly what the code calls with management-account credentials:
docs/iam/bootstrap-role.json what `manage.py aws_bootstrap` calls, docs/iam/runtime-role.json
what everything else (web, workers, other commands) calls, and the runtime role nothing that only
aws_bootstrap needs.

The scan of the code is tests/support/iam_scan.py: what it finds, and how, is described there.
"""

from __future__ import annotations

from tests.support.iam_scan import (
    AWS_PACKAGE,
    BOOTSTRAP_ROLE_PATH,
    RUNTIME_ROLE_PATH,
    allowed_actions,
    api_action,
    code_paths,
    drift,
    portal_code_paths,
    required_actions,
    scan_portal,
    scan_sources,
)


def test_the_scan_names_every_management_account_call():
    scan = scan_portal()
    assert not scan.unresolved, (
        "The scan cannot name the AWS operation of these management-account calls; write the "
        "operation as a string literal (or teach tests/support/iam_scan.py the new pattern):\n  "
        + "\n  ".join(scan.unresolved)
    )


def test_the_runtime_role_grants_exactly_what_the_portal_calls():
    """Web, workers and every command but aws_bootstrap run with the runtime role."""
    assert not (report := drift(RUNTIME_ROLE_PATH, required_actions(portal_code_paths().runtime))), report


def test_the_bootstrap_role_grants_exactly_what_aws_bootstrap_calls():
    assert not (report := drift(BOOTSTRAP_ROLE_PATH, required_actions(portal_code_paths().bootstrap))), report


# Setting the organization up is aws_bootstrap's alone: if the portal ever calls one of these
# while it runs, the test below says where.
BOOTSTRAP_ONLY = frozenset(
    {
        "organizations:EnableAWSServiceAccess",
        "organizations:EnablePolicyType",
        "sso:CreatePermissionSet",
        "sso:AttachManagedPolicyToPermissionSet",
    }
)


def test_the_runtime_role_holds_nothing_only_aws_bootstrap_needs():
    paths = portal_code_paths()
    runtime = required_actions(paths.runtime)
    bootstrap_only = set(required_actions(paths.bootstrap)) - set(runtime)
    reached_at_runtime = {action: runtime[action] for action in BOOTSTRAP_ONLY if action in runtime}
    assert not reached_at_runtime, f"Runtime code reaches aws_bootstrap's calls: {reached_at_runtime}"
    assert bootstrap_only >= BOOTSTRAP_ONLY
    assert not allowed_actions(RUNTIME_ROLE_PATH) & bootstrap_only


def test_the_code_paths_split_where_the_code_does():
    paths = portal_code_paths()
    runtime, bootstrap = required_actions(paths.runtime), required_actions(paths.bootstrap)
    # Vending, closing, the freeze: the portal's daily work.
    assert {"organizations:CreateAccount", "organizations:CloseAccount", "organizations:AttachPolicy"} <= set(runtime)
    assert "organizations:CreateAccount" not in bootstrap
    # Course OUs and SCPs are made when a course first gets accounts (course_guardrails_apply).
    assert {"organizations:CreateOrganizationalUnit", "organizations:CreatePolicy"} <= set(runtime) & set(bootstrap)
    # cost_tags_activate lives in bootstrap.py but a task calls it when a course's tag key changes.
    assert any("costs.py" in where for where in runtime["ce:UpdateCostAllocationTagsStatus"])
    # Work inside member accounts (cleanup, IAM users) assumes the member role; aws_bootstrap never does.
    assert "sts:AssumeRole" in runtime and "sts:AssumeRole" not in bootstrap


def test_code_paths_follow_imports_helpers_and_reexports():
    aws = """
from portal.aws.session import client

def _call(operation, **params):
    return getattr(client("organizations"), operation)(**params)

def enable(service):
    _call("enable_aws_service_access", ServicePrincipal=service)

def close(account_id):
    _call("close_account", AccountId=account_id)

def tag(account_id):
    _call("tag_resource", ResourceId=account_id, Tags=[])

class Sweeper:
    def sweep(self, account_id):
        return client("ec2", account_id=account_id).describe_instances()
"""
    sources = {
        "portal.aws.example": aws,
        "app.services.bootstrap": "from portal.aws import example\n\ndef setup():\n    example.enable('sso')\n"
        "\n\ndef shared():\n    example.tag('1')\n",
        "app.services": "from app.services.bootstrap import shared as reexported\n",
        "app.tasks": "def task():\n    from app.services import reexported\n    reexported()\n",
        "app.views": "import portal.aws.example\n\nHANDLERS = [portal.aws.example.close]\n",
        "app.cleanup": "from portal.aws.example import Sweeper\n\ndef run():\n    Sweeper().sweep('1')\n",
    }
    scan = scan_sources([(AWS_PACKAGE / "example.py", aws)])
    paths = code_paths(sources, scan, frozenset({"app.services.bootstrap"}))

    def operations(calls):
        return {call.operation for call in calls}

    assert operations(paths.bootstrap) == {"enable_aws_service_access", "tag_resource"}
    assert operations(paths.runtime) == {"tag_resource", "close_account", "describe_instances"}
    assert "sts:AssumeRole" in required_actions(paths.runtime)


def test_scan_finds_known_calls_and_leaves_member_accounts_out():
    scan = scan_portal()
    needed = required_actions(scan.management_calls())
    # Through organizations._call and identity_center._call("sso-admin", ...).
    assert "organizations:CreateAccount" in needed
    assert "sso:CreateAccountAssignment" in needed
    # Through paginators, a client bound to a name, and a direct call.
    assert "organizations:ListAccounts" in needed
    assert "sts:AssumeRole" in needed
    assert "ce:GetCostAndUsage" in needed
    assert "budgets:ViewBudget" in needed  # describe_budget, renamed
    # iam_users.py works inside member accounts: seen, but not the management account's business.
    member = {api_action(call) for call in scan.member_calls() if call.service in {"iam", "sts"}}
    assert {"iam:CreateUser", "iam:CreateLoginProfile", "sts:GetCallerIdentity"} <= member
    assert "iam:CreateUser" not in needed


def test_scan_follows_helpers_factories_and_member_clients(tmp_path):
    source = """
from portal.aws.session import client

SERVICE = "organizations"

def _call(operation, *, account_id="", **params):
    return getattr(client(SERVICE, account_id=account_id), operation)(**params)

def _ec2(account_id):
    return client("ec2", account_id=account_id)

def _list(operation):
    return list(_call(operation))

def closing(account_id):
    _call("close_account", AccountId=account_id)
    _call("describe_account", account_id=account_id)
    _list("list_roots")
    _ec2(account_id).terminate_instances(InstanceIds=[])
    api = client("budgets")
    api.get_paginator("describe_budgets")

class _Place:
    account_id: str

    def call(self, service, operation):
        return getattr(client(service, account_id=self.account_id), operation)()

class _Organization:
    def call(self, operation):
        return getattr(client("organizations"), operation)()

def sweep(at: _Place):
    at.call("s3", "list_buckets")
    _Organization().call("list_parents")

def unknown(name):
    getattr(client("identitystore"), name.lower())()
"""
    scan = scan_sources([(tmp_path / "example.py", source)])
    management = {(c.service, c.operation) for c in scan.management_calls()}
    member = {(c.service, c.operation) for c in scan.member_calls()}
    assert management == {
        ("organizations", "close_account"),
        ("organizations", "list_roots"),
        ("organizations", "list_parents"),
        ("budgets", "describe_budgets"),
    }
    assert member == {
        ("organizations", "describe_account"),
        ("ec2", "terminate_instances"),
        ("s3", "list_buckets"),
    }
    assert len(scan.unresolved) == 1 and "unknown" in scan.unresolved[0]
