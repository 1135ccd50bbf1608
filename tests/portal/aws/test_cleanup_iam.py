"""The IAM part of the end-of-course cleanup (portal/aws/cleanup_iam.py), against moto.

Everything a student can make in IAM is made inside a member account, with what hangs on it (a
user's password, keys, MFA device, SSH key, signing certificate, Git credential, groups and
policies; a policy's attachments, boundary uses and older versions…), then listed and deleted
through portal.aws.cleanup as the cleanup pass does. moto deletes most of these with their
attachments still on, where IAM answers DeleteConflict: every test here runs with
tests/support/strict_iam.py, which gives IAM's real refusals (and what moto lacks: service-specific
credentials, users' permissions boundaries, a policy's boundary uses), so a deletion that
succeeds here removed everything in an order IAM accepts.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from portal.aws import cleanup, cleanup_iam, iam_users
from portal.aws.cleanup import KINDS, Resource
from portal.aws.errors import PermanentAwsError
from tests.support.aws_script import Fault
from tests.support.cleanup_passes import listed
from tests.support.member_resources import IMAGE_ID, REGION
from tests.support.strict_iam import StrictIam

pytestmark = pytest.mark.django_db

GLOBAL = cleanup_iam.REGION
POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
    }
)
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ1c3RlcnMtbGFwdG9wLWtleQ stella@laptop"
SAML_METADATA = (
    '<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" '
    'entityID="https://idp.school.example/saml">'
    + "<!-- the school's identity provider -->" * 30
    + "</EntityDescriptor>"
)


@pytest.fixture
def strict(aws, member, script) -> StrictIam:
    return StrictIam(script, aws, member)


def _iam(aws, member: str):
    """IAM inside the member account, as the student uses it."""
    return aws.client("iam", account_id=member)


def _trust(service: str) -> str:
    statement = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _role(iam, name: str, path: str = "/", service: str = "ec2.amazonaws.com") -> dict:
    trust = _trust(service)
    return iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=trust)["Role"]


def _policy(iam, name: str) -> str:
    return iam.create_policy(PolicyName=name, PolicyDocument=POLICY)["Policy"]["Arn"]


def _created(entity: dict) -> str:
    return f"created {entity['CreateDate']:%Y-%m-%d}"


def _signing_certificate() -> str:
    """A self-signed X.509 certificate, as a student would upload for SOAP signing."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stella")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _give_user_everything(aws, member: str, strict: StrictIam, name: str, *, password: bool = True) -> dict:
    """Everything a student can hang on an IAM user, each of which IAM refuses to delete it with.
    Returns what was made."""
    iam = _iam(aws, member)
    if password:
        iam.create_login_profile(UserName=name, Password="Exam-week-2026!")
    keys = [iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"] for _ in range(2)]
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName=f"{name}-phone")
    serial = device["VirtualMFADevice"]["SerialNumber"]
    codes = {"AuthenticationCode1": "123456", "AuthenticationCode2": "654321"}
    iam.enable_mfa_device(UserName=name, SerialNumber=serial, **codes)
    iam.upload_ssh_public_key(UserName=name, SSHPublicKeyBody=SSH_KEY)
    iam.upload_signing_certificate(UserName=name, CertificateBody=_signing_certificate())
    strict.add_service_credential(name, "codecommit.amazonaws.com")
    group = f"{name}-study-group"
    iam.create_group(GroupName=group)
    iam.add_user_to_group(GroupName=group, UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="notes-bucket", PolicyDocument=POLICY)
    policy = _policy(iam, f"{name}-s3")
    iam.attach_user_policy(UserName=name, PolicyArn=policy)
    iam.put_user_permissions_boundary(UserName=name, PermissionsBoundary=policy)
    return {"keys": keys, "mfa": serial, "group": group, "policy": policy}


# --- One resource of each kind, with what hangs on it ---------------------------------------------
# Each maker creates one resource in the member account and returns its id and expected label.


def _make_user(aws, member, strict):
    user = _iam(aws, member).create_user(UserName="alice", Path="/students/")["User"]
    _give_user_everything(aws, member, strict, "alice")
    return "alice", f"alice (/students/): {_created(user)}"


def _make_group(aws, member, strict):
    iam = _iam(aws, member)
    group = iam.create_group(GroupName="lab-partners")["Group"]
    for name in ("bob", "carol"):
        iam.create_user(UserName=name)
        iam.add_user_to_group(GroupName="lab-partners", UserName=name)
    iam.put_group_policy(GroupName="lab-partners", PolicyName="shared", PolicyDocument=POLICY)
    iam.attach_group_policy(GroupName="lab-partners", PolicyArn=_policy(iam, "lab-partners-s3"))
    return "lab-partners", f"lab-partners: {_created(group)}"


def _make_instance_profile(aws, member, strict):
    iam = _iam(aws, member)
    _role(iam, "web-server")
    iam.create_instance_profile(InstanceProfileName="web")
    iam.add_role_to_instance_profile(InstanceProfileName="web", RoleName="web-server")
    return "web", "web: holds web-server"


def _make_role(aws, member, strict):
    iam = _iam(aws, member)
    role = _role(iam, "lab-function", service="lambda.amazonaws.com")
    iam.put_role_policy(RoleName="lab-function", PolicyName="logs", PolicyDocument=POLICY)
    policy = _policy(iam, "lab-function-s3")
    iam.attach_role_policy(RoleName="lab-function", PolicyArn=policy)
    iam.put_role_permissions_boundary(RoleName="lab-function", PermissionsBoundary=policy)
    for profile in ("lab-profile", "spare-profile"):
        iam.create_instance_profile(InstanceProfileName=profile)
    iam.add_role_to_instance_profile(InstanceProfileName="lab-profile", RoleName="lab-function")
    return "lab-function", f"lab-function: {_created(role)}"


def _make_policy(aws, member, strict):
    iam = _iam(aws, member)
    arn = _policy(iam, "lab-s3")
    for _ in range(2):
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=POLICY, SetAsDefault=True)
    iam.create_user(UserName="dave")
    iam.attach_user_policy(UserName="dave", PolicyArn=arn)
    iam.create_group(GroupName="lab-readers")
    iam.attach_group_policy(GroupName="lab-readers", PolicyArn=arn)
    _role(iam, "lab-reader")
    iam.attach_role_policy(RoleName="lab-reader", PolicyArn=arn)
    _role(iam, "lab-bounded")
    iam.put_role_permissions_boundary(RoleName="lab-bounded", PermissionsBoundary=arn)
    iam.create_user(UserName="erin")
    iam.put_user_permissions_boundary(UserName="erin", PermissionsBoundary=arn)
    return arn, "lab-s3: attached to 3, permissions boundary of 2"


def _make_mfa_device(aws, member, strict):
    device = _iam(aws, member).create_virtual_mfa_device(VirtualMFADeviceName="spare-phone")
    return device["VirtualMFADevice"]["SerialNumber"], "spare-phone: not assigned to a user"


def _make_oidc_provider(aws, member, strict):
    arn = _iam(aws, member).create_open_id_connect_provider(
        Url="https://token.actions.githubusercontent.com",
        ClientIDList=["sts.amazonaws.com"],
        ThumbprintList=["6938fd4d98bab03faadb97b34396831e3780aea1"],
    )["OpenIDConnectProviderArn"]
    return arn, "token.actions.githubusercontent.com: OpenID Connect provider"


def _make_saml_provider(aws, member, strict):
    arn = _iam(aws, member).create_saml_provider(Name="school-idp", SAMLMetadataDocument=SAML_METADATA)[
        "SAMLProviderArn"
    ]
    return arn, "school-idp: SAML provider"


def _make_account_alias(aws, member, strict):
    _iam(aws, member).create_account_alias(AccountAlias="cs101-stella")
    return "cs101-stella", "cs101-stella: the account's sign-in alias"


IAM_MAKERS: dict[str, Callable] = {
    "iam:user": _make_user,
    "iam:group": _make_group,
    "iam:instance-profile": _make_instance_profile,
    "iam:role": _make_role,
    "iam:policy": _make_policy,
    "iam:mfa-device": _make_mfa_device,
    "iam:oidc-provider": _make_oidc_provider,
    "iam:saml-provider": _make_saml_provider,
    "iam:account-alias": _make_account_alias,
}


def test_every_iam_kind_has_a_maker_and_comes_after_every_regional_kind():
    assert list(IAM_MAKERS) == list(cleanup_iam.KIND_LABELS) == list(cleanup_iam.LISTERS)
    assert set(cleanup_iam.DELETERS) == set(IAM_MAKERS)
    iam_kinds = [kind for kind in KINDS if kind.startswith("iam:")]
    # Instances hold instance profiles and functions hold roles: IAM goes once they are gone.
    assert KINDS[-len(iam_kinds) :] == tuple(iam_kinds) == tuple(IAM_MAKERS)


@pytest.mark.parametrize("kind", IAM_MAKERS)
def test_each_iam_kind_is_listed_deleted_with_what_hangs_on_it_and_again_harmlessly(aws, member, strict, kind):
    resource_id, label = IAM_MAKERS[kind](aws, member, strict)

    assert listed(member, kind) == {resource_id: label}

    resource = Resource(GLOBAL, kind, resource_id, label)
    cleanup.delete(member, resource)  # IAM's DeleteConflict would raise here

    assert listed(member, kind) == {}
    cleanup.delete(member, resource)  # already gone: no error


DIRECT_DELETIONS = {
    "iam:user": lambda iam, id: iam.delete_user(UserName=id),
    "iam:group": lambda iam, id: iam.delete_group(GroupName=id),
    "iam:instance-profile": lambda iam, id: iam.delete_instance_profile(InstanceProfileName=id),
    "iam:role": lambda iam, id: iam.delete_role(RoleName=id),
    "iam:policy": lambda iam, id: iam.delete_policy(PolicyArn=id),
}


@pytest.mark.parametrize("kind", DIRECT_DELETIONS)
def test_iam_refuses_a_plain_delete_of_what_still_holds_something(aws, member, strict, kind):
    # What the tests above stand on: the IAM they run against refuses as AWS does.
    resource_id, _ = IAM_MAKERS[kind](aws, member, strict)

    with pytest.raises(ClientError) as refused:
        DIRECT_DELETIONS[kind](_iam(aws, member), resource_id)

    assert refused.value.response["Error"]["Code"] == "DeleteConflict"
    assert listed(member, kind).keys() == {resource_id}


def test_an_enabled_mfa_device_cannot_be_deleted_before_it_is_deactivated(aws, member, strict):
    _iam(aws, member).create_user(UserName="alice")
    serial = _give_user_everything(aws, member, strict, "alice")["mfa"]

    with pytest.raises(ClientError, match="DeleteConflict"):
        _iam(aws, member).delete_virtual_mfa_device(SerialNumber=serial)


# --- In what order, and what stays ---------------------------------------------------------------


def test_a_user_loses_everything_iam_refuses_to_delete_it_with_then_goes(aws, member, strict, script):
    iam = _iam(aws, member)
    iam.create_user(UserName="alice")
    made = _give_user_everything(aws, member, strict, "alice")
    start = len(script.log)

    cleanup.delete(member, Resource(GLOBAL, "iam:user", "alice"))

    changes = [call for call in script.log[start:] if call.startswith(("Delete", "Deactivate", "Detach", "Remove"))]
    assert changes == [
        "DeleteLoginProfile",
        "DeleteAccessKey",
        "DeleteAccessKey",
        "DeactivateMFADevice",
        "DeleteVirtualMFADevice",  # only once deactivated: IAM refuses it while enabled
        "DeleteSSHPublicKey",
        "DeleteSigningCertificate",
        "DeleteServiceSpecificCredential",
        "RemoveUserFromGroup",
        "DeleteUserPolicy",
        "DetachUserPolicy",
        "DeleteUser",
    ]
    assert script.params["DeleteAccessKey"][-2:] == [{"UserName": "alice", "AccessKeyId": key} for key in made["keys"]]
    # The user's MFA device went with it, not left behind unassigned; the group and the policy
    # are deleted as themselves, later in the pass.
    assert iam.list_virtual_mfa_devices()["VirtualMFADevices"] == []
    assert iam.get_group(GroupName=made["group"])["Users"] == []
    assert iam.get_policy(PolicyArn=made["policy"])["Policy"]["AttachmentCount"] == 0


def test_a_policy_is_detached_everywhere_unset_as_a_boundary_and_its_versions_deleted_first(
    aws, member, strict, script
):
    iam = _iam(aws, member)
    arn, _ = _make_policy(aws, member, strict)
    start = len(script.log)

    cleanup.delete(member, Resource(GLOBAL, "iam:policy", arn))

    changes = [c for c in script.log[start:] if c.startswith(("Delete", "Detach"))]
    assert changes == [
        "DetachUserPolicy",
        "DetachGroupPolicy",
        "DetachRolePolicy",
        "DeleteUserPermissionsBoundary",
        "DeleteRolePermissionsBoundary",
        "DeletePolicyVersion",
        "DeletePolicyVersion",
        "DeletePolicy",
    ]
    assert {p["VersionId"] for p in script.params["DeletePolicyVersion"]} == {"v1", "v2"}
    # The users, group and roles stay (each is deleted as itself), without the policy.
    assert iam.list_attached_user_policies(UserName="dave")["AttachedPolicies"] == []
    assert iam.list_attached_group_policies(GroupName="lab-readers")["AttachedPolicies"] == []
    assert iam.list_attached_role_policies(RoleName="lab-reader")["AttachedPolicies"] == []
    assert "PermissionsBoundary" not in iam.get_role(RoleName="lab-bounded")["Role"]
    assert strict.user_boundaries == {}


def test_a_role_leaves_its_instance_profiles_which_stay_and_loses_its_policies(aws, member, strict, script):
    iam = _iam(aws, member)
    _make_role(aws, member, strict)

    cleanup.delete(member, Resource(GLOBAL, "iam:role", "lab-function"))

    assert listed(member, "iam:role") == {}
    assert set(listed(member, "iam:instance-profile")) == {"lab-profile", "spare-profile"}
    profile = iam.get_instance_profile(InstanceProfileName="lab-profile")["InstanceProfile"]
    assert profile["Roles"] == []
    assert script.calls["RemoveRoleFromInstanceProfile"] == 1


def test_something_removed_meanwhile_is_skipped_and_the_user_still_goes(aws, member, strict, script):
    iam = _iam(aws, member)
    iam.create_user(UserName="alice")
    _give_user_everything(aws, member, strict, "alice")

    def deleted_a_moment_before(params):
        strict.iam.delete_access_key(**params)  # the student, in the console
        message = f"The Access Key with id {params['AccessKeyId']} cannot be found."
        return Fault("NoSuchEntity", message, status=404)

    script.answer("iam", "DeleteAccessKey", deleted_a_moment_before)

    cleanup.delete(member, Resource(GLOBAL, "iam:user", "alice"))

    assert listed(member, "iam:user") == {}


# --- What cleanup keeps ---------------------------------------------------------------------------


def test_the_portals_role_aws_roles_and_the_schools_roles_are_kept_with_their_policies(aws, member, strict, settings):
    settings.PORTAL_CLEANUP_KEEP_ROLES = [*settings.PORTAL_CLEANUP_KEEP_ROLES, "school-audit-*"]
    iam = _iam(aws, member)
    iam.create_service_linked_role(AWSServiceName="elasticloadbalancing.amazonaws.com")
    reserved = "AWSReservedSSO_Student_0123456789abcdef"
    _role(iam, reserved, path="/aws-reserved/sso.amazonaws.com/", service="sso.amazonaws.com")
    kept_by_name = [
        "AWSControlTowerExecution",
        "aws-controltower-ReadOnlyExecutionRole",
        "AWSCloudFormationStackSetExecutionRole",
        "stacksets-exec-5c1d2ba7e4b7f6a1",
        "School-Audit-Reader",  # patterns match whatever the case
    ]
    for name in kept_by_name:
        _role(iam, name)
    # A permission set's customer managed policy, and a policy bounding a kept role.
    permission_set_policy = _policy(iam, "course-s3-access")
    iam.attach_role_policy(RoleName=reserved, PolicyArn=permission_set_policy)
    boundary = _policy(iam, "stacksets-boundary")
    iam.put_role_permissions_boundary(RoleName="stacksets-exec-5c1d2ba7e4b7f6a1", PermissionsBoundary=boundary)
    identity_center = "AWSSSO_0123456789abcdef_DO_NOT_DELETE"
    iam.create_saml_provider(Name=identity_center, SAMLMetadataDocument=SAML_METADATA)
    # What the student made next to them.
    _role(iam, "lab-function")
    students_policy = _policy(iam, "lab-s3")
    iam.attach_role_policy(RoleName="lab-function", PolicyArn=students_policy)
    students_provider = iam.create_saml_provider(Name="school-idp", SAMLMetadataDocument=SAML_METADATA)

    roles = {r["RoleName"] for r in iam.list_roles()["Roles"]}
    assert {settings.PORTAL_AWS_MEMBER_ROLE_NAME, reserved, *kept_by_name} < roles
    assert set(listed(member, "iam:role")) == {"lab-function"}
    assert set(listed(member, "iam:policy")) == {students_policy}
    assert set(listed(member, "iam:saml-provider")) == {students_provider["SAMLProviderArn"]}


def test_a_kept_role_is_not_deleted_even_when_asked_by_name(aws, member, strict, settings):
    portal_role = settings.PORTAL_AWS_MEMBER_ROLE_NAME

    with pytest.raises(PermanentAwsError) as refused:
        cleanup.delete(member, Resource(GLOBAL, "iam:role", portal_role))

    assert refused.value.code == "RoleKept"
    assert _iam(aws, member).get_role(RoleName=portal_role)["Role"]["Path"] == "/"


# --- A whole account ------------------------------------------------------------------------------


def _lab_function(aws, member: str, role_arn: str) -> None:
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handle(event, context):\n    return event\n")
    aws.client("lambda", account_id=member, region=REGION).create_function(
        FunctionName="grader",
        Runtime="python3.12",
        Role=role_arn,
        Handler="handler.handle",
        Code={"ZipFile": code.getvalue()},
    )


def test_an_account_is_cleaned_of_everything_in_one_pass_and_the_next_finds_nothing(aws, member, strict):
    iam = _iam(aws, member)
    for make in IAM_MAKERS.values():
        make(aws, member, strict)
    # An instance running with the instance profile, a function with its role.
    aws.client("ec2", account_id=member, region=REGION).run_instances(
        ImageId=IMAGE_ID, MinCount=1, MaxCount=1, IamInstanceProfile={"Name": "web"}
    )
    _lab_function(aws, member, iam.get_role(RoleName="lab-function")["Role"]["Arn"])
    found = cleanup.inventory(member, [REGION])
    kinds = [r.kind for r in found]
    first_iam = next(i for i, kind in enumerate(kinds) if kind.startswith("iam:"))
    assert all(kind.startswith("iam:") for kind in kinds[first_iam:])
    assert {r.region for r in found[first_iam:]} == {GLOBAL}

    for resource in found:
        cleanup.delete(member, resource)  # a single refusal would raise

    assert cleanup.inventory(member, [REGION]) == []
    # The portal's role is all that is left, and the account still answers through it.
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == ["OrganizationAccountAccessRole"]


def test_iam_is_listed_once_whatever_the_regions(aws, member, strict, script):
    _make_user(aws, member, strict)
    start = len(script.log)

    found = cleanup.inventory(member, [REGION, "eu-west-1", "eu-central-1"])

    users = [(r.region, r.kind, r.id) for r in found if r.kind == "iam:user"]
    assert users == [(GLOBAL, "iam:user", "alice")]
    assert script.log[start:].count("ListUsers") == 1


# --- IAM-user access, revoked ---------------------------------------------------------------------


def test_revoking_an_iam_user_deletes_it_whatever_the_student_added(aws, member, strict):
    iam = _iam(aws, member)
    iam_users.ensure_user(member, "cs101-stella", {"managed-by": "classroom-cloud"})
    iam_users.set_first_password(member, "cs101-stella")
    iam_users.put_guardrail_policy(member, "cs101-stella", json.loads(POLICY))
    # The student protected their sign-in and made keys and a Git credential of their own.
    _give_user_everything(aws, member, strict, "cs101-stella", password=False)

    iam_users.delete_user(member, "cs101-stella")

    with pytest.raises(ClientError, match="NoSuchEntity"):
        iam.get_user(UserName="cs101-stella")
    iam_users.delete_user(member, "cs101-stella")  # already gone: no error
