"""`aws_bootstrap`: find or set up everything the portal needs in the school's organization.
Every step looks first, so running it again changes nothing and says so."""

from __future__ import annotations

import json
import logging
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts_app.choices import AuditAction
from accounts_app.models import AwsOrganization, Course
from accounts_app.services.audit import audit_record
from accounts_app.services.guardrails import freeze_policy_ensure
from accounts_app.services.ownership import MANAGED_BY_TAG
from portal.aws import costs, identity_center, organizations, quotas
from portal.aws.errors import NotFound
from portal.aws.guardrails import (
    LEAVING_POLICY_NAME,
    PERMISSION_SETS,
    baseline_policies,
    leaving_policy,
    portal_role_arn,
)

logger = logging.getLogger(__name__)

TRUSTED_SERVICES = ["sso.amazonaws.com", "account.amazonaws.com"]
POOL_OU_NAME = "Pool"
# Directly under the organization's root, beside the portal's OU and not in it: the baseline's
# deny-root SCP on the portal's OU would reach an OU below it, and no SCP can undo an inherited Deny.
LEAVING_OU_SUFFIX = " leaving"
# How long aws_bootstrap waits for AWS to provision a changed permission set again.
PROVISIONING_CHECKS = 30
PROVISIONING_CHECK_SECONDS = 2.0

ROLE_POLICIES = {
    "bootstrap": settings.BASE_DIR / "docs" / "iam" / "bootstrap-role.json",
    "runtime": settings.BASE_DIR / "docs" / "iam" / "runtime-role.json",
}
# What docs/iam/runtime-role.json names by example, to be replaced by the organization's own.
PLACEHOLDER_ORG_PATH = "o-EXAMPLE/r-EXAMPLE/ou-EXAMPLE-PORTAL/"
PLACEHOLDER_ACCOUNT = "111122223333"
PLACEHOLDER_IDENTITY_STORE = "d-EXAMPLE"
PLACEHOLDER_BUDGET_ACTION_ROLE = f"arn:aws:iam::{PLACEHOLDER_ACCOUNT}:role/EXAMPLE-BUDGET-ACTION-ROLE"
PLACEHOLDER_MEMBER_ROLE = ":role/OrganizationAccountAccessRole"


class BootstrapError(Exception):
    """The organization cannot host the portal as it is; the message says what to change."""


def aws_bootstrap(*, actor) -> list[str]:
    """Set up the organization for the portal. Returns what was found and done, line by line."""
    report: list[str] = []
    org = organizations.describe_organization()
    if not org.all_features:
        raise BootstrapError(
            f"Organization {org.id} has only consolidated billing. Enable all features "
            "(AWS Organizations console → Settings) and run aws_bootstrap again."
        )
    report.append(f"Organization {org.id} (management account {org.management_account_id}), all features on.")

    root = organizations.root_id()
    organizations.enable_policy_type(root)
    parent_ou = organizations.ensure_ou(root, settings.PORTAL_AWS_OU_NAME, tags=MANAGED_BY_TAG)
    pool_ou = organizations.ensure_ou(parent_ou, POOL_OU_NAME, tags=MANAGED_BY_TAG)
    report.append(f"Portal OU “{settings.PORTAL_AWS_OU_NAME}” is {parent_ou}; pool OU is {pool_ou}.")

    already = organizations.enabled_service_principals()
    for service in TRUSTED_SERVICES:
        if service in already:
            report.append(f"Trusted access for {service}: already on.")
        else:
            organizations.enable_service_access(service)
            report.append(f"Trusted access for {service}: turned on.")

    try:
        instance = identity_center.instance()
    except NotFound as error:
        raise BootstrapError(
            "IAM Identity Center is not enabled. Enable it in the management account "
            "(IAM Identity Center console → Enable), then run aws_bootstrap again."
        ) from error
    report.append(f"Identity Center {instance.arn}, identity store {instance.identity_store_id}.")
    report.append(f"Access portal: {instance.access_portal_url}")

    permission_sets = {}
    for role, spec in PERMISSION_SETS.items():
        update = identity_center.ensure_permission_set(
            instance.arn, name=spec.name, description=spec.description, managed_policy_arns=spec.managed_policy_arns
        )
        permission_sets[role] = update.arn
        report.append(_permission_set_line(spec.name, update))
        if not update.created:
            report.extend(permission_set_push(instance.arn, spec.name, update.arn))

    policies = {}
    for name, document in baseline_policies(
        member_role_name=settings.PORTAL_AWS_MEMBER_ROLE_NAME, allowed_regions=settings.PORTAL_AWS_SCHOOL_REGIONS
    ).items():
        policies[name] = organizations.ensure_policy(
            name=name, description="Classroom Cloud baseline", document=document, tags=MANAGED_BY_TAG
        )
        organizations.attach_policy(policies[name], parent_ou)
    report.append(f"Baseline SCPs attached to the portal OU: {', '.join(sorted(policies))}.")
    leaving_ou = organizations.ensure_ou(root, leaving_ou_name(), tags=MANAGED_BY_TAG)
    leaving_policy_id = organizations.ensure_policy(
        name=LEAVING_POLICY_NAME,
        description="Classroom Cloud: accounts being handed over (owner's root tasks only)",
        document=leaving_policy(portal_role=portal_role_arn(settings.PORTAL_AWS_MEMBER_ROLE_NAME)),
        tags=MANAGED_BY_TAG,
    )
    organizations.attach_policy(leaving_policy_id, leaving_ou)
    report.append(
        f"Leaving OU “{leaving_ou_name()}” is {leaving_ou}, under the organization's root, "
        f"with SCP {leaving_policy_id}: accounts being handed over wait there to leave."
    )
    freeze_id = freeze_policy_ensure()
    report.append(f"Freeze SCP (for frozen accounts, attached to none yet): {freeze_id}.")

    tags = cost_tags_activate()
    if tags.active:
        report.append(f"Cost allocation tags active: {', '.join(tags.active)}.")
    report.extend(
        f"Cost allocation tag “{key}” not activated; AWS said: {reason.rstrip('.')}. AWS knows a tag key only once a "
        "billed resource carries it (up to a day after tagging): run aws_bootstrap again then."
        for key, reason in tags.refused.items()
    )

    limit = quotas.account_limit()
    report.append(
        f"Account quota: {limit}."
        if limit
        else "Account quota: not readable from Service Quotas; "
        f"using PORTAL_AWS_ACCOUNT_LIMIT={settings.PORTAL_AWS_ACCOUNT_LIMIT}."
    )

    with transaction.atomic():
        organization = AwsOrganization.load()
        organization.organization_id = org.id
        organization.management_account_id = org.management_account_id
        organization.root_id = root
        organization.parent_ou_id = parent_ou
        organization.pool_ou_id = pool_ou
        organization.leaving_ou_id = leaving_ou
        organization.leaving_policy_id = leaving_policy_id
        organization.sso_instance_arn = instance.arn
        organization.identity_store_id = instance.identity_store_id
        organization.access_portal_url = instance.access_portal_url
        organization.permission_sets = permission_sets
        organization.baseline_policies = policies
        organization.freeze_policy_id = freeze_id
        organization.trusted_services = TRUSTED_SERVICES
        organization.account_limit = limit
        organization.accounts_in_organization = sum(1 for _ in organizations.list_accounts())
        organization.bootstrapped_at = timezone.now()
        organization.save()
        audit_record(
            actor=actor,
            action=AuditAction.AWS_BOOTSTRAPPED,
            summary=f"Set up AWS organization {org.id}",
            data={"report": report},
        )
    return report


def leaving_ou_name() -> str:
    return f"{settings.PORTAL_AWS_OU_NAME}{LEAVING_OU_SUFFIX}"


def _permission_set_line(name: str, update: identity_center.PermissionSetUpdate) -> str:
    if update.created:
        return f"Permission set {name}: created, {update.arn}."
    changes = [f"attached {_short_policy_name(arn)}" for arn in update.attached]
    changes += [f"detached {_short_policy_name(arn)}" for arn in update.detached]
    if update.description_updated:
        changes.append("description updated")
    return f"Permission set {name}: {', '.join(changes) if changes else 'up to date'}, {update.arn}."


def _short_policy_name(policy_arn: str) -> str:
    return policy_arn.split(":policy/", 1)[-1]


def permission_set_push(instance_arn: str, name: str, permission_set_arn: str) -> list[str]:
    """Provision a permission set again to the accounts that still have an earlier version of it
    (after its policies changed, here or in an interrupted earlier run): until then, people keep
    the old permissions there. One ProvisionPermissionSet covers every such account; the
    portal waits for it up to PROVISIONING_CHECKS times PROVISIONING_CHECK_SECONDS."""
    outdated = identity_center.outdated_account_ids(instance_arn, permission_set_arn)
    if not outdated:
        return []
    status = identity_center.provision_to_assigned(instance_arn, permission_set_arn)
    for _ in range(PROVISIONING_CHECKS):
        if status.state != "IN_PROGRESS":
            break
        time.sleep(PROVISIONING_CHECK_SECONDS)
        status = identity_center.provisioning_status(instance_arn, status.request_id)
    if status.state == "FAILED":
        raise BootstrapError(
            f"AWS could not provision the permission set {name} again to {len(outdated)} account(s): "
            f"{status.failure_reason or 'no reason given'}. Fix that and run aws_bootstrap again."
        )
    if status.state == "IN_PROGRESS":
        return [
            (
                f"Permission set {name}: being provisioned again to {len(outdated)} account(s) "
                f"(request {status.request_id}); AWS finishes on its own, run aws_bootstrap again to check."
            )
        ]
    return [f"Permission set {name}: provisioned again to {len(outdated)} account(s) that had an earlier version."]


def cost_tags_activate() -> costs.TagActivation:
    """Activate, in Cost Explorer, the cost allocation tag keys that courses name. A key AWS
    refuses is logged with its reason, listed by aws_bootstrap and kept on the organization for
    the course's cost pages; the next run tries again."""
    keys = sorted(set(Course.objects.active().exclude(cost_tag_key="").values_list("cost_tag_key", flat=True)))
    activation = costs.activate_cost_allocation_tags(keys)
    for key, reason in activation.refused.items():
        logger.warning("Cost allocation tag %s not activated: %s", key, reason)
    AwsOrganization.objects.filter(pk=AwsOrganization.load().pk).update(refused_cost_tags=activation.refused)
    return activation


def role_policy(role: str) -> dict:
    """The IAM policy of the portal's `role` ("bootstrap" or "runtime"), as docs/iam/ keeps it,
    with the runtime role's examples replaced by this organization's values: its OU path, its
    management account, identity store, budget action role and member role name."""
    if role not in ROLE_POLICIES:
        raise BootstrapError(f"No role “{role}”: choose {' or '.join(ROLE_POLICIES)}.")
    text = ROLE_POLICIES[role].read_text()
    if role == "bootstrap":
        return json.loads(text)
    organization = AwsOrganization.load()
    if not organization.parent_ou_id or not organization.identity_store_id:
        raise BootstrapError(
            "The runtime role names the portal's OU and identity store: run `python manage.py aws_bootstrap` first."
        )
    path = f"{organization.organization_id}/{organization.root_id}/{organization.parent_ou_id}/"
    budget_action_role = settings.PORTAL_AWS_BUDGET_ACTION_ROLE_ARN or PLACEHOLDER_BUDGET_ACTION_ROLE
    text = (
        text.replace(PLACEHOLDER_ORG_PATH, path)
        .replace(PLACEHOLDER_BUDGET_ACTION_ROLE, budget_action_role)
        .replace(PLACEHOLDER_ACCOUNT, organization.management_account_id)
        .replace(PLACEHOLDER_IDENTITY_STORE, organization.identity_store_id)
        .replace(PLACEHOLDER_MEMBER_ROLE, f":role/{settings.PORTAL_AWS_MEMBER_ROLE_NAME}")
    )
    policy = json.loads(text)
    if not settings.PORTAL_AWS_BUDGET_ACTION_ROLE_ARN:
        # No budget actions: the portal passes no role at all.
        policy["Statement"] = [s for s in policy["Statement"] if "iam:PassRole" not in s["Action"]]
    return policy
