"""The portal's access role in a student's own (brought) account, made the portal's alone.

The student creates that role before their account joins the organization: they could have made
it trust their own principal, attached more policies to it, or opened sessions of it that are
still valid. The guardrail SCPs exempt the role by its ARN, so whoever can use it escapes them.
`secure` leaves the role trusting only the portal's principal, with AdministratorAccess and the
portal's session-revocation policy and nothing else, and refuses every session issued before the
given moment. Every call runs inside the member account, through the role itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from portal.aws.errors import NotFound, classify
from portal.aws.session import client, forget_member_session

ADMINISTRATOR_ACCESS = "arn:aws:iam::aws:policy/AdministratorAccess"
REVOKE_POLICY_NAME = "classroom-cloud-revoke-older-sessions"
TOKEN_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class AccessRole:
    name: str
    path: str
    trust_policy: dict
    attached_policy_arns: list[str]
    inline_policy_names: list[str]
    permissions_boundary_arn: str
    # The moment before which the portal's revocation policy refuses sessions; None without one.
    sessions_revoked_before: datetime | None


def trust_policy(principal_arn: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": principal_arn}, "Action": "sts:AssumeRole"}],
    }


def revoke_policy(before: datetime) -> dict:
    """Deny everything to sessions of the role issued before `before` (what the IAM console's
    "Revoke active sessions" does): a trust policy change does not end the sessions already open."""
    moment = before.astimezone(UTC).strftime(TOKEN_TIME_FORMAT)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "RevokeOlderSessions",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"DateLessThan": {"aws:TokenIssueTime": moment}},
            }
        ],
    }


def _document(value: dict | str) -> dict:
    # IAM answers policy documents URL-encoded; boto3 usually decodes them already.
    return value if isinstance(value, dict) else json.loads(unquote(value))


def _call(account_id: str, operation: str, **params: Any) -> dict:
    api = client("iam", account_id=account_id)
    try:
        return getattr(api, operation)(**params)
    except Exception as error:
        raise classify(error, operation=operation) from error


def _pages(account_id: str, operation: str, key: str, **params: Any) -> list:
    paginator = client("iam", account_id=account_id).get_paginator(operation)
    try:
        return [item for page in paginator.paginate(**params) for item in page[key]]
    except Exception as error:
        raise classify(error, operation=operation) from error


def _revoked_before(account_id: str, role_name: str, inline: list[str]) -> datetime | None:
    """The moment of the portal's revocation policy, if the role has it exactly as the portal
    writes it (a policy of that name with other content is someone else's)."""
    if REVOKE_POLICY_NAME not in inline:
        return None
    try:
        raw = _call(account_id, "get_role_policy", RoleName=role_name, PolicyName=REVOKE_POLICY_NAME)
    except NotFound:
        return None
    document = _document(raw["PolicyDocument"])
    try:
        moment = document["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
        before = datetime.strptime(moment, TOKEN_TIME_FORMAT).replace(tzinfo=UTC)
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return before if document == revoke_policy(before) else None


def read(account_id: str, role_name: str) -> AccessRole:
    """The role as it is now, read with a new session (an older one may have been revoked)."""
    forget_member_session(account_id)
    role = _call(account_id, "get_role", RoleName=role_name)["Role"]
    inline = _pages(account_id, "list_role_policies", "PolicyNames", RoleName=role_name)
    attached = _pages(account_id, "list_attached_role_policies", "AttachedPolicies", RoleName=role_name)
    return AccessRole(
        name=role["RoleName"],
        path=role.get("Path", "/"),
        trust_policy=_document(role["AssumeRolePolicyDocument"]),
        attached_policy_arns=sorted(policy["PolicyArn"] for policy in attached),
        inline_policy_names=sorted(inline),
        permissions_boundary_arn=role.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn", ""),
        sessions_revoked_before=_revoked_before(account_id, role_name, inline),
    )


def secure(account_id: str, role: AccessRole, *, principal_arn: str, revoke_before: datetime) -> list[str]:
    """Make `role` the portal's alone. Returns what had to change, in plain words (empty when
    nothing did). When anything changed, or the role has no revocation policy yet, sessions issued
    before `revoke_before` are refused from then on, the portal's own included: this process
    forgets its session, and `revoke_before` must leave IAM the time to apply the new trust."""
    name = role.name
    changes: list[str] = []
    wanted_trust = trust_policy(principal_arn)
    if role.trust_policy != wanted_trust:
        _call(account_id, "update_assume_role_policy", RoleName=name, PolicyDocument=json.dumps(wanted_trust))
        changes.append(f"trust policy replaced (it was {json.dumps(role.trust_policy, sort_keys=True)})")
    for policy_arn in role.attached_policy_arns:
        if policy_arn != ADMINISTRATOR_ACCESS:
            _call(account_id, "detach_role_policy", RoleName=name, PolicyArn=policy_arn)
            changes.append(f"detached {policy_arn}")
    if ADMINISTRATOR_ACCESS not in role.attached_policy_arns:
        _call(account_id, "attach_role_policy", RoleName=name, PolicyArn=ADMINISTRATOR_ACCESS)
        changes.append(f"attached {ADMINISTRATOR_ACCESS}")
    for policy_name in role.inline_policy_names:
        if policy_name != REVOKE_POLICY_NAME:
            _call(account_id, "delete_role_policy", RoleName=name, PolicyName=policy_name)
            changes.append(f"deleted the inline policy {policy_name}")
    if role.permissions_boundary_arn:
        _call(account_id, "delete_role_permissions_boundary", RoleName=name)
        changes.append(f"removed the permissions boundary {role.permissions_boundary_arn}")
    if changes or role.sessions_revoked_before is None:
        document = json.dumps(revoke_policy(revoke_before))
        _call(account_id, "put_role_policy", RoleName=name, PolicyName=REVOKE_POLICY_NAME, PolicyDocument=document)
        forget_member_session(account_id)
        changes.append(f"sessions issued before {revoke_before.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC revoked")
    return changes
