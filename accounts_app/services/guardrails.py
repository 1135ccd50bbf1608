"""A course's place in the organization: its OU and the SCP compiled from its guardrails.

Both are named after the course's id and tagged with it (services/identity.py), never found by
the course's code: a freed code gives a new course nothing of the old one's. Their ids are kept
on the course, and courses set up before they were named this way keep theirs."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts_app.choices import AuditAction
from accounts_app.models import AwsOrganization, Course
from accounts_app.services.audit import audit_record
from accounts_app.services.gates import course_ou_check
from accounts_app.services.identity import (
    NotThePortals,
    course_ou_name,
    course_policy_name,
    course_resource_check,
    course_tags,
)
from accounts_app.services.ownership import MANAGED_BY_TAG, NotOurs
from portal.aws import organizations
from portal.aws.errors import NotFound, PermanentAwsError
from portal.aws.guardrails import (
    GuardrailProfile,
    GuardrailTooLarge,
    course_policy,
    freeze_policy,
    portal_role_arn,
)

FREEZE_POLICY_NAME = "classroom-cloud-freeze"
GUARDRAIL_FIELDS = frozenset(
    {"allowed_regions", "allowed_services", "allowed_instance_families", "bedrock_model_families"}
)


class AwsNotBootstrapped(Exception):
    """`manage.py aws_bootstrap` has not been run yet."""


def organization_ready() -> AwsOrganization:
    organization = AwsOrganization.load()
    if not organization.parent_ou_id:
        raise AwsNotBootstrapped(
            "The AWS organization is not set up yet: an administrator must run `python manage.py aws_bootstrap`."
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
        bedrock_model_families=list(course.bedrock_model_families),
    )


def course_policy_check(course: Course) -> str:
    """An empty string when the course's guardrails fit in one SCP, else what to trim."""
    try:
        course_policy(course_profile(course), portal_role=portal_role())
    except GuardrailTooLarge as error:
        return str(error)
    return ""


def course_guardrails_sync(*, course_id: int) -> None:
    """Apply a course's guardrails as the course is now (after an edit of them), if it still exists."""
    if course := Course.objects.filter(pk=course_id).first():
        course_guardrails_apply(actor=None, course=course)


def course_guardrails_apply(*, actor, course: Course) -> Course:
    """Create the course OU if needed and (re)apply its SCP. Safe to run any number of times.
    Raises NotThePortals (and records why on the course) if an OU or SCP with the course's name
    exists without the course's tags."""
    organization = organization_ready()
    try:
        document = course_policy(course_profile(course), portal_role=portal_role())
    except GuardrailTooLarge as error:
        Course.objects.filter(pk=course.pk).update(guardrails_error=str(error))
        raise
    try:
        ou_id = _course_ou(course, organization)
        policy_id = _course_policy(course, organization, document)
        course_ou_check(course, organization, ou_id)
    except (NotThePortals, NotOurs) as refusal:
        Course.objects.filter(pk=course.pk).update(guardrails_error=str(refusal))
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


def _course_ou(course: Course, organization: AwsOrganization) -> str:
    """The course's OU: the one whose id the course keeps, else the one named after its id under
    the portal's OU (created if missing; one found there must carry the course's tags)."""
    tags = course_tags(course, organization)
    if course.aws_ou_id:
        # Ours by the database's word; tagged for the courses set up before OUs carried tags.
        organizations.tag_resource(course.aws_ou_id, tags)
        return course.aws_ou_id
    name = course_ou_name(course)
    ou_id = organizations.find_ou(organization.parent_ou_id, name)
    if ou_id is None:
        return organizations.ensure_ou(organization.parent_ou_id, name, tags=tags)
    # Created by an earlier run whose answer, or whose save, was lost; or by someone else.
    course_resource_check("OU", ou_id, course, organization)
    return ou_id


def _course_policy(course: Course, organization: AwsOrganization, document: dict) -> str:
    """The course's SCP, with `document` as its content: the one whose id the course keeps, else
    the one named after its id (created if missing; one found must carry the course's tags)."""
    description = f"Guardrails of course {course.pk} ({course.code})"
    tags = course_tags(course, organization)
    if course.aws_scp_id:
        try:
            organizations.update_policy(course.aws_scp_id, description=description, document=document)
        except NotFound:
            pass  # deleted by hand: the course gets a new one
        else:
            organizations.tag_resource(course.aws_scp_id, tags)
            return course.aws_scp_id
    name = course_policy_name(course, organization)
    policy_id = organizations.find_policy(name)
    if policy_id is None:
        try:
            return organizations.create_policy(name=name, description=description, document=document, tags=tags)
        except PermanentAwsError as error:
            if error.code != "DuplicatePolicyException":
                raise
            # Created meanwhile by another worker, or by our own retried request.
            policy_id = organizations.find_policy(name)
    course_resource_check("SCP", policy_id, course, organization)
    organizations.update_policy(policy_id, description=description, document=document)
    return policy_id


def course_guardrails_enqueue(course: Course) -> None:
    from accounts_app.tasks import course_guardrails_task

    course_guardrails_task.delay_on_commit(course.pk)


def freeze_policy_ensure() -> str:
    """Create (or bring up to date) the deny-all SCP of frozen accounts; aws_bootstrap runs it."""
    return organizations.ensure_policy(
        name=FREEZE_POLICY_NAME,
        description="Classroom Cloud: frozen; only billing, support and cost pages",
        document=freeze_policy(portal_role=portal_role()),
        tags=MANAGED_BY_TAG,
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
