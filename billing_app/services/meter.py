"""The usage meter: what each student account runs now and what it costs an hour, read every
PORTAL_METER_INTERVAL_MINUTES, because Cost Explorer's figures arrive 8 to 24 hours late.

`meter_cycle` (beat) queues one `account_meter_task` per account in use, spread over 80% of the
interval: the portal reads at most accounts ÷ (0.8 × interval) accounts a second, however many
workers run, and each reading expires unread after an interval, so a late queue never piles up.
`account_meter_read` reads one account behind the gate (its record's state allows a reading; AWS
shows it in its course's OU with the portal's tag, confirmed once an hour), in the course's regions
(portal/aws/meter.py: a bounded number of calls per region), prices each item (services/prices.py),
and stores the reading (`MeterReading`). The spend between two readings, the dollars an hour taken
to change linearly from one to the next, is added to each UTC day it falls on (`MeteredDailyCost`):
the metered spend that billing_app/meter_selectors.py adds to Cost Explorer's figures for the days
Cost Explorer has not settled. Unknown prices add nothing there: the metered spend is a floor.
A stored Bedrock item also says its model's family and its use since UTC midnight, priced (`family`
and `today`, see `_bedrock_day`): what the daily limits of a model family read.

Once a reading is stored, `billing_app.signals.meter_read` is sent: the hook for what acts on it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts_app.models import AwsOrganization, MemberAccount
from accounts_app.services.gates import ALLOWED_STATES, Action, StateRefused, ownership_check_hourly, state_gate
from accounts_app.services.guardrails import organization_ready
from accounts_app.services.ownership import NotOurs
from billing_app.models import MeteredDailyCost, MeterReading, PriceSource
from billing_app.services.prices import Quote, prices_for
from billing_app.signals import meter_read
from portal.aws import meter as aws_meter
from portal.aws.bedrock_models import family_of
from portal.aws.errors import PermanentAwsError
from portal.aws.prices import per_hour, unit_of

logger = logging.getLogger(__name__)

METERED_STATES = ALLOWED_STATES[Action.METER]
SPREAD_SHARE = 0.8  # of the interval, over which a cycle's readings are spread
# Longer than any reading (a few dozen calls); a worker that dies holding it delays one reading.
LOCK_SECONDS = 5 * 60
# Between two readings further apart than this (the meter was down), nothing is counted: a
# guess over hours would be worth less than Cost Explorer's figures, which arrive by then.
MAX_INTEGRATED_GAP = timedelta(hours=6)
# Metered days Cost Explorer has long settled are forgotten.
KEEP_METERED_DAYS = 35
CENTS = Decimal("0.000001")  # AMOUNT's precision
# What a stored Bedrock item counts of its day (its "today", besides "usd").
TOKEN_COUNTS = ("input_tokens", "output_tokens", "invocations")


def meter_interval() -> timedelta:
    return timedelta(minutes=settings.PORTAL_METER_INTERVAL_MINUTES)


def meter_regions(course) -> list[str]:
    """Where the meter looks: the course's regions (its guardrails deny students every other), or,
    for a course that names none, the cleanup's regions, or the school's."""
    regions = course.allowed_regions or settings.PORTAL_CLEANUP_REGIONS or settings.PORTAL_AWS_SCHOOL_REGIONS
    return sorted(set(regions))


# --- The cycle ------------------------------------------------------------------------------------


def meter_cycle(*, now: datetime | None = None) -> int:
    """Queue a reading of every student account in use, spread over the interval. Returns how many."""
    from billing_app.tasks import account_meter_task

    now = now or timezone.now()
    if not AwsOrganization.load().parent_ou_id:
        return 0  # not bootstrapped: no account to read
    account_ids = list(
        MemberAccount.objects.filter(state__in=METERED_STATES, course__isnull=False, membership__isnull=False)
        .exclude(aws_account_id=None)
        .exclude(aws_account_id="")
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    spread_over(account_meter_task, account_ids, meter_interval())
    MeteredDailyCost.objects.filter(day__lt=now.date() - timedelta(days=KEEP_METERED_DAYS)).delete()
    return len(account_ids)


def spread_over(task, account_ids: list[int], interval: timedelta) -> None:
    """Queue `task` once per account, spread over SPREAD_SHARE of the interval, each expiring
    unrun after it (the next cycle queues it again)."""
    seconds = interval.total_seconds()
    for position, account_id in enumerate(account_ids):
        countdown = seconds * SPREAD_SHARE * position / len(account_ids)
        task.apply_async((account_id,), countdown=countdown, expires=seconds)


# --- One reading ----------------------------------------------------------------------------------


def account_meter_read(*, account_id: int, now: datetime | None = None) -> MeterReading | None:
    """Read what the account runs now and store it. Returns the reading (with its error when AWS
    or the gate refused), or None when there was nothing to do: the account is not in use, another
    reading of it runs, or it was read less than half an interval ago (a repeated task)."""
    now = now or timezone.now()
    lock = f"meter-reading:{account_id}"
    if not cache.add(lock, 1, timeout=LOCK_SECONDS):
        return None
    try:
        account = MemberAccount.objects.select_related("course").filter(pk=account_id).first()
        if account is None or account.course is None or _read_lately(account, now):
            return None
        return _read(account, now)
    finally:
        cache.delete(lock)


def _read_lately(account: MemberAccount, now: datetime) -> bool:
    taken_at = MeterReading.objects.filter(account=account).values_list("taken_at", flat=True).first()
    return taken_at is not None and now - taken_at < meter_interval() / 2


def _read(account: MemberAccount, now: datetime) -> MeterReading | None:
    try:
        state_gate(account, action=Action.METER)
        ownership_check_hourly(account, organization_ready)
    except StateRefused:
        return None
    except (NotOurs, PermanentAwsError) as error:
        return _failed(account, now, f"Not read: {error}")
    regions = meter_regions(account.course)
    try:
        reading = aws_meter.read(
            account.aws_account_id, regions, now=now, bedrock_models=_bedrock_models_used_today(account, now)
        )
    except PermanentAwsError as error:
        return _failed(account, now, f"AWS refused the meter: {error}")
    wanted = {(charge.rate, item.region) for item in reading.items for charge in _all_charges(item)}
    return _record(account, reading, prices_for(wanted, now=now), regions, now)


def _bedrock_models_used_today(account: MemberAccount, now: datetime) -> dict[str, set[str]]:
    """The Bedrock models the account's last reading saw used today (UTC), by region: read again
    whether or not CloudWatch still lists them as recently active."""
    last = MeterReading.objects.filter(account=account).values("taken_at", "items").first()
    if not last or last["taken_at"] is None or last["taken_at"].astimezone(UTC).date() != now.astimezone(UTC).date():
        return {}
    used: dict[str, set[str]] = {}
    for item in last["items"]:
        today = item.get("today") or {}
        if item["kind"] == "bedrock:model" and any(today.get(count) for count in TOKEN_COUNTS):
            used.setdefault(item["region"], set()).add(item["id"])
    return used


def _all_charges(item: aws_meter.Running) -> tuple[aws_meter.Charge, ...]:
    return item.charges + (item.today.charges if item.today else ())


def _failed(account: MemberAccount, now: datetime, error: str) -> MeterReading:
    """Keep the last good reading (and the time it was taken, from which the next one counts), with
    the reason this one failed."""
    reading, _ = MeterReading.objects.update_or_create(
        account=account, defaults={"course": account.course, "checked_at": now, "error": error[:2000]}
    )
    return reading


def _record(
    account: MemberAccount, reading: aws_meter.Reading, quotes: dict, regions: list[str], now: datetime
) -> MeterReading | None:
    items = sorted((_priced(item, quotes) for item in reading.items), key=_most_costly_first)
    usd_per_hour = sum((Decimal(i["usd_per_hour"]) for i in items if i["usd_per_hour"] is not None), Decimal(0))
    usd_per_hour = usd_per_hour.quantize(CENTS)
    with transaction.atomic():
        previous = MeterReading.objects.select_for_update().filter(account=account).first()
        previous_rate = previous.usd_per_hour if previous and previous.taken_at else None
        if previous_rate is not None:
            if now <= previous.taken_at:
                return None  # a later reading is already stored
            _integrate(account, since=previous.taken_at, until=now, rate_then=previous_rate, rate_now=usd_per_hour)
        stored, _ = MeterReading.objects.update_or_create(
            account=account,
            defaults={
                "course": account.course,
                "taken_at": now,
                "checked_at": now,
                "items": items,
                "running": len(items),
                "usd_per_hour": usd_per_hour,
                "unknown": sum(1 for i in items if i["usd_per_hour"] is None),
                "regions": regions,
                "calls": sum(reading.calls.values()),
                "error": "; ".join(reading.errors)[:2000],
            },
        )
        transaction.on_commit(lambda: _announce(stored, previous_rate))
    return stored


def _priced(item: aws_meter.Running, quotes: dict[tuple[str, str], Quote]) -> dict:
    """The item as stored: its dollars an hour, or none and why."""
    usd, sources, missing = Decimal(0), set(), []
    for charge in item.charges:
        quote = quotes[(charge.rate, item.region)]
        if quote.usd is None:
            missing.append(charge.rate)
            continue
        usd += per_hour(quote.usd, charge.quantity, unit_of(charge.rate))
        sources.add(quote.source)
    why_unknown = item.unpriced or (f"no price for {', '.join(missing)}" if missing else "")
    if not item.charges and not why_unknown:
        why_unknown = "nothing to price it by"
    priced = {
        "region": item.region,
        "kind": item.kind,
        "kind_label": aws_meter.KIND_LABELS[item.kind],
        "id": item.id,
        "label": item.label,
        "usd_per_hour": None if why_unknown else str(usd.quantize(CENTS)),
        # The weaker source when a price comes from both.
        "source": PriceSource.TABLE if PriceSource.TABLE in sources else (sources.pop() if sources else ""),
        "why_unknown": why_unknown,
        # Counted by type whatever the price: an unpriced GPU instance is still one.
        "instances": dict(item.instances),
    }
    if item.kind == "bedrock:model":
        priced |= _bedrock_day(item, quotes)
    return priced


def _bedrock_day(item: aws_meter.Running, quotes: dict[tuple[str, str], Quote]) -> dict:
    """For the daily limits of a model family: the model's family (bedrock_models.FAMILIES, "" for
    none) and its use since UTC midnight, priced at the hour's quotes (None when one is unknown)."""
    today = item.today or aws_meter.TokenUse(0, 0, 0)  # the meter gives every Bedrock item its day
    # Each charge is thousands of tokens at a price per thousand.
    costs = [(quotes[(charge.rate, item.region)].usd, charge.quantity) for charge in today.charges]
    known = all(price is not None for price, _ in costs)
    usd = str(sum((price * quantity for price, quantity in costs), Decimal(0)).quantize(CENTS)) if known else None
    return {
        "family": family_of(item.id),
        "today": {
            "input_tokens": today.input_tokens,
            "output_tokens": today.output_tokens,
            "invocations": today.invocations,
            "usd": usd,
        },
    }


def _most_costly_first(item: dict) -> tuple:
    # Unknown prices first: they are what a person should look at.
    known = item["usd_per_hour"] is not None
    return (known, -Decimal(item["usd_per_hour"] or 0), item["region"], item["kind"], item["id"])


def _integrate(
    account: MemberAccount, *, since: datetime, until: datetime, rate_then: Decimal, rate_now: Decimal
) -> None:
    """Add the spend between two readings to the UTC days it falls on: the rate is taken to change
    linearly from one reading to the next (the trapezoid rule), split at midnight."""
    if until - since > MAX_INTEGRATED_GAP:
        return
    seconds = Decimal((until - since).total_seconds())
    slope = (rate_now - rate_then) / seconds

    def rate_at(moment: datetime) -> Decimal:
        return rate_then + slope * Decimal((moment - since).total_seconds())

    start = since.astimezone(UTC)
    while start < until:
        midnight = datetime.combine(start.date() + timedelta(days=1), time.min, tzinfo=UTC)
        end = min(midnight, until)
        hours = Decimal((end - start).total_seconds()) / 3600
        _add_metered(account, start.date(), (hours * (rate_at(start) + rate_at(end)) / 2).quantize(CENTS))
        start = end


def _add_metered(account: MemberAccount, day, amount: Decimal) -> None:
    if not amount:
        return
    changed = MeteredDailyCost.objects.filter(account=account, day=day).update(amount=F("amount") + amount)
    if not changed:
        MeteredDailyCost.objects.create(account=account, course=account.course, day=day, amount=amount)


def _announce(reading: MeterReading, previous_rate: Decimal | None) -> None:
    answers = meter_read.send_robust(sender=MeterReading, reading=reading, previous_usd_per_hour=previous_rate)
    for receiver, answer in answers:
        if isinstance(answer, Exception):
            logger.error("A receiver of meter_read failed (%s): %s", receiver, answer, exc_info=answer)
