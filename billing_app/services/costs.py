"""Cost Explorer sync: one query family for the whole organization, upserted over a trailing
window because AWS revises its figures for days (month totals settle mid next month). The
previous month is re-read whole until AWS has marked every figure of it final, so that monthly
statements do become final. Tag and hourly queries are optional: when AWS refuses one, the sync
goes on without it and says so in its warnings."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, IntegerField, Max, Q, Sum, Value, When
from django.utils import timezone

from accounts_app.models import Course, MemberAccount
from billing_app.models import (
    AccountDailyCost,
    CostKind,
    CostRecord,
    CostSync,
    CourseServiceDailyCost,
    HourlyCost,
    TagDailyCost,
)
from billing_app.selectors import month_is_settled
from billing_app.services.cost_totals import account_cost_totals_rebuild
from portal.aws import costs
from portal.aws.errors import AwsError

BATCH = 5000
HOURLY_DAYS = 2
KIND_OF_RECORD_TYPE = {"Credit": CostKind.CREDIT, "Refund": CostKind.REFUND}


def costs_sync(*, days: int | None = None, today: date | None = None) -> CostSync:
    """Pull the last `days` days (default PORTAL_COST_SYNC_DAYS), and the whole previous month
    while it is not final, and make the database match. Running it twice in a row changes no figure."""
    today = today or timezone.localdate()
    days = days or settings.PORTAL_COST_SYNC_DAYS
    start, end = sync_window_start(today, days), today + timedelta(days=1)
    sync = CostSync.objects.create(window_start=start, window_end=end)
    meter = costs.RequestMeter()
    try:
        usage = costs.usage_by_account_and_service(start, end, meter=meter)
        credits = costs.credits_by_account(start, end, meter=meter)
    except Exception as error:
        # Every answered page is billed, also those of a sync that fails part-way.
        CostSync.objects.filter(pk=sync.pk).update(
            error=str(error)[:2000], requests=meter.requests, finished_at=timezone.now()
        )
        raise
    warnings: list[str] = []
    tag_rows, refused_courses = _tag_costs(start, end, meter, warnings)
    hourly = _hourly_costs(meter, warnings) if settings.PORTAL_COST_HOURLY else []
    records = list(_records(sync, usage.rows, credits.rows))
    with transaction.atomic():
        _store(sync, records, start, end)
        _store_tags(tag_rows, refused_courses, start, end)
        _store_hourly(hourly)
        rollups_rebuild(start=start, end=end)
        sync.requests = meter.requests
        sync.rows = len(records)
        sync.warnings = "\n".join(warnings)
        sync.finished_at = timezone.now()
        sync.save(update_fields=["requests", "rows", "warnings", "finished_at"])
    return sync


def sync_window_start(today: date, days: int) -> date:
    """The trailing `days`, widened to the first of the previous month while that month is not
    final: before AWS settles it (around the 13th), and after as long as a stored figure of it is
    still an estimate (AWS finalizes some later)."""
    trailing = today - timedelta(days=days)
    this_month = today.replace(day=1)
    previous_month = (this_month - timedelta(days=1)).replace(day=1)
    if trailing <= previous_month:
        return trailing
    still_estimated = CostRecord.objects.filter(day__gte=previous_month, day__lt=this_month, estimated=True).exists()
    if still_estimated or not month_is_settled(previous_month, today):
        return previous_month
    return trailing


class AccountOwners:
    """Which record a day's costs of an AWS account belong to. A recycled account has several
    records; each owns the days from its `costs_since` on, until the next one's."""

    def __init__(self):
        self._records: dict[str, list[tuple[date, int, int | None]]] = {}
        rows = MemberAccount.objects.exclude(aws_account_id=None).values_list(
            "aws_account_id", "costs_since", "pk", "course_id"
        )
        for aws_id, since, pk, course_id in rows:
            self._records.setdefault(aws_id, []).append((since or date.min, pk, course_id))
        for records in self._records.values():
            records.sort()

    def owner(self, aws_account_id: str, day: date) -> tuple[int | None, int | None]:
        """(record pk, course pk) for that day, or (None, None) for an account not the portal's."""
        records = self._records.get(aws_account_id)
        if not records:
            return None, None
        _, pk, course_id = next((r for r in reversed(records) if r[0] <= day), records[0])
        return pk, course_id


def _records(sync: CostSync, usage: Iterable[costs.CostRow], credits: Iterable[costs.CostRow]):
    owners = AccountOwners()
    for kind_of, rows in ((lambda r: CostKind.USAGE, usage), (lambda r: KIND_OF_RECORD_TYPE[r.key], credits)):
        for row in rows:
            account_pk, course_pk = owners.owner(row.account_id, row.day)
            yield CostRecord(
                aws_account_id=row.account_id,
                account_id=account_pk,
                course_id=course_pk,
                day=row.day,
                kind=kind_of(row),
                service=row.key,
                amount=row.amount,
                currency=row.currency,
                estimated=row.estimated,
                sync=sync,
            )


def _store(sync: CostSync, records: list[CostRecord], start: date, end: date) -> None:
    CostRecord.objects.bulk_create(
        records,
        batch_size=BATCH,
        update_conflicts=True,
        unique_fields=["aws_account_id", "day", "kind", "service"],
        update_fields=["amount", "currency", "estimated", "sync", "account", "course"],
    )
    # What AWS no longer reports for the window (a revised-away charge) goes too.
    CostRecord.objects.filter(day__gte=start, day__lt=end).exclude(sync=sync).delete()


def _tag_costs(
    start: date, end: date, meter: costs.RequestMeter, warnings: list[str]
) -> tuple[list[TagDailyCost], set[int]]:
    """One tag-grouped query per course that names a cost allocation tag. Returns the rows and
    the courses whose query AWS refused: their figures stay as they were."""
    rows: list[TagDailyCost] = []
    refused: set[int] = set()
    owners = AccountOwners()
    for course in Course.objects.exclude(cost_tag_key="").filter(archived_at__isnull=True):
        account_ids = set(
            MemberAccount.objects.filter(course=course)
            .exclude(aws_account_id=None)
            .values_list("aws_account_id", flat=True)
        )
        if not account_ids:
            continue
        try:
            result = costs.usage_by_tag(
                start, end, tag_key=course.cost_tag_key, account_ids=sorted(account_ids), meter=meter
            )
        except AwsError as error:
            warnings.append(f"Tag costs of {course.code} not read: {error}")
            refused.add(course.pk)
            continue
        for row in result.rows:
            account_pk, course_pk = owners.owner(row.account_id, row.day)
            if course_pk == course.pk:
                rows.append(
                    TagDailyCost(
                        account_id=account_pk,
                        course=course,
                        day=row.day,
                        tag_value=row.key.split("$", 1)[-1],  # Cost Explorer answers "key$value"
                        amount=row.amount,
                    )
                )
    return rows, refused


def _store_tags(rows: list[TagDailyCost], refused_courses: set[int], start: date, end: date) -> None:
    TagDailyCost.objects.filter(day__gte=start, day__lt=end).exclude(course__in=refused_courses).delete()
    TagDailyCost.objects.bulk_create(rows, batch_size=BATCH)


def _hourly_costs(meter: costs.RequestMeter, warnings: list[str]) -> list[HourlyCost]:
    """The last HOURLY_DAYS days hour by hour (re-read, since AWS revises recent hours); none when
    AWS refuses (hourly granularity is opt-in in the billing console)."""
    end = timezone.now().replace(minute=0, second=0, microsecond=0)
    try:
        rows, _ = costs.hourly_usage_by_account(end - timedelta(days=HOURLY_DAYS), end, meter=meter)
    except AwsError as error:
        warnings.append(f"Hourly costs not read: {error}")
        return []
    owners = AccountOwners()
    return [
        HourlyCost(
            aws_account_id=r.account_id,
            account_id=owners.owner(r.account_id, r.hour.date())[0],
            hour=r.hour,
            amount=r.amount,
        )
        for r in rows
    ]


def _store_hourly(rows: list[HourlyCost]) -> None:
    # Upserted, never deleted: AWS forgets hours after 14 days, the portal's history does not.
    HourlyCost.objects.bulk_create(
        rows,
        batch_size=BATCH,
        update_conflicts=True,
        unique_fields=["aws_account_id", "hour"],
        update_fields=["amount", "account"],
    )


def rollups_rebuild(*, start: date, end: date) -> None:
    """Recompute the per-account and per-course-service rollups of [start, end) from raw rows."""
    window = Q(day__gte=start, day__lt=end)
    AccountDailyCost.objects.filter(window).delete()
    CourseServiceDailyCost.objects.filter(window).delete()
    # Costs of a recycled account while it waits in the organization's pool belong to no course.
    raw = CostRecord.objects.filter(window, account__isnull=False, course__isnull=False)
    per_account = raw.values("account_id", "course_id", "day").annotate(
        usage=Sum("amount", filter=Q(kind=CostKind.USAGE)),
        credits=Sum("amount", filter=~Q(kind=CostKind.USAGE)),
        estimated=_any_estimated(),
    )
    AccountDailyCost.objects.bulk_create(
        [
            AccountDailyCost(
                account_id=row["account_id"],
                course_id=row["course_id"],
                day=row["day"],
                usage=row["usage"] or 0,
                credits=row["credits"] or 0,
                estimated=row["estimated"] == 1,
            )
            for row in per_account
        ],
        batch_size=BATCH,
    )
    per_service = raw.filter(kind=CostKind.USAGE).values("course_id", "day", "service").annotate(usage=Sum("amount"))
    CourseServiceDailyCost.objects.bulk_create([CourseServiceDailyCost(**row) for row in per_service], batch_size=BATCH)
    account_cost_totals_rebuild()


def _any_estimated() -> Max:
    """1 when any row of the group is still an estimate (portable: no boolean MAX in PostgreSQL)."""
    return Max(Case(When(estimated=True, then=Value(1)), default=Value(0), output_field=IntegerField()))
