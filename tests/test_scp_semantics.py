"""What the guardrails let students do, decided by an IAM policy evaluator, not by reading JSON.

The SCPs are the ones the portal compiles and attaches (portal/aws/guardrails.py through
accounts_app/services/guardrails.py), placed as AWS places them: the baseline on the portal's OU,
the course's SCP on its OU, the freeze SCP on a frozen account, AWS's FullAWSAccess at every
level. The principal's own policies allow everything (a student holds IAMFullAccess and can give
themselves any permission), so each decision below is the guardrails' alone.
tests/support/policy_eval.py runs @cloud-copilot/iam-simulate.
"""

from __future__ import annotations

import pytest
from django.conf import settings

from accounts_app.models import Course
from accounts_app.services.guardrails import course_profile, portal_role
from portal.aws.guardrails import (
    MANAGED_BUDGET_PREFIX,
    baseline_policies,
    course_policy,
    freeze_policy,
    leaving_policy,
)
from tests.support.policy_eval import ALLOWED, EXPLICITLY_DENIED, scp_decision

ACCOUNT = "222233334444"
STUDENT = f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_ClassroomStudent_0123456789abcdef"
IAM_USER_STUDENT = f"arn:aws:iam::{ACCOUNT}:user/student"
ROOT_USER = f"arn:aws:iam::{ACCOUNT}:root"
COURSE_REGION = "eu-west-1"
SCHOOL_REGION_NOT_IN_COURSE = "us-west-2"
FOREIGN_REGION = "ap-southeast-2"
GLOBAL_REGION = "us-east-1"
BILLING_VIEW = f"arn:aws:billing::{ACCOUNT}:billingview/primary"


def portal() -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{settings.PORTAL_AWS_MEMBER_ROLE_NAME}"


def course(**fields) -> Course:
    values = {
        "code": "CS101",
        "allowed_regions": [COURSE_REGION],
        "allowed_services": ["ec2", "s3", "lambda"],
        "allowed_instance_families": ["t3", "t4g"],
    }
    return Course(**{**values, **fields})


def hierarchy(of: Course | None = None, *, frozen: bool = False) -> list[dict[str, dict]]:
    """The SCPs on the root, the portal's OU, the course's OU and the account, as attached."""
    baseline = baseline_policies(
        member_role_name=settings.PORTAL_AWS_MEMBER_ROLE_NAME, allowed_regions=settings.PORTAL_AWS_SCHOOL_REGIONS
    )
    course_scp = course_policy(course_profile(of or course()), portal_role=portal_role())
    account = {"classroom-cloud-freeze": freeze_policy(portal_role=portal_role())} if frozen else {}
    return [{}, baseline, {"classroom-cloud-course": course_scp}, account]


def decide(principal: str, action: str, resource: str, *, region: str = GLOBAL_REGION, scps=None, **context) -> str:
    """The guardrails' decision. AWS sends every request with the region it was made in; IAM,
    STS, billing and support are served from us-east-1, the default here."""
    keys = {"aws:RequestedRegion": region, **{name.replace("__", ":"): value for name, value in context.items()}}
    return scp_decision(scps or hierarchy(), action=action, resource=resource, principal_arn=principal, context=keys)


def instance(region: str = COURSE_REGION) -> str:
    return f"arn:aws:ec2:{region}:{ACCOUNT}:instance/i-0123456789abcdef0"


def test_the_school_regions_leave_room_for_the_tests():
    assert COURSE_REGION in settings.PORTAL_AWS_SCHOOL_REGIONS
    assert SCHOOL_REGION_NOT_IN_COURSE in settings.PORTAL_AWS_SCHOOL_REGIONS
    assert FOREIGN_REGION not in settings.PORTAL_AWS_SCHOOL_REGIONS


# --- Leaving, the portal's role and the portal's budgets ------------------------------------------


@pytest.mark.parametrize("principal", [STUDENT, IAM_USER_STUDENT, "portal"])
def test_nobody_in_a_member_account_takes_it_out_of_the_organization(principal):
    principal = portal() if principal == "portal" else principal
    assert decide(principal, "organizations:LeaveOrganization", "*") == EXPLICITLY_DENIED


@pytest.mark.parametrize(
    "action",
    [
        "iam:UpdateAssumeRolePolicy", "iam:AttachRolePolicy", "iam:PutRolePolicy", "iam:DetachRolePolicy",
        "iam:DeleteRolePolicy", "iam:DeleteRole", "iam:PutRolePermissionsBoundary", "iam:TagRole",
    ],
)
def test_students_cannot_change_or_delete_the_portals_role(action):
    portal_role_arn = portal()
    assert decide(STUDENT, action, portal_role_arn) == EXPLICITLY_DENIED
    assert decide(IAM_USER_STUDENT, action, portal_role_arn) == EXPLICITLY_DENIED
    # The portal keeps its own role in order (a brought account's trust policy is rewritten).
    assert decide(portal_role_arn, action, portal_role_arn) == ALLOWED


def test_a_role_named_like_the_portals_elsewhere_is_not_exempt():
    """The exemption is the role's full ARN: a student's role of the same name under a path of
    their own is a student's role."""
    impostor = f"arn:aws:iam::{ACCOUNT}:role/student/{settings.PORTAL_AWS_MEMBER_ROLE_NAME}"
    assert decide(impostor, "iam:DeleteRole", portal()) == EXPLICITLY_DENIED
    assert decide(impostor, "ec2:RunInstances", instance(FOREIGN_REGION), region=FOREIGN_REGION) == EXPLICITLY_DENIED


@pytest.mark.parametrize("action", ["iam:CreateRole", "iam:UpdateAssumeRolePolicy", "iam:AttachRolePolicy"])
def test_students_cannot_make_a_role_named_like_the_portals_under_a_path_of_their_own(action):
    """Nor can they prepare one: a role of that name exists only where the portal put it."""
    impostor = f"arn:aws:iam::{ACCOUNT}:role/student/{settings.PORTAL_AWS_MEMBER_ROLE_NAME}"
    assert decide(STUDENT, action, impostor) == EXPLICITLY_DENIED


def test_students_manage_their_own_roles():
    own_role = f"arn:aws:iam::{ACCOUNT}:role/lambda-execution"
    assert decide(STUDENT, "iam:CreateRole", own_role, region=GLOBAL_REGION) == ALLOWED
    assert decide(STUDENT, "iam:AttachRolePolicy", own_role, region=GLOBAL_REGION) == ALLOWED


@pytest.mark.parametrize("action", ["budgets:ModifyBudget", "budgets:UpdateBudgetAction", "budgets:DeleteBudgetAction"])
def test_students_cannot_change_the_portals_budgets(action):
    budget = f"arn:aws:budgets::{ACCOUNT}:budget/{MANAGED_BUDGET_PREFIX}{ACCOUNT}"
    resource = budget if action == "budgets:ModifyBudget" else f"{budget}/action/0b1c2d3e-example"
    assert decide(STUDENT, action, resource) == EXPLICITLY_DENIED
    assert decide(portal(), action, resource) == ALLOWED


def test_students_keep_budgets_of_their_own():
    assert decide(STUDENT, "budgets:ModifyBudget", f"arn:aws:budgets::{ACCOUNT}:budget/my-alarm") == ALLOWED


def test_the_root_user_of_a_member_account_can_do_nothing():
    assert decide(ROOT_USER, "s3:ListAllMyBuckets", "*", region=COURSE_REGION) == EXPLICITLY_DENIED
    assert decide(ROOT_USER, "iam:CreateAccessKey", f"arn:aws:iam::{ACCOUNT}:user/root-keys") == EXPLICITLY_DENIED


# --- The region and service fences ----------------------------------------------------------------


def test_students_work_in_the_courses_region():
    run = decide(STUDENT, "ec2:RunInstances", instance(), region=COURSE_REGION, ec2__InstanceType="t3.micro")
    assert run == ALLOWED
    assert decide(STUDENT, "s3:CreateBucket", "arn:aws:s3:::cs101-student-bucket", region=COURSE_REGION) == ALLOWED


@pytest.mark.parametrize("region", [SCHOOL_REGION_NOT_IN_COURSE, FOREIGN_REGION])
def test_students_cannot_leave_the_courses_regions(region):
    assert (
        decide(STUDENT, "ec2:RunInstances", instance(region), region=region, ec2__InstanceType="t3.micro")
        == EXPLICITLY_DENIED
    )
    bucket_in_region = decide(STUDENT, "s3:CreateBucket", "arn:aws:s3:::cs101-elsewhere", region=region)
    assert bucket_in_region == EXPLICITLY_DENIED


def test_a_foreign_region_is_fenced_even_for_a_course_that_lists_it():
    """The school's baseline on the portal's OU holds whatever a course's profile says."""
    loose = course(allowed_regions=[COURSE_REGION, FOREIGN_REGION])
    scps = hierarchy(loose)
    run = decide(STUDENT, "ec2:RunInstances", instance(FOREIGN_REGION), region=FOREIGN_REGION, scps=scps,
                 ec2__InstanceType="t3.micro")
    assert run == EXPLICITLY_DENIED


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("iam:CreateRole", f"arn:aws:iam::{ACCOUNT}:role/lambda-execution"),
        ("sts:GetCallerIdentity", "*"),
        ("support:CreateCase", "*"),
        ("ce:GetCostAndUsage", BILLING_VIEW),
        ("budgets:ViewBudget", f"arn:aws:budgets::{ACCOUNT}:budget/my-alarm"),
    ],
)
def test_global_services_answer_from_us_east_1_whatever_the_courses_regions(action, resource):
    """IAM, STS, billing and support are served from us-east-1: a course in Europe still signs
    in, manages roles and sees its bill."""
    assert GLOBAL_REGION not in course().allowed_regions
    assert decide(STUDENT, action, resource, region=GLOBAL_REGION) == ALLOWED


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("dynamodb:CreateTable", f"arn:aws:dynamodb:{COURSE_REGION}:{ACCOUNT}:table/notes"),
        ("sagemaker:CreateNotebookInstance", f"arn:aws:sagemaker:{COURSE_REGION}:{ACCOUNT}:notebook-instance/nb"),
        ("rds:CreateDBInstance", f"arn:aws:rds:{COURSE_REGION}:{ACCOUNT}:db:notes"),
    ],
)
def test_students_cannot_use_a_service_the_course_does_not_allow(action, resource):
    assert decide(STUDENT, action, resource, region=COURSE_REGION) == EXPLICITLY_DENIED


def test_a_service_the_course_allows_is_open():
    function = f"arn:aws:lambda:{COURSE_REGION}:{ACCOUNT}:function:hello"
    assert decide(STUDENT, "lambda:CreateFunction", function, region=COURSE_REGION) == ALLOWED


# --- Instance sizes -------------------------------------------------------------------------------


@pytest.mark.parametrize(("instance_type", "expected"), [
    ("t3.micro", ALLOWED), ("t4g.small", ALLOWED), ("p4d.24xlarge", EXPLICITLY_DENIED),
    ("g5.xlarge", EXPLICITLY_DENIED), ("m5.large", EXPLICITLY_DENIED),
])
@pytest.mark.parametrize("action", ["ec2:RunInstances", "ec2:StartInstances"])
def test_only_the_courses_instance_families_start(action, instance_type, expected):
    assert decide(STUDENT, action, instance(), region=COURSE_REGION, ec2__InstanceType=instance_type) == expected


@pytest.mark.parametrize(("instance_types", "expected"), [
    (["ml.t3.medium"], ALLOWED),
    (["ml.p3.2xlarge"], EXPLICITLY_DENIED),
    (["ml.t3.medium", "ml.g5.12xlarge"], EXPLICITLY_DENIED),
])
def test_sagemaker_is_limited_to_small_instances_where_allowed(instance_types, expected):
    scps = hierarchy(course(allowed_services=["ec2", "sagemaker"]))
    notebook = f"arn:aws:sagemaker:{COURSE_REGION}:{ACCOUNT}:notebook-instance/nb"
    decided = decide(STUDENT, "sagemaker:CreateNotebookInstance", notebook, region=COURSE_REGION, scps=scps,
                     sagemaker__InstanceTypes=instance_types)
    assert decided == expected


# --- A frozen account -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("ec2:RunInstances", instance()),
        ("ec2:DescribeInstances", "*"),
        ("s3:GetObject", "arn:aws:s3:::cs101-student-bucket/notes.txt"),
        ("lambda:InvokeFunction", f"arn:aws:lambda:{COURSE_REGION}:{ACCOUNT}:function:hello"),
        ("iam:CreateAccessKey", f"arn:aws:iam::{ACCOUNT}:user/student"),
    ],
)
def test_a_frozen_account_can_do_nothing_else(action, resource):
    context = {"ec2__InstanceType": "t3.micro"} if action == "ec2:RunInstances" else {}
    frozen = hierarchy(frozen=True)
    assert decide(STUDENT, action, resource, region=COURSE_REGION, **context) == ALLOWED
    assert decide(STUDENT, action, resource, region=COURSE_REGION, scps=frozen, **context) == EXPLICITLY_DENIED


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("ce:GetCostAndUsage", BILLING_VIEW),
        ("budgets:ViewBudget", f"arn:aws:budgets::{ACCOUNT}:budget/{MANAGED_BUDGET_PREFIX}{ACCOUNT}"),
        ("support:CreateCase", "*"),
        ("aws-portal:ViewBilling", "*"),
        ("sts:GetCallerIdentity", "*"),
    ],
)
def test_a_frozen_account_still_sees_its_bill_and_asks_support(action, resource):
    assert decide(STUDENT, action, resource, region=GLOBAL_REGION, scps=hierarchy(frozen=True)) == ALLOWED


# --- The portal's own role ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "resource", "region"),
    [
        ("ec2:TerminateInstances", instance(FOREIGN_REGION), FOREIGN_REGION),
        ("dynamodb:DeleteTable", f"arn:aws:dynamodb:{FOREIGN_REGION}:{ACCOUNT}:table/left-behind", FOREIGN_REGION),
        ("s3:DeleteBucket", "arn:aws:s3:::cs101-left-behind", SCHOOL_REGION_NOT_IN_COURSE),
    ],
)
def test_the_portals_role_cleans_up_in_every_region_and_service_even_when_frozen(action, resource, region):
    assert decide(STUDENT, action, resource, region=region) == EXPLICITLY_DENIED
    assert decide(portal(), action, resource, region=region) == ALLOWED
    assert decide(portal(), action, resource, region=region, scps=hierarchy(frozen=True)) == ALLOWED


# --- An account being handed over, in the leaving OU -----------------------------------------------


def leaving(*, frozen: bool = False) -> list[dict[str, dict]]:
    """The leaving OU sits directly under the organization's root (tests/test_handover.py checks
    aws_bootstrap puts it there): the portal OU's deny-root SCP does not reach it. A frozen
    account keeps its freeze SCP until it has left."""
    account = {"classroom-cloud-freeze": freeze_policy(portal_role=portal_role())} if frozen else {}
    return [{}, {"classroom-cloud-leaving": leaving_policy(portal_role=portal_role())}, account]


OWNER_TASKS = [
    ("payments:CreatePaymentInstrument", "*"),
    ("payments:UpdatePaymentPreferences", "*"),
    ("supportplans:StartSupportPlanUpdate", "*"),
    ("account:PutContactInformation", f"arn:aws:account::{ACCOUNT}:account"),
    ("account:PutAlternateContact", f"arn:aws:account::{ACCOUNT}:account"),
    ("aws-portal:ModifyPaymentMethods", "*"),
    ("billing:UpdateBillingPreferences", "*"),
]


@pytest.mark.parametrize("frozen", [False, True], ids=["open", "frozen"])
@pytest.mark.parametrize(("action", "resource"), OWNER_TASKS)
def test_the_root_user_in_the_leaving_ou_can_do_the_owners_tasks(action, resource, frozen):
    assert decide(ROOT_USER, action, resource, scps=hierarchy(frozen=frozen)) == EXPLICITLY_DENIED
    assert decide(ROOT_USER, action, resource, scps=leaving(frozen=frozen)) == ALLOWED


@pytest.mark.parametrize("frozen", [False, True], ids=["open", "frozen"])
@pytest.mark.parametrize(
    ("action", "resource", "region"),
    [
        ("ec2:RunInstances", instance(), COURSE_REGION),
        ("s3:CreateBucket", "arn:aws:s3:::bought-by-root", COURSE_REGION),
        ("iam:CreateAccessKey", f"arn:aws:iam::{ACCOUNT}:user/root-keys", GLOBAL_REGION),
        ("organizations:LeaveOrganization", "*", GLOBAL_REGION),
        ("budgets:ModifyBudget", f"arn:aws:budgets::{ACCOUNT}:budget/{MANAGED_BUDGET_PREFIX}{ACCOUNT}", GLOBAL_REGION),
    ],
)
@pytest.mark.parametrize("principal", [ROOT_USER, STUDENT], ids=["root", "student"])
def test_nobody_in_the_leaving_ou_does_anything_else(principal, action, resource, region, frozen):
    context = {"ec2__InstanceType": "t3.micro"} if action == "ec2:RunInstances" else {}
    assert decide(principal, action, resource, region=region, scps=leaving(frozen=frozen), **context) == EXPLICITLY_DENIED


def test_a_frozen_account_stays_frozen_for_its_root_user_in_its_course():
    """The freeze lets the root user do the owner's tasks only; in its course the baseline's
    deny-root still refuses it even those."""
    assert decide(ROOT_USER, "ec2:DescribeInstances", "*", region=COURSE_REGION, scps=leaving(frozen=True)) == (
        EXPLICITLY_DENIED
    )
    assert decide(ROOT_USER, "payments:CreatePaymentInstrument", "*", scps=hierarchy(frozen=True)) == EXPLICITLY_DENIED
