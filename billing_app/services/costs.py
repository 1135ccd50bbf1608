"""Cost Explorer sync: one query family for the whole organization, upserted over a trailing
window because AWS revises its figures for days (month totals settle mid next month). The
previous month is re-read whole until AWS has marked every figure of it final, so that monthly
statements do become final. Tag and hourly queries are optional: when AWS refuses one, the sync
goes on without it and says so in its warnings."""

from __future__ import annotations

from datetime import date, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts_app.models import Course, MemberAccount
from billing_app.models import CostKind, CostRecord, CostSync, HourlyCost, TagDailyCost
from billing_app.selectors import month_is_settled
from billing_app.services import cost_store
from billing_app.services.cost_store import AccountOwners, rollups_rebuild
from portal.aws import costs
from portal.aws.errors import AwsError

BATCH = 5000
HOURLY_DAYS = 2
KIND_OF_RECORD_TYPE = {"Credit": CostKind.CREDIT.value, "Refund": CostKind.REFUND.value}


def costs_sync(*, days: int | None = None, today: date | None = None) -> CostSync:
    """Pull the last `days` days (default PORTAL_COST_SYNC_DAYS), and the whole previous month
    while it is not final, and make the database match. Running it twice in a row changes no figure."""
    today = today or timezone.localdate()
    days = days or settings.PORTAL_COST_SYNC_DAYS
    start, end = sync_window_start(today, days), today + timedelta(days=1)
    sync = CostSync.objects.create(window_start=start, window_end=end)
    meter = costs.RequestMeter()
    with cost_store.staging() as staging:
        try:
            for rows in costs.usage_by_account_and_service(start, end, meter=meter):
                staging.add(rows, _usage)
            for rows in costs.credits_by_account(start, end, meter=meter):
                staging.add(rows, _credit_kind)
        except Exception as error:
            # Every answered page is billed, also those of a sync that fails part-way.
            CostSync.objects.filter(pk=sync.pk).update(
                error=str(error)[:2000], requests=meter.requests, finished_at=timezone.now()
            )
            raise
        warnings: list[str] = []
        tag_rows, refused_courses = _tag_costs(start, end, meter, warnings)
        hourly = _hourly_costs(meter, warnings) if settings.PORTAL_COST_HOURLY else []
        with transaction.atomic():
            sync.rows = staging.store(sync=sync, start=start, end=end)
            _store_tags(tag_rows, refused_courses, start, end)
            _store_hourly(hourly)
            rollups_rebuild(start=start, end=end)
            sync.requests = meter.requests
            sync.warnings = "\n".join(warnings)
            sync.finished_at = timezone.now()
            sync.save(update_fields=["requests", "rows", "warnings", "finished_at"])
    return sync


def _usage(row: costs.CostRow) -> str:
    """The usage query leaves credits and refunds out: each of its figures is usage."""
    return CostKind.USAGE.value


def _credit_kind(row: costs.CostRow) -> str:
    """The credits query is grouped by record type: its key is the kind."""
    _, _, record_type, _, _, _ = row
    return KIND_OF_RECORD_TYPE[record_type]


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
        for day, account_id, key, amount, _, _ in result.rows:
            account_pk, course_pk = owners.owner(account_id, day)
            if course_pk == course.pk:
                rows.append(
                    TagDailyCost(
                        account_id=account_pk,
                        course=course,
                        day=day,
                        tag_value=key.split("$", 1)[-1],  # Cost Explorer answers "key$value"
                        amount=amount,
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
