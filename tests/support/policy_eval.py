"""AWS policy evaluation without AWS, for tests: service control policies and identity policies
evaluated the way IAM evaluates them, by @cloud-copilot/iam-simulate (an npm package, pinned in
tests/support/iam_simulate/package-lock.json and installed by `make test`).

The evaluator answers with IAM's decision for one request: "Allowed", "ExplicitlyDenied" (a Deny
statement matched) or "ImplicitlyDenied" (nothing allowed it). It validates what it is given
against AWS's Service Authorization Reference (the action exists, the resource ARN is of a type
the action takes, the context keys apply to the action): a request it cannot judge, or a context
key it would ignore, raises here rather than producing a decision nobody asked for.

One Node.js process serves the whole test session (starting one costs ~0.3 s).
"""

from __future__ import annotations

import atexit
import json
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

EVALUATOR_DIR = Path(__file__).resolve().parent / "iam_simulate"
SCRIPT = EVALUATOR_DIR / "evaluate.mjs"
INSTALL = "npm ci --prefix tests/support/iam_simulate"

ALLOWED = "Allowed"
EXPLICITLY_DENIED = "ExplicitlyDenied"
IMPLICITLY_DENIED = "ImplicitlyDenied"

# AWS attaches FullAWSAccess to the root, every OU and every account when SCPs are enabled; the
# portal leaves it in place and adds Deny-only SCPs. Without an Allow at every level, an SCP
# hierarchy allows nothing.
FULL_AWS_ACCESS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
# The principal's own permissions, when a test asks what the SCPs alone let through.
ADMINISTRATOR = FULL_AWS_ACCESS

ACCOUNT_IN_ARN = re.compile(r"^arn:aws:(?:iam|sts)::(\d{12}):")


class EvaluatorError(RuntimeError):
    """The evaluator is missing, or refused the request (the message says why)."""


class _Evaluator:
    def __init__(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise EvaluatorError("Node.js (20 or newer) is needed to evaluate AWS policies in tests.")
        if not (EVALUATOR_DIR / "node_modules" / "@cloud-copilot" / "iam-simulate").is_dir():
            raise EvaluatorError(f"The policy evaluator is not installed: run `{INSTALL}` (make test does).")
        self.process = subprocess.Popen(
            [node, str(SCRIPT)],
            cwd=EVALUATOR_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        atexit.register(self.close)

    def ask(self, request: dict) -> dict:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            stderr = self.process.stderr.read() if self.process.stderr else ""
            raise EvaluatorError(f"The policy evaluator stopped: {stderr.strip()}")
        reply = json.loads(line)
        if "error" in reply:
            raise EvaluatorError(f"The policy evaluator refused the request: {reply['error']}")
        return reply

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=10)


@cache
def _evaluator() -> _Evaluator:
    return _Evaluator()


def account_of(principal_arn: str) -> str:
    found = ACCOUNT_IN_ARN.match(principal_arn)
    if not found:
        raise ValueError(f"Not an IAM or STS principal ARN: {principal_arn!r}")
    return found.group(1)


def decision(
    *,
    principal_arn: str,
    action: str,
    resource: str,
    resource_account: str,
    identity_policies: Mapping[str, dict],
    scps: Sequence[Mapping[str, dict]] = (),
    resource_policy: dict | None = None,
    context: Mapping[str, str | list[str]] | None = None,
) -> str:
    """IAM's decision on `principal_arn` calling `action` on `resource` (owned by
    `resource_account`). `scps` lists the SCPs of each level of the caller's account, root first,
    the account itself last, by name; AWS's FullAWSAccess is added at every level. `context` holds
    the request's condition keys; aws:PrincipalArn is set from `principal_arn`."""
    levels = [
        {
            "orgIdentifier": f"level-{index}",
            "policies": [
                {"name": "FullAWSAccess", "policy": FULL_AWS_ACCESS},
                *({"name": name, "policy": policy} for name, policy in level.items()),
            ],
        }
        for index, level in enumerate(scps)
    ]
    simulation = {
        "request": {
            "principal": principal_arn,
            "action": action,
            "resource": {"resource": resource, "accountId": resource_account},
            "contextVariables": {"aws:PrincipalArn": principal_arn, **(context or {})},
        },
        "identityPolicies": [{"name": name, "policy": policy} for name, policy in identity_policies.items()],
        "serviceControlPolicies": levels,
        "resourceControlPolicies": [],
    }
    if resource_policy is not None:
        simulation["resourcePolicy"] = resource_policy
    reply = _evaluator().ask({"simulate": simulation})
    if reply["ignoredContextKeys"]:
        raise EvaluatorError(
            f"{action} on {resource}: the evaluator ignores the context keys {reply['ignoredContextKeys']} "
            "(AWS does not send them with this action): the test asks a question AWS never answers."
        )
    return reply["decision"]


def scp_decision(
    scps: Sequence[Mapping[str, dict]],
    *,
    action: str,
    resource: str,
    principal_arn: str,
    context: Mapping[str, str | list[str]] | None = None,
) -> str:
    """What the SCPs let through for a principal whose own policies allow everything (a student
    with IAMFullAccess can give themselves anything): the decision the guardrails alone make."""
    account = account_of(principal_arn)
    return decision(
        principal_arn=principal_arn,
        action=action,
        resource=resource,
        resource_account=account,
        identity_policies={"Administrator": ADMINISTRATOR},
        scps=scps,
        context=context,
    )


def describe_actions(actions: Sequence[str]) -> dict[str, dict | None]:
    """From AWS's Service Authorization Reference (as packaged with the evaluator): each action's
    access level, whether it takes only Resource "*", its own condition keys and its resource
    types with theirs. None for an action AWS does not have."""
    return _evaluator().ask({"describe": list(actions)})["actions"]


def global_condition_keys(keys: Sequence[str]) -> dict[str, bool]:
    """Which of `keys` are AWS global condition keys (aws:PrincipalArn, aws:ResourceOrgPaths...)."""
    return _evaluator().ask({"globalKeys": list(keys)})["global"]


def versions() -> dict[str, str]:
    return _evaluator().ask({"versions": True})
