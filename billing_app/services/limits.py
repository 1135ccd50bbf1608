"""A course's spend limits, acted on at every usage meter reading: a student account that crosses
one is frozen within one meter interval, and the freeze stops what runs in it.

Cost Explorer's figures arrive a day late and the budget check follows them; the meter reads each
account every PORTAL_METER_INTERVAL_MINUTES. `account_limits_check`, a receiver of
`billing_app.signals.meter_read`, compares each reading with the course's `CourseSpendLimits`:

- dollars an hour: what runs with a known price (a floor: an item of unknown price is not counted
  as $0, it is not counted at all, and the reason says "at least");
- GPU and accelerator instances running at once (billing_app/accelerators.py), counted by type
  whatever their price;
- Bedrock tokens and dollars since midnight UTC, per model family (the reading's `family` and
  `today` of each Bedrock item; an item without them is not counted);
- the budget running out within N hours at what runs now (meter_selectors' burn-down).

A ready account over a limit is frozen by `account_freeze` (the state by compare-and-swap, the
freeze SCP and then the stop of what runs by their tasks), with a reason that names the limit
and the figure; the limit is kept on the freeze's alert. A frozen account is not frozen again,
and a reading repeated or read twice freezes once.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.db import transaction

from accounts_app.choices import AccountState, AuditAction
from accounts_app.models import Course, MemberAccount
from accounts_app.services.audit import audit_record
from billing_app.accelerators import is_accelerated
from billing_app.meter_selectors import BurnDown, account_meter
from billing_app.models import CourseSpendLimits, MeterReading, SpendLimit
from billing_app.services.budgets import account_freeze

logger = logging.getLogger(__name__)

BEDROCK = "bedrock:model"
LIMIT_FIELDS = (
    "max_usd_per_hour",
    "max_accelerated_instances",
    "bedrock_daily_tokens",
    "bedrock_daily_usd",
    "freeze_within_hours",
)


@dataclass(frozen=True)
class Breach:
    """A limit a reading crossed, and the sentence that says so with the figure."""

    limit: SpendLimit
    reason: str


# --- Checking a reading ---------------------------------------------------------------------------


def account_limits_check(*, reading: MeterReading) -> bool:
    """Freeze the reading's account if it is ready and the reading crosses one of its course's
    limits. Returns whether this call froze it."""
    limits = CourseSpendLimits.objects.filter(course_id=reading.course_id).first()
    if limits is None or reading.taken_at is None or not any_limit(limits):
        return False
    account = (
        MemberAccount.objects.select_related("course", "membership", "budget").filter(pk=reading.account_id).first()
    )
    if account is None or account.state != AccountState.READY or account.membership is None:
        return False  # a frozen account stays as it is: no second freeze, alert or email
    projects = limits.freeze_within_hours is not None
    burn = account_meter(account=account, now=reading.taken_at).burn_down if projects else None
    crossed = breaches(limits, reading, burn)
    if not crossed:
        return False
    first = crossed[0]
    frozen = account_freeze(actor=None, account=account, reason=first.reason, limit=first.limit)
    if frozen:
        logger.info("%s frozen by its course's limit: %s", account.account_name, first.reason)
    return frozen


def any_limit(limits: CourseSpendLimits) -> bool:
    return any(getattr(limits, name) is not None for name in LIMIT_FIELDS)


def breaches(limits: CourseSpendLimits, reading: MeterReading, burn: BurnDown | None) -> list[Breach]:
    """Every limit the reading crosses, in a fixed order (GPU instances, dollars an hour, Bedrock,
    the budget's projection): the first one names the freeze."""
    found = [
        accelerators_breach(limits.max_accelerated_instances, reading.items),
        usd_per_hour_breach(limits.max_usd_per_hour, reading.usd_per_hour, reading.unknown),
        *bedrock_breaches(limits.bedrock_daily_tokens, limits.bedrock_daily_usd, reading.items),
        projection_breach(limits.freeze_within_hours, burn),
    ]
    return [breach for breach in found if breach is not None]


def accelerators_breach(allowed: int | None, items: list[dict]) -> Breach | None:
    """More GPU or accelerator instances running than the course allows. Each item's `instances`
    counts them by type, priced or not (a spot GPU instance is still one)."""
    if allowed is None:
        return None
    running: Counter[str] = Counter()
    for item in items:
        for instance_type, count in (item.get("instances") or {}).items():
            if is_accelerated(instance_type):
                running[instance_type] += int(count)
    total = sum(running.values())
    if total <= allowed:
        return None
    if total == 1:
        [instance_type] = running
        said = f"{instance_type} is a GPU or accelerator instance"
    else:
        kinds = ", ".join(f"{count} × {kind}" if count > 1 else kind for kind, count in sorted(running.items()))
        said = f"{total} GPU or accelerator instances run ({kinds})"
    return Breach(SpendLimit.ACCELERATORS, f"{said}; the course allows {allowed}")


def usd_per_hour_breach(allowed: Decimal | None, usd_per_hour: Decimal, unknown: int) -> Breach | None:
    """What runs with a known price costs more an hour than the course allows. Items of unknown
    price are not counted as $0: the figure is a floor, said as "at least"."""
    if allowed is None or usd_per_hour <= allowed:
        return None
    running = f"running {money(usd_per_hour)}/h"
    if unknown:
        running = f"running at least {money(usd_per_hour)}/h (and {unknown} item(s) of unknown price)"
    return Breach(SpendLimit.USD_PER_HOUR, f"{running}, the course allows {money(allowed)}/h")


def bedrock_breaches(tokens_allowed: int | None, usd_allowed: Decimal | None, items: list[dict]) -> list[Breach]:
    """A model family used more Bedrock today (since midnight UTC) than the course allows, in
    tokens or in dollars; each cap applies to each family. Items without the day's figures are
    not counted; a day's dollars unknown for one of a family's models make the family's a floor."""
    if tokens_allowed is None and usd_allowed is None:
        return []
    tokens: dict[str, int] = defaultdict(int)
    usd: dict[str, Decimal] = defaultdict(Decimal)
    unpriced: set[str] = set()
    for item in items:
        family, today = item.get("family"), item.get("today")
        if item.get("kind") != BEDROCK or not family or not isinstance(today, dict):
            continue
        tokens[family] += int(today.get("input_tokens") or 0) + int(today.get("output_tokens") or 0)
        cost = decimal_or_none(today.get("usd"))
        if cost is None:
            unpriced.add(family)
        else:
            usd[family] += cost
    found = []
    for family in sorted(tokens):
        if tokens_allowed is not None and tokens[family] > tokens_allowed:
            found.append(
                Breach(
                    SpendLimit.BEDROCK_TOKENS,
                    f"{family} used {tokens[family]:,} tokens today; the cap is {tokens_allowed:,}",
                )
            )
        if usd_allowed is not None and usd[family] > usd_allowed:
            spent = f"at least {money(usd[family])}" if family in unpriced else money(usd[family])
            found.append(
                Breach(SpendLimit.BEDROCK_USD, f"{family} cost {spent} today; the cap is {money(usd_allowed)}")
            )
    return found


def projection_breach(within_hours: int | None, burn: BurnDown | None) -> Breach | None:
    """At what runs now, the budget runs out within the course's hours (or is already spent while
    something still runs). Nothing running, or a budget that lasts its period, crosses nothing."""
    if within_hours is None or burn is None or burn.usd_per_hour <= 0:
        return None
    rate, allowed = f"at {money(burn.usd_per_hour)}/h", f"the course freezes within {duration(Decimal(within_hours))}"
    if burn.already_spent:
        said = f"{rate} the {money(burn.budget)} budget is already spent ({money(burn.spent)} estimated)"
        return Breach(SpendLimit.PROJECTION, f"{said}; {allowed}")
    if burn.runs_out_at is None:
        return None
    hours_left = burn.left / burn.usd_per_hour
    if hours_left > within_hours:
        return None
    sooner = " or sooner" if burn.unknown else ""
    said = f"{rate} the {money(burn.budget)} budget runs out in {duration(hours_left)}{sooner}"
    return Breach(SpendLimit.PROJECTION, f"{said}; {allowed}")


def money(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def duration(hours: Decimal) -> str:
    if hours < 1:
        minutes = max(int(hours * 60), 1)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    whole = int(hours.to_integral_value())
    return f"{whole} hour{'s' if whole != 1 else ''}"


def decimal_or_none(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


# --- Setting the limits ---------------------------------------------------------------------------


def course_spend_limits_set(*, actor, course: Course, values: dict) -> CourseSpendLimits:
    """Set the course's limits (None: no limit); they apply from the next reading of each account.
    Audited with what changed."""
    with transaction.atomic():
        limits, _ = CourseSpendLimits.objects.select_for_update().get_or_create(course=course)
        before = limits.rules
        for name in LIMIT_FIELDS:
            setattr(limits, name, values.get(name))
        limits.updated_by = actor
        limits.save()
        after = limits.rules
        if before != after:
            audit_record(
                actor=actor,
                action=AuditAction.COURSE_UPDATED,
                course=course,
                target=course,
                summary="Spend limits: " + (" ".join(after) or "none"),
                data={"spend_limits": {"before": before, "after": after}},
            )
    return limits
