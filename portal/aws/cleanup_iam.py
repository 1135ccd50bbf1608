"""The IAM part of the end-of-course cleanup (portal/aws/cleanup.py): every user, group, role,
instance profile and customer managed policy a student made in their member account, the
identity providers they added, the virtual MFA devices left unassigned and the account's alias,
so that whoever holds the account next inherits no way into it.

IAM is global: cleanup lists it once a pass, with the region "global", after every regional
resource (an instance holds its instance profile, a function its role). IAM refuses to delete what
still has something attached (DeleteConflict): a user's password, access keys, MFA devices, SSH
keys, signing certificates, service-specific credentials, group memberships and policies; a
group's members and policies; a role's instance profiles and policies; a policy's attachments,
its uses as a permissions boundary and its older versions. Each deletion removes those first, in
the same call; something already gone on the way is skipped, and a deletion can be repeated after
a crash. A permissions boundary does not keep a user or a role (DeleteUser and DeleteRole do not
ask for it); it keeps its policy, whose deletion removes it.

Never listed, so never deleted:
- the portal's own role (PORTAL_AWS_MEMBER_ROLE_NAME at the root path), through which all of this
  runs;
- service-linked roles (path /aws-service-role/), which only their service may delete, and the
  roles IAM Identity Center provisions (path /aws-reserved/);
- roles whose names match PORTAL_CLEANUP_KEEP_ROLES (by default Control Tower's and StackSets'
  execution roles, which the school's own tooling uses);
- customer managed policies used by a role kept (a permission set may reference one by name);
- Identity Center's SAML provider (AWSSSO_<id>_DO_NOT_DELETE): without it nobody signs in to the
  account through the access portal.

Listers yield (id, label) pairs; cleanup.py turns them into its Resources. Every call runs inside
the member account, through its organization role.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from django.conf import settings

from portal.aws.errors import NotFound, PermanentAwsError, classify
from portal.aws.session import client

REGION = "global"

# In the order a pass deletes them: a user before its unassigned MFA device and the policies it
# uses, an instance profile before the role it holds.
KIND_LABELS: dict[str, str] = {
    "iam:user": "IAM users",
    "iam:group": "IAM groups",
    "iam:instance-profile": "IAM instance profiles",
    "iam:role": "IAM roles",
    "iam:policy": "IAM customer managed policies",
    "iam:mfa-device": "Unassigned virtual MFA devices",
    "iam:oidc-provider": "IAM OpenID Connect identity providers",
    "iam:saml-provider": "IAM SAML identity providers",
    "iam:account-alias": "Account aliases",
}

# Roles that AWS manages: service-linked roles, and Identity Center's permission sets.
AWS_MANAGED_ROLE_PATHS = ("/aws-service-role/", "/aws-reserved/")
IDENTITY_CENTER_SAML_PROVIDER = "AWSSSO_*_DO_NOT_DELETE"

type Found = tuple[str, str]  # (the id a deleter takes, the label of the dry run)


def _call(account_id: str, operation: str, **params: Any) -> dict:
    api = client("iam", account_id=account_id)
    try:
        return getattr(api, operation)(**params)
    except Exception as error:
        raise classify(error, operation=operation) from error


def _pages(account_id: str, operation: str, **params: Any) -> Iterator[dict]:
    paginator = client("iam", account_id=account_id).get_paginator(operation)
    try:
        yield from paginator.paginate(**params)
    except Exception as error:
        raise classify(error, operation=operation) from error


def _items(account_id: str, operation: str, key: str, **params: Any) -> Iterator[Any]:
    """The entries under `key` on every page: dicts, or plain names for some (ListAccountAliases)."""
    for page in _pages(account_id, operation, **params):
        yield from page.get(key, [])


def _all(account_id: str, operation: str, key: str, **params: Any) -> list[dict]:
    """Every entry, read to the end before anything is removed: removing entries while paging
    through them would move later ones onto pages already read."""
    return list(_items(account_id, operation, key, **params))


def _unless_gone(account_id: str, operation: str, **params: Any) -> None:
    """Remove one thing attached to what is being deleted; already gone is fine."""
    try:
        _call(account_id, operation, **params)
    except NotFound:
        pass


def _created(entity: dict) -> str:
    created: datetime = entity["CreateDate"]
    return f"created {created:%Y-%m-%d}"


def _titled(name: str, path: str, details: str) -> str:
    """'alice: created 2026-01-12', or 'alice (/lab/): …' for a name under a path."""
    where = f" ({path})" if path != "/" else ""
    return f"{name}{where}: {details}"


# --- Roles cleanup keeps --------------------------------------------------------------------------


def _role_kept(name: str, path: str) -> bool:
    """Whether cleanup leaves the role alone. IAM role names are unique whatever their case, so
    names are compared without it."""
    if path.startswith(AWS_MANAGED_ROLE_PATHS):
        return True
    if path == "/" and name.lower() == settings.PORTAL_AWS_MEMBER_ROLE_NAME.lower():
        return True
    return any(fnmatchcase(name.lower(), pattern.lower()) for pattern in settings.PORTAL_CLEANUP_KEEP_ROLES)


def _kept_role_names(account_id: str) -> set[str]:
    return {
        role["RoleName"].lower()
        for role in _items(account_id, "list_roles", "Roles")
        if _role_kept(role["RoleName"], role["Path"])
    }


# --- Listing --------------------------------------------------------------------------------------


def _list_users(account_id: str) -> Iterator[Found]:
    for user in _items(account_id, "list_users", "Users"):
        name = user["UserName"]
        yield name, _titled(name, user["Path"], _created(user))


def _list_groups(account_id: str) -> Iterator[Found]:
    for group in _items(account_id, "list_groups", "Groups"):
        name = group["GroupName"]
        yield name, _titled(name, group["Path"], _created(group))


def _list_instance_profiles(account_id: str) -> Iterator[Found]:
    for profile in _items(account_id, "list_instance_profiles", "InstanceProfiles"):
        name = profile["InstanceProfileName"]
        roles = ", ".join(role["RoleName"] for role in profile["Roles"])
        yield name, _titled(name, profile["Path"], f"holds {roles}" if roles else "holds no role")


def _list_roles(account_id: str) -> Iterator[Found]:
    for role in _items(account_id, "list_roles", "Roles"):
        name, path = role["RoleName"], role["Path"]
        if not _role_kept(name, path):
            yield name, _titled(name, path, _created(role))


def _list_policies(account_id: str) -> Iterator[Found]:
    kept_roles: set[str] | None = None  # read only when a policy is in use
    for policy in _items(account_id, "list_policies", "Policies", Scope="Local"):
        arn, name = policy["Arn"], policy["PolicyName"]
        attached = policy.get("AttachmentCount", 0)
        bounding = policy.get("PermissionsBoundaryUsageCount", 0)
        if attached or bounding:
            if kept_roles is None:
                kept_roles = _kept_role_names(account_id)
            if _used_by(account_id, arn, kept_roles):
                continue
        uses = [f"attached to {attached}"] if attached else []
        uses += [f"permissions boundary of {bounding}"] if bounding else []
        yield arn, _titled(name, policy["Path"], ", ".join(uses) or "not attached")


def _used_by(account_id: str, policy_arn: str, role_names: set[str]) -> bool:
    """Whether one of `role_names` has the policy attached or as its permissions boundary (with
    no usage filter, IAM lists both)."""
    return any(
        role["RoleName"].lower() in role_names
        for role in _items(
            account_id,
            "list_entities_for_policy",
            "PolicyRoles",
            PolicyArn=policy_arn,
            EntityFilter="Role",
        )
    )


def _list_mfa_devices(account_id: str) -> Iterator[Found]:
    # Unassigned only: an assigned device goes with its user, and the root user's stays.
    for device in _items(account_id, "list_virtual_mfa_devices", "VirtualMFADevices", AssignmentStatus="Unassigned"):
        serial = device["SerialNumber"]
        yield serial, f"{serial.split(':mfa/', 1)[-1]}: not assigned to a user"


def _list_oidc_providers(account_id: str) -> Iterator[Found]:
    # ListOpenIDConnectProviders has no pagination: it answers with every provider at once.
    providers = _call(account_id, "list_open_id_connect_providers")["OpenIDConnectProviderList"]
    for provider in providers:
        arn = provider["Arn"]
        yield arn, f"{arn.split(':oidc-provider/', 1)[-1]}: OpenID Connect provider"


def _list_saml_providers(account_id: str) -> Iterator[Found]:
    # ListSAMLProviders has no pagination either.
    for provider in _call(account_id, "list_saml_providers")["SAMLProviderList"]:
        arn = provider["Arn"]
        name = arn.split(":saml-provider/", 1)[-1]
        if not fnmatchcase(name, IDENTITY_CENTER_SAML_PROVIDER):
            yield arn, f"{name}: SAML provider"


def _list_account_aliases(account_id: str) -> Iterator[Found]:
    for alias in _items(account_id, "list_account_aliases", "AccountAliases"):
        yield alias, f"{alias}: the account's sign-in alias"


# --- Deletion -------------------------------------------------------------------------------------
# Each deleter raises NotFound when the thing itself is gone already (cleanup.delete takes that
# for success).


def delete_user(account_id: str, user_name: str) -> None:
    """Delete an IAM user and everything IAM wants gone first."""
    user = {"UserName": user_name}
    _unless_gone(account_id, "delete_login_profile", **user)
    for key in _all(account_id, "list_access_keys", "AccessKeyMetadata", **user):
        _unless_gone(account_id, "delete_access_key", **user, AccessKeyId=key["AccessKeyId"])
    for device in _all(account_id, "list_mfa_devices", "MFADevices", **user):
        serial = device["SerialNumber"]
        _unless_gone(account_id, "deactivate_mfa_device", **user, SerialNumber=serial)
        if ":mfa/" in serial:
            # A deactivated virtual device stays behind, unassigned; a hardware or FIDO one is
            # simply no longer the user's.
            _unless_gone(account_id, "delete_virtual_mfa_device", SerialNumber=serial)
    for key in _all(account_id, "list_ssh_public_keys", "SSHPublicKeys", **user):
        key_id = key["SSHPublicKeyId"]
        _unless_gone(account_id, "delete_ssh_public_key", **user, SSHPublicKeyId=key_id)
    for certificate in _all(account_id, "list_signing_certificates", "Certificates", **user):
        certificate_id = certificate["CertificateId"]
        _unless_gone(account_id, "delete_signing_certificate", **user, CertificateId=certificate_id)
    # CodeCommit Git credentials, Keyspaces and Bedrock keys; not paginated.
    credentials = _call(account_id, "list_service_specific_credentials", **user)
    for credential in credentials["ServiceSpecificCredentials"]:
        credential_id = credential["ServiceSpecificCredentialId"]
        _unless_gone(
            account_id,
            "delete_service_specific_credential",
            **user,
            ServiceSpecificCredentialId=credential_id,
        )
    for group in _all(account_id, "list_groups_for_user", "Groups", **user):
        _unless_gone(account_id, "remove_user_from_group", **user, GroupName=group["GroupName"])
    for name in _all(account_id, "list_user_policies", "PolicyNames", **user):
        _unless_gone(account_id, "delete_user_policy", **user, PolicyName=name)
    for policy in _all(account_id, "list_attached_user_policies", "AttachedPolicies", **user):
        _unless_gone(account_id, "detach_user_policy", **user, PolicyArn=policy["PolicyArn"])
    _call(account_id, "delete_user", **user)


def _delete_group(account_id: str, group_name: str) -> None:
    group = {"GroupName": group_name}
    for member in _all(account_id, "get_group", "Users", **group):
        _unless_gone(account_id, "remove_user_from_group", **group, UserName=member["UserName"])
    for name in _all(account_id, "list_group_policies", "PolicyNames", **group):
        _unless_gone(account_id, "delete_group_policy", **group, PolicyName=name)
    for policy in _all(account_id, "list_attached_group_policies", "AttachedPolicies", **group):
        _unless_gone(account_id, "detach_group_policy", **group, PolicyArn=policy["PolicyArn"])
    _call(account_id, "delete_group", **group)


def _delete_instance_profile(account_id: str, name: str) -> None:
    profile = {"InstanceProfileName": name}
    for role in _call(account_id, "get_instance_profile", **profile)["InstanceProfile"]["Roles"]:
        role_name = role["RoleName"]
        _unless_gone(account_id, "remove_role_from_instance_profile", **profile, RoleName=role_name)
    _call(account_id, "delete_instance_profile", **profile)


def _delete_role(account_id: str, role_name: str) -> None:
    role = _call(account_id, "get_role", RoleName=role_name)["Role"]
    if _role_kept(role_name, role["Path"]):
        # Never listed; deleting the portal's own role would lock the portal out of the account.
        raise PermanentAwsError(f"Cleanup keeps the role {role_name}.", code="RoleKept", operation="DeleteRole")
    named = {"RoleName": role_name}
    profiles = _all(account_id, "list_instance_profiles_for_role", "InstanceProfiles", **named)
    for profile in profiles:
        profile_name = profile["InstanceProfileName"]
        _unless_gone(
            account_id,
            "remove_role_from_instance_profile",
            **named,
            InstanceProfileName=profile_name,
        )
    for name in _all(account_id, "list_role_policies", "PolicyNames", **named):
        _unless_gone(account_id, "delete_role_policy", **named, PolicyName=name)
    for policy in _all(account_id, "list_attached_role_policies", "AttachedPolicies", **named):
        _unless_gone(account_id, "detach_role_policy", **named, PolicyArn=policy["PolicyArn"])
    _call(account_id, "delete_role", **named)


def _delete_policy(account_id: str, arn: str) -> None:
    policy = _call(account_id, "get_policy", PolicyArn=arn)["Policy"]
    _detach_everywhere(account_id, arn)
    if policy.get("PermissionsBoundaryUsageCount"):
        _remove_as_boundary(account_id, arn)
    for version in _all(account_id, "list_policy_versions", "Versions", PolicyArn=arn):
        if not version["IsDefaultVersion"]:
            # The default version goes with the policy; IAM refuses to delete it on its own.
            version_id = version["VersionId"]
            _unless_gone(account_id, "delete_policy_version", PolicyArn=arn, VersionId=version_id)
    _call(account_id, "delete_policy", PolicyArn=arn)


def _detach_everywhere(account_id: str, arn: str) -> None:
    attached = _entities(account_id, arn, "PermissionsPolicy")
    for user in attached["PolicyUsers"]:
        _unless_gone(account_id, "detach_user_policy", PolicyArn=arn, UserName=user["UserName"])
    for group in attached["PolicyGroups"]:
        group_name = group["GroupName"]
        _unless_gone(account_id, "detach_group_policy", PolicyArn=arn, GroupName=group_name)
    for role in attached["PolicyRoles"]:
        _unless_gone(account_id, "detach_role_policy", PolicyArn=arn, RoleName=role["RoleName"])


def _remove_as_boundary(account_id: str, arn: str) -> None:
    bounded = _entities(account_id, arn, "PermissionsBoundary")
    for user in bounded["PolicyUsers"]:
        _unless_gone(account_id, "delete_user_permissions_boundary", UserName=user["UserName"])
    for role in bounded["PolicyRoles"]:
        _unless_gone(account_id, "delete_role_permissions_boundary", RoleName=role["RoleName"])


def _entities(account_id: str, arn: str, usage: str) -> dict[str, list[dict]]:
    """The users, groups and roles using the policy one way, every page read before any change."""
    found: dict[str, list[dict]] = {"PolicyUsers": [], "PolicyGroups": [], "PolicyRoles": []}
    usage_filter = {"PolicyArn": arn, "PolicyUsageFilter": usage}
    for page in _pages(account_id, "list_entities_for_policy", **usage_filter):
        for key, entities in found.items():
            entities += page.get(key, [])
    return found


def _delete_mfa_device(account_id: str, serial: str) -> None:
    _call(account_id, "delete_virtual_mfa_device", SerialNumber=serial)


def _delete_oidc_provider(account_id: str, arn: str) -> None:
    _call(account_id, "delete_open_id_connect_provider", OpenIDConnectProviderArn=arn)


def _delete_saml_provider(account_id: str, arn: str) -> None:
    _call(account_id, "delete_saml_provider", SAMLProviderArn=arn)


def _delete_account_alias(account_id: str, alias: str) -> None:
    _call(account_id, "delete_account_alias", AccountAlias=alias)


LISTERS: dict[str, Callable[[str], Iterator[Found]]] = {
    "iam:user": _list_users,
    "iam:group": _list_groups,
    "iam:instance-profile": _list_instance_profiles,
    "iam:role": _list_roles,
    "iam:policy": _list_policies,
    "iam:mfa-device": _list_mfa_devices,
    "iam:oidc-provider": _list_oidc_providers,
    "iam:saml-provider": _list_saml_providers,
    "iam:account-alias": _list_account_aliases,
}
DELETERS: dict[str, Callable[[str, str], None]] = {
    "iam:user": delete_user,
    "iam:group": _delete_group,
    "iam:instance-profile": _delete_instance_profile,
    "iam:role": _delete_role,
    "iam:policy": _delete_policy,
    "iam:mfa-device": _delete_mfa_device,
    "iam:oidc-provider": _delete_oidc_provider,
    "iam:saml-provider": _delete_saml_provider,
    "iam:account-alias": _delete_account_alias,
}
