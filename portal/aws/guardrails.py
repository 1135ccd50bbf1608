"""Policy documents: the portal's baseline SCPs, a course's SCP compiled from its guardrail
profile, the IAM-user policy, and the permission sets. Pure functions; nothing here calls AWS."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from portal.aws import bedrock_models
from portal.aws.display import STUDENT_PERMISSION_SET

# AWS Organizations' quota for one service control policy, as stored: the portal sends it minified
# (organizations.py), so no whitespace counts.
SCP_MAX_CHARACTERS = 5_120
MANAGED_BUDGET_PREFIX = "classroom-cloud-"

# Services that are not regional (or must work from anywhere for the console to work). A region
# allow-list must not deny them, or students cannot even sign in.
GLOBAL_SERVICES = [
    "a4b:*",
    "account:*",
    "aws-portal:*",
    "billing:*",
    "budgets:*",
    "ce:*",
    "chime:*",
    "cloudfront:*",
    "config:*",
    "cur:*",
    "directconnect:*",
    "ec2:DescribeRegions",
    "ec2:DescribeTransitGateways",
    "ec2:DescribeVpnGateways",
    "fms:*",
    "globalaccelerator:*",
    "health:*",
    "iam:*",
    "importexport:*",
    "kms:*",
    "mobileanalytics:*",
    "networkmanager:*",
    "organizations:*",
    "pricing:*",
    "route53:*",
    "route53domains:*",
    "route53-recovery-cluster:*",
    "route53-recovery-control-config:*",
    "route53-recovery-readiness:*",
    "s3:GetAccountPublic*",
    "s3:ListAllMyBuckets",
    "s3:ListMultiRegionAccessPoints",
    "s3:PutAccountPublic*",
    "shield:*",
    "sts:*",
    "support:*",
    "trustedadvisor:*",
    "waf-regional:*",
    "waf:*",
    "wafv2:*",
    "wellarchitected:*",
    "consolidatedbilling:*",
    "freetier:*",
    "invoicing:*",
    "payments:*",
    "tax:*",
    "sso:*",
    "signin:*",
    "notifications:*",
]
# Even where a course allows SageMaker, only small instances: a large GPU endpoint left running
# costs hundreds of dollars a day.
SAGEMAKER_SMALL_INSTANCES = ["ml.t2.*", "ml.t3.*", "ml.m5.large", "ml.m5.xlarge"]
SAGEMAKER_CREATE_ACTIONS = [
    "sagemaker:CreateEndpointConfig",
    "sagemaker:CreateHyperParameterTuningJob",
    "sagemaker:CreateNotebookInstance",
    "sagemaker:CreateProcessingJob",
    "sagemaker:CreateTrainingJob",
    "sagemaker:CreateTransformJob",
]
# What every student needs whatever the course allows: identity, billing pages, support.
ESSENTIAL_SERVICES = [
    "iam",
    "sts",
    "support",
    "aws-portal",
    "billing",
    "ce",
    "budgets",
    "cloudshell",
    "health",
    "signin",
    "sso",
    "freetier",
    "payments",
    "invoicing",
    "tax",
    "notifications",
    "resource-groups",
    "tag",
]

# Purchases whose bill outlives the account: a reservation, a plan, a term. Closing the account
# does not end them (AWS keeps billing the organization for the term), so no course, however
# trusting, may make one. Names checked against AWS's Service Authorization Reference.
COMMITMENT_ACTIONS = [
    # EC2 Reserved Instances, scheduled instances, capacity blocks and reservations, dedicated hosts
    "ec2:PurchaseReservedInstancesOffering",
    "ec2:AcceptReservedInstancesExchangeQuote",
    "ec2:ModifyReservedInstances",
    "ec2:PurchaseScheduledInstances",
    "ec2:PurchaseCapacityBlock",
    "ec2:PurchaseCapacityBlockExtension",
    "ec2:CreateCapacityReservation",
    "ec2:CreateCapacityReservationFleet",
    "ec2:ModifyCapacityReservation",
    "ec2:AcceptCapacityReservationBillingOwnership",
    "ec2:AllocateHosts",
    "ec2:PurchaseHostReservation",
    "savingsplans:CreateSavingsPlan",
    # Reserved database, cache, search, warehouse and streaming capacity
    "rds:PurchaseReservedDBInstancesOffering",
    "elasticache:PurchaseReservedCacheNodesOffering",
    "es:PurchaseReservedElasticsearchInstanceOffering",
    "es:PurchaseReservedInstanceOffering",
    "redshift:PurchaseReservedNodeOffering",
    "redshift:AcceptReservedNodeExchange",
    "dynamodb:PurchaseReservedCapacityOfferings",
    "memorydb:PurchaseReservedNodesOffering",
    "medialive:PurchaseOffering",
    # Reserved ML capacity
    "bedrock:CreateProvisionedModelThroughput",
    "sagemaker:CreateTrainingPlan",
    # Subscriptions and terms: Marketplace, Shield Advanced (one year), Outposts, Snowball
    "aws-marketplace:Subscribe",
    "aws-marketplace:AcceptAgreementRequest",
    "aws-marketplace:AcceptAgreementApprovalRequest",
    "aws-marketplace:CreateAgreementRequest",
    "shield:CreateSubscription",
    "outposts:CreateOrder",
    "outposts:CreateOutpost",
    "snowball:CreateLongTermPricing",
    # Domains: registered for a year at least, and renewed automatically
    "route53domains:RegisterDomain",
    "route53domains:TransferDomain",
    "route53domains:RenewDomain",
    "route53domains:AcceptDomainTransferFromAnotherAwsAccount",
]
# Choosing a paid support plan bills monthly with a minimum; only the root user may, and only where
# the portal lets root act at all (an account being handed over picks its own plan).
SUPPORT_PLAN_ACTIONS = ["supportplans:CreateSupportPlanSchedule"]
ROOT_USER_ARN = "arn:aws:iam::*:root"
# Fleets and the legacy Spot APIs launch through EC2's service-linked roles, which SCPs do not
# reach: an instance-type condition on them cannot hold. A course that fences instance families
# gets On-Demand and Spot instances through RunInstances (and Auto Scaling) only.
FLEET_ACTIONS = [
    "ec2:CreateFleet",
    "ec2:ModifyFleet",
    "ec2:RequestSpotFleet",
    "ec2:ModifySpotFleetRequest",
    "ec2:RequestSpotInstances",
]
# What runs a Bedrock model. Converse and StartAsyncInvoke are authorized as bedrock:InvokeModel,
# ConverseStream as bedrock:InvokeModelWithResponseStream (Bedrock's API reference); batch
# inference is CreateModelInvocationJob.
BEDROCK_INVOKE_ACTIONS = [
    "bedrock:CreateModelInvocationJob",
    "bedrock:InvokeModel",
    "bedrock:InvokeModelWithResponseStream",
]
# What such a call names besides a model, each authorized with the same action while the model it
# runs is authorized too: an application inference profile (AWS authorizes the profile or model
# it copies as well), an asynchronous invocation, a batch job.
BEDROCK_MODEL_COMPANIONS = [
    "arn:aws:bedrock:*:*:application-inference-profile/*",
    "arn:aws:bedrock:*:*:async-invoke/*",
    "arn:aws:bedrock:*:*:model-invocation-job/*",
]
# Actions whose instance resource carries ec2:InstanceType (Service Authorization Reference).
INSTANCE_TYPE_ACTIONS = ["ec2:RunInstances", "ec2:StartInstances", "ec2:ModifyInstanceAttribute", "ec2:ImportInstance"]
AUTO_SCALING_GROUP_ACTIONS = ["autoscaling:CreateAutoScalingGroup", "autoscaling:UpdateAutoScalingGroup"]


class GuardrailTooLarge(ValueError):
    """The compiled SCP is over AWS's size limit; the message says what to trim."""


@dataclass(frozen=True)
class GuardrailProfile:
    regions: list[str]
    services: list[str]
    instance_families: list[str]
    bedrock_model_families: list[str] = field(default_factory=list)  # keys of bedrock_models.FAMILIES


@dataclass(frozen=True)
class PermissionSetSpec:
    name: str
    description: str
    managed_policy_arns: list[str]


PERMISSION_SETS = {
    "student": PermissionSetSpec(
        STUDENT_PERMISSION_SET,
        "Students: build freely inside their own account, within the course SCP.",
        ["arn:aws:iam::aws:policy/PowerUserAccess", "arn:aws:iam::aws:policy/IAMFullAccess"],
    ),
    # View-only, not ReadOnlyAccess: ReadOnlyAccess reads the data itself (s3:GetObject,
    # dynamodb:GetItem, logs:GetLogEvents…); ViewOnlyAccess lists and describes
    # resources without reading their contents.
    "ta": PermissionSetSpec(
        "ClassroomTA",
        "Teaching assistants: see resources, settings and billing; read no student data, change nothing.",
        [
            "arn:aws:iam::aws:policy/job-function/ViewOnlyAccess",
            "arn:aws:iam::aws:policy/AWSBillingReadOnlyAccess",
        ],
    ),
    "instructor": PermissionSetSpec(
        "ClassroomInstructor",
        "Instructors: administer student accounts.",
        ["arn:aws:iam::aws:policy/AdministratorAccess"],
    ),
}


def _policy(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _unless_portal(statement: dict, portal_role: str) -> dict:
    """The statement, not applied to the portal's own role in the account: the portal must still
    configure, clean up and close an account that is frozen or outside its regions."""
    condition = {**statement.get("Condition", {}), "ArnNotLike": {"aws:PrincipalArn": portal_role}}
    return {**statement, "Condition": condition}


def portal_role_arn(member_role_name: str) -> str:
    return f"arn:aws:iam::*:role/{member_role_name}"


def _minified(document: dict) -> str:
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def baseline_policies(*, member_role_name: str, allowed_regions: list[str]) -> dict[str, dict]:
    """The SCPs on the portal's parent OU, by name.

    The exemption names the role at the root path only: ArnLike matches each part of an ARN on
    its own, and the `*` of the account part never reaches into the resource part, so a role of
    the same name under another path (role/x/<name>) is not the portal's role. Nobody but the role
    itself may create, change or delete a role of that name at any path; and the role trusts only
    the portal (AWS makes it so in the accounts it creates; the portal rewrites it in a brought
    account, accounts_app/services/access_roles.py): only the portal can act as it.
    """
    protected_role = portal_role_arn(member_role_name)
    same_name_elsewhere = f"arn:aws:iam::*:role/*/{member_role_name}"
    return {
        # The portal's OU holds AWS's maximum of five SCPs (FullAWSAccess and these four): what
        # outlives the account shares the policy that keeps the account in the organization.
        "classroom-cloud-deny-leaving": _policy(
            {
                "Sid": "DenyLeavingTheOrganization",
                "Effect": "Deny",
                "Action": "organizations:LeaveOrganization",
                "Resource": "*",
            },
            # The portal's own role included: it never buys a commitment, and its credentials
            # are the ones a leaked secret or a bug would spend with.
            {
                "Sid": "DenyCommitmentsThatOutliveTheAccount",
                "Effect": "Deny",
                "Action": COMMITMENT_ACTIONS,
                "Resource": "*",
            },
            {
                "Sid": "DenyPaidSupportPlans",
                "Effect": "Deny",
                "Action": SUPPORT_PLAN_ACTIONS,
                "Resource": "*",
                "Condition": {"StringNotLike": {"aws:PrincipalArn": ROOT_USER_ARN}},
            },
        ),
        "classroom-cloud-protect-portal": _policy(
            {
                "Sid": "ProtectThePortalRole",
                "Effect": "Deny",
                "Action": ["iam:*"],
                "Resource": [protected_role, same_name_elsewhere],
                "Condition": {"ArnNotLike": {"aws:PrincipalArn": protected_role}},
            },
            {
                "Sid": "ProtectThePortalBudgets",
                "Effect": "Deny",
                "Action": ["budgets:ModifyBudget", "budgets:DeleteBudgetAction", "budgets:UpdateBudgetAction"],
                "Resource": [f"arn:aws:budgets::*:budget/{MANAGED_BUDGET_PREFIX}*"],
                "Condition": {"ArnNotLike": {"aws:PrincipalArn": protected_role}},
            },
        ),
        "classroom-cloud-deny-root": _policy(
            {
                "Sid": "DenyRootUser",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:root"}},
            }
        ),
        "classroom-cloud-regions": _policy(
            _unless_portal(_region_statement(allowed_regions, sid="SchoolRegions"), protected_role)
        ),
    }


def _region_statement(regions: list[str], *, sid: str) -> dict:
    return {
        "Sid": sid,
        "Effect": "Deny",
        "NotAction": GLOBAL_SERVICES,
        "Resource": "*",
        "Condition": {"StringNotEquals": {"aws:RequestedRegion": sorted(regions)}},
    }


def course_policy(profile: GuardrailProfile, *, portal_role: str) -> dict:
    """The course SCP: only the allowed services, in the allowed regions, on the allowed EC2
    instance families and, where Bedrock is allowed, the allowed model families; the portal's own
    role excepted, which cleans up in every service and region. Raises GuardrailTooLarge when it
    would not fit in an SCP."""
    allowed = sorted({f"{service}:*" for service in [*profile.services, *ESSENTIAL_SERVICES]})
    only_allowed = {"Sid": "OnlyAllowedServices", "Effect": "Deny", "NotAction": allowed, "Resource": "*"}
    statements = [
        _unless_portal(only_allowed, portal_role),
        _unless_portal(_region_statement(profile.regions, sid="OnlyAllowedRegions"), portal_role),
    ]
    if profile.instance_families:
        statements.extend(_instance_family_statements(profile.instance_families, portal_role))
    if "sagemaker" in profile.services:
        statements.append(
            {
                "Sid": "OnlySmallSageMakerInstances",
                "Effect": "Deny",
                "Action": SAGEMAKER_CREATE_ACTIONS,
                "Resource": "*",
                "Condition": {"ForAnyValue:StringNotLike": {"sagemaker:InstanceTypes": SAGEMAKER_SMALL_INSTANCES}},
            }
        )
    fenced_models = "bedrock" in profile.services and bool(profile.bedrock_model_families)
    if fenced_models:
        statements.append(_bedrock_model_statement(profile.bedrock_model_families))
    document = _policy(*statements)
    size = len(_minified(document))
    if size > SCP_MAX_CHARACTERS:
        trim = "fewer EC2 instance families" + (" or fewer Bedrock model families" if fenced_models else "")
        raise GuardrailTooLarge(
            f"The course's guardrails compile to {size:,} characters, over AWS's limit of "
            f"{SCP_MAX_CHARACTERS:,} for one SCP. Allow fewer services ({len(profile.services)} now) or {trim}."
        )
    return document


def _bedrock_model_statement(families: list[str]) -> dict:
    """No model outside `families`, however it is reached. AWS authorizes a call through a
    cross-region inference profile twice: on the profile (`inference-profile/us.anthropic.claude…`,
    in the region called) and on the foundation model in the region it is routed to
    (`foundation-model/anthropic.claude…`); each ARN of the families passes, every other is denied.
    Custom, imported and provisioned models, Marketplace endpoints and prompt routers are none of
    the families: denied. The portal's own role is bound too: it never invokes a model."""
    return {
        "Sid": "OnlyAllowedBedrockModels",
        "Effect": "Deny",
        "Action": BEDROCK_INVOKE_ACTIONS,
        "NotResource": sorted(
            [
                *bedrock_models.foundation_model_arns(families),
                *bedrock_models.inference_profile_arns(families),
                *BEDROCK_MODEL_COMPANIONS,
            ]
        ),
    }


def _instance_family_statements(families: list[str], portal_role: str) -> list[dict]:
    """Only instances of `families`, however they are launched: the instance types of RunInstances
    and its kin, of an Auto Scaling group's overrides and launch configurations (a group's launch
    template is checked by AWS as a RunInstances of the caller); fleets and Spot requests not at
    all, since their instances are launched by a service-linked role. The type conditions bind the
    portal's role too, which never launches an instance."""
    patterns = sorted(f"{family}.*" for family in families)
    return [
        {
            "Sid": "OnlyAllowedInstanceTypes",
            "Effect": "Deny",
            "Action": INSTANCE_TYPE_ACTIONS,
            "Resource": "arn:aws:ec2:*:*:instance/*",
            "Condition": {"StringNotLike": {"ec2:InstanceType": patterns}},
        },
        # The portal's role excepted: it brings a student's fleet down to zero when freezing.
        _unless_portal(
            {"Sid": "NoFleetsOrSpotRequests", "Effect": "Deny", "Action": FLEET_ACTIONS, "Resource": "*"}, portal_role
        ),
        {
            "Sid": "OnlyAllowedAutoScalingTypes",
            "Effect": "Deny",
            "Action": AUTO_SCALING_GROUP_ACTIONS,
            "Resource": "*",
            "Condition": {"ForAnyValue:StringNotLike": {"autoscaling:InstanceTypes": patterns}},
        },
        {
            "Sid": "OnlyAllowedLaunchConfigurationTypes",
            "Effect": "Deny",
            "Action": "autoscaling:CreateLaunchConfiguration",
            "Resource": "*",
            "Condition": {"StringNotLike": {"autoscaling:InstanceType": patterns}},
        },
    ]


FROZEN_ALLOWED_ACTIONS = [
    "aws-portal:View*",
    "billing:Get*",
    "billing:List*",
    "budgets:View*",
    "budgets:Describe*",
    "ce:Get*",
    "ce:Describe*",
    "ce:List*",
    "support:*",
    "sts:GetCallerIdentity",
    "signin:*",
    "sso:*",
    "health:Describe*",
]


# What a student taking their account over must do as its root user before AWS lets it leave the
# organization: billing and payment method, the account's contacts, name and primary email, the
# support plan, signing in (the root password is reset through the sign-in pages). Nothing else.
ROOT_OWNER_ACTIONS = [
    "account:AcceptPrimaryEmailUpdate",
    "account:DeleteAlternateContact",
    "account:GetAccountInformation",
    "account:GetAlternateContact",
    "account:GetContactInformation",
    "account:GetPrimaryEmail",
    "account:PutAccountName",
    "account:PutAlternateContact",
    "account:PutContactInformation",
    "account:StartPrimaryEmailUpdate",
    "aws-portal:*",
    "billing:*",
    "consolidatedbilling:*",
    "invoicing:*",
    "payments:*",
    "purchase-orders:*",
    "signin:*",
    "sts:GetCallerIdentity",
    "support:*",
    "supportplans:*",
    "tax:*",
]
ROOT_USER_ARN = "arn:aws:iam::*:root"
LEAVING_POLICY_NAME = "classroom-cloud-leaving"


def freeze_policy(*, portal_role: str) -> dict:
    """Everything denied except billing, support and reading cost pages; the portal's own role
    excepted, which unfreezes, cleans up and closes the account. The root user is denied
    everything but the owner's tasks: inside the portal's OU the baseline denies it all anyway,
    and a frozen account being handed over (in the leaving OU) keeps its freeze while the student
    adds a payment method."""
    frozen = {
        "Sid": "FrozenForBudget",
        "Effect": "Deny",
        "NotAction": FROZEN_ALLOWED_ACTIONS,
        "Resource": "*",
        "Condition": {"StringNotLike": {"aws:PrincipalArn": ROOT_USER_ARN}},
    }
    root = {
        "Sid": "FrozenRootOwnerTasksOnly",
        "Effect": "Deny",
        "NotAction": ROOT_OWNER_ACTIONS,
        "Resource": "*",
        "Condition": {"StringLike": {"aws:PrincipalArn": ROOT_USER_ARN}},
    }
    return _policy(_unless_portal(frozen, portal_role), _unless_portal(root, portal_role))


def leaving_policy(*, portal_role: str) -> dict:
    """The SCP of the leaving OU, where an account waits to leave the organization: everyone in it,
    the root user included, may do the owner's tasks (ROOT_OWNER_ACTIONS) and nothing else; the
    portal's own role excepted, which returns a cancelled handover to its course.

    The leaving OU sits directly under the organization's root, not under the portal's OU: the
    baseline's deny-root SCP there would be inherited, and no SCP lower down can undo a Deny."""
    owner_only = {"Sid": "OwnerTasksOnly", "Effect": "Deny", "NotAction": ROOT_OWNER_ACTIONS, "Resource": "*"}
    return _policy(_unless_portal(owner_only, portal_role))


def iam_user_policy(profile: GuardrailProfile) -> dict:
    """The IAM-user mode's own policy: the allowed services in the allowed regions."""
    return _policy(
        {
            "Sid": "AllowedServices",
            "Effect": "Allow",
            "Action": sorted({f"{service}:*" for service in profile.services}),
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:RequestedRegion": sorted(profile.regions)}},
        },
        {
            "Sid": "GlobalReadAndOwnPassword",
            "Effect": "Allow",
            "Action": [
                "iam:ChangePassword",
                "iam:GetAccountPasswordPolicy",
                "iam:ListAccountAliases",
                "sts:GetCallerIdentity",
                "ce:Get*",
                "budgets:View*",
                "aws-portal:View*",
            ],
            "Resource": "*",
        },
    )
