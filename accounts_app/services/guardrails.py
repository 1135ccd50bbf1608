"""A course's place in the organization: its OU and the SCP compiled from its guardrails."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts_app.choices import AuditAction
from accounts_app.models import AwsOrganization, Course
from accounts_app.services.audit import audit_record
from accounts_app.services.gates import course_ou_check
from accounts_app.services.ownership import NotOurs
from portal.aws import organizations
from portal.aws.guardrails import (
    GuardrailProfile,
    GuardrailTooLarge,
    course_policy,
    freeze_policy,
    portal_role_arn,
)

FREEZE_POLICY_NAME = "classroom-cloud-freeze"
GUARDRAIL_FIELDS = frozenset({"allowed_regions", "allowed_services", "allowed_instance_families"})


class AwsNotBootstrapped(Exception):
    """`manage.py aws_bootstrap` has not been run yet."""


def organization_ready() -> AwsOrganization:
    organization = AwsOrganization.load()
    if not organization.parent_ou_id:
        raise AwsNotBootstrapped(
            "The AWS organization is not set up yet: an administrator must run "
            "`python manage.py aws_bootstrap`."
        )
    return organization


def portal_role() -> str:
    """The ARN pattern of the portal's role in member accounts, which the guardrails exempt."""
    return portal_role_arn(settings.PORTAL_AWS_MEMBER_ROLE_NAME)


def course_profile(course: Course) -> GuardrailProfile:
    return GuardrailProfile(
        regions=list(course.allowed_regions),
        services=list(course.allowed_services),
        instance_families=list(course.allowed_instance_families),
    )


def course_policy_check(course: Course) -> str:
    """An empty string when the course's guardrails fit in one SCP, else what to trim."""
    try:
        course_policy(course_profile(course), portal_role=portal_role())
    except GuardrailTooLarge as error:
        return str(error)
    return ""


def course_guardrails_apply(*, actor, course: Course) -> Course:
    """Create the course OU if needed and (re)apply its SCP. Safe to run any number of times."""
    organization = organization_ready()
    try:
        document = course_policy(course_profile(course), portal_role=portal_role())
    except GuardrailTooLarge as error:
        Course.objects.filter(pk=course.pk).update(guardrails_error=str(error))
        raise
    ou_id = course.aws_ou_id or organizations.ensure_ou(organization.parent_ou_id, course.code)
    policy_id = organizations.ensure_policy(
        name=f"classroom-cloud-course-{course.code}",
        description=f"Guardrails of course {course.code}",
        document=document,
    )
    try:
        course_ou_check(course, organization, ou_id)
    except NotOurs as error:
        Course.objects.filter(pk=course.pk).update(guardrails_error=str(error))
        raise
    organizations.attach_policy(policy_id, ou_id)
    with transaction.atomic():
        Course.objects.filter(pk=course.pk).update(
            aws_ou_id=ou_id, aws_scp_id=policy_id, guardrails_applied_at=timezone.now(), guardrails_error=""
        )
        audit_record(
            actor=actor,
            action=AuditAction.GUARDRAILS_APPLIED,
            course=course,
            target=course,
            summary=f"Applied guardrails to OU {ou_id} (SCP {policy_id})",
            data={"policy": document},
        )
    course.aws_ou_id, course.aws_scp_id = ou_id, policy_id
    return course


def course_guardrails_enqueue(course: Course) -> None:
    from accounts_app.tasks import course_guardrails_task

    course_guardrails_task.delay_on_commit(course.pk)


def freeze_policy_ensure() -> str:
    """Create (or bring up to date) the deny-all SCP of frozen accounts; aws_bootstrap runs it."""
    return organizations.ensure_policy(
        name=FREEZE_POLICY_NAME,
        description="Classroom Cloud: frozen; only billing, support and cost pages",
        document=freeze_policy(portal_role=portal_role()),
    )


def freeze_policy_id() -> str:
    """The id of the SCP attached to an account whose budget is used up or whose course ended,
    kept on the organization: freezing a whole course then costs one call per account, not a
    search through the organization's policies for each."""
    organization = AwsOrganization.load()
    if not organization.freeze_policy_id:
        organization.freeze_policy_id = freeze_policy_ensure()
        AwsOrganization.objects.filter(pk=organization.pk).update(freeze_policy_id=organization.freeze_policy_id)
    return organization.freeze_policy_id
