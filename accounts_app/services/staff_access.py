"""Staff access follows the roster: a course's TAs and instructors sign in to its students'
accounts through IAM Identity Center (permission sets ClassroomTA and ClassroomInstructor) only
while the roster says so.

- A roster change that gives, changes or takes away a staff role (by hand or by an import) queues
  one staff_access_sync_task for that person, when it commits. The task reads the roster as it
  is then, so that two quick changes end with the latest, and brings the person's assignments
  on the course's accounts in line: their role's permission set where people sign in, no other
  staff permission set anywhere in the course.
- The reconciler compares, course by course, the staff assignments on each account with the
  roster, repairs both ways and lists each repair in its drift report.
- A brand-new account refuses assignments for some minutes (AccessDenied, RegionDisabledException,
  a FAILED assignment): within PORTAL_AWS_NEW_ACCOUNT_GRACE_MINUTES of its creation that is a wait,
  not a failure. The task is retried; the reconciler checks the course again first at its next run.

Only courses in Identity Center mode have staff assignments (IAM-user courses have none). Before
it changes an account's access, the portal re-reads the record's state and has AWS confirm the
account is the course's (ownership_check).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import F, QuerySet
from django.utils import timezone

from accounts_app.choices import AccessMode, AuditAction, CourseRole
from accounts_app.choices import AccountState as S
from accounts_app.lifecycle import LIVE_STATES, SIGN_IN_STATES
from accounts_app.models import AwsOrganization, Course, MemberAccount, Membership
from accounts_app.services.account_setup import account_is_new_in_aws
from accounts_app.services.audit import audit_record
from accounts_app.services.guardrails import AwsNotBootstrapped, organization_ready
from accounts_app.services.identity_access import assignment_ensure, assignment_remove, identity_user_for
from accounts_app.services.ownership import NotOurs, ownership_check
from accounts_app.tasks import staff_access_sync_task
from portal.aws import identity_center
from portal.aws.errors import AwsError, PermanentAwsError, TransientAwsError, while_account_is_new

logger = logging.getLogger(__name__)

STAFF_ROLES_WITH_ACCESS = (CourseRole.TA, CourseRole.INSTRUCTOR)
# Staff access is granted on accounts in lifecycle.SIGN_IN_STATES; what the roster no longer
# gives is taken away wherever the course still holds the account (lifecycle.LIVE_STATES).
# The reconciler checks whole courses, the longest unchecked first, until it has checked this
# many accounts in a run (two ListAccountAssignments calls each): every course in turn, without
# a large school's reconciliation making thousands of calls every five minutes.
RECONCILE_ACCOUNTS_PER_RUN = 250


# --- Following roster changes ---------------------------------------------------------------------


@dataclass(frozen=True)
class RoleChange:
    """A person's role in a course before and after a roster change (None: not on the roster)."""

    email: str
    before: str | None
    after: str | None

    @property
    def moves_staff_access(self) -> bool:
        staff = STAFF_ROLES_WITH_ACCESS
        return self.before != self.after and (self.before in staff or self.after in staff)


def staff_access_follow(*, course: Course, changes: Iterable[RoleChange]) -> None:
    """Queue the AWS side of roster changes, one task per person, to run once they commit:
    nothing unless a staff role is given, changed or taken away in an Identity Center course
    that has accounts (an account without an AWS id yet reads the roster when it is configured).
    One query, however many changes."""
    moving = [change for change in changes if change.moves_staff_access]
    if not moving or course.access_mode != AccessMode.IDENTITY_CENTER:
        return
    if not _course_accounts(course, LIVE_STATES).exists():
        return
    for change in moving:
        staff_access_sync_task.delay_on_commit(course.pk, change.email)


@dataclass
class StaffAccessChanges:
    granted: list[str] = field(default_factory=list)  # AWS account ids
    revoked: list[str] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)  # why, account by account
    settling: list[str] = field(default_factory=list)  # new accounts AWS is still setting up


def staff_access_sync(*, course_id: int, email: str) -> StaffAccessChanges | None:
    """Give one person the staff access their role in the course gives, and take away any other.

    AWS calls: GetUserId (and CreateUser for a new staff member, when the portal provisions
    users), one paginated ListAccountAssignmentsForPrincipal; then, only for each account whose
    access must change, ListParents and ListTagsForResource (the ownership check) and one
    Create/DeleteAccountAssignment per change (with a ListAccountAssignments before a creation,
    and a status check when AWS has not finished at once). None when there is nothing to do (or
    the course is gone). Raises TransientAwsError, once the other accounts are done, while a
    brand-new account refuses.
    """
    try:
        organization = organization_ready()
    except AwsNotBootstrapped:
        return None
    course = Course.objects.filter(pk=course_id).first()
    if course is None or course.access_mode != AccessMode.IDENTITY_CENTER or not organization.sso_instance_arn:
        return None
    member = Membership.objects.filter(course=course, email=email).first()
    role = member.role if member is not None and member.role in STAFF_ROLES_WITH_ACCESS else None
    if role is not None:
        user_id = identity_user_for(organization, email=email, display_name=member.display_name)
    else:
        user_id = identity_center.find_user(organization.identity_store_id, email)
    if user_id is None:
        # Nobody to give access to yet (the school's directory has not synced them: the
        # reconciler gives it once it has), or nothing to take away.
        return None

    staff_sets = set(_staff_permission_sets(organization).values())
    held: dict[str, set[str]] = defaultdict(set)
    for assignment in identity_center.principal_assignments(organization.sso_instance_arn, user_id):
        if assignment.permission_set_arn in staff_sets:
            held[assignment.account_id].add(assignment.permission_set_arn)
    wanted = organization.permission_sets[role] if role is not None else None

    changes = StaffAccessChanges()
    for account in _course_accounts(course, LIVE_STATES):
        have = held.get(account.aws_account_id, set())
        if _to_grant(account, wanted, have) or have - {wanted}:
            _account_sync(account, organization, user_id=user_id, wanted=wanted, have=have, changes=changes)
    if changes.granted or changes.revoked or changes.left_alone:
        _audit(course, email, role, changes)
    if changes.settling:
        # The task is retried with backoff; past the grace window a refusal is left for a person.
        raise TransientAwsError(f"Staff access of {email} waits for AWS: {'; '.join(changes.settling)}")
    return changes


def _account_sync(
    account: MemberAccount,
    organization: AwsOrganization,
    *,
    user_id: str,
    wanted: str | None,
    have: set[str],
    changes: StaffAccessChanges,
) -> None:
    """Grant `wanted` and revoke the rest of `have` on one account, if it may be touched now."""
    refusal = _gate_refusal(account, organization)
    if refusal:
        changes.left_alone.append(refusal)
        return
    account_id = account.aws_account_id
    try:
        # Grant first: a promoted or demoted person is never left without either set meanwhile.
        if grant := _to_grant(account, wanted, have):
            assignment_ensure(organization, account_id=account_id, permission_set_arn=grant, user_id=user_id)
            changes.granted.append(account_id)
        for permission_set in sorted(have - {wanted}):
            assignment = identity_center.Assignment(permission_set, "USER", user_id)
            assignment_remove(organization, account_id=account_id, assignment=assignment)
            changes.revoked.append(account_id)
    except PermanentAwsError as error:
        if _still_settling(account, error):
            changes.settling.append(f"{account.account_name} ({account_id}) is still being set up: {error.message}")
            return
        # The other accounts still get their change; the reconciler tries this one again.
        logger.error("Staff access on %s not changed: %s", account_id, error)
        changes.left_alone.append(f"{account.account_name} ({account_id}): {error.message}")


def _still_settling(account: MemberAccount, error: PermanentAwsError) -> bool:
    """Whether AWS refused because the account is brand new: a refusal of the kind a new account
    gives, within the grace window after its creation."""
    return not while_account_is_new(error).permanent and account_is_new_in_aws(account)


def _to_grant(account: MemberAccount, wanted: str | None, have: set[str]) -> str | None:
    """The permission set to add on the account, if any: staff access is given only where people
    sign in."""
    if wanted is None or wanted in have or account.state not in SIGN_IN_STATES:
        return None
    return wanted


def _gate_refusal(account: MemberAccount, organization: AwsOrganization) -> str:
    """Why the portal must not change access to this account now ("" when it may): the record's
    state, read again, and AWS's word that the account is the course's."""
    no_longer = f"{account.account_name} ({account.aws_account_id}) is no longer the course's to change."
    try:
        # Read into the record: the grant that follows goes by the state too.
        account.refresh_from_db(fields=["state"])
    except MemberAccount.DoesNotExist:
        return no_longer
    if account.state not in LIVE_STATES:
        return no_longer
    try:
        ownership_check(account, organization)
    except NotOurs as error:
        return f"{account.account_name}: {error}"
    return ""


def _audit(course: Course, email: str, role: str | None, changes: StaffAccessChanges) -> None:
    label = CourseRole(role).label if role is not None else "no staff role"
    summary = (
        f"AWS access of {email} ({label}): granted on {len(set(changes.granted))} account(s), "
        f"removed from {len(set(changes.revoked))}"
    )
    if changes.left_alone:
        summary += f", {len(changes.left_alone)} left for the reconciler"
    audit_record(
        actor=None,
        action=AuditAction.STAFF_ACCESS_CHANGED,
        course=course,
        target=course,
        summary=summary,
        data={
            "email": email,
            "granted": changes.granted,
            "revoked": changes.revoked,
            "left_alone": changes.left_alone,
        },
    )


def _course_accounts(course: Course, states: frozenset[S]) -> QuerySet[MemberAccount]:
    """The course's records of AWS accounts in these states."""
    return (
        MemberAccount.objects.filter(course=course, state__in=states)
        .exclude(aws_account_id=None)
        .select_related("course")
        .order_by("pk")
    )


def _staff_permission_sets(organization: AwsOrganization) -> dict[str, str]:
    """role → permission set ARN, for the roles whose access follows the roster."""
    return {role: organization.permission_sets[role] for role in STAFF_ROLES_WITH_ACCESS}


# --- The reconciler -------------------------------------------------------------------------------


def staff_access_reconcile(organization: AwsOrganization) -> list[str]:
    """Compare each Identity Center course's staff assignments with its roster and repair them:
    a missing one is created, one the roster no longer gives (a removed TA) deleted. Returns the
    drift report's lines: each repair, and what a person must look at.

    Courses are taken whole, the longest unchecked first, until RECONCILE_ACCOUNTS_PER_RUN
    accounts are checked. AWS calls per course: GetUserId per staff member (CreateUser for a
    missing one, when the portal provisions users); two ListAccountAssignments per account where
    people sign in (one per staff permission set); for each account to repair, ListParents and
    ListTagsForResource (the ownership check) and one Create/DeleteAccountAssignment per
    difference (with its checks, as in staff_access_sync); DescribeUser per unknown user found.
    """
    if not organization.sso_instance_arn:
        return []
    drift: list[str] = []
    users: dict[str, str | None] = {}  # email → user id, for this run
    left = RECONCILE_ACCOUNTS_PER_RUN
    courses = Course.objects.filter(access_mode=AccessMode.IDENTITY_CENTER).order_by(
        F("staff_access_checked_at").asc(nulls_first=True), "pk"
    )
    for course in courses:
        if left <= 0:
            break
        accounts = list(_course_accounts(course, SIGN_IN_STATES))
        if not accounts:
            continue
        left -= len(accounts)
        try:
            found, settling = _course_reconcile(course, accounts, organization, users)
        except AwsError as error:
            drift.append(f"{course.code}: staff access not checked this time: {error}")
            continue
        drift += found
        if not settling:
            # A course with a new account AWS is still setting up stays first in line.
            Course.objects.filter(pk=course.pk).update(staff_access_checked_at=timezone.now())
    return drift


def _course_reconcile(
    course: Course, accounts: list[MemberAccount], organization: AwsOrganization, users: dict[str, str | None]
) -> tuple[list[str], bool]:
    """The course's drift lines, and whether a brand-new account refused its repair (a wait)."""
    drift: list[str] = []
    sets = _staff_permission_sets(organization)
    set_names = {arn: CourseRole(role).label for role, arn in sets.items()}
    expected: set[tuple[str, str]] = set()  # (permission set ARN, user id)
    emails: dict[str, str] = {}  # user id → email, for the report
    for member in Membership.objects.filter(course=course, role__in=STAFF_ROLES_WITH_ACCESS).order_by("email"):
        if member.email not in users:
            users[member.email] = identity_user_for(organization, email=member.email, display_name=member.display_name)
        user_id = users[member.email]
        if user_id is None:
            drift.append(
                f"{course.code}: {member.email} ({member.get_role_display()}) has no Identity Center user "
                "yet; their AWS access waits for the school's directory."
            )
            continue
        expected.add((sets[member.role], user_id))
        emails[user_id] = member.email

    changes = StaffAccessChanges()
    settling = False
    for account in accounts:
        account_id = account.aws_account_id
        found = identity_center.account_assignments(
            organization.sso_instance_arn, account_id=account_id, permission_set_arns=list(sets.values())
        )
        actual = {(a.permission_set_arn, a.principal_id) for a in found if a.principal_type == "USER"}
        drift += [
            f"{course.code}: group {a.principal_id} has the {set_names[a.permission_set_arn]} permission set "
            f"on {account_id}; groups are not the roster's, so the portal leaves it alone."
            for a in found
            if a.principal_type == "GROUP"
        ]
        missing, extra = sorted(expected - actual), sorted(actual - expected)
        if not (missing or extra):
            continue
        refusal = _gate_refusal(account, organization)
        if refusal:
            drift.append(f"{course.code}: staff access on {account_id} differs from the roster, left alone: {refusal}")
            continue
        try:
            for permission_set, user_id in missing:
                assignment_ensure(
                    organization, account_id=account_id, permission_set_arn=permission_set, user_id=user_id
                )
                changes.granted.append(account_id)
                drift.append(
                    f"{course.code}: gave {emails[user_id]} the {set_names[permission_set]} permission set on "
                    f"{account_id}, which the roster gives them and AWS lacked."
                )
            for permission_set, user_id in extra:
                assignment = identity_center.Assignment(permission_set, "USER", user_id)
                assignment_remove(organization, account_id=account_id, assignment=assignment)
                changes.revoked.append(account_id)
                who = (
                    emails.get(user_id) or identity_center.user_name(organization.identity_store_id, user_id) or user_id
                )
                drift.append(
                    f"{course.code}: took the {set_names[permission_set]} permission set on {account_id} from "
                    f"{who}, whom the roster does not give it."
                )
        except PermanentAwsError as error:
            if not _still_settling(account, error):
                raise
            settling = True
            drift.append(
                f"{course.code}: staff access on {account_id} waits for AWS, which is still setting up this new "
                f"account ({error.message}); the next run tries again."
            )
    if changes.granted or changes.revoked:
        audit_record(
            actor=None,
            action=AuditAction.STAFF_ACCESS_CHANGED,
            course=course,
            target=course,
            summary=f"Reconciler: staff access brought back to the roster ({len(changes.granted)} "
            f"assignment(s) created, {len(changes.revoked)} removed)",
            data={"granted": changes.granted, "revoked": changes.revoked},
        )
    return drift, settling
