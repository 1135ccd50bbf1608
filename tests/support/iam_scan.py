"""How the portal's code reaches AWS with management-account credentials, read without running it:
the calls each module of portal/aws/ makes, and which of them aws_bootstrap and everything else
reach (tests/test_iam_policy.py checks the IAM roles against them).

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

Which role needs a call follows from who can reach it: the scan records the calls each function
of portal/aws/ makes, then follows references (imports, calls, functions passed as values) from
every function of accounts_app, billing_app and portal: those of the bootstrap modules
(BOOTSTRAP_MODULES) reach the bootstrap role's calls, all others the runtime role's. A bootstrap
function that runtime code uses (cost_tags_activate, from a task) is runtime too.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import botocore.session
from botocore import xform_name

ROOT = Path(__file__).resolve().parents[2]
AWS_PACKAGE = ROOT / "portal" / "aws"
BOOTSTRAP_ROLE_PATH = ROOT / "docs" / "iam" / "bootstrap-role.json"
RUNTIME_ROLE_PATH = ROOT / "docs" / "iam" / "runtime-role.json"

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
# aws-reserved/sso.amazonaws.com/AWSReservedSSO_<set>_<id>. In a member account it does so through
# its own service-linked role there; only in the management account does it act with the
# caller's IAM permissions (iam:CreateRole, iam:PutRolePolicy... on that path). The portal assigns
# permission sets in member accounts only, and the runtime role denies assignments in the
# management account (tests/test_role_policies.py), so neither role holds those IAM permissions:
# with them a compromised portal could create an administrator role in the management account.
EXTRA_ACTIONS = {
    # CreateAccount: "If you enabled all features in the organization, Organizations creates the
    # required service-linked role" (iam:CreateServiceLinkedRole, AccessDeniedForDependency
    # without it) and "If the request includes tags, the requester must have the
    # organizations:TagResource permission".
    "organizations:CreateAccount": {"iam:CreateServiceLinkedRole", "organizations:TagResource"},
    "organizations:InviteAccountToOrganization": {"iam:CreateServiceLinkedRole", "organizations:TagResource"},
    # A budget action runs as the role it is given: creating one passes that role to Budgets.
    "budgets:CreateBudgetAction": {"iam:PassRole"},
    "budgets:UpdateBudgetAction": {"iam:PassRole"},
    # "If the request includes tags, the requester must also have organizations:TagResource"
    # (CreateOrganizationalUnit, CreatePolicy and InviteAccountToOrganization API references):
    # everything the portal creates or invites carries its tag.
    "organizations:CreateOrganizationalUnit": {"organizations:TagResource"},
    "organizations:CreatePolicy": {"organizations:TagResource"},
}
# STS answers GetCallerIdentity without any permission ("No permissions are required to perform
# this operation", STS API reference).
NO_PERMISSION_NEEDED = frozenset({"sts:GetCallerIdentity"})
# Called only against the local emulator (`aws_bootstrap --create-organization` refuses to run
# without AWS_ENDPOINT_URL): the school's organization exists before the portal does.
EMULATOR_ONLY = frozenset({"organizations:CreateOrganization"})

# Client methods that are not AWS operations.
NOT_OPERATIONS = frozenset({"can_paginate", "close", "generate_presigned_url", "get_waiter", "get_paginator"})
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
    # The calls each function makes, itself or through the module's helpers: keyed by module and
    # function ("portal.aws.organizations", "ensure_ou"), a method as "_Place.call".
    by_function: Mapping[tuple[str, str], frozenset[Call]] = field(default_factory=dict)

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
        self.module = module_name(path) if path.is_relative_to(ROOT) else path.stem
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
        self.by_root: dict[str, set[Call]] = {}
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
            given = next((k.value for k in node.keywords if k.arg == "account_id"), None)
            account = EMPTY if given is None else self.value(given, env)
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
        key = (root, id(function), values)  # per root: each function's calls are its own
        if key in self._seen or depth > MAX_DEPTH:
            return
        self._seen.add(key)
        names: dict[str, _Client] = {}
        for node in ast.walk(function):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                found = self.client_of(node.value, env, names, depth)
                if found is not None:
                    names[node.targets[0].id] = found
        instances = self.instances(function)
        for node in ast.walk(function):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            found = self.client_of(func.value, env, names, depth) if isinstance(func, ast.Attribute) else None
            if isinstance(func, ast.Attribute) and found is not None:
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
                self.add(root, Call(found.service, operation, True, where))
            return
        if found.member is None or _Param in (type(operation), type(found.service)):
            self.helpers.add(root)  # a helper: resolved at each of its calls
            return
        if not isinstance(operation, str) or not isinstance(found.service, str):
            self.unresolved.append(f"{where} (in {root}, through {self.names[function]})")
            return
        self.add(root, Call(found.service, operation, False, where))

    def add(self, root: str, call: Call) -> None:
        self.calls.add(call)
        self.by_root.setdefault(root, set()).add(call)

    def scan(self) -> None:
        for function, name in self.names.items():
            defaults = self.bind(function, None, {})
            positional, keyword_only = self.parameters(function)
            params = [*positional, *keyword_only]
            env = {p.arg: _Param(p.arg, defaults[p.arg] is EMPTY) for p in params}
            self.read(function, env, name)
        for name in sorted(self.helpers - self.bound):
            self.unresolved.append(f"{self.label}: {name}() takes the operation as a parameter; nothing here calls it")


def scan_sources(paths_and_sources: list[tuple[Path, str | None]]) -> Scan:
    calls: set[Call] = set()
    unresolved: list[str] = []
    by_function: dict[tuple[str, str], frozenset[Call]] = {}
    for path, source in paths_and_sources:
        module = _ModuleScan(path, source)
        module.scan()
        calls |= module.calls
        unresolved += module.unresolved
        by_function |= {(module.module, root): frozenset(found) for root, found in module.by_root.items()}
    return Scan(frozenset(calls), tuple(unresolved), by_function)


@cache
def scan_portal() -> Scan:
    return scan_sources([(path, None) for path in sorted(AWS_PACKAGE.glob("*.py"))])


# --- Who reaches which calls: aws_bootstrap or everything else ------------------------------------

PROJECT_PACKAGES = ("accounts_app", "billing_app", "portal")
# `manage.py aws_bootstrap`: run by an administrator with the bootstrap role, never by the portal.
BOOTSTRAP_MODULES = frozenset({"accounts_app.services.bootstrap", "accounts_app.management.commands.aws_bootstrap"})
AWS_PREFIX = "portal.aws."
# session.py assumes roles: the member role for calls inside member accounts (counted from those
# calls), the management role from the identity the portal starts with (ADMINISTRATOR.md).
SESSION_MODULE = "portal.aws.session"
MODULE_BODY = "<module>"

Node = tuple[str, str]  # (module, top-level function or class, or MODULE_BODY)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_sources() -> dict[str, str]:
    return {
        module_name(path): path.read_text()
        for package in PROJECT_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
    }


class _References:
    """What each top-level function, class and module body of the project names: functions it
    calls, passes or decorates with, in its own module or imported (at the top or inside a
    function, directly or as `module.function`, through re-exports)."""

    def __init__(self, sources: Mapping[str, str]):
        self.trees = {module: ast.parse(source) for module, source in sources.items()}
        # Every package, with or without an __init__ of its own: "portal", "portal.aws", ...
        self.packages = {".".join(m.split(".")[:end]) for m in self.trees for end in range(1, m.count(".") + 1)}
        self.defined = {
            module: {
                node.name: node
                for node in tree.body
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            }
            for module, tree in self.trees.items()
        }
        self.imports = {module: self._imports(module, tree) for module, tree in self.trees.items()}

    def _imports(self, module: str, tree: ast.Module) -> dict[str, Node]:
        """Local name → (module, name), or (module, "") where the name is a module."""
        found: dict[str, Node] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    bound = alias.asname or alias.name.split(".")[0]
                    found[bound] = (alias.name if alias.asname else bound, "")
            elif isinstance(node, ast.ImportFrom):
                source = node.module or ""
                if node.level:
                    package = module.split(".")
                    package = package if module in self.packages else package[:-1]
                    base = package[: len(package) - node.level + 1]
                    source = ".".join([*base, *([source] if source else [])])
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    is_module = submodule in self.trees
                    found[alias.asname or alias.name] = (submodule, "") if is_module else (source, alias.name)
        return found

    def definition(self, module: str, name: str, depth: int = 0) -> Node | None:
        if module not in self.trees or depth > MAX_DEPTH:
            return None
        if name in self.defined[module]:
            return (module, name)
        source, imported = self.imports[module].get(name, ("", ""))
        return self.definition(source, imported, depth + 1) if imported else None

    def nodes(self, module: str) -> dict[str, ast.AST]:
        tree = self.trees[module]
        body = [n for n in tree.body if n not in self.defined[module].values()]
        return {**self.defined[module], MODULE_BODY: ast.Module(body=body, type_ignores=[])}

    def named_in(self, module: str, body: ast.AST) -> set[Node]:
        found: set[Node] = set()

        def visit(node: ast.AST, local: frozenset[str]) -> None:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                outer = [*getattr(node, "decorator_list", []), *node.args.defaults, *node.args.kw_defaults]
                for expression in filter(None, outer):
                    visit(expression, local)
                inner = local | _local_names(node)
                for statement in node.body if isinstance(node.body, list) else [node.body]:
                    visit(statement, inner)
                return
            chain = _dotted(node)
            if chain:
                if chain[0] not in local:  # a parameter or variable named like a function is not one
                    found.add(self.resolve(module, chain) or ("", ""))
                return
            for child in ast.iter_child_nodes(node):
                visit(child, local)

        visit(body, frozenset())
        found.discard(("", ""))
        return found

    def resolve(self, module: str, chain: list[str]) -> Node | None:
        head, *rest = chain
        if head in self.defined[module]:
            return (module, head)
        where, name = self.imports[module].get(head, ("", ""))
        if name:
            return self.definition(where, name)
        for part in rest if where in self.trees or where in self.packages else ():
            if f"{where}.{part}" not in self.trees and f"{where}.{part}" not in self.packages:
                return self.definition(where, part)
            where = f"{where}.{part}"
        return None

    def edges(self) -> dict[Node, set[Node]]:
        return {
            (module, name): self.named_in(module, body)
            for module in self.trees
            for name, body in self.nodes(module).items()
        }


def _local_names(function: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> frozenset[str]:
    """The function's parameters and the names it assigns."""
    args = function.args
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, *filter(None, [args.vararg, args.kwarg])]
    assigned = {
        node.id for node in ast.walk(function) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)
    }
    return frozenset({arg.arg for arg in every} | assigned)


def _dotted(node: ast.AST) -> list[str]:
    """["organizations", "ensure_ou"] for `organizations.ensure_ou`; [] for anything else."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id, *reversed(parts)] if isinstance(node, ast.Name) else []


def _reach(edges: Mapping[Node, set[Node]], roots: Iterable[Node]) -> set[Node]:
    seen: set[Node] = set()
    todo = list(roots)
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(edges.get(node, ()))
    return seen


@dataclass(frozen=True)
class CodePaths:
    bootstrap: frozenset[Call]  # what aws_bootstrap reaches
    runtime: frozenset[Call]  # what everything else reaches


def code_paths(sources: Mapping[str, str], scan: Scan, bootstrap_modules: frozenset[str]) -> CodePaths:
    references = _References(sources)
    edges = references.edges()
    runtime_roots = {
        (module, name)
        for module in references.trees
        if module not in bootstrap_modules and not module.startswith(AWS_PREFIX)
        for name in references.nodes(module)
    }
    bootstrap_roots = {(module, name) for module in bootstrap_modules for name in references.nodes(module)}

    def calls(reached: set[Node]) -> frozenset[Call]:
        found: set[Call] = set()
        for (module, function), made in scan.by_function.items():
            owner = (module, function.split(".")[0])  # a method belongs to its class
            if owner in reached and module != SESSION_MODULE:
                found |= made
        return frozenset(found)

    return CodePaths(calls(_reach(edges, bootstrap_roots)), calls(_reach(edges, runtime_roots)))


@cache
def portal_code_paths() -> CodePaths:
    return code_paths(project_sources(), scan_portal(), BOOTSTRAP_MODULES)


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
    """ "organizations:CreateAccount" for Call("organizations", "create_account", ...)."""
    names = _operation_names(call.service)
    assert call.operation in names, f"{call.where}: {call.service} has no {call.operation!r}"
    return f"{_prefix(call.service)}:{names[call.operation]}"


def required_actions(calls: Iterable[Call]) -> dict[str, set[str]]:
    """Each IAM action the management-account credentials need for `calls` → where the code
    needs it. A call inside a member account needs sts:AssumeRole on the member role."""
    needed: dict[str, set[str]] = {}
    for call in calls:
        if call.member:
            needed.setdefault("sts:AssumeRole", set()).add(call.where)
            continue
        api = api_action(call)
        if api in NO_PERMISSION_NEEDED or api in EMULATOR_ONLY:
            continue
        for action in {ACTION_NAMES.get(api, api), *EXTRA_ACTIONS.get(api, ())}:
            needed.setdefault(action, set()).add(call.where)
    return needed


def allowed_actions(path: Path) -> set[str]:
    """The actions a role's policy allows (its Deny statements narrow them, tested elsewhere)."""
    policy = json.loads(path.read_text())
    actions: set[str] = set()
    for statement in policy["Statement"]:
        if statement["Effect"] == "Allow":
            listed = statement["Action"]
            actions |= {listed} if isinstance(listed, str) else set(listed)
    return actions


def drift(path: Path, needed: Mapping[str, set[str]]) -> str:
    """What `path` lacks and what it grants beyond `needed`, in words; "" when it matches."""
    granted = allowed_actions(path)
    label = path.relative_to(ROOT)
    report = []
    if wildcards := sorted(a for a in granted if "*" in a):
        report.append(f"{label} lists actions with a wildcard, which hides drift: {wildcards}")
    if missing := sorted(set(needed) - granted):
        report.append(f"Missing from {label} (the code calls them):")
        report += [f"  {action}  ← {', '.join(sorted(needed[action]))}" for action in missing]
    if unused := sorted(granted - set(needed)):
        report.append(f"In {label} but not needed by its code path:")
        report += [f"  {action}" for action in unused]
    return "\n".join(report)
