"""IAM's DeleteConflict, played on top of moto.

AWS refuses (409 DeleteConflict) to delete a user that still has a console password, access keys,
MFA devices, SSH keys, signing certificates, service-specific credentials, group memberships or
policies; a group that still has members or policies; a managed policy still attached, used as a
permissions boundary or with versions besides its default; a virtual MFA device still enabled.
moto deletes all of these (it refuses only a user's policies, and roles and instance profiles with
something attached, as AWS does). `StrictIam` gives AWS's answer: before each of those deletions
it looks at the account through a client of its own, whose reads are not the portal's calls, and
answers DeleteConflict while anything is left.

It also plays what moto lacks: service-specific credentials (Git credentials, Bedrock keys), users'
permissions boundaries, and a policy's uses as a permissions boundary (moto neither counts them
nor honours ListEntitiesForPolicy's PolicyUsageFilter).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from botocore.exceptions import ClientError

from tests.support.aws_script import PASS, AwsScript, Edit, Fault


def conflict(message: str) -> Fault:
    return Fault("DeleteConflict", message, status=409)


class StrictIam:
    """AWS's IAM deletions in one member account, on top of moto, through `script`."""

    def __init__(self, script: AwsScript, aws_session, account_id: str):
        # Made from the member session directly: no test hook is registered on it.
        self.iam = aws_session.member_session(account_id).client("iam")
        self.service_credentials: dict[str, list[dict]] = defaultdict(list)  # user → credentials
        self.user_boundaries: dict[str, str] = {}  # user → policy ARN
        refusals = {
            "DeleteUser": self._refuse_user,
            "DeleteGroup": self._refuse_group,
            "DeletePolicy": self._refuse_policy,
            "DeleteVirtualMFADevice": self._refuse_mfa_device,
        }
        for operation, refusal in refusals.items():
            script.always("iam", operation, refusal)
        script.always("iam", "ListServiceSpecificCredentials", self._list_service_credentials)
        script.always("iam", "DeleteServiceSpecificCredential", self._delete_service_credential)
        script.always("iam", "PutUserPermissionsBoundary", self._put_user_boundary)
        script.always("iam", "DeleteUserPermissionsBoundary", self._delete_user_boundary)
        script.always("iam", "GetPolicy", Edit(self._count_boundary_use))
        script.always("iam", "ListPolicies", Edit(self._count_boundary_uses))
        script.always("iam", "ListEntitiesForPolicy", self._entities_for_policy)

    def add_service_credential(self, user_name: str, service: str) -> str:
        """What CreateServiceSpecificCredential would make: its id."""
        credential_id = f"ACCA{len(self.service_credentials[user_name]):016d}"
        user = self.iam.get_user(UserName=user_name)["User"]
        self.service_credentials[user_name].append(
            {
                "UserName": user_name,
                "Status": "Active",
                "ServiceUserName": f"{user_name}-at-{user['UserId'][-6:]}",
                "CreateDate": user["CreateDate"],
                "ServiceSpecificCredentialId": credential_id,
                "ServiceName": service,
            }
        )
        return credential_id

    # --- Refusals ---------------------------------------------------------------------------------

    def _refuse_user(self, params: dict):
        user = {"UserName": params["UserName"]}
        if not self._exists(self.iam.get_user, **user):
            return PASS  # moto answers NoSuchEntity
        remaining = {
            "login profile": self._exists(self.iam.get_login_profile, **user),
            "access keys": self.iam.list_access_keys(**user)["AccessKeyMetadata"],
            "MFA devices": self.iam.list_mfa_devices(**user)["MFADevices"],
            "SSH public keys": self.iam.list_ssh_public_keys(**user)["SSHPublicKeys"],
            "signing certificates": self.iam.list_signing_certificates(**user)["Certificates"],
            "service specific credentials": self.service_credentials[user["UserName"]],
            "group memberships": self.iam.list_groups_for_user(**user)["Groups"],
            "inline policies": self.iam.list_user_policies(**user)["PolicyNames"],
            "attached policies": self.iam.list_attached_user_policies(**user)["AttachedPolicies"],
        }
        refusal = self._refusal(remaining)
        if refusal is PASS:
            self.user_boundaries.pop(user["UserName"], None)  # goes with the user
        return refusal

    def _refuse_group(self, params: dict):
        group = {"GroupName": params["GroupName"]}
        if not self._exists(self.iam.get_group, **group):
            return PASS
        remaining = {
            "users": self.iam.get_group(**group)["Users"],
            "inline policies": self.iam.list_group_policies(**group)["PolicyNames"],
            "attached policies": self.iam.list_attached_group_policies(**group)["AttachedPolicies"],
        }
        return self._refusal(remaining)

    def _refuse_policy(self, params: dict):
        arn = params["PolicyArn"]
        if not self._exists(self.iam.get_policy, PolicyArn=arn):
            return PASS
        attached = self.iam.list_entities_for_policy(PolicyArn=arn)
        if any(attached[key] for key in ("PolicyUsers", "PolicyGroups", "PolicyRoles")):
            return conflict("Cannot delete a policy attached to entities.")
        if any(self._bounded_by(arn)):
            return conflict("Cannot delete a policy attached to entities.")
        if len(self.iam.list_policy_versions(PolicyArn=arn)["Versions"]) > 1:
            return conflict(
                "This policy has more than one version. Before you delete a policy, you must "
                "delete the policy's versions. The default version is deleted with the policy."
            )
        return PASS

    def _refuse_mfa_device(self, params: dict):
        assigned = self.iam.list_virtual_mfa_devices(AssignmentStatus="Assigned")
        if any(d["SerialNumber"] == params["SerialNumber"] for d in assigned["VirtualMFADevices"]):
            return conflict("MFA Device is still in use")
        return PASS

    @staticmethod
    def _refusal(remaining: dict):
        left = [what for what, found in remaining.items() if found]
        return conflict(f"Cannot delete entity, must remove {left[0]} first.") if left else PASS

    @staticmethod
    def _exists(read, **params) -> bool:
        try:
            read(**params)
        except ClientError as error:
            if error.response["Error"]["Code"] == "NoSuchEntity":
                return False
            raise
        return True

    # --- What moto lacks --------------------------------------------------------------------------

    def _list_service_credentials(self, params: dict):
        return {"ServiceSpecificCredentials": self.service_credentials[params["UserName"]]}

    def _delete_service_credential(self, params: dict):
        credentials = self.service_credentials[params["UserName"]]
        wanted = params["ServiceSpecificCredentialId"]
        if not any(c["ServiceSpecificCredentialId"] == wanted for c in credentials):
            return Fault("NoSuchEntity", f"No such credential: {wanted}", status=404)
        credentials[:] = [c for c in credentials if c["ServiceSpecificCredentialId"] != wanted]
        return {}

    def _put_user_boundary(self, params: dict):
        self.user_boundaries[params["UserName"]] = params["PermissionsBoundary"]
        return {}

    def _delete_user_boundary(self, params: dict):
        self.user_boundaries.pop(params["UserName"], None)
        return {}

    def _bounded_by(self, arn: str) -> Iterator[tuple[str, dict]]:
        """Each user and role whose permissions boundary is the policy: ("PolicyUsers", entry)."""
        for user_name, boundary in self.user_boundaries.items():
            if boundary == arn:
                user_id = self.iam.get_user(UserName=user_name)["User"]["UserId"]
                yield "PolicyUsers", {"UserName": user_name, "UserId": user_id}
        for role in self.iam.list_roles()["Roles"]:
            found = self.iam.get_role(RoleName=role["RoleName"])["Role"]
            if found.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn") == arn:
                yield "PolicyRoles", {"RoleName": role["RoleName"], "RoleId": role["RoleId"]}

    def _count_boundary_use(self, parsed: dict) -> None:
        policy = parsed.get("Policy")
        if policy:
            policy["PermissionsBoundaryUsageCount"] = len(list(self._bounded_by(policy["Arn"])))

    def _count_boundary_uses(self, parsed: dict) -> None:
        for policy in parsed.get("Policies", []):
            policy["PermissionsBoundaryUsageCount"] = len(list(self._bounded_by(policy["Arn"])))

    def _entities_for_policy(self, params: dict):
        usage = params.get("PolicyUsageFilter")
        if usage == "PermissionsPolicy":
            return PASS  # moto lists attachments only
        bounded: dict[str, list[dict]] = {"PolicyUsers": [], "PolicyGroups": [], "PolicyRoles": []}
        for key, entry in self._bounded_by(params["PolicyArn"]):
            if params.get("EntityFilter") in (None, key.removeprefix("Policy").removesuffix("s")):
                bounded[key].append(entry)
        if usage == "PermissionsBoundary":
            return {**bounded, "IsTruncated": False}
        return Edit(lambda parsed: self._add_entities(parsed, bounded))  # no filter: both uses

    @staticmethod
    def _add_entities(parsed: dict, more: dict[str, list[dict]]) -> None:
        for key, entries in more.items():
            name = key.removeprefix("Policy").removesuffix("s") + "Name"  # "PolicyRoles": RoleName
            listed = {entry[name] for entry in parsed.get(key, [])}
            parsed[key] = parsed.get(key, []) + [e for e in entries if e[name] not in listed]
