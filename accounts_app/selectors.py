"""Reads for the views. Callers pass courses they fetched through Course.objects.for_user()."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, F, Q, QuerySet, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from accounts_app.choices import AccessMode, AccountState, CourseRole, SpendingStatus
from accounts_app.lifecycle import (
    CLOSURE_STATES,
    FROZEN_STATES,
    STATES_THAT_EXPLAIN_THEMSELVES,
    WORKING_STATES,
)
from accounts_app.models import (
    AuditEvent,
    AwsOrganization,
    Course,
    MemberAccount,
    Membership,
    WebhookDelivery,
    WebhookEndpoint,
)
from portal.aws.display import SPENDING_KIND_LABELS, STUDENT_PERMISSION_SET, console_deep_link, signin_url


def course_role_counts(*, course: Course) -> dict[str, int]:
    counts = course.memberships.aggregate(
        **{role.value: Count("pk", filter=Q(role=role)) for role in CourseRole},
        signed_in=Count("pk", filter=Q(user__isnull=False)),
    )
    return counts


def roster_members(*, course: Course, role: str | None = None, search: str | None = None) -> QuerySet[Membership]:
    members = course.memberships.select_related("user", "aws_account").order_by("role", "name", "email")
    if role in CourseRole.values:
        members = members.filter(role=role)
    if search:
        members = members.filter(Q(email__icontains=search) | Q(name__icontains=search))
    return members


def course_audit_events(*, course: Course) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(course=course).select_related("actor")


def course_account_counts(*, course: Course) -> dict[str, int]:
    """How many of the course's AWS accounts are in each state (pool accounts included)."""
    rows = MemberAccount.objects.filter(course=course).values("state").annotate(n=Count("pk"))
    return {row["state"]: row["n"] for row in rows}


def course_code_locked(*, course: Course) -> bool:
    """Whether the course has anything in AWS (its OU or SCP, or any account record): its code
    is in those accounts' root emails, names and tags, so it can no longer change."""
    if course.aws_ou_id or course.aws_scp_id:
        return True
    return MemberAccount.objects.filter(course=course).exists()


def course_vending_progress(*, course: Course) -> dict[str, int]:
    """Pool size, and how many accounts are still being made (the roster refreshes while any are)."""
    counts = MemberAccount.objects.filter(course=course).aggregate(
        pool_count=Count("pk", filter=Q(membership__isnull=True, state=AccountState.POOLED)),
        accounts_in_progress=Count("pk", filter=Q(state__in=WORKING_STATES)),
    )
    return counts


def course_end_accounts(*, course: Course) -> QuerySet[MemberAccount]:
    """Every account of the course with what the end page shows of it: student, handover,
    cleanup report. Pool accounts last; declined requests to bring an account, which never
    were the course's, left out."""
    return (
        MemberAccount.objects.filter(course=course)
        .exclude(state=AccountState.DECLINED)
        .select_related("membership", "handover")
        .order_by(F("membership__name").asc(nulls_last=True), "membership__email", "account_name")
    )


@dataclass
class RegionCleanup:
    """What cleanup did in one region of one account, or of every account of a course."""

    region: str
    deleted: list[dict] = field(default_factory=list)  # resources, as the cleanup report keeps them
    failed: list[dict] = field(default_factory=list)  # what could not be deleted, with AWS's "error"
    found_before_pool: list[dict] = field(default_factory=list)  # what the check before the pool found


def cleanup_by_region(report: dict) -> list[RegionCleanup]:
    """An account's cleanup report region by region (in order): each resource its passes deleted,
    once (a stack AWS is still deleting is listed, and deleted, by more than one pass), what could
    not be deleted, and what the check before the pool found."""
    regions: dict[str, RegionCleanup] = {}

    def of(resource: dict) -> RegionCleanup:
        return regions.setdefault(resource["region"], RegionCleanup(resource["region"]))

    seen: set[tuple[str, str, str]] = set()
    for run in report.get("passes", []):
        for resource in run["deleted"]:
            key = (resource["region"], resource["kind"], resource["id"])
            if key not in seen:
                seen.add(key)
                of(resource).deleted.append(resource)
    for resource in report.get("remaining", []):
        of(resource).failed.append(resource)
    for resource in report.get("verification", {}).get("found", []):
        of(resource).found_before_pool.append(resource)
    return [regions[name] for name in sorted(regions)]


@dataclass(frozen=True)
class RegionTotals:
    region: str
    deleted: int
    failed: int
    found_before_pool: int
    accounts: int  # accounts cleanup did or tried something in, in this region


def course_cleanup_by_region(accounts: Iterable[MemberAccount]) -> list[RegionTotals]:
    """The course's cleanup summed up region by region (in order), from its accounts' reports."""
    totals: dict[str, list[int]] = {}
    for account in accounts:
        for region in cleanup_by_region(account.cleanup_report):
            counts = totals.setdefault(region.region, [0, 0, 0, 0])
            counts[0] += len(region.deleted)
            counts[1] += len(region.failed)
            counts[2] += len(region.found_before_pool)
            counts[3] += 1
    return [RegionTotals(region, *counts) for region, counts in sorted(totals.items())]


def student_entry(*, user, course_id: int) -> Membership | None:
    """The user's own entry in the course as a student, read with the course, the entry's account
    and that account's handover: all that a poll of the account panel reads, in one query. None
    for anyone who is not a student of the course."""
    entries = Membership.objects.select_related("course", "aws_account__handover")
    try:
        # One at most (the roster holds a user once per course): no ordering to compute.
        return entries.get(user=user, course_id=course_id, role=CourseRole.STUDENT)
    except Membership.DoesNotExist:
        return None


def own_entry(*, user, course: Course) -> Membership | None:
    """The user's own entry in a course they see, whatever their role, read with its account and
    that account's handover (as `student_entry` does)."""
    try:
        return course.memberships.select_related("aws_account__handover").get(user=user)
    except Membership.DoesNotExist:
        return None


def entry_account(membership: Membership) -> MemberAccount | None:
    """The account of an entry read by `student_entry` or `own_entry`, without asking the
    database again."""
    account = getattr(membership, "aws_account", None)
    return None if account is None else _with_entry(account, membership)


def student_account(*, membership: Membership) -> MemberAccount | None:
    """The entry's account, read afresh with its handover."""
    try:
        account = MemberAccount.objects.select_related("handover").get(membership=membership)
    except MemberAccount.DoesNotExist:
        return None
    return _with_entry(account, membership)


def _with_entry(account: MemberAccount, membership: Membership) -> MemberAccount:
    """The account given the entry and course its caller holds, rather than reading them again."""
    account.membership = membership
    if account.course_id == membership.course_id:
        account.course = membership.course
    return account


# What a student reads when a step of their account met a problem. `last_error` is for staff: it
# may quote AWS, with ARNs and the school's account ids; students get a plain sentence by state.
STUDENT_NOTES = {
    AccountState.REQUESTED: "AWS is busy creating other accounts. Yours stays in the queue and is created "
    "as soon as AWS accepts more; nothing to do.",
    AccountState.CREATING: "AWS has not confirmed your account yet. The portal checks again by itself; nothing to do.",
    AccountState.AWAITING_ACCESS_ROLE: "The portal cannot use the role {role} in your account yet. Check that "
    "the CloudFormation stack finished creating it (status CREATE_COMPLETE) in your account, then try again.",
}
STUDENT_NOTE_OTHERWISE = (
    "A step of your account's setup did not work yet. The portal tries again; your course staff can see the details."
)


def student_account_note(*, account: MemberAccount) -> str:
    """A plain note for the student about the account's last problem, or "" if there is none."""
    if not account.last_error or account.state in STATES_THAT_EXPLAIN_THEMSELVES:
        return ""
    note = STUDENT_NOTES.get(AccountState(account.state), STUDENT_NOTE_OTHERWISE)
    return note.format(role=settings.PORTAL_AWS_MEMBER_ROLE_NAME)


@dataclass(frozen=True)
class SpendingLine:
    """One resource a freeze stopped (or could not), as the student and staff read it."""

    what: str  # "EC2 instance"
    name: str  # its label: name, id, type, state when it was found
    region: str
    status: SpendingStatus
    reason: str  # AWS's refusal, or why it was not brought back


@dataclass(frozen=True)
class Spending:
    lines: list[SpendingLine]
    checked_at: datetime | None
    restored_at: datetime | None
    errors: list[str]  # for staff: the step's refusals (not the account's, or a region unreadable)
    pending: bool  # frozen or ended, and what runs in it not looked at since

    @property
    def not_stopped(self) -> list[SpendingLine]:
        return [line for line in self.lines if line.status == SpendingStatus.NOT_STOPPED]

    @property
    def left_after_unfreeze(self) -> list[SpendingLine]:
        """What a ready account's last freeze stopped and is not running again (yet)."""
        left = {SpendingStatus.NOT_RESTORED, SpendingStatus.STOPPED, SpendingStatus.STOPPING}
        return [line for line in self.lines if line.status in left]


def account_spending(*, account: MemberAccount) -> Spending:
    """What the account's last freeze stopped, could not stop, and (after an unfreeze) brought back."""
    report = account.spending_report or {}
    checked_at = _moment(report.get("checked_at"))
    stepped = checked_at is not None and checked_at >= account.state_changed_at
    lines = [
        SpendingLine(
            what=SPENDING_KIND_LABELS.get(entry["kind"], entry["kind"]),
            name=entry["label"] or entry["id"],
            region=entry["region"],
            status=SpendingStatus(entry["status"]),
            reason=entry.get("reason", ""),
        )
        for entry in report.get("resources", [])
    ]
    return Spending(
        lines=lines,
        checked_at=checked_at,
        restored_at=_moment(report.get("restored_at")),
        errors=report.get("errors", []),
        pending=account.state in FROZEN_STATES and not stepped,
    )


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def student_bring_requests(*, membership: Membership) -> dict:
    """The student's requests to bring their own account: how many they may still make, and
    whether the last one was declined (a declined request no longer belongs to their place)."""
    requests = MemberAccount.objects.filter(brought_by=membership)
    last = requests.order_by("-created_at", "-pk").values_list("state", flat=True).first()
    return {
        "left": max(settings.PORTAL_BRING_REQUESTS_PER_STUDENT - requests.count(), 0),
        "last_declined": last == AccountState.DECLINED,
    }


def course_bring_requests(*, course: Course) -> QuerySet[MemberAccount]:
    """Students' requests to bring their own account that wait for an instructor."""
    return (
        MemberAccount.objects.filter(course=course, state=AccountState.AWAITING_APPROVAL)
        .select_related("membership")
        .order_by("created_at")
    )


def account_access(*, account: MemberAccount) -> dict[str, str]:
    """How the student signs in to their account, for the status panel."""
    organization = AwsOrganization.load()
    if account.course.access_mode == AccessMode.IAM_USER:
        target = account.account_alias or account.aws_account_id or ""
        return {"signin_url": signin_url(target), "user_name": account.iam_user_name}
    portal_url = organization.access_portal_url
    return {
        "portal_url": portal_url,
        "deep_link": console_deep_link(portal_url, account.aws_account_id or "", STUDENT_PERMISSION_SET),
        "user_name": account.membership.email if account.membership_id else "",
    }


def vending_overview() -> dict:
    """The administrator's view of the organization: quota use and the vending queue."""
    organization = AwsOrganization.load()
    by_state = dict(MemberAccount.objects.values_list("state").annotate(n=Count("pk")).values_list("state", "n"))
    with_account = MemberAccount.objects.exclude(aws_account_id=None).count()
    return {
        "close_queue": close_queue_status(),
        "closing": MemberAccount.objects.filter(state__in=CLOSURE_STATES)
        .select_related("course", "membership")
        .order_by("state", "state_changed_at")[:100],
        "organization": organization,
        "by_state": [(AccountState(state).label, n) for state, n in sorted(by_state.items())],
        "accounts_with_id": with_account,
        "account_limit": organization.account_limit or settings.PORTAL_AWS_ACCOUNT_LIMIT,
        "waiting_for_quota": MemberAccount.objects.filter(state=AccountState.WAITING_FOR_QUOTA)
        .select_related("course", "membership")
        .order_by("created_at"),
        "failed": MemberAccount.objects.filter(state=AccountState.FAILED)
        .select_related("course", "membership")
        .order_by("-state_changed_at")[:50],
    }


WEBHOOK_DELIVERIES_SHOWN = 5


def course_webhooks(*, course: Course) -> list[WebhookEndpoint]:
    """The course's endpoints, each with its last few messages as `recent` (newest first)."""
    endpoints = list(WebhookEndpoint.objects.filter(course=course).order_by("name", "pk"))
    ids = [endpoint.pk for endpoint in endpoints]
    recent: dict[int, list[WebhookDelivery]] = {pk: [] for pk in ids}
    # One query for all: a window function numbers each endpoint's messages, newest first.
    deliveries = (
        WebhookDelivery.objects.filter(endpoint_id__in=ids)
        .annotate(rank=Window(RowNumber(), partition_by=F("endpoint_id"), order_by=F("created_at").desc()))
        .filter(rank__lte=WEBHOOK_DELIVERIES_SHOWN)
        .order_by("endpoint_id", "rank")
    )
    for delivery in deliveries:
        recent[delivery.endpoint_id].append(delivery)
    for endpoint in endpoints:
        endpoint.recent = recent[endpoint.pk]
    return endpoints


def school_webhook_names() -> list[str]:
    """The school's endpoints, which also receive every course's alerts: names only."""
    return list(WebhookEndpoint.objects.filter(course=None, enabled=True).values_list("name", flat=True))


# --- The close queue (services/closing.py dispatches it) ------------------------------------------

# AWS allows max(250, 20% of the organization's members) closures per rolling 30 days, at most 1,000.
QUOTA_WINDOW = timedelta(days=30)
QUOTA_FLOOR, QUOTA_SHARE, QUOTA_CEILING = 250, 0.20, 1000


@dataclass(frozen=True)
class CloseQueue:
    queued: int
    in_progress: int
    closed_in_window: int
    quota: int
    paused_until: datetime | None
    pause_reason: str

    @property
    def quota_left(self) -> int:
        return max(self.quota - self.closed_in_window, 0)


def closure_quota(organization: AwsOrganization) -> int:
    members = organization.accounts_in_organization or 0
    return min(QUOTA_CEILING, max(QUOTA_FLOOR, math.floor(members * QUOTA_SHARE)))


def close_queue_status(now: datetime | None = None) -> CloseQueue:
    now = now or timezone.now()
    organization = AwsOrganization.load()
    paused = organization.close_paused_until if (organization.close_paused_until or now) > now else None
    return CloseQueue(
        queued=MemberAccount.objects.filter(state=AccountState.CLOSE_QUEUED).count(),
        in_progress=MemberAccount.objects.filter(state=AccountState.CLOSING).count(),
        closed_in_window=MemberAccount.objects.filter(close_submitted_at__gt=now - QUOTA_WINDOW).count(),
        quota=closure_quota(organization),
        paused_until=paused,
        pause_reason=organization.close_pause_reason if paused else "",
    )
