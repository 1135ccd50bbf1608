"""IAM Identity Center users and account assignments, as the portal makes and removes them.

Users: the portal finds a course member's user by user name (their email address) and, when it
provisions users itself (PORTAL_IDENTITY_SOURCE=portal), creates the missing ones and records
them (IdentityCenterUser). It deletes a user only when every one of these holds:

- it provisions users itself: with the school's directory (SCIM) the directory owns every user;
- it created this user (recorded): never one synced, made by hand or found already there;
- no live account in the database still uses the user;
- the user has no account assignment left anywhere in the organization;
- the user belongs to no group: groups are made outside the portal, and what a group opens
  (accounts, applications) is someone else's decision to take back.
"""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache

from accounts_app.lifecycle import FINAL_STATES
from accounts_app.models import AwsOrganization, IdentityCenterUser, MemberAccount
from portal.aws import identity_center
from portal.aws.errors import PermanentAwsError, TransientAwsError, UnknownOutcome

# --- Users ----------------------------------------------------------------------------------------


def identity_user_for(organization: AwsOrganization, *, email: str, display_name: str) -> str | None:
    """The Identity Center user of a course member: found by user name, or created (and
    recorded) unless the school's directory provisions users itself (then None until it has
    synced)."""
    store = organization.identity_store_id
    user_id = identity_center.find_user(store, email)
    if user_id is not None or settings.PORTAL_IDENTITY_SOURCE != "portal":
        return user_id
    user_id = identity_center.create_user(store, user_name=email, display_name=display_name, email=email)
    # create_user also answers with the user made by a request of ours whose answer was lost, or
    # by another worker a moment earlier (ConflictException): both are the portal's own.
    IdentityCenterUser.objects.get_or_create(identity_store_id=store, user_id=user_id, defaults={"email": email})
    return user_id


# How long a user id found or made is taken as still right without asking again.
REMEMBER_USER_SECONDS = 10 * 60


def identity_user_remembered(organization: AwsOrganization, *, email: str, display_name: str) -> str | None:
    """`identity_user_for`, remembered a few minutes: a course's staff, looked up for each of its
    accounts set up in a row, are asked about once. A user deleted meanwhile makes the assignment
    that follows fail, and the step is tried again once this is forgotten."""
    key = f"identity-user:{organization.identity_store_id}:{email.lower()}"
    user_id = cache.get(key)
    if user_id is None:
        user_id = identity_user_for(organization, email=email, display_name=display_name)
        if user_id is not None:
            cache.set(key, user_id, REMEMBER_USER_SECONDS)
    return user_id


def identity_user_release(organization: AwsOrganization, *, user_id: str, released_by: MemberAccount) -> bool:
    """Delete the user `released_by` no longer needs, if the rules above allow it. Returns
    whether it was deleted. Call it after the account's own assignments are gone.

    AWS calls: one paginated ListAccountAssignmentsForPrincipal and one paginated
    ListGroupMembershipsForMember, then DeleteUser; none for a user the portal did not create.
    """
    store = organization.identity_store_id
    if settings.PORTAL_IDENTITY_SOURCE != "portal":
        return False
    created = IdentityCenterUser.objects.filter(identity_store_id=store, user_id=user_id)
    if not created.exists():
        return False
    other_accounts = (
        MemberAccount.objects.filter(identity_store_user_id=user_id)
        .exclude(pk=released_by.pk)
        .exclude(state__in=FINAL_STATES)
    )
    if other_accounts.exists():
        return False
    if identity_center.principal_assignments(organization.sso_instance_arn, user_id):
        return False
    if identity_center.group_ids_of(store, user_id):
        return False
    identity_center.delete_user(store, user_id)
    created.delete()
    return True


# --- Account assignments --------------------------------------------------------------------------


def assignment_ensure(
    organization: AwsOrganization, *, account_id: str, permission_set_arn: str, user_id: str, look_first: bool = True
) -> None:
    """Let `user_id` sign in to `account_id` through the permission set; nothing if they can.

    With `look_first` False (an account just set up, which has no assignment yet), the
    assignment is created without listing the account's first: one that exists after all is
    either confirmed by AWS's answer or refused with a ConflictException, and then looked for."""
    instance = organization.sso_instance_arn
    target = {"account_id": account_id, "permission_set_arn": permission_set_arn, "user_id": user_id}
    if look_first and identity_center.has_assignment(instance, **target):
        return
    try:
        status = identity_center.create_assignment(instance, **target)
    except UnknownOutcome:
        if identity_center.has_assignment(instance, **target):
            return
        raise
    except TransientAwsError as error:
        if look_first or error.code != "ConflictException" or not identity_center.has_assignment(instance, **target):
            raise
        return
    if status.state == "IN_PROGRESS":
        status = identity_center.assignment_creation_status(instance, status.request_id)
    if status.state == "FAILED":
        raise PermanentAwsError(status.failure_reason, code="AssignmentFailed", operation="CreateAccountAssignment")
    if status.state == "IN_PROGRESS":
        # Not done yet: the task retries, and the next run finds it with has_assignment().
        raise TransientAwsError("The assignment is still being created.", operation="CreateAccountAssignment")


def assignment_remove(
    organization: AwsOrganization, *, account_id: str, assignment: identity_center.Assignment
) -> None:
    """Take an assignment away; one already gone is fine."""
    instance = organization.sso_instance_arn
    status = identity_center.delete_assignment(instance, account_id=account_id, assignment=assignment)
    if status is None or status.state == "SUCCEEDED":
        return
    if status.state == "IN_PROGRESS":
        status = identity_center.assignment_deletion_status(instance, status.request_id)
    if status.state == "FAILED":
        raise PermanentAwsError(
            status.failure_reason, code="AssignmentDeletionFailed", operation="DeleteAccountAssignment"
        )
    if status.state == "IN_PROGRESS":
        # The task retries; its next run lists the assignment again only if it still exists.
        raise TransientAwsError("An assignment is still being removed.", operation="DeleteAccountAssignment")
