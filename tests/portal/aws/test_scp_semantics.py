"""What the guardrails let students do, decided by an IAM policy evaluator, not by reading JSON.

The SCPs are the ones the portal compiles and attaches (portal/aws/guardrails.py through
accounts_app/services/guardrails.py), placed as AWS places them: the baseline on the portal's OU,
the course's SCP on its OU, the freeze SCP on a frozen account, AWS's FullAWSAccess at every
level. The principal's own policies allow everything (a student holds IAMFullAccess and can give
themselves any permission), so each decision below is the guardrails' alone.
tests/support/policy_eval.py runs @cloud-copilot/iam-simulate.
"""

from __future__ import annotations

import json

import pytest
from django.conf import settings

from accounts_app.models import Course
from accounts_app.services.guardrails import course_profile, portal_role
from portal.aws.guardrails import (
    COMMITMENT_ACTIONS,
    MANAGED_BUDGET_PREFIX,
    SCP_MAX_CHARACTERS,
    baseline_policies,
    course_policy,
    freeze_policy,
    leaving_policy,
)
from tests.support.policy_eval import ALLOWED, EXPLICITLY_DENIED, describe_actions, scp_decision

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
        "iam:UpdateAssumeRolePolicy",
        "iam:AttachRolePolicy",
        "iam:PutRolePolicy",
        "iam:DetachRolePolicy",
        "iam:DeleteRolePolicy",
        "iam:DeleteRole",
        "iam:PutRolePermissionsBoundary",
        "iam:TagRole",
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
    run = decide(
        STUDENT,
        "ec2:RunInstances",
        instance(FOREIGN_REGION),
        region=FOREIGN_REGION,
        scps=scps,
        ec2__InstanceType="t3.micro",
    )
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


@pytest.mark.parametrize(
    ("instance_type", "expected"),
    [
        ("t3.micro", ALLOWED),
        ("t4g.small", ALLOWED),
        ("p4d.24xlarge", EXPLICITLY_DENIED),
        ("g5.xlarge", EXPLICITLY_DENIED),
        ("m5.large", EXPLICITLY_DENIED),
    ],
)
@pytest.mark.parametrize("action", ["ec2:RunInstances", "ec2:StartInstances"])
def test_only_the_courses_instance_families_start(action, instance_type, expected):
    assert decide(STUDENT, action, instance(), region=COURSE_REGION, ec2__InstanceType=instance_type) == expected


@pytest.mark.parametrize(
    ("instance_types", "expected"),
    [
        (["ml.t3.medium"], ALLOWED),
        (["ml.p3.2xlarge"], EXPLICITLY_DENIED),
        (["ml.t3.medium", "ml.g5.12xlarge"], EXPLICITLY_DENIED),
    ],
)
def test_sagemaker_is_limited_to_small_instances_where_allowed(instance_types, expected):
    scps = hierarchy(course(allowed_services=["ec2", "sagemaker"]))
    notebook = f"arn:aws:sagemaker:{COURSE_REGION}:{ACCOUNT}:notebook-instance/nb"
    decided = decide(
        STUDENT,
        "sagemaker:CreateNotebookInstance",
        notebook,
        region=COURSE_REGION,
        scps=scps,
        sagemaker__InstanceTypes=instance_types,
    )
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


# --- Commitments that outlive the account ---------------------------------------------------------

# AWS allows at most five SCPs on one target, FullAWSAccess included (Organizations quotas).
MAX_SCPS_PER_TARGET = 5


def baseline() -> dict[str, dict]:
    return hierarchy()[1]


def in_course_region(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{COURSE_REGION}:{ACCOUNT}:{resource}"


def test_the_baseline_fits_on_the_portals_ou():
    policies = baseline()
    assert 1 + len(policies) <= MAX_SCPS_PER_TARGET
    for name, document in policies.items():
        assert len(json.dumps(document, separators=(",", ":"))) <= SCP_MAX_CHARACTERS, name


def test_every_commitment_action_is_one_aws_has():
    """A misspelt action in a Deny denies nothing, silently."""
    described = describe_actions(COMMITMENT_ACTIONS)
    assert [action for action, found in described.items() if found is None] == []


COMMITMENTS = [
    ("ec2:PurchaseReservedInstancesOffering", "*"),
    ("ec2:AcceptReservedInstancesExchangeQuote", in_course_region("ec2", "reserved-instances/ri-0123")),
    ("savingsplans:CreateSavingsPlan", "*"),
    ("ec2:PurchaseCapacityBlock", in_course_region("ec2", "capacity-reservation/cr-0123")),
    ("ec2:CreateCapacityReservation", in_course_region("ec2", "capacity-reservation/cr-0123")),
    ("ec2:PurchaseScheduledInstances", "*"),
    ("ec2:AllocateHosts", in_course_region("ec2", "dedicated-host/h-0123")),
    ("ec2:PurchaseHostReservation", in_course_region("ec2", "dedicated-host/h-0123")),
    ("rds:PurchaseReservedDBInstancesOffering", in_course_region("rds", "ri:lab-db")),
    ("elasticache:PurchaseReservedCacheNodesOffering", in_course_region("elasticache", "reserved-instance:lab")),
    ("es:PurchaseReservedInstanceOffering", "*"),
    ("redshift:PurchaseReservedNodeOffering", "*"),
    ("dynamodb:PurchaseReservedCapacityOfferings", "*"),
    ("memorydb:PurchaseReservedNodesOffering", in_course_region("memorydb", "reservednode/lab")),
    ("bedrock:CreateProvisionedModelThroughput", in_course_region("bedrock", "custom-model/lab")),
    ("sagemaker:CreateTrainingPlan", in_course_region("sagemaker", "training-plan/lab")),
    ("aws-marketplace:Subscribe", "*"),
    ("aws-marketplace:AcceptAgreementRequest", "*"),
    ("shield:CreateSubscription", "*"),
    ("route53domains:RegisterDomain", "*"),
    ("route53domains:TransferDomain", "*"),
    ("route53domains:RenewDomain", "*"),
]


@pytest.mark.parametrize(("action", "resource"), COMMITMENTS)
def test_nobody_buys_a_commitment_that_outlives_the_account(action, resource):
    """The baseline alone denies it, whatever a course allows; the portal's own role included,
    which never buys one."""
    region = COURSE_REGION if resource.startswith("arn:aws:") else GLOBAL_REGION
    baseline_only = [{}, baseline(), {}]
    for principal in (STUDENT, IAM_USER_STUDENT, portal()):
        assert decide(principal, action, resource, region=region, scps=baseline_only) == EXPLICITLY_DENIED


def test_only_the_root_user_picks_a_paid_support_plan():
    baseline_only = [{}, {name: p for name, p in baseline().items() if name != "classroom-cloud-deny-root"}, {}]
    assert decide(STUDENT, "supportplans:CreateSupportPlanSchedule", "*", scps=baseline_only) == EXPLICITLY_DENIED
    assert decide(ROOT_USER, "supportplans:CreateSupportPlanSchedule", "*", scps=baseline_only) == ALLOWED


def test_students_still_look_at_reservations_and_domains():
    """Only buying is denied: the console's pages that list offerings still open."""
    baseline_only = [{}, baseline(), {}]
    assert (
        decide(STUDENT, "ec2:DescribeReservedInstancesOfferings", "*", region=COURSE_REGION, scps=baseline_only)
        == ALLOWED
    )
    assert decide(STUDENT, "route53domains:CheckDomainAvailability", "*", scps=baseline_only) == ALLOWED


# --- Fleets, Spot requests and Auto Scaling in a course that fences instance families -------------

FLEETS = [
    ("ec2:RequestSpotInstances", in_course_region("ec2", "spot-instances-request/sir-0123")),
    ("ec2:RequestSpotFleet", in_course_region("ec2", "spot-fleet-request/sfr-0123")),
    ("ec2:ModifySpotFleetRequest", in_course_region("ec2", "spot-fleet-request/sfr-0123")),
    ("ec2:CreateFleet", in_course_region("ec2", "fleet/fleet-0123")),
    ("ec2:ModifyFleet", in_course_region("ec2", "fleet/fleet-0123")),
]


@pytest.mark.parametrize(("action", "resource"), FLEETS)
def test_fleets_and_spot_requests_are_denied_where_families_are_fenced(action, resource):
    """Their instances are launched by EC2's service-linked roles, which no SCP reaches: no
    instance-type condition could hold, so the APIs are closed."""
    assert decide(STUDENT, action, resource, region=COURSE_REGION) == EXPLICITLY_DENIED
    unfenced = hierarchy(course(allowed_instance_families=[]))
    assert decide(STUDENT, action, resource, region=COURSE_REGION, scps=unfenced) == ALLOWED


def test_a_fleets_instance_of_a_fenced_family_is_denied_on_its_own_too():
    """An instant fleet's instance carries its type: a GPU in it is refused twice over."""
    decided = decide(STUDENT, "ec2:CreateFleet", instance(), region=COURSE_REGION, ec2__InstanceType="g5.xlarge")
    assert decided == EXPLICITLY_DENIED


@pytest.mark.parametrize(("instance_type", "expected"), [("t3.micro", ALLOWED), ("g5.xlarge", EXPLICITLY_DENIED)])
def test_spot_through_run_instances_keeps_to_the_families(instance_type, expected):
    """Spot capacity stays open the way AWS recommends, RunInstances with market options, where
    the instance type is checked."""
    decided = decide(STUDENT, "ec2:RunInstances", instance(), region=COURSE_REGION, ec2__InstanceType=instance_type)
    assert decided == expected


def test_the_portal_brings_a_students_fleet_down_when_freezing():
    assert decide(portal(), "ec2:ModifyFleet", FLEETS[4][1], region=COURSE_REGION) == ALLOWED


AUTO_SCALING_GROUP = in_course_region("autoscaling", "autoScalingGroup:0123-abcd:autoScalingGroupName/lab")


@pytest.mark.parametrize(("instance_types", "expected"), [("t4g.small", ALLOWED), ("p3.2xlarge", EXPLICITLY_DENIED)])
@pytest.mark.parametrize("action", ["autoscaling:CreateAutoScalingGroup", "autoscaling:UpdateAutoScalingGroup"])
def test_auto_scaling_overrides_keep_to_the_families(action, instance_types, expected):
    """AWS's Service Authorization Reference types autoscaling:InstanceTypes as one String (the
    evaluator follows it), so each request here names one override type."""
    scps = hierarchy(course(allowed_services=["ec2", "autoscaling"]))
    decided = decide(
        STUDENT, action, AUTO_SCALING_GROUP, region=COURSE_REGION, scps=scps, autoscaling__InstanceTypes=instance_types
    )
    assert decided == expected


def test_scaling_a_group_to_zero_names_no_type_and_is_not_denied():
    scps = hierarchy(course(allowed_services=["ec2", "autoscaling"]))
    assert (
        decide(portal(), "autoscaling:UpdateAutoScalingGroup", AUTO_SCALING_GROUP, region=COURSE_REGION, scps=scps)
        == ALLOWED
    )


@pytest.mark.parametrize(("instance_type", "expected"), [("t3.micro", ALLOWED), ("p3.2xlarge", EXPLICITLY_DENIED)])
def test_launch_configurations_keep_to_the_families(instance_type, expected):
    scps = hierarchy(course(allowed_services=["ec2", "autoscaling"]))
    configuration = in_course_region("autoscaling", "launchConfiguration:0123-abcd:launchConfigurationName/lab")
    decided = decide(
        STUDENT,
        "autoscaling:CreateLaunchConfiguration",
        configuration,
        region=COURSE_REGION,
        scps=scps,
        autoscaling__InstanceType=instance_type,
    )
    assert decided == expected


# --- An account being handed over, in the leaving OU -----------------------------------------------


def leaving(*, frozen: bool = False) -> list[dict[str, dict]]:
    """The leaving OU sits directly under the organization's root
    (tests/accounts_app/services/test_handover_leaving.py checks aws_bootstrap puts it there): the
    portal OU's deny-root SCP does not reach it. A frozen account keeps its freeze SCP until it
    has left."""
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
    assert (
        decide(principal, action, resource, region=region, scps=leaving(frozen=frozen), **context) == EXPLICITLY_DENIED
    )


def test_a_frozen_account_stays_frozen_for_its_root_user_in_its_course():
    """The freeze lets the root user do the owner's tasks only; in its course the baseline's
    deny-root still refuses it even those."""
    assert decide(ROOT_USER, "ec2:DescribeInstances", "*", region=COURSE_REGION, scps=leaving(frozen=True)) == (
        EXPLICITLY_DENIED
    )
    assert decide(ROOT_USER, "payments:CreatePaymentInstrument", "*", scps=hierarchy(frozen=True)) == EXPLICITLY_DENIED
