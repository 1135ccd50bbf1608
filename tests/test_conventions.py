"""The layout rules no linter checks (docs/ARCHITECTURE.md, "Where the rules are enforced"), read
from the syntax tree of every Python file:

- boto3 and botocore are imported only under portal/aws/ (and by tests, devtools and bench);
- `MemberAccount.state` is written only by accounts_app/lifecycle.py (migrations aside);
- views and selectors import nothing of portal.aws but portal.aws.display, which imports nothing
  that can reach AWS, and no service's private names; selectors import no service at all;
- a task is queued through its task object, never looked up by name.

Each rule is also run on a small tree of files that break it: a rule that stops finding what it
is for fails there.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIPPED_DIRECTORIES = {".git", ".venv", ".lock-venv", "node_modules", "var", "build", "__pycache__"}
AWS_SDK = {"boto3", "botocore"}
# The part of portal.aws that views and selectors may import.
WEB_TIER_AWS_MODULES = {"portal.aws.display"}

BOTO_OUTSIDE_PORTAL_AWS = "boto3 or botocore outside portal/aws"
STATE_WRITTEN_OUTSIDE_LIFECYCLE = "MemberAccount.state written outside accounts_app/lifecycle.py"
WEB_TIER_IMPORTS_AWS = "a view or selector imports portal.aws"
WEB_TIER_AWS_MODULE_NOT_PURE = "a module views may import can reach AWS"
PRIVATE_SERVICE_NAME = "a view or selector uses a service's private name"
SELECTOR_IMPORTS_SERVICE = "a selector imports a service"
TASK_DISPATCHED_BY_NAME = "a task dispatched by name"


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}: {self.detail}"


@dataclass(frozen=True)
class Source:
    path: str  # relative to the root, with forward slashes
    tree: ast.Module

    @property
    def package(self) -> list[str]:
        return self.path.split("/")[:-1]

    @property
    def module(self) -> str:
        name = self.path.removesuffix(".py").split("/")
        return ".".join(name[:-1] if name[-1] == "__init__" else name)

    def under(self, *directories: str) -> bool:
        return any(self.path.startswith(f"{directory}/") for directory in directories)

    @property
    def is_view(self) -> bool:
        # tests/ mirrors the code's folders: a test of a view (tests/accounts_app/views/) is no view.
        return not self.under("tests") and (self.path.endswith("/views.py") or "views" in self.package)

    @property
    def is_selector(self) -> bool:
        return self.path.endswith("/selectors.py")

    def violation(self, node: ast.AST, rule: str, detail: str) -> Violation:
        return Violation(self.path, getattr(node, "lineno", 0), rule, detail)


def sources(root: Path) -> Iterator[Source]:
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(name for name in subdirectories if name not in SKIPPED_DIRECTORIES)
        for name in sorted(files):
            if name.endswith(".py"):
                relative = (Path(directory) / name).relative_to(root)
                tree = ast.parse((root / relative).read_text(), filename=str(relative))
                yield Source(relative.as_posix(), tree)


def imports(source: Source) -> Iterator[tuple[ast.AST, str]]:
    """What a file imports, each name by its full dotted path: `from portal.aws import display`
    is `portal.aws.display`, `from boto3 import Session` is `boto3.Session`."""
    for node in ast.walk(source.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = source.package[: len(source.package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            for alias in node.names:
                yield node, f"{base}.{alias.name}"
        elif _is_call_to(node, "import_module", "__import__") and (name := _first_string(node)):
            yield node, name


def _is_call_to(node: ast.AST, *names: str) -> TypeGuard[ast.Call]:
    if not isinstance(node, ast.Call):
        return False
    function = node.func
    called = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", None)
    return called in names


def _first_string(call: ast.Call) -> str | None:
    first = call.args[0] if call.args else None
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def _is_service(module: str) -> bool:
    return "services" in module.split(".")


def _last_name(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    return getattr(node, "id", "")


# --- The rules ------------------------------------------------------------------------------------


def boto_outside_portal_aws(source: Source) -> Iterator[Violation]:
    if source.under("portal/aws", "tests", "devtools", "bench"):
        return
    for node, module in imports(source):
        if module.split(".")[0] in AWS_SDK:
            yield source.violation(node, BOTO_OUTSIDE_PORTAL_AWS, f"imports {module}")


def state_written_outside_lifecycle(source: Source) -> Iterator[Violation]:
    """Assigning `.state`, `setattr(…, "state", …)`, `update(state=…)`, `bulk_update(…, ["state"])`:
    only MemberAccount has a `state` field, and lifecycle.transition() alone moves it."""
    if source.path == "accounts_app/lifecycle.py" or "migrations" in source.package:
        return
    # Tests and benchmarks set up the world as they need it.
    if source.under("tests", "bench"):
        return
    for node in ast.walk(source.tree):
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = [t for target in node.targets for t in ast.walk(target)]
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Attribute) and t.attr == "state" for t in targets):
            yield source.violation(node, STATE_WRITTEN_OUTSIDE_LIFECYCLE, "assigns .state")
        if not isinstance(node, ast.Call):
            continue
        if _is_call_to(node, "update") and any(keyword.arg == "state" for keyword in node.keywords):
            yield source.violation(node, STATE_WRITTEN_OUTSIDE_LIFECYCLE, "update(state=…)")
        if _is_call_to(node, "setattr") and len(node.args) > 1:
            name = node.args[1]
            if isinstance(name, ast.Constant) and name.value == "state":
                yield source.violation(node, STATE_WRITTEN_OUTSIDE_LIFECYCLE, 'setattr(…, "state", …)')
        if _is_call_to(node, "bulk_update"):
            constants = [
                n.value for argument in node.args[1:] for n in ast.walk(argument) if isinstance(n, ast.Constant)
            ]
            if "state" in constants:
                yield source.violation(node, STATE_WRITTEN_OUTSIDE_LIFECYCLE, 'bulk_update(…, ["state"])')


def web_tier_imports_aws(source: Source) -> Iterator[Violation]:
    if not (source.is_view or source.is_selector):
        return
    for node, module in imports(source):
        if _within(module, "portal.aws") and not any(_within(module, allowed) for allowed in WEB_TIER_AWS_MODULES):
            yield source.violation(node, WEB_TIER_IMPORTS_AWS, f"imports {module}")


def web_tier_aws_module_not_pure(source: Source) -> Iterator[Violation]:
    """What views may import of portal.aws imports the standard library alone: no boto3, no
    session, nothing that could make a call."""
    if source.module not in WEB_TIER_AWS_MODULES:
        return
    for node, module in imports(source):
        top = module.split(".")[0]
        if top != "__future__" and top not in sys.stdlib_module_names:
            yield source.violation(node, WEB_TIER_AWS_MODULE_NOT_PURE, f"imports {module}")


def private_service_name(source: Source) -> Iterator[Violation]:
    if not (source.is_view or source.is_selector):
        return
    service_aliases = set()
    for node in ast.walk(source.tree):
        if isinstance(node, ast.ImportFrom) and node.module and _is_service(node.module):
            for alias in node.names:
                if _is_private(alias.name):
                    yield source.violation(node, PRIVATE_SERVICE_NAME, f"imports {node.module}.{alias.name}")
                service_aliases.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            service_aliases.update(alias.asname or alias.name for alias in node.names if _is_service(alias.name))
    for node in ast.walk(source.tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr) and _dotted(node.value) in service_aliases:
            yield source.violation(node, PRIVATE_SERVICE_NAME, f"uses {_dotted(node.value)}.{node.attr}")


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return getattr(node, "id", "")


def selector_imports_service(source: Source) -> Iterator[Violation]:
    if not source.is_selector:
        return
    for node, module in imports(source):
        if _is_service(module):
            yield source.violation(node, SELECTOR_IMPORTS_SERVICE, f"imports {module}")


def task_dispatched_by_name(source: Source) -> Iterator[Violation]:
    """`getattr(tasks, name)`, `send_task("…")`, `signature("…")`: a name in a string escapes every
    check that the task exists and takes those arguments."""
    if source.under("tests"):
        return
    for node in ast.walk(source.tree):
        if not isinstance(node, ast.Call):
            continue
        if _is_call_to(node, "getattr") and node.args and _last_name(node.args[0]).endswith("tasks"):
            yield source.violation(node, TASK_DISPATCHED_BY_NAME, f"getattr({_dotted(node.args[0])}, …)")
        elif _is_call_to(node, "send_task") or (_is_call_to(node, "signature") and _first_string(node)):
            yield source.violation(node, TASK_DISPATCHED_BY_NAME, f"{_last_name(node.func)}(…)")


RULES: list[Callable[[Source], Iterator[Violation]]] = [
    boto_outside_portal_aws,
    state_written_outside_lifecycle,
    web_tier_imports_aws,
    web_tier_aws_module_not_pure,
    private_service_name,
    selector_imports_service,
    task_dispatched_by_name,
]


def violations(root: Path) -> list[Violation]:
    return [violation for source in sources(root) for rule in RULES for violation in rule(source)]


# --- The code ---------------------------------------------------------------------------------------


def test_the_code_keeps_the_conventions():
    assert [str(v) for v in violations(ROOT)] == []


# --- The rules on files that break them -------------------------------------------------------------

BREAKS = [
    (BOTO_OUTSIDE_PORTAL_AWS, "accounts_app/services/courses.py", "import boto3\n"),
    (BOTO_OUTSIDE_PORTAL_AWS, "billing_app/views.py", "from botocore.exceptions import ClientError\n"),
    (BOTO_OUTSIDE_PORTAL_AWS, "portal/health.py", 'importlib.import_module("boto3")\n'),
    (STATE_WRITTEN_OUTSIDE_LIFECYCLE, "accounts_app/services/vending.py", 'account.state = "ready"\n'),
    (STATE_WRITTEN_OUTSIDE_LIFECYCLE, "accounts_app/services/vending.py", 'account.state, n = "ready", 1\n'),
    (
        STATE_WRITTEN_OUTSIDE_LIFECYCLE,
        "billing_app/services/budgets.py",
        'MemberAccount.objects.filter(pk=1).update(state="frozen")\n',
    ),
    (STATE_WRITTEN_OUTSIDE_LIFECYCLE, "accounts_app/receivers.py", 'setattr(account, "state", "ready")\n'),
    (
        STATE_WRITTEN_OUTSIDE_LIFECYCLE,
        "accounts_app/services/rosters.py",
        'MemberAccount.objects.bulk_update(a, ["state"])\n',
    ),
    (WEB_TIER_IMPORTS_AWS, "accounts_app/views/courses.py", "from portal.aws import organizations\n"),
    (WEB_TIER_IMPORTS_AWS, "billing_app/views.py", "from portal.aws.errors import AwsError\n"),
    (WEB_TIER_IMPORTS_AWS, "accounts_app/selectors.py", "import portal.aws.session\n"),
    (WEB_TIER_AWS_MODULE_NOT_PURE, "portal/aws/display.py", "from portal.aws.session import client\n"),
    (WEB_TIER_AWS_MODULE_NOT_PURE, "portal/aws/display.py", "import boto3\n"),
    (PRIVATE_SERVICE_NAME, "accounts_app/views/aws_accounts.py", "from accounts_app.services.vending import _plain\n"),
    (PRIVATE_SERVICE_NAME, "billing_app/views.py", "from billing_app.services import budgets\nbudgets._call()\n"),
    (SELECTOR_IMPORTS_SERVICE, "billing_app/selectors.py", "from billing_app.services.budgets import budget_amount\n"),
    (SELECTOR_IMPORTS_SERVICE, "accounts_app/selectors.py", "from accounts_app.services import closing\n"),
    (TASK_DISPATCHED_BY_NAME, "accounts_app/services/closing.py", "getattr(tasks, name).delay_on_commit(1)\n"),
    (TASK_DISPATCHED_BY_NAME, "accounts_app/services/ending.py", 'app.send_task("accounts_app.tasks.x", [1])\n'),
    (TASK_DISPATCHED_BY_NAME, "accounts_app/services/ending.py", 'app.signature("accounts_app.tasks.x").delay()\n'),
]


def write(root: Path, path: str, code: str) -> None:
    file = root / path
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(code)


@pytest.mark.parametrize(("rule", "path", "code"), BREAKS, ids=[f"{p}: {c.strip()}" for _, p, c in BREAKS])
def test_each_rule_finds_a_file_that_breaks_it(tmp_path, rule, path, code):
    write(tmp_path, path, code)

    assert [(v.path, v.line, v.rule) for v in violations(tmp_path)] == [(path, code.count("\n"), rule)]


def test_what_the_rules_allow_is_not_reported(tmp_path):
    allowed = {
        "portal/aws/session.py": "import boto3\nfrom botocore.config import Config\n",
        "tests/test_accounts.py": 'import boto3\naccount.state = "ready"\nMemberAccount.objects.update(state="x")\n',
        "tests/accounts_app/views/test_courses.py": (
            "from portal.aws import organizations\nfrom accounts_app.services.vending import _plain\n"
        ),
        "devtools/emulator/server.py": "from botocore.awsrequest import AWSResponse\n",
        "bench/vending.py": "import boto3\n",
        "accounts_app/lifecycle.py": "account.state = to\nMemberAccount.objects.filter(pk=1).update(state=to)\n",
        "accounts_app/migrations/0002_states.py": 'MemberAccount.objects.filter(state="a").update(state="b")\n',
        "accounts_app/services/handover.py": 'handover.status = "done"\nHandover.objects.update(status="x")\n',
        "accounts_app/views/aws_accounts.py": (
            "from accounts_app.services import vending\nfrom accounts_app.services.vending import account_request\n"
            "from portal.aws.display import signin_url\nfrom portal.aws import display\nvending.account_request()\n"
        ),
        "accounts_app/selectors.py": (
            "from accounts_app.lifecycle import WORKING_STATES\nfrom portal.aws.display import signin_url\n"
        ),
        "portal/aws/display.py": "from __future__ import annotations\nfrom urllib.parse import urlencode\n",
        "accounts_app/services/closing.py": (
            "from accounts_app import tasks\ngetattr(account, name)\ntasks.close_task.delay_on_commit(1)\n"
        ),
    }
    for path, code in allowed.items():
        write(tmp_path, path, code)

    assert violations(tmp_path) == []
