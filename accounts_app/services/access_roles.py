"""The access role of a student's own account, kept the portal's alone.

The guardrail SCPs exempt the portal's member role by its ARN (`aws:PrincipalArn` like
arn:aws:iam::*:role/<PORTAL_AWS_MEMBER_ROLE_NAME>). In an account the portal created, AWS made that
role, trusting the management account only. In a brought account the student made it, and could
have made it trust themselves. Once such an account is in the portal's OU, `access_role_secure`
rewrites its trust to the portal's principal alone, strips every other policy and revokes the
sessions opened before; from then on the protect-portal SCP denies every change to the role by
anyone but the role itself, whose sessions only the portal can open. The exemption can then be
used by the portal alone: a role of that name at another path has another ARN, which neither the
exemption nor the trust matches, and IAM allows one role of a name per account. The reconciler
re-checks every configured brought account (`brought_access_roles_check`).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts_app.choices import AccountOrigin, AuditAction
from accounts_app.lifecycle import SIGN_IN_STATES
from accounts_app.models import AwsOrganization, MemberAccount
from accounts_app.services.audit import audit_record
from accounts_app.services.ownership import NotOurs, ownership_check
from portal.aws import access_role
from portal.aws.errors import AwsError

# Sessions of the role issued before the lockdown plus this margin are refused: IAM applies a new
# trust policy within seconds, and a session opened meanwhile under the old trust must not live on.
SESSION_REVOCATION_MARGIN = timedelta(minutes=1)


class UnsafeAccessRole(Exception):
    """The role cannot be made the portal's; the message says what the student must do."""


def portal_principal(organization: AwsOrganization) -> str:
    """What the role may trust: the portal's own role in the management account when it uses
    one, else the management account (as AWS's own OrganizationAccountAccessRole does)."""
    return settings.PORTAL_AWS_MANAGEMENT_ROLE_ARN or f"arn:aws:iam::{organization.management_account_id}:root"


def access_role_secure(*, account: MemberAccount, organization: AwsOrganization) -> list[str]:
    """Make the access role of a brought account the portal's alone. Returns what had to change.

    Raises NotOurs unless AWS shows the account in its course's OU with the portal's tag, and
    UnsafeAccessRole for a role the portal cannot repair."""
    ownership_check(account, organization)
    role_name = settings.PORTAL_AWS_MEMBER_ROLE_NAME
    role = access_role.read(account.aws_account_id, role_name)
    if role.path != "/":
        # Its ARN is then role/<path>/<name>: neither the guardrails' exemption nor their
        # protection names it, and IAM cannot move a role to another path.
        raise UnsafeAccessRole(
            f"The role {role_name} in account {account.aws_account_id} was created under the path "
            f"{role.path}. Delete it and create it again from the portal's template, then retry."
        )
    revoke_before = timezone.now() + SESSION_REVOCATION_MARGIN
    changes = access_role.secure(
        account.aws_account_id, role, principal_arn=portal_principal(organization), revoke_before=revoke_before
    )
    if changes:
        with transaction.atomic():
            MemberAccount.objects.filter(pk=account.pk).update(access_role_secured_at=revoke_before)
            audit_record(
                actor=None,
                action=AuditAction.ACCESS_ROLE_SECURED,
                course=account.course,
                target=account,
                summary=f"Locked {role_name} in {account.account_name} to the portal: {'; '.join(changes)}",
            )
        account.access_role_secured_at = revoke_before
    return changes


def brought_access_roles_check() -> list[str]:
    """The reconciler's look at every configured brought account's role: repaired where it has
    changed, and reported. An account whose revocation moment is still ahead is left for the
    next run (the portal's own sessions are refused until then)."""
    organization = AwsOrganization.load()
    due = Q(access_role_secured_at__isnull=True) | Q(access_role_secured_at__lte=timezone.now())
    accounts = MemberAccount.objects.filter(due, origin=AccountOrigin.INVITED, state__in=SIGN_IN_STATES)
    drift: list[str] = []
    for account in accounts.select_related("course").exclude(aws_account_id=None):
        label = f"{account.account_name} ({account.aws_account_id})"
        try:
            changes = access_role_secure(account=account, organization=organization)
        except (NotOurs, UnsafeAccessRole) as error:
            drift.append(f"{label}: its access role was not checked: {error}")
            continue
        except AwsError as error:
            drift.append(f"{label}: its access role could not be checked: {error.message}")
            continue
        if changes:
            drift.append(f"{label}: its access role had changed and was repaired: {'; '.join(changes)}")
    return drift
