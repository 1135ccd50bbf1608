"""Cleaning an account at the end of its course: access revoked, resources deleted.

Nothing is deleted in an account the portal cannot prove is its own: its record must be in
the cleaning state, and the account in the course's OU (or the pool's) with the portal's tag
(accounts_app/services/gates.py). Resources are deleted in passes, each one a task
run: list everything in every enabled region, delete what is there, and come back a little later
for what depended on it (a volume frees once its instance has terminated). Passes stop when
nothing is left or a pass removes nothing; what remains is reported. Each pass starts from a
fresh listing, so a pass that dies half-way simply resumes with the next one.

An account bound for the pool is checked once more before it goes (`pool_check`): every region
enabled in it, whatever PORTAL_CLEANUP_REGIONS limits the passes to, must hold nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts_app import next_step
from accounts_app.choices import AccessMode, AccountOrigin, AuditAction
from accounts_app.choices import AccountState as S
from accounts_app.lifecycle import transition
from accounts_app.models import AwsOrganization, MemberAccount
from accounts_app.services.audit import audit_record
from accounts_app.services.gates import Action, StateRefused, action_gate
from accounts_app.services.guardrails import organization_ready
from accounts_app.services.identity_access import identity_user_release
from accounts_app.services.ownership import NotOurs
from portal.aws import cleanup as aws_cleanup
from portal.aws import iam_users, identity_center, organizations
from portal.aws.errors import AwsError, PermanentAwsError, TransientAwsError

logger = logging.getLogger(__name__)


def cleanup_regions(account_id: str) -> list[str]:
    """Every region enabled in the account, or only those of PORTAL_CLEANUP_REGIONS when set
    (each region costs about forty listing calls per pass)."""
    enabled = aws_cleanup.enabled_regions(account_id)
    if settings.PORTAL_CLEANUP_REGIONS:
        return [region for region in enabled if region in settings.PORTAL_CLEANUP_REGIONS]
    return enabled


# --- The dry run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    account: MemberAccount
    resources: list[aws_cleanup.Resource]
    error: str = ""


def cleanup_inventory(account: MemberAccount) -> Preview:
    """What cleanup would delete in the account; reads AWS, changes nothing."""
    organization = organization_ready()
    try:
        action_gate(account, action=Action.PREVIEW, organization=organization)
        account_id = account.aws_account_id
        resources = aws_cleanup.inventory(account_id, cleanup_regions(account_id))
    except (StateRefused, NotOurs, PermanentAwsError) as error:
        return Preview(account, [], str(error))
    return Preview(account, resources)


def account_cleanup_preview(*, account_id: int) -> Preview | None:
    """The dry run, kept on the account for the instructor to read (None: the record is gone)."""
    account = MemberAccount.objects.select_related("course").filter(pk=account_id).first()
    if account is None:
        return None
    preview = cleanup_inventory(account)
    _report_update(
        account,
        preview={
            "at": timezone.now().isoformat(),
            "resources": [r.as_dict() for r in preview.resources],
            "error": preview.error,
        },
    )
    return preview


# --- The cleanup ----------------------------------------------------------------------------------


def account_clean(*, account_id: int) -> float | None:
    """Run one step of an account's cleanup. Returns seconds until the next pass is due, or
    None when the account has moved on (to the close queue, the pool, or a person) or is gone."""
    account = MemberAccount.objects.select_related("course", "membership").filter(pk=account_id).first()
    if account is None or account.state != S.CLEANING:
        return None
    organization = organization_ready()
    try:
        action_gate(account, action=Action.CLEANUP, organization=organization)
        if not account.cleanup_report.get("access_revoked_at"):
            access_revoke(account, organization)
            _report_update(account, access_revoked_at=timezone.now().isoformat())
        if account.origin == AccountOrigin.INVITED:
            _return_to_owner(account)
            return None
        remaining = _resource_pass(account)
    except StateRefused:
        return None  # moved on meanwhile (a person failed it, or another worker finished it)
    except NotOurs as error:
        _fail(account, str(error))
        return None
    except PermanentAwsError as error:
        _fail(account, f"Cleanup stopped: {error.message}")
        return None
    if remaining is None:
        return settings.PORTAL_CLEANUP_PASS_DELAY_SECONDS
    _cleanup_finished(account, remaining)
    return None


def _resource_pass(account: MemberAccount) -> list[aws_cleanup.Resource] | None:
    """One pass over the account's resources. Returns None when another pass is worth it, else
    what is left: this pass's listing, when it is empty or not worth trying again."""
    account_id = account.aws_account_id
    found = aws_cleanup.inventory(account_id, cleanup_regions(account_id))
    passes = account.cleanup_report.get("passes", [])
    if not found:
        return found
    previous = passes[-1]["found"] if passes else None
    keys = sorted(f"{r.region}/{r.kind}/{r.id}" for r in found)
    if previous is not None and previous == keys and not passes[-1]["deleted"]:
        # The same things as after the last pass, and nothing was deleted then: stop trying.
        return found
    if len(passes) >= settings.PORTAL_CLEANUP_MAX_PASSES:
        return found
    deleted, failed = [], []
    for resource in found:
        try:
            aws_cleanup.delete(account_id, resource)
        except TransientAwsError:
            raise  # the task retries the pass with backoff
        except AwsError as error:
            failed.append({**resource.as_dict(), "error": error.message})
        else:
            deleted.append(resource.as_dict())
    passes.append({"at": timezone.now().isoformat(), "found": keys, "deleted": deleted, "failed": failed})
    _report_update(account, passes=passes, remaining=failed)
    return None


def _return_to_owner(account: MemberAccount) -> None:
    """A student's own account, invited into the course: its resources are theirs. It leaves the
    organization as it came in, with the school's access removed, and is neither cleaned nor
    closed."""
    if organizations.find_account(account.aws_account_id) is not None:
        organizations.remove_account(account.aws_account_id)
    with transaction.atomic():
        if transition(account, expected=S.CLEANING, to=S.HANDED_OVER, reason="Returned to its owner"):
            audit_record(
                actor=None,
                action=AuditAction.ACCOUNT_CLEANED,
                course=account.course,
                target=account,
                summary=f"Returned {account.account_name} ({account.aws_account_id}) to its owner: "
                "the school's access removed, the account out of the organization",
            )


def _cleanup_finished(account: MemberAccount, remaining: list[aws_cleanup.Resource]) -> None:
    # Why each leftover is left: AWS's answer when the last pass tried to delete it.
    errors = {
        (r["region"], r["kind"], r["id"]): r.get("error", "") for r in account.cleanup_report.get("remaining", [])
    }
    left = [{**r.as_dict(), "error": errors.get((r.region, r.kind, r.id), "")} for r in remaining]
    _report_update(account, remaining=left, finished_at=timezone.now().isoformat())
    recycle = account.cleanup_report.get("destination") == "recycle"
    if left and recycle:
        # The next student must not inherit anything (or pay for it): a person decides.
        _fail(account, f"{len(left)} resource(s) could not be deleted; see the cleanup report.")
        return
    with transaction.atomic():
        audit_record(
            actor=None,
            action=AuditAction.ACCOUNT_CLEANED,
            course=account.course,
            target=account,
            summary=f"Cleaned {account.account_name}"
            + (f"; {len(left)} resource(s) left for the closure to remove" if left else ""),
        )
        if recycle:
            next_step.account_recycle_enqueue(account)
        elif transition(account, expected=S.CLEANING, to=S.CLOSE_QUEUED, reason="Cleaned up"):
            next_step.next_step_enqueue(account)


def _fail(account: MemberAccount, message: str) -> None:
    transition(account, expected=S.CLEANING, to=S.FAILED, reason=message[:1000], last_error=message)


def _report_update(account: MemberAccount, **changes) -> None:
    account.cleanup_report = {**account.cleanup_report, **changes}
    MemberAccount.objects.filter(pk=account.pk).update(cleanup_report=account.cleanup_report)


# --- Before the pool -------------------------------------------------------------------------------

# Resources named per kind in a refusal; the cleanup report lists them all.
NAMED_PER_KIND = 5


def pool_check(account: MemberAccount) -> list[aws_cleanup.Resource]:
    """List every region enabled in the account afresh, whatever PORTAL_CLEANUP_REGIONS says: the
    next student can use any of them, and whatever is left there would be theirs (and billed to
    the school). Recorded in the cleanup report as `verification`. Returns what was found."""
    account_id = account.aws_account_id
    regions = aws_cleanup.enabled_regions(account_id)
    found = aws_cleanup.inventory(account_id, regions)
    _report_update(
        account,
        verification={
            "at": timezone.now().isoformat(),
            "regions": regions,
            "found": [r.as_dict() for r in found],
        },
    )
    return found


def found_by_region(resources: list[aws_cleanup.Resource]) -> str:
    """ "eu-north-1: EC2 instances i-0a1, i-0b2; S3 buckets lab-data. us-west-2: …": by region, in
    order, each kind with the ids a person needs to find them."""
    regions: dict[str, dict[str, list[str]]] = {}
    for resource in sorted(resources, key=lambda r: r.region):
        regions.setdefault(resource.region, {}).setdefault(resource.kind, []).append(resource.id)
    return " ".join(
        f"{region}: " + "; ".join(_named(kind, names) for kind, names in kinds.items()) + "."
        for region, kinds in regions.items()
    )


def _named(kind: str, names: list[str]) -> str:
    shown = ", ".join(names[:NAMED_PER_KIND])
    more = f" and {len(names) - NAMED_PER_KIND} more" if len(names) > NAMED_PER_KIND else ""
    return f"{aws_cleanup.KIND_LABELS.get(kind, kind)} {shown}{more}"


# --- Access -----------------------------------------------------------------------------------------


def access_revoke(account: MemberAccount, organization: AwsOrganization) -> None:
    """Nobody signs in through the portal any more: the IAM user goes (IAM-user mode), every
    Identity Center assignment to the account goes (student, TAs, instructors), and the
    student's Identity Center user goes too when the portal created it and nothing else needs it
    (identity_access.identity_user_release)."""
    account_id = account.aws_account_id
    if account.course_id and account.course.access_mode == AccessMode.IAM_USER and account.iam_user_name:
        iam_users.delete_user(account_id, account.iam_user_name)
    if not organization.sso_instance_arn:
        return
    instance = organization.sso_instance_arn
    assignments = identity_center.account_assignments(
        instance, account_id=account_id, permission_set_arns=list(organization.permission_sets.values())
    )
    pending = [
        status
        for assignment in assignments
        if (status := identity_center.delete_assignment(instance, account_id=account_id, assignment=assignment))
        and status.state == "IN_PROGRESS"
    ]
    for status in pending:
        _wait_for_deletion(instance, status)
    if account.identity_store_user_id:
        identity_user_release(organization, user_id=account.identity_store_user_id, released_by=account)


def _wait_for_deletion(instance: str, status: identity_center.AssignmentStatus) -> None:
    current = identity_center.assignment_deletion_status(instance, status.request_id)
    if current.state == "FAILED":
        raise PermanentAwsError(
            current.failure_reason, code="AssignmentDeletionFailed", operation="DeleteAccountAssignment"
        )
    if current.state == "IN_PROGRESS":
        # The task retries; the next run lists the assignment again only if it still exists.
        raise TransientAwsError("An assignment is still being removed.", operation="DeleteAccountAssignment")
