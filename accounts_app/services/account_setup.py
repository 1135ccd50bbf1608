"""Access setup: a created (or brought) account goes into its course's OU with the portal's tags
and the course's contacts, is opened to the student (Identity Center or an IAM user) and the
course staff, and is checked from inside before it is READY.

Every step is idempotent; an account AWS has only just made is given time to settle
(`account_is_new_in_aws`) before a refusal counts.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from accounts_app.choices import AccessMode, AccountOrigin, CourseRole
from accounts_app.choices import AccountState as S
from accounts_app.crypto import encrypt
from accounts_app.lifecycle import CREATION_STATES, transition
from accounts_app.models import AccountEvent, AwsOrganization, Course, MemberAccount, Membership
from accounts_app.naming import slug
from accounts_app.services.access_roles import UnsafeAccessRole, access_role_secure
from accounts_app.services.gates import ownership_confirmed_by_setup
from accounts_app.services.guardrails import (
    course_guardrails_apply,
    course_profile,
    organization_ready,
)
from accounts_app.services.identity import NotThePortals, account_claim_check, account_tags
from accounts_app.services.identity_access import assignment_ensure, identity_user_for, identity_user_remembered
from accounts_app.services.ownership import MANAGED_BY_TAG, NotOurs
from portal.aws import account_mgmt, iam_users, organizations, sts
from portal.aws.errors import AwsError, PermanentAwsError, while_account_is_new
from portal.aws.guardrails import iam_user_policy
from portal.locks import advisory_lock


def account_configure(*, account_id: int) -> None:
    """Put a created account in its course OU, tag it, open it to the student and the course
    staff, and check that the portal can work inside it. Every step is idempotent."""
    account = MemberAccount.objects.select_related("course", "membership__user").filter(pk=account_id).first()
    if account is None or account.state != S.CONFIGURING:
        return
    organization = organization_ready()
    course = account.course
    try:
        found_tags = account_place_in_course_ou(account)
        wanted_tags = account_tags(account)
        if missing := {key: value for key, value in wanted_tags.items() if found_tags.get(key) != value}:
            organizations.tag_account(account.aws_account_id, missing)
        # AWS has just moved the account into its course's OU (or shown it there) and shown or
        # taken the portal's tag: the budget made next needs to ask it no more.
        ownership_confirmed_by_setup(account, organization)
        _set_course_contacts(account)
        if account.is_pooled:
            transition(account, expected=S.CONFIGURING, to=S.POOLED, reason="Ready for a student")
            return
        if course.access_mode == AccessMode.IAM_USER:
            _configure_iam_user(account)
        else:
            # A run before this one that got as far as the assignments may have made some: this
            # one looks before creating. A first run creates them without looking.
            made_before = _assignments_started(account)
            if not _configure_identity_center(account, organization, look_first=made_before):
                return
            _grant_course_staff(account, organization, look_first=made_before)
        if account.origin == AccountOrigin.INVITED:
            # In the course OU now, under the guardrails: the role the student made becomes the
            # portal's alone. Last of the steps inside the account, as the portal's own session
            # is refused too until the revocation moment.
            access_role_secure(account=account, organization=organization)
        account_access_verify(account)
    except PermanentAwsError as error:
        if account_is_new_in_aws(account):
            settling = while_account_is_new(error)
            if not settling.permanent:
                # The task tries again later (with backoff), past the grace window if need be.
                raise settling from error
        transition(account, expected=S.CONFIGURING, to=S.FAILED, reason=str(error), last_error=_plain(error))
        return
    except (NotThePortals, NotOurs, UnsafeAccessRole) as refusal:
        transition(account, expected=S.CONFIGURING, to=S.FAILED, reason=str(refusal)[:1000], last_error=str(refusal))
        return
    transition(account, expected=S.CONFIGURING, to=S.READY, reason="Access verified", last_error="")


def account_is_new_in_aws(account: MemberAccount) -> bool:
    """Whether AWS created the account less than PORTAL_AWS_NEW_ACCOUNT_GRACE_MINUTES ago. Its
    creation is when CreateAccountStatus gave its id: the record's first move to CONFIGURING. An
    invited account existed before; it gets no grace."""
    if account.origin != AccountOrigin.CREATED:
        return False
    created = (
        AccountEvent.objects.filter(account=account, to_state=S.CONFIGURING, from_state__in=CREATION_STATES)
        .order_by("id")
        .values_list("created_at", flat=True)
        .first()
    )
    grace = timedelta(minutes=settings.PORTAL_AWS_NEW_ACCOUNT_GRACE_MINUTES)
    return created is not None and timezone.now() - created < grace


def account_place_in_course_ou(account: MemberAccount) -> dict[str, str]:
    """Move the record's account into its course's OU, once AWS shows it carries the record's own
    tags (raises NotThePortals otherwise: nothing is moved). Returns the tags AWS showed."""
    course = account.course
    found_tags = account_claim_check(account)
    if not course.aws_ou_id:
        _course_ou_ensure(course)
    organizations.move_account(account.aws_account_id, course.aws_ou_id)
    return found_tags


def _course_ou_ensure(course: Course) -> None:
    """Make the course's OU and SCP once: a course's first accounts are set up at the same time,
    by several workers, and one of them makes them while the others wait and use them."""
    with advisory_lock(f"course-guardrails:{course.pk}"):
        course.refresh_from_db(fields=["aws_ou_id", "aws_scp_id"])
        if not course.aws_ou_id:
            course_guardrails_apply(actor=None, course=course)


def _set_course_contacts(account: MemberAccount) -> None:
    """AWS writes to an account's alternate contacts about its bills and operations: make them the
    course's billing and usage-alert contacts. AWS requires a phone number, so this needs
    PORTAL_CONTACT_PHONE (the school's)."""
    phone = settings.PORTAL_CONTACT_PHONE
    if not phone:
        return
    course = account.course
    for kind, email in (("BILLING", course.billing_contact_email), ("OPERATIONS", course.usage_alert_email)):
        account_mgmt.set_alternate_contact(
            account.aws_account_id,
            kind=kind,
            name=f"{course.code} {kind.lower()} contact",
            email=email,
            phone=phone,
            title=f"{course.name} ({course.code})"[:50],
        )


def _plain(error: AwsError) -> str:
    if error.code in {"AccessDenied", "AccessDeniedException"}:
        return (
            f"The portal is not allowed to {error.operation or 'do this'} in AWS. "
            "An administrator must check the portal's IAM policy."
        )
    return f"AWS refused {error.operation or 'a step'}: {error.message}"


def _assignments_started(account: MemberAccount) -> bool:
    """Whether a run of the setup recorded the student's Identity Center user (read afresh: a
    worker running the same step meanwhile may have), which it does just before assigning."""
    return MemberAccount.objects.filter(pk=account.pk).exclude(identity_store_user_id="").exists()


def _configure_identity_center(account: MemberAccount, organization: AwsOrganization, *, look_first: bool) -> bool:
    student = account.membership
    user_id = identity_user_for(organization, email=student.email, display_name=student.display_name)
    if user_id is None:
        transition(
            account,
            expected=S.CONFIGURING,
            to=S.WAITING_FOR_DIRECTORY,
            reason="No Identity Center user yet",
            last_error=f"{account.membership.email} has not been synced from the school's directory to "
            "IAM Identity Center yet. The account opens once the directory has synced.",
        )
        return False
    MemberAccount.objects.filter(pk=account.pk).update(identity_store_user_id=user_id)
    account.identity_store_user_id = user_id
    assignment_ensure(
        organization,
        account_id=account.aws_account_id,
        permission_set_arn=organization.permission_sets["student"],
        user_id=user_id,
        look_first=look_first,
    )
    return True


def _grant_course_staff(account: MemberAccount, organization: AwsOrganization, *, look_first: bool) -> None:
    if account.course.access_mode != AccessMode.IDENTITY_CENTER:
        return
    staff = Membership.objects.filter(course=account.course, role__in=[CourseRole.TA, CourseRole.INSTRUCTOR])
    for member in staff:
        # The course's staff are the same for each of its accounts configured in a row.
        user_id = identity_user_remembered(organization, email=member.email, display_name=member.display_name)
        if user_id is not None:
            assignment_ensure(
                organization,
                account_id=account.aws_account_id,
                permission_set_arn=organization.permission_sets[member.role],
                user_id=user_id,
                look_first=look_first,
            )


def _configure_iam_user(account: MemberAccount) -> None:
    account_id = account.aws_account_id
    user_name = slug(account.membership.email.split("@")[0], 40) or "student"
    iam_users.ensure_user(account_id, user_name, MANAGED_BY_TAG)
    iam_users.put_guardrail_policy(account_id, user_name, iam_user_policy(course_profile(account.course)))
    alias = iam_users.ensure_account_alias(account_id, f"{account.account_name}-{account_id[-4:]}"[:63])
    updates = {"iam_user_name": user_name, "account_alias": alias}
    if not account.iam_user_name or not iam_users.has_login_profile(account_id, user_name):
        # First time (or the password was lost before it was saved): issue a new one.
        updates["one_time_password"] = encrypt(iam_users.set_first_password(account_id, user_name))
    MemberAccount.objects.filter(pk=account.pk).update(**updates)
    for name, value in updates.items():
        setattr(account, name, value)


def account_access_verify(account: MemberAccount) -> None:
    reported = sts.caller_account(account.aws_account_id)
    if reported != account.aws_account_id:
        raise PermanentAwsError(
            f"Signed in to {reported} instead of {account.aws_account_id}.", code="WrongAccount", operation="AssumeRole"
        )
