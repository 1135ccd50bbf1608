"""IAM Identity Center: the instance, its identity store users, permission sets and account
assignments."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from portal.aws.errors import NotFound, PermanentAwsError, TransientAwsError, classify
from portal.aws.session import client, identity_center_region


@dataclass(frozen=True)
class Instance:
    arn: str
    identity_store_id: str

    @property
    def access_portal_url(self) -> str:
        return access_portal_url(self.identity_store_id)


@dataclass(frozen=True)
class Assignment:
    permission_set_arn: str
    principal_type: str  # USER or GROUP
    principal_id: str


@dataclass(frozen=True)
class AssignmentStatus:
    request_id: str
    state: str  # IN_PROGRESS, FAILED, SUCCEEDED
    failure_reason: str = ""


@dataclass(frozen=True)
class HeldAssignment:
    """One account a principal can sign in to, and through which permission set."""

    account_id: str
    permission_set_arn: str


@dataclass(frozen=True)
class PermissionSetUpdate:
    """What ensure_permission_set() found and changed."""

    arn: str
    created: bool
    attached: tuple[str, ...]  # managed policy ARNs attached now
    detached: tuple[str, ...]  # managed policy ARNs taken off now
    description_updated: bool  # the description was out of date

    @property
    def policies_changed(self) -> bool:
        return bool(self.attached or self.detached)


@dataclass(frozen=True)
class ProvisioningStatus:
    request_id: str
    state: str  # IN_PROGRESS, FAILED, SUCCEEDED
    failure_reason: str = ""


def _call(service: str, operation: str, *, safe_to_repeat: bool = True, **params: Any) -> dict:
    api = client(service, safe_to_repeat=safe_to_repeat, region=identity_center_region())
    try:
        return getattr(api, operation)(**params)
    except Exception as error:
        raise classify(error, operation=operation, safe_to_repeat=safe_to_repeat) from error


def _pages(service: str, operation: str, key: str, **params: Any) -> Iterator[Any]:
    try:
        for page in client(service, region=identity_center_region()).get_paginator(operation).paginate(**params):
            yield from page[key]
    except Exception as error:
        raise classify(error, operation=operation) from error


def access_portal_url(identity_store_id: str) -> str:
    return f"https://{identity_store_id}.awsapps.com/start"


def instance() -> Instance:
    instances = list(_pages("sso-admin", "list_instances", "Instances"))
    if not instances:
        raise NotFound(
            "IAM Identity Center is not enabled in this organization.",
            code="NoInstance",
            operation="ListInstances",
        )
    first = instances[0]
    return Instance(first["InstanceArn"], first["IdentityStoreId"])


# --- Users ----------------------------------------------------------------------------------------


def find_user(identity_store_id: str, user_name: str) -> str | None:
    """The user id for `user_name`, or None."""
    try:
        found = _call(
            "identitystore",
            "get_user_id",
            IdentityStoreId=identity_store_id,
            AlternateIdentifier={"UniqueAttribute": {"AttributePath": "userName", "AttributeValue": user_name}},
        )
    except NotFound:
        return None
    return found["UserId"]


def create_user(identity_store_id: str, *, user_name: str, display_name: str, email: str) -> str:
    given, _, family = display_name.partition(" ")
    try:
        created = _call(
            "identitystore",
            "create_user",
            IdentityStoreId=identity_store_id,
            UserName=user_name,
            DisplayName=display_name or user_name,
            Name={"GivenName": given or user_name, "FamilyName": family or "-"},
            Emails=[{"Value": email, "Type": "work", "Primary": True}],
        )
    except PermanentAwsError as error:
        if error.code != "ConflictException":
            raise
        # Created meanwhile (a retried task): the user name is unique, so look it up.
        existing = find_user(identity_store_id, user_name)
        if existing is None:
            raise
        return existing
    return created["UserId"]


def user_name(identity_store_id: str, user_id: str) -> str | None:
    """The user name of a user id (the portal names users by email address), or None."""
    try:
        described = _call("identitystore", "describe_user", IdentityStoreId=identity_store_id, UserId=user_id)
    except NotFound:
        return None
    return described["UserName"]


def group_ids_of(identity_store_id: str, user_id: str) -> list[str]:
    """The groups a user belongs to."""
    return [
        membership["GroupId"]
        for membership in _pages(
            "identitystore",
            "list_group_memberships_for_member",
            "GroupMemberships",
            IdentityStoreId=identity_store_id,
            MemberId={"UserId": user_id},
        )
    ]


def delete_user(identity_store_id: str, user_id: str) -> None:
    """Delete an identity store user; one already gone is fine."""
    try:
        _call("identitystore", "delete_user", IdentityStoreId=identity_store_id, UserId=user_id)
    except NotFound:
        pass


# --- Permission sets ------------------------------------------------------------------------------


def ensure_permission_set(
    instance_arn: str,
    *,
    name: str,
    description: str,
    managed_policy_arns: list[str],
    session_duration: str = "PT8H",
) -> PermissionSetUpdate:
    """The permission set called `name`, created if missing, brought to exactly these AWS
    managed policies (missing ones attached, any other detached) and this description.
    Accounts it is already provisioned to keep the old policies until provision_to_assigned()."""
    found = _find_permission_set(instance_arn, name)
    if found is None:
        arn = _call(
            "sso-admin",
            "create_permission_set",
            InstanceArn=instance_arn,
            Name=name,
            Description=description,
            SessionDuration=session_duration,
        )["PermissionSet"]["PermissionSetArn"]
    else:
        arn = found["PermissionSetArn"]
    description_updated = found is not None and found.get("Description", "") != description
    if description_updated:
        _call(
            "sso-admin",
            "update_permission_set",
            InstanceArn=instance_arn,
            PermissionSetArn=arn,
            Description=description,
        )
    attached_now = {
        p["Arn"]
        for p in _pages(
            "sso-admin",
            "list_managed_policies_in_permission_set",
            "AttachedManagedPolicies",
            InstanceArn=instance_arn,
            PermissionSetArn=arn,
        )
    }
    to_attach = [policy_arn for policy_arn in managed_policy_arns if policy_arn not in attached_now]
    to_detach = sorted(attached_now - set(managed_policy_arns))
    # Attach before detaching: people signed in meanwhile never have less than either set gives.
    for policy_arn in to_attach:
        _call(
            "sso-admin",
            "attach_managed_policy_to_permission_set",
            InstanceArn=instance_arn,
            PermissionSetArn=arn,
            ManagedPolicyArn=policy_arn,
        )
    for policy_arn in to_detach:
        try:
            _call(
                "sso-admin",
                "detach_managed_policy_from_permission_set",
                InstanceArn=instance_arn,
                PermissionSetArn=arn,
                ManagedPolicyArn=policy_arn,
            )
        except NotFound:
            pass  # detached meanwhile
    return PermissionSetUpdate(arn, found is None, tuple(to_attach), tuple(to_detach), description_updated)


def outdated_account_ids(instance_arn: str, permission_set_arn: str) -> list[str]:
    """The accounts the permission set is provisioned to with an earlier version of itself:
    their roles still have the policies it had then."""
    return list(
        _pages(
            "sso-admin",
            "list_accounts_for_provisioned_permission_set",
            "AccountIds",
            InstanceArn=instance_arn,
            PermissionSetArn=permission_set_arn,
            ProvisioningStatus="LATEST_PERMISSION_SET_NOT_PROVISIONED",
        )
    )


def provision_to_assigned(instance_arn: str, permission_set_arn: str) -> ProvisioningStatus:
    """Push a changed permission set to every account it is provisioned to: until then, their
    roles keep the policies they were provisioned with."""
    raw = _call(
        "sso-admin",
        "provision_permission_set",
        InstanceArn=instance_arn,
        PermissionSetArn=permission_set_arn,
        TargetType="ALL_PROVISIONED_ACCOUNTS",
    )["PermissionSetProvisioningStatus"]
    return ProvisioningStatus(raw["RequestId"], raw["Status"], raw.get("FailureReason", ""))


def provisioning_status(instance_arn: str, request_id: str) -> ProvisioningStatus:
    raw = _call(
        "sso-admin",
        "describe_permission_set_provisioning_status",
        InstanceArn=instance_arn,
        ProvisionPermissionSetRequestId=request_id,
    )["PermissionSetProvisioningStatus"]
    return ProvisioningStatus(raw["RequestId"], raw["Status"], raw.get("FailureReason", ""))


def _find_permission_set(instance_arn: str, name: str) -> dict | None:
    """The permission set called `name`, as DescribePermissionSet gives it, or None."""
    for arn in _pages("sso-admin", "list_permission_sets", "PermissionSets", InstanceArn=instance_arn):
        described = _call("sso-admin", "describe_permission_set", InstanceArn=instance_arn, PermissionSetArn=arn)
        if described["PermissionSet"]["Name"] == name:
            return described["PermissionSet"]
    return None


# --- Account assignments --------------------------------------------------------------------------


def has_assignment(instance_arn: str, *, account_id: str, permission_set_arn: str, user_id: str) -> bool:
    return any(
        a["PrincipalId"] == user_id and a["PrincipalType"] == "USER"
        for a in _pages(
            "sso-admin",
            "list_account_assignments",
            "AccountAssignments",
            InstanceArn=instance_arn,
            AccountId=account_id,
            PermissionSetArn=permission_set_arn,
        )
    )


def create_assignment(instance_arn: str, *, account_id: str, permission_set_arn: str, user_id: str) -> AssignmentStatus:
    """Not safe to repeat (sent once); check has_assignment() after an UnknownOutcome."""
    try:
        raw = _call(
            "sso-admin",
            "create_account_assignment",
            safe_to_repeat=False,
            InstanceArn=instance_arn,
            TargetId=account_id,
            TargetType="AWS_ACCOUNT",
            PermissionSetArn=permission_set_arn,
            PrincipalType="USER",
            PrincipalId=user_id,
        )["AccountAssignmentCreationStatus"]
    except PermanentAwsError as error:
        if error.code != "ConflictException":
            raise
        # Identity Center's ConflictException: an earlier write has not propagated yet; AWS
        # recommends retrying with backoff (unlike the identity store's, which means "exists").
        raise TransientAwsError(error.message, code=error.code, operation=error.operation) from error
    return AssignmentStatus(raw["RequestId"], raw["Status"], raw.get("FailureReason", ""))


def assignment_creation_status(instance_arn: str, request_id: str) -> AssignmentStatus:
    raw = _call(
        "sso-admin",
        "describe_account_assignment_creation_status",
        InstanceArn=instance_arn,
        AccountAssignmentCreationRequestId=request_id,
    )["AccountAssignmentCreationStatus"]
    return AssignmentStatus(raw["RequestId"], raw["Status"], raw.get("FailureReason", ""))


def account_assignments(instance_arn: str, *, account_id: str, permission_set_arns: list[str]) -> list[Assignment]:
    """Everyone who can sign in to `account_id` through these permission sets."""
    return [
        Assignment(arn, raw["PrincipalType"], raw["PrincipalId"])
        for arn in permission_set_arns
        for raw in _pages(
            "sso-admin",
            "list_account_assignments",
            "AccountAssignments",
            InstanceArn=instance_arn,
            AccountId=account_id,
            PermissionSetArn=arn,
        )
    ]


def principal_assignments(
    instance_arn: str, principal_id: str, *, principal_type: str = "USER"
) -> list[HeldAssignment]:
    """Every account assignment of a user (or a group), across the organization."""
    return [
        HeldAssignment(raw["AccountId"], raw["PermissionSetArn"])
        for raw in _pages(
            "sso-admin",
            "list_account_assignments_for_principal",
            "AccountAssignments",
            InstanceArn=instance_arn,
            PrincipalId=principal_id,
            PrincipalType=principal_type,
        )
    ]


def delete_assignment(instance_arn: str, *, account_id: str, assignment: Assignment) -> AssignmentStatus | None:
    """Start removing an assignment. Deleting again what is gone is harmless; None when there
    was nothing to delete."""
    try:
        raw = _call(
            "sso-admin",
            "delete_account_assignment",
            InstanceArn=instance_arn,
            TargetId=account_id,
            TargetType="AWS_ACCOUNT",
            PermissionSetArn=assignment.permission_set_arn,
            PrincipalType=assignment.principal_type,
            PrincipalId=assignment.principal_id,
        )["AccountAssignmentDeletionStatus"]
    except NotFound:
        return None
    except PermanentAwsError as error:
        if error.code != "ConflictException":
            raise
        # As for creation: an earlier change has not propagated yet; retry with backoff.
        raise TransientAwsError(error.message, code=error.code, operation=error.operation) from error
    return AssignmentStatus(raw["RequestId"], raw["Status"], raw.get("FailureReason", ""))


def assignment_deletion_status(instance_arn: str, request_id: str) -> AssignmentStatus:
    raw = _call(
        "sso-admin",
        "describe_account_assignment_deletion_status",
        InstanceArn=instance_arn,
        AccountAssignmentDeletionRequestId=request_id,
    )["AccountAssignmentDeletionStatus"]
    return AssignmentStatus(raw["RequestId"], raw["Status"], raw.get("FailureReason", ""))
