"""docs/iam-policy.json grants exactly what the portal calls with management-account credentials.

The scan reads every module of portal/aws/ with `ast` (no AWS, no import of the modules) and
finds each AWS operation, however it is written there:

- on a client expression: `client("budgets").describe_budget(...)`, a name bound to one
  (`api = client(...)`), a boto3 session's own client (`source.client("sts")`, session.py), or a
  module function that returns one;
- `getattr(<client>, operation)` and `<client>.get_paginator("list_x")` (a paginator needs the
  `ListX` action);
- through helpers such as `_call("create_account", ...)` and `_pages("list_roots", "Roots")`: a
  helper's parameters are bound to the arguments of each call, so helpers that call helpers,
  helpers that take the service too (`_call("sso-admin", "create_permission_set")`) and methods
  of the module's classes (called on `self`, an annotated parameter or a new instance) resolve.

A client made with `client(..., account_id=...)` acts inside a member account through
OrganizationAccountAccessRole, which is administrator there: those calls need nothing in the
policy, only `sts:AssumeRole` on that role (session.py's own call). A management-account call
whose operation the scan cannot name fails the test rather than being skipped.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import botocore.session
from botocore import xform_name

ROOT = Path(__file__).resolve().parent.parent
AWS_PACKAGE = ROOT / "portal" / "aws"
POLICY_PATH = ROOT / "docs" / "iam-policy.json"

# boto3 service name → IAM action prefix. Services not listed use the model's signing name,
# which is the prefix for most services.
IAM_PREFIXES = {
    "account": "account",
    "budgets": "budgets",
    "ce": "ce",
    "iam": "iam",
    "identitystore": "identitystore",
    "organizations": "organizations",
    "service-quotas": "servicequotas",
    "sso-admin": "sso",
    "sts": "sts",
}

# Where the IAM action is not the API operation's name, or an operation needs more actions than
# its own. Source: the Service Authorization Reference ("Actions, resources, and condition keys
# for <service>", https://docs.aws.amazon.com/service-authorization/latest/reference/), each
# service's "Dependent actions" column, and the API reference notes quoted beside each entry.
ACTION_NAMES = {
    # AWS Budgets authorizes every budget, notification and subscriber write with ModifyBudget
    # and every read with ViewBudget; budget actions have actions of their own.
    "budgets:CreateBudget": "budgets:ModifyBudget",
    "budgets:UpdateBudget": "budgets:ModifyBudget",
    "budgets:DeleteBudget": "budgets:ModifyBudget",
    "budgets:CreateNotification": "budgets:ModifyBudget",
    "budgets:UpdateNotification": "budgets:ModifyBudget",
    "budgets:DeleteNotification": "budgets:ModifyBudget",
    "budgets:CreateSubscriber": "budgets:ModifyBudget",
    "budgets:UpdateSubscriber": "budgets:ModifyBudget",
    "budgets:DeleteSubscriber": "budgets:ModifyBudget",
    "budgets:DescribeBudget": "budgets:ViewBudget",
    "budgets:DescribeBudgets": "budgets:ViewBudget",
    "budgets:DescribeNotificationsForBudget": "budgets:ViewBudget",
    "budgets:DescribeSubscribersForNotification": "budgets:ViewBudget",
    "budgets:DescribeBudgetPerformanceHistory": "budgets:ViewBudget",
    "budgets:DescribeBudgetNotificationsForAccount": "budgets:ViewBudget",
}
# Identity Center provisions a permission set into an account as the role
# aws-reserved/sso.amazonaws.com/AWSReservedSSO_<set>_<id> with a SAML provider, and removes them
# with the account's last assignment of that set. Where it acts with the caller's permissions
# (the management account) the caller needs these on that path; AWS's own
# AWSSSOMasterAccountAdministrator policy grants them there; docs/iam-policy.json, only there.
SSO_ROLE_CREATION = frozenset(
    {
        "iam:GetRole", "iam:CreateRole", "iam:AttachRolePolicy", "iam:PutRolePolicy",
        "iam:ListAttachedRolePolicies", "iam:ListRolePolicies", "iam:GetSAMLProvider",
        "iam:CreateSAMLProvider",
    }
)
SSO_ROLE_DELETION = frozenset(
    {
        "iam:GetRole", "iam:DeleteRole", "iam:DetachRolePolicy", "iam:DeleteRolePolicy",
        "iam:ListAttachedRolePolicies", "iam:ListRolePolicies",
    }
)
EXTRA_ACTIONS = {
    # CreateAccount: "If you enabled all features in the organization, Organizations creates the
    # required service-linked role" (iam:CreateServiceLinkedRole, AccessDeniedForDependency
    # without it) and "If the request includes tags, the requester must have the
    # organizations:TagResource permission".
    "organizations:CreateAccount": {"iam:CreateServiceLinkedRole", "organizations:TagResource"},
    "organizations:InviteAccountToOrganization": {"iam:CreateServiceLinkedRole"},
    # A budget action runs as the role it is given: creating one passes that role to Budgets.
    "budgets:CreateBudgetAction": {"iam:PassRole"},
    "budgets:UpdateBudgetAction": {"iam:PassRole"},
    "sso:CreateAccountAssignment": SSO_ROLE_CREATION,
    "sso:DeleteAccountAssignment": SSO_ROLE_DELETION,
}
# STS answers GetCallerIdentity without any permission ("No permissions are required to perform
# this operation", STS API reference).
NO_PERMISSION_NEEDED = frozenset({"sts:GetCallerIdentity"})
# Called only against the local emulator (`aws_bootstrap --create-organization` refuses to run
# without AWS_ENDPOINT_URL): the school's organization exists before the portal does.
EMULATOR_ONLY = frozenset({"organizations:CreateOrganization"})

# Client methods that are not AWS operations.
NOT_OPERATIONS = frozenset(
    {"can_paginate", "close", "generate_presigned_url", "get_waiter", "get_paginator"}
)
MAX_DEPTH = 8


@dataclass(frozen=True)
class Call:
    service: str  # boto3's service name, e.g. "sso-admin"
    operation: str  # as written in the code, e.g. "create_account_assignment"
    member: bool  # made inside a member account (client(..., account_id=...))
    where: str  # "portal/aws/organizations.py:123"


@dataclass(frozen=True)
class Scan:
    calls: frozenset[Call]
    unresolved: tuple[str, ...]  # management-account calls whose operation the scan cannot name

    def management_calls(self) -> set[Call]:
        return {c for c in self.calls if not c.member}

    def member_calls(self) -> set[Call]:
        return {c for c in self.calls if c.member}


class _Param:
    """An unbound parameter of the function being read (top level, no call site)."""

    def __init__(self, name: str, may_be_empty: bool):
        self.name = name
        self.may_be_empty = may_be_empty  # its default is "" or None


UNKNOWN = object()  # an expression the scan cannot evaluate
EMPTY = object()  # "", None: e.g. account_id="" means the management account


@dataclass(frozen=True)
class _Client:
    service: object  # str, _Param or UNKNOWN
    member: bool | None  # None: up to the caller (account_id is a parameter that may be "")


class _ModuleScan:
    def __init__(self, path: Path, source: str | None = None):
        self.path = path
        self.label = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
        self.tree = ast.parse(source if source is not None else path.read_text(), str(path))
        self.constants: dict[str, str] = {}
        self.functions: dict[str, ast.FunctionDef] = {}
        self.classes: dict[str, dict[str, ast.FunctionDef]] = {}
        self.names: dict[ast.FunctionDef, str] = {}  # "ensure_ou", "_Place.call"
        self.owner: dict[ast.FunctionDef, str] = {}  # a method → its class
        for node in self.tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for target in node.targets:
                    if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                        self.constants[target.id] = node.value.value
            elif isinstance(node, ast.FunctionDef):
                self.functions[node.name] = node
                self.names[node] = node.name
            elif isinstance(node, ast.ClassDef):
                methods = {n.name: n for n in node.body if isinstance(n, ast.FunctionDef)}
                self.classes[node.name] = methods
                for method in methods.values():
                    self.names[method] = f"{node.name}.{method.name}"
                    self.owner[method] = node.name
        self.calls: set[Call] = set()
        self.unresolved: list[str] = []
        self.helpers: set[str] = set()  # functions whose operation comes from a parameter
        self.bound: set[str] = set()  # functions read with their parameters bound by a caller
        self._seen: set[tuple] = set()

    # --- values ---------------------------------------------------------------------------------

    def value(self, node: ast.expr | None, env: dict) -> object:
        if node is None:
            return UNKNOWN
        if isinstance(node, ast.Constant):
            if node.value is None or node.value == "":
                return EMPTY
            return node.value if isinstance(node.value, str) else UNKNOWN
        if isinstance(node, ast.Name):
            if node.id in env:
                return env[node.id]
            return self.constants.get(node.id, UNKNOWN)
        return UNKNOWN

    def parameters(self, function: ast.FunctionDef) -> tuple[list[ast.arg], list[ast.arg]]:
        """(positional, keyword-only) parameters, without a method's `self`."""
        args = function.args
        positional = [*args.posonlyargs, *args.args]
        decorators = function.decorator_list
        is_static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in decorators)
        if function in self.owner and not is_static:
            positional = positional[1:]
        return positional, args.kwonlyargs

    def bind(self, function: ast.FunctionDef, call: ast.Call | None, env: dict) -> dict:
        """The values a call gives the function's parameters (defaults where it gives none)."""
        args = function.args
        positional, keyword_only = self.parameters(function)
        every = [*args.posonlyargs, *args.args]
        bound: dict[str, object] = {}
        for param, default in zip(every[::-1], args.defaults[::-1], strict=False):
            bound[param.arg] = self.value(default, {})
        for param, default in zip(keyword_only, args.kw_defaults, strict=True):
            if default is not None:
                bound[param.arg] = self.value(default, {})
        if call is not None:
            for param, arg in zip(positional, call.args, strict=False):
                bound[param.arg] = UNKNOWN if isinstance(arg, ast.Starred) else self.value(arg, env)
            for keyword in call.keywords:
                if keyword.arg is not None:
                    bound[keyword.arg] = self.value(keyword.value, env)
        for param in [*positional, *keyword_only]:
            bound.setdefault(param.arg, UNKNOWN)
        return bound

    # --- clients and callees --------------------------------------------------------------------

    def client_of(self, node: ast.expr, env: dict, names: dict, depth: int) -> _Client | None:
        """The client an expression evaluates to, or None when it is not a client."""
        if isinstance(node, ast.Name):
            return names.get(node.id)
        if not isinstance(node, ast.Call):
            return None
        func = node.func
        is_factory = isinstance(func, ast.Name) and func.id == "client"
        is_session_client = isinstance(func, ast.Attribute) and func.attr == "client"
        if is_factory or is_session_client:
            service = self.value(node.args[0], env) if node.args else UNKNOWN
            for keyword in node.keywords:
                if keyword.arg == "service_name":
                    service = self.value(keyword.value, env)
            # portal.aws.session.client takes account_id by keyword only.
            account = next((k.value for k in node.keywords if k.arg == "account_id"), None)
            account = EMPTY if account is None else self.value(account, env)
            if isinstance(account, _Param) and account.may_be_empty:
                return _Client(service, None)
            return _Client(service, account is not EMPTY)
        if isinstance(func, ast.Name) and func.id in self.functions and depth < MAX_DEPTH:
            # A module function that returns a client: `def _ec2(account_id): return client(...)`.
            function = self.functions[func.id]
            inner = self.bind(function, node, env)
            for statement in ast.walk(function):
                if isinstance(statement, ast.Return) and statement.value is not None:
                    found = self.client_of(statement.value, inner, {}, depth + 1)
                    if found is not None:
                        return found
        return None

    def callee(self, call: ast.Call, instances: dict[str, str]) -> ast.FunctionDef | None:
        """The module's function or method that `call` calls, if the scan can tell."""
        func = call.func
        if isinstance(func, ast.Name):
            return self.functions.get(func.id)
        if not isinstance(func, ast.Attribute):
            return None
        receiver = func.value
        cls = None
        if isinstance(receiver, ast.Name):
            cls = instances.get(receiver.id)
        elif isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Name):
            cls = receiver.func.id if receiver.func.id in self.classes else None
        return self.classes[cls].get(func.attr) if cls else None

    def instances(self, function: ast.FunctionDef) -> dict[str, str]:
        """Names in `function` that hold an instance of one of the module's classes."""
        found: dict[str, str] = {}
        if function in self.owner and function.args.args:
            found[function.args.args[0].arg] = self.owner[function]  # self
        for arg in [*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs]:
            annotation = arg.annotation
            if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
                annotation = ast.Name(annotation.value)
            if isinstance(annotation, ast.Name) and annotation.id in self.classes:
                found[arg.arg] = annotation.id
        for node in ast.walk(function):
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name)
                and node.value.func.id in self.classes
            ):
                found[node.targets[0].id] = node.value.func.id
        return found

    # --- functions ------------------------------------------------------------------------------

    def read(self, function: ast.FunctionDef, env: dict, root: str, site=0, depth=0) -> None:
        """Find the calls in `function` with its parameters bound to `env`. `root` is the
        function whose reading led here (blamed when an operation stays a parameter) and `site`
        the line in it that did (0: none, the call is in `root` itself)."""
        values = tuple(sorted((k, v if isinstance(v, str) else id(v)) for k, v in env.items()))
        key = (id(function), values)
        if key in self._seen or depth > MAX_DEPTH:
            return
        self._seen.add(key)
        names: dict[str, _Client] = {}
        for node in ast.walk(function):
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
            ):
                found = self.client_of(node.value, env, names, depth)
                if found is not None:
                    names[node.targets[0].id] = found
        instances = self.instances(function)
        for node in ast.walk(function):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            found = None
            if isinstance(func, ast.Attribute):
                found = self.client_of(func.value, env, names, depth)
            if found is not None:
                if func.attr == "get_paginator":
                    operation = self.value(node.args[0] if node.args else None, env)
                    self.record(found, operation, site or node.lineno, function, root)
                elif func.attr not in NOT_OPERATIONS and not func.attr.startswith("_"):
                    self.record(found, func.attr, site or node.lineno, function, root)
            elif isinstance(func, ast.Name) and func.id == "getattr" and len(node.args) >= 2:
                found = self.client_of(node.args[0], env, names, depth)
                if found is not None:
                    operation = self.value(node.args[1], env)
                    self.record(found, operation, site or node.lineno, function, root)
            elif (callee := self.callee(node, instances)) is not None:
                self.bound.add(self.names[callee])
                bound = self.bind(callee, node, env)
                self.read(callee, bound, root, site or node.lineno, depth + 1)

    def record(self, found: _Client, operation, line: int, function: ast.FunctionDef, root: str):
        where = f"{self.label}:{line}"
        if found.member:
            # Inside a member account: listed when the scan can name it, never required.
            if isinstance(operation, str) and isinstance(found.service, str):
                self.calls.add(Call(found.service, operation, True, where))
            return
        if found.member is None or _Param in (type(operation), type(found.service)):
            self.helpers.add(root)  # a helper: resolved at each of its calls
            return
        if not isinstance(operation, str) or not isinstance(found.service, str):
            self.unresolved.append(f"{where} (in {root}, through {self.names[function]})")
            return
        self.calls.add(Call(found.service, operation, False, where))

    def scan(self) -> None:
        for function, name in self.names.items():
            defaults = self.bind(function, None, {})
            positional, keyword_only = self.parameters(function)
            params = [*positional, *keyword_only]
            env = {p.arg: _Param(p.arg, defaults[p.arg] is EMPTY) for p in params}
            self.read(function, env, name)
        for name in sorted(self.helpers - self.bound):
            self.unresolved.append(
                f"{self.label}: {name}() takes the operation as a parameter; nothing here calls it"
            )


def scan_sources(paths_and_sources: list[tuple[Path, str | None]]) -> Scan:
    calls: set[Call] = set()
    unresolved: list[str] = []
    for path, source in paths_and_sources:
        module = _ModuleScan(path, source)
        module.scan()
        calls |= module.calls
        unresolved += module.unresolved
    return Scan(frozenset(calls), tuple(unresolved))


@cache
def scan_portal() -> Scan:
    return scan_sources([(path, None) for path in sorted(AWS_PACKAGE.glob("*.py"))])


# --- From calls to IAM actions --------------------------------------------------------------------


@cache
def _operation_names(service: str) -> dict[str, str]:
    model = botocore.session.get_session().get_service_model(service)
    return {xform_name(name): name for name in model.operation_names}


def _prefix(service: str) -> str:
    if service in IAM_PREFIXES:
        return IAM_PREFIXES[service]
    return botocore.session.get_session().get_service_model(service).signing_name


def api_action(call: Call) -> str:
    """"organizations:CreateAccount" for Call("organizations", "create_account", ...)."""
    names = _operation_names(call.service)
    assert call.operation in names, f"{call.where}: {call.service} has no {call.operation!r}"
    return f"{_prefix(call.service)}:{names[call.operation]}"


def required_actions(scan: Scan) -> dict[str, set[str]]:
    """Each IAM action the management-account credentials need → where the code needs it."""
    needed: dict[str, set[str]] = {}
    for call in scan.management_calls():
        api = api_action(call)
        if api in NO_PERMISSION_NEEDED or api in EMULATOR_ONLY:
            continue
        for action in {ACTION_NAMES.get(api, api), *EXTRA_ACTIONS.get(api, ())}:
            needed.setdefault(action, set()).add(call.where)
    return needed


def policy_actions() -> set[str]:
    policy = json.loads(POLICY_PATH.read_text())
    actions: set[str] = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow", f"{statement['Sid']}: the policy only allows"
        listed = statement["Action"]
        actions |= {listed} if isinstance(listed, str) else set(listed)
    return actions


# --- Tests ----------------------------------------------------------------------------------------


def test_policy_grants_exactly_what_the_code_calls():
    scan = scan_portal()
    assert not scan.unresolved, (
        "The scan cannot name the AWS operation of these management-account calls; write the "
        "operation as a string literal (or teach tests/test_iam_policy.py the new pattern):\n  "
        + "\n  ".join(scan.unresolved)
    )
    needed = required_actions(scan)
    granted = policy_actions()
    assert not [a for a in granted if "*" in a], "Actions one by one: a wildcard hides drift."
    missing = sorted(set(needed) - granted)
    unused = sorted(granted - set(needed))
    report = []
    if missing:
        report.append("Missing from docs/iam-policy.json (the code calls them):")
        report += [f"  {action}  ← {', '.join(sorted(needed[action]))}" for action in missing]
    if unused:
        report.append("In docs/iam-policy.json but no longer needed by the code:")
        report += [f"  {action}" for action in unused]
    assert not report, "\n".join(report)


def test_scan_finds_known_calls_and_leaves_member_accounts_out():
    scan = scan_portal()
    needed = required_actions(scan)
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
    source = '''
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
'''
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


def test_policy_resources_use_the_codes_names():
    from django.conf import settings

    from portal.aws.guardrails import MANAGED_BUDGET_PREFIX
    from portal.aws.quotas import ORGANIZATIONS_ACCOUNT_QUOTA

    statements = json.loads(POLICY_PATH.read_text())["Statement"]
    sids = [s["Sid"] for s in statements]
    assert len(sids) == len(set(sids)), "Every statement has a Sid of its own."
    everything = set()
    for statement in statements:
        listed = statement["Resource"]
        everything |= {listed} if isinstance(listed, str) else set(listed)
    # The member role, the budgets and the quota the policy is scoped to are the code's.
    assert f"arn:aws:iam::*:role/{settings.PORTAL_AWS_MEMBER_ROLE_NAME}" in everything
    assert f"arn:aws:budgets::*:budget/{MANAGED_BUDGET_PREFIX}*" in everything
    service_code, quota_code = ORGANIZATIONS_ACCOUNT_QUOTA
    assert f"arn:aws:servicequotas:*:*:{service_code}/{quota_code}" in everything
