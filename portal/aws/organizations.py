"""AWS Organizations: the organization, its OUs, member accounts, policies and invitations."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portal.aws.errors import AwsError, NotFound, PermanentAwsError, classify
from portal.aws.session import client

SERVICE = "organizations"
# CreateAccount's limits: AWS refuses longer values (ConstraintViolation / ValidationException).
ROOT_EMAIL_MAX_LENGTH = 64
ACCOUNT_NAME_MAX_LENGTH = 50


@dataclass(frozen=True)
class Organization:
    id: str
    feature_set: str
    management_account_id: str

    @property
    def all_features(self) -> bool:
        return self.feature_set == "ALL"


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    email: str
    state: str  # ACTIVE, SUSPENDED, PENDING_CLOSURE, PENDING_ACTIVATION, CLOSED
    joined: datetime | None = None


@dataclass(frozen=True)
class CreateStatus:
    request_id: str
    state: str  # IN_PROGRESS, SUCCEEDED, FAILED
    account_name: str
    account_id: str = ""
    failure_reason: str = ""
    requested_at: datetime | None = None  # when AWS took the request, by its clock


@dataclass(frozen=True)
class NewAccount:
    """What one CreateAccount asks for."""

    email: str
    account_name: str
    tags: dict[str, str]
    role_name: str


@dataclass(frozen=True)
class Handshake:
    id: str
    state: str  # REQUESTED, OPEN, CANCELED, ACCEPTED, DECLINED, EXPIRED
    account_id: str  # the invited account
    action: str = ""  # INVITE, ENABLE_ALL_FEATURES, …
    organization_id: str = ""  # the organization that sent it, from its ARN
    sender_account_id: str = ""  # that organization's management account, from its ARN
    notes: str = ""


def _call(operation: str, *, safe_to_repeat: bool = True, **params: Any) -> dict:
    api = client(SERVICE, safe_to_repeat=safe_to_repeat)
    try:
        return getattr(api, operation)(**params)
    except Exception as error:
        raise classify(error, operation=operation, safe_to_repeat=safe_to_repeat) from error


def _pages(operation: str, key: str, **params: Any) -> Iterator[dict]:
    paginator = client(SERVICE).get_paginator(operation)
    try:
        for page in paginator.paginate(**params):
            yield from page[key]
    except Exception as error:
        raise classify(error, operation=operation) from error


# --- The organization -----------------------------------------------------------------------------


def describe_organization() -> Organization:
    org = _call("describe_organization")["Organization"]
    return Organization(org["Id"], org["FeatureSet"], org["MasterAccountId"])


def root_id() -> str:
    return next(_pages("list_roots", "Roots"))["Id"]


def enable_service_access(service_principal: str) -> None:
    """Trusted access for an AWS service (e.g. sso.amazonaws.com). Enabling twice is harmless."""
    _call("enable_aws_service_access", ServicePrincipal=service_principal)


def enabled_service_principals() -> set[str]:
    return {
        s["ServicePrincipal"] for s in _pages("list_aws_service_access_for_organization", "EnabledServicePrincipals")
    }


def ensure_ou(parent_id: str, name: str, *, tags: dict[str, str]) -> str:
    """The id of the OU called `name` under `parent_id`, created with `tags` if missing (an
    existing one is given those it lacks: the portal's IAM role acts only on what carries them).
    An OU found by its name is not proof of anything: callers that care whose it is look first
    with find_ou() and check its tags."""
    found = find_ou(parent_id, name)
    if found is not None:
        tag_missing(found, tags)
        return found
    try:
        created = _call("create_organizational_unit", ParentId=parent_id, Name=name, Tags=_tag_list(tags))
    except PermanentAwsError as error:
        if error.code != "DuplicateOrganizationalUnitException":
            raise
        # Created meanwhile by another worker: take it.
        return ensure_ou(parent_id, name, tags=tags)
    return created["OrganizationalUnit"]["Id"]


def find_ou(parent_id: str, name: str) -> str | None:
    for ou in _pages("list_organizational_units_for_parent", "OrganizationalUnits", ParentId=parent_id):
        if ou["Name"] == name:
            return ou["Id"]
    return None


# --- Member accounts ------------------------------------------------------------------------------


def _account(raw: dict) -> Account:
    # `State` replaces the retired `Status`; older answers (and the emulator) may carry only one.
    return Account(
        raw["Id"], raw["Name"], raw["Email"], raw.get("State") or raw.get("Status", ""), raw.get("JoinedTimestamp")
    )


def list_accounts() -> Iterator[Account]:
    for raw in _pages("list_accounts", "Accounts"):
        yield _account(raw)


def find_account_by_email(email: str) -> Account | None:
    email = email.lower()
    return next((a for a in list_accounts() if a.email.lower() == email), None)


def describe_account(account_id: str) -> Account:
    return _account(_call("describe_account", AccountId=account_id)["Account"])


def find_account(account_id: str) -> Account | None:
    """The account if it is (still) in the organization, else None."""
    try:
        return describe_account(account_id)
    except NotFound:
        return None


def close_account(account_id: str) -> None:
    """Ask AWS to close a member account. Not safe to repeat: sent once; after an UnknownOutcome
    the caller looks at the account's state. Closing a closed account is not an error."""
    try:
        _call("close_account", safe_to_repeat=False, AccountId=account_id)
    except PermanentAwsError as error:
        if error.code != "AccountAlreadyClosedException":
            raise


def remove_account(account_id: str) -> None:
    """Let a member account leave the organization (its handover). AWS answers with a
    ConstraintViolationException whose reason says what the account still lacks."""
    _call("remove_account_from_organization", AccountId=account_id)


def _create_status(raw: dict) -> CreateStatus:
    return CreateStatus(
        request_id=raw["Id"],
        state=raw["State"],
        account_name=raw.get("AccountName", ""),
        account_id=raw.get("AccountId", ""),
        failure_reason=raw.get("FailureReason", ""),
        requested_at=raw.get("RequestedTimestamp"),
    )


def list_create_statuses(states: tuple[str, ...] = ("IN_PROGRESS", "SUCCEEDED")) -> Iterator[CreateStatus]:
    """Creation requests in these states (by default running or succeeded), oldest first. AWS
    keeps a request's status for 90 days: the succeeded ones run to many pages in a large
    organization, the running ones (a few at a time) to one."""
    for raw in _pages("list_create_account_status", "CreateAccountStatuses", States=list(states)):
        yield _create_status(raw)


def create_account(*, email: str, account_name: str, tags: dict[str, str], role_name: str) -> CreateStatus:
    """Ask for a new member account whose administrator role, trusted by the management account,
    is `role_name`. Not safe to repeat: sent once; UnknownOutcome on a lost answer, which the
    caller resolves by looking in list_create_statuses() and list_accounts()."""
    if len(email) > ROOT_EMAIL_MAX_LENGTH or len(account_name) > ACCOUNT_NAME_MAX_LENGTH:
        # Refused here, not sent: AWS would refuse it, and a refusal costs a creation slot.
        raise PermanentAwsError(
            f"Root email {email!r} ({len(email)} characters, at most {ROOT_EMAIL_MAX_LENGTH}) or account name "
            f"{account_name!r} ({len(account_name)}, at most {ACCOUNT_NAME_MAX_LENGTH}) is too long.",
            code="ValidationException",
            operation="CreateAccount",
        )
    raw = _call(
        "create_account",
        safe_to_repeat=False,
        Email=email,
        AccountName=account_name,
        RoleName=role_name,
        IamUserAccessToBilling="ALLOW",
        Tags=_tag_list(tags),
    )["CreateAccountStatus"]
    return _create_status(raw)


def create_accounts(requests: list[NewAccount]) -> list[CreateStatus | AwsError]:
    """CreateAccount for each request, sent together (a thread each): AWS takes each at once but
    answers after a while, and waiting for one answer before sending the next would hold back
    creations the quotas allow now. Returns, in order, each answer or the AwsError it raised
    (UnknownOutcome: see create_account)."""
    if len(requests) == 1:
        return [_create_or_error(requests[0])]
    client(SERVICE, safe_to_repeat=False)  # made once, here: clients are thread-safe, making them is not
    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        answers = [pool.submit(_create_or_error, request) for request in requests]
    return [answer.result() for answer in answers]


def _create_or_error(request: NewAccount) -> CreateStatus | AwsError:
    try:
        return create_account(
            email=request.email, account_name=request.account_name, tags=request.tags, role_name=request.role_name
        )
    except AwsError as error:
        return error


def describe_create_status(request_id: str) -> CreateStatus:
    raw = _call("describe_create_account_status", CreateAccountRequestId=request_id)
    return _create_status(raw["CreateAccountStatus"])


def parent_id(account_id: str) -> str:
    return next(_pages("list_parents", "Parents", ChildId=account_id))["Id"]


def move_account(account_id: str, destination_id: str) -> None:
    """Put the account under `destination_id` unless it is there already."""
    source = parent_id(account_id)
    if source == destination_id:
        return
    try:
        _call("move_account", AccountId=account_id, SourceParentId=source, DestinationParentId=destination_id)
    except PermanentAwsError as error:
        if error.code != "DuplicateAccountException":
            raise


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def tag_resource(resource_id: str, tags: dict[str, str]) -> None:
    """Add or overwrite tags on an account, OU, policy or root; other tags stay."""
    _call("tag_resource", ResourceId=resource_id, Tags=_tag_list(tags))


def tag_account(account_id: str, tags: dict[str, str]) -> None:
    tag_resource(account_id, tags)


def tag_missing(resource_id: str, tags: dict[str, str]) -> None:
    """Give an account, OU or policy those of `tags` it does not carry with the same value."""
    current = {t["Key"]: t["Value"] for t in _pages("list_tags_for_resource", "Tags", ResourceId=resource_id)}
    missing = {key: value for key, value in tags.items() if current.get(key) != value}
    if missing:
        tag_resource(resource_id, missing)


def untag_account(account_id: str, keys: list[str]) -> None:
    _call("untag_resource", ResourceId=account_id, TagKeys=keys)


def set_account_tags(account_id: str, tags: dict[str, str]) -> None:
    """Make the account carry exactly `tags`: those it lacks (or carries with another value) are
    set, every other key is removed. Once they match, it only reads: safe to run again."""
    current = account_tags(account_id)
    changed = {key: value for key, value in tags.items() if current.get(key) != value}
    if changed:
        tag_account(account_id, changed)
    extra = sorted(set(current) - set(tags))
    if extra:
        untag_account(account_id, extra)


def resource_tags(resource_id: str) -> dict[str, str]:
    """The tags of an account, OU, policy or root."""
    return {t["Key"]: t["Value"] for t in _pages("list_tags_for_resource", "Tags", ResourceId=resource_id)}


def account_tags(account_id: str) -> dict[str, str]:
    return resource_tags(account_id)


# --- Service control policies ---------------------------------------------------------------------


def ensure_policy(*, name: str, description: str, document: dict, tags: dict[str, str]) -> str:
    """The id of the SCP called `name`, created with `tags` or updated so that its content is
    `document` (and its tags include `tags`: the portal's IAM role changes only what carries them).
    For the organization-wide policies aws_bootstrap sets up; a course's policy is found by its
    stored id, or by name only once its tags say it is that course's."""
    found = find_policy(name)
    if found is not None:
        tag_missing(found, tags)
        update_policy(found, description=description, document=document)
        return found
    try:
        return create_policy(name=name, description=description, document=document, tags=tags)
    except PermanentAwsError as error:
        if error.code != "DuplicatePolicyException":
            raise
        # Created meanwhile by another worker, or by our own retried request whose first answer
        # was lost: take it (and update it if its content differs).
        return ensure_policy(name=name, description=description, document=document, tags=tags)


def find_policy(name: str) -> str | None:
    """The id of the SCP called `name`, if there is one."""
    for summary in _pages("list_policies", "Policies", Filter="SERVICE_CONTROL_POLICY"):
        if summary["Name"] == name:
            return summary["Id"]
    return None


def create_policy(*, name: str, description: str, document: dict, tags: dict[str, str]) -> str:
    """A new SCP. PermanentAwsError DuplicatePolicyException if the name is taken."""
    created = _call(
        "create_policy",
        Name=name,
        Description=description,
        Type="SERVICE_CONTROL_POLICY",
        Content=_policy_content(document),
        Tags=_tag_list(tags),
    )
    return created["Policy"]["PolicySummary"]["Id"]


def update_policy(policy_id: str, *, description: str, document: dict) -> None:
    """Make the SCP's content `document`, unless it is already (NotFound if it was deleted)."""
    current = _call("describe_policy", PolicyId=policy_id)["Policy"]["Content"]
    if json.loads(current) != document:
        _call("update_policy", PolicyId=policy_id, Content=_policy_content(document), Description=description)


def _policy_content(document: dict) -> str:
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def attach_policy(policy_id: str, target_id: str) -> None:
    try:
        _call("attach_policy", PolicyId=policy_id, TargetId=target_id)
    except PermanentAwsError as error:
        if error.code != "DuplicatePolicyAttachmentException":
            raise


def detach_policy(policy_id: str, target_id: str) -> None:
    try:
        _call("detach_policy", PolicyId=policy_id, TargetId=target_id)
    except NotFound:
        pass
    except PermanentAwsError as error:
        if error.code != "PolicyNotAttachedException":
            raise


def policy_targets(policy_id: str) -> set[str]:
    """The ids of every account, OU and root the policy is attached to."""
    return {target["TargetId"] for target in _pages("list_targets_for_policy", "Targets", PolicyId=policy_id)}


def enable_policy_type(root: str, policy_type: str = "SERVICE_CONTROL_POLICY") -> None:
    try:
        _call("enable_policy_type", RootId=root, PolicyType=policy_type)
    except PermanentAwsError as error:
        if error.code != "PolicyTypeAlreadyEnabledException":
            raise


# --- Invitations of existing accounts -------------------------------------------------------------


def _handshake(raw: dict) -> Handshake:
    account = next((p["Id"] for p in raw.get("Parties", []) if p.get("Type") == "ACCOUNT"), "")
    notes = next((r["Value"] for r in raw.get("Resources", []) if r.get("Type") == "NOTES"), "")
    # arn:aws:organizations::<management account>:handshake/<organization id>/<action>/<handshake id>
    arn = raw.get("Arn", "").split(":", 5)
    sender = arn[4] if len(arn) == 6 else ""
    path = arn[5].split("/") if len(arn) == 6 else []
    organization = path[1] if len(path) == 4 and path[0] == "handshake" else ""
    return Handshake(raw["Id"], raw["State"], account, raw.get("Action", ""), organization, sender, notes)


def invitation_handshakes() -> Iterator[Handshake]:
    """Every invitation the organization has sent and AWS still lists (30 days after it closes)."""
    for raw in _pages("list_handshakes_for_organization", "Handshakes", Filter={"ActionType": "INVITE"}):
        yield _handshake(raw)


def invite_account(account_id: str, notes: str, tags: dict[str, str]) -> Handshake:
    """Invite an existing account; AWS puts `tags` on it when it joins, so that it arrives as the
    portal's (the portal's IAM role moves and tags only accounts that carry its tag). Not safe to
    repeat: sent once; UnknownOutcome on a lost answer, which the caller resolves by looking for
    its own notes in invitation_handshakes()."""
    raw = _call(
        "invite_account_to_organization",
        safe_to_repeat=False,
        Target={"Id": account_id, "Type": "ACCOUNT"},
        Notes=notes[:1024],
        Tags=_tag_list(tags),
    )["Handshake"]
    return _handshake(raw)


def describe_handshake(handshake_id: str) -> Handshake:
    return _handshake(_call("describe_handshake", HandshakeId=handshake_id)["Handshake"])


def create_organization() -> Organization:
    """A new organization with all features, for an empty (emulated) management account."""
    org = _call("create_organization", FeatureSet="ALL")["Organization"]
    return Organization(org["Id"], org["FeatureSet"], org["MasterAccountId"])


def organization_exists() -> bool:
    try:
        describe_organization()
    except PermanentAwsError as error:
        if error.code == "AWSOrganizationsNotInUseException":
            return False
        raise
    return True
