"""Budgets, alerts and the freeze.

After each cost sync the portal checks every account against its budget itself (AWS Budgets
also notify, but only a few times a day and only by email): alerts fire once per threshold and
period, a day far above the account's recent median raises a spike alert, and an account that
reaches its course's freeze threshold is frozen with a deny-all SCP until an instructor raises
its budget and unfreezes it.

Freezing, unfreezing and raising a budget change the database only (the state by a
compare-and-swap first) and queue the tasks that bring AWS in line, each behind the gate of
accounts_app/services/gates.py: the web tier never calls AWS.
"""

from __future__ import annotations

import calendar
import statistics
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from accounts_app.choices import STAFF_ROLES, AccountState, AuditAction, BudgetPeriod, CourseRole, WebhookTopic
from accounts_app.lifecycle import IN_USE_STATES, transition
from accounts_app.models import AccountEvent, AwsOrganization, Course, MemberAccount
from accounts_app.services.audit import audit_record
from accounts_app.services.freezing import freeze_sync_enqueue
from accounts_app.services.gates import REFUSED, Action, action_gate
from accounts_app.services.guardrails import freeze_policy_id
from accounts_app.services.notifications import absolute_url, email_send
from accounts_app.services.webhooks import account_data, account_link, account_name, webhooks_send
from accounts_app.webhook_formats import Notice
from billing_app.models import AccountDailyCost, Alert, AlertKind, SpendLimit, StudentBudget
from portal.aws import budgets as aws_budgets
from portal.aws.errors import PermanentAwsError
from portal.aws.guardrails import MANAGED_BUDGET_PREFIX

SPIKE_HISTORY_DAYS = 14
SPIKE_MINIMUM_USD = Decimal("1.00")  # below this a "spike" is noise, whatever the ratio
THRESHOLDS = ((100, AlertKind.ACTUAL_100), (80, AlertKind.ACTUAL_80), (50, AlertKind.ACTUAL_50))
# A freeze by these course limits is about the budget: a higher one lifts it, as it lifts the
# budget's own. The others (dollars an hour, GPUs, Bedrock) hold whatever the budget.
LIFTED_BY_A_HIGHER_BUDGET = frozenset({"", SpendLimit.PROJECTION})


@dataclass(frozen=True)
class Period:
    key: str  # "2026-11" or "course"
    start: date
    end: date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def budget_period(course: Course, today: date) -> Period:
    if course.budget_period == BudgetPeriod.MONTHLY:
        last = calendar.monthrange(today.year, today.month)[1]
        return Period(f"{today:%Y-%m}", today.replace(day=1), today.replace(day=last))
    return Period("course", course.start_date, course.end_date)


def budget_amount(account: MemberAccount) -> Decimal:
    budget = getattr(account, "budget", None)
    if budget is not None and budget.amount_override:
        return budget.amount_override
    return account.course.budget_per_student


def budget_name(account: MemberAccount) -> str:
    return f"{MANAGED_BUDGET_PREFIX}{account.aws_account_id}"


# --- The AWS Budget of each account ---------------------------------------------------------------


# What the budget of an account is made from, loaded with the account.
BUDGET_RELATIONS = ("course", "membership", "budget")


def budget_ensure(*, account_id: int) -> StudentBudget | None:
    """Create (or bring up to date) the account's AWS Budget with its 50/80/100% actual and
    100% forecast notifications to the student and the course's usage contact: amount, period,
    dates and recipients follow the course. Returns None, with the reason in the account's
    `last_error`, when the gate refuses (or the record is gone)."""
    account = MemberAccount.objects.select_related(*BUDGET_RELATIONS).filter(pk=account_id).first()
    return _budget_ensure(account) if account is not None else None


def _budget_ensure(account: MemberAccount) -> StudentBudget | None:
    organization = AwsOrganization.load()
    try:
        action_gate(account, action=Action.BUDGET, organization=organization)
    except REFUSED as error:
        MemberAccount.objects.filter(pk=account.pk).update(last_error=f"AWS Budget not changed: {error}")
        return None
    course = account.course
    budget, new = StudentBudget.objects.get_or_create(account=account)
    recipients = [
        email for email in (account.membership and account.membership.email, course.usage_alert_email) if email
    ]
    monthly = course.budget_period == BudgetPeriod.MONTHLY
    spec = aws_budgets.BudgetSpec(
        name=budget_name(account),
        account_id=account.aws_account_id,
        amount=budget_amount(account),
        time_unit="MONTHLY" if monthly else "ANNUALLY",
        subscribers=recipients,
        # A monthly budget starts on the first of a month; either kind ends with the course.
        start=course.start_date.replace(day=1) if monthly else course.start_date,
        end=course.end_date + timedelta(days=1),
    )
    # An account the portal never made a budget for (a new one) most likely has none in AWS.
    outcome = aws_budgets.ensure_budget(organization.management_account_id, spec, expect_new=new)
    if outcome != aws_budgets.CREATED and budget.recipients != recipients:
        aws_budgets.ensure_subscribers(organization.management_account_id, spec.name, recipients)
    budget.recipients = recipients
    budget.aws_budget_name = spec.name
    if course.budget_action_enabled and settings.PORTAL_AWS_BUDGET_ACTION_ROLE_ARN:
        budget.aws_action_id = aws_budgets.ensure_scp_action(
            organization.management_account_id,
            budget_name=spec.name,
            policy_id=freeze_policy_id(),
            account_id=account.aws_account_id,
            execution_role_arn=settings.PORTAL_AWS_BUDGET_ACTION_ROLE_ARN,
            subscribers=recipients,
        )
    budget.synced_at = timezone.now()
    budget.save()
    return budget


def course_budgets_ensure(*, course_id: int) -> int:
    """Bring the AWS Budget of every account of the course that has one in line with the course
    (after an edit of its budget, period, dates or usage contact). Returns how many were checked;
    each goes through budget_ensure's gate."""
    accounts = MemberAccount.objects.filter(course_id=course_id, budget__isnull=False).select_related(*BUDGET_RELATIONS)
    checked = 0
    for account in accounts:
        try:
            _budget_ensure(account)
        except PermanentAwsError as error:
            # One refused budget must not keep the course's other budgets behind; a person must look.
            MemberAccount.objects.filter(pk=account.pk).update(last_error=f"AWS Budget not updated: {error}")
        checked += 1
    return checked


# --- Evaluating spend -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountSpend:
    account: MemberAccount
    period: Period
    spend: Decimal
    budget: Decimal

    @property
    def percent(self) -> Decimal:
        return (self.spend / self.budget * 100) if self.budget else Decimal(0)

    def forecast(self, today: date) -> Decimal:
        elapsed = max((min(today, self.period.end) - self.period.start).days + 1, 1)
        return self.spend / elapsed * self.period.days


def budgets_evaluate(*, today: date | None = None) -> list[Alert]:
    """Check every live account against its budget; raise alerts and freeze. Returns the new alerts."""
    today = today or timezone.localdate()
    accounts = list(
        MemberAccount.objects.filter(state__in=IN_USE_STATES)
        .exclude(membership=None)
        .select_related("course", "membership", "budget")
    )
    spends = _spend_in_period(accounts, today)
    history = _recent_days(accounts, today)
    existing = set(Alert.objects.filter(account__in=accounts).values_list("account_id", "kind", "period", "budget"))
    new_alerts: list[Alert] = []
    for spend in spends:
        new_alerts += _threshold_alerts(spend, today, existing)
        new_alerts += _spike_alert(spend, history.get(spend.account.pk, {}), existing)
    created = Alert.objects.bulk_create(new_alerts, ignore_conflicts=True)
    for alert in created:
        alert_notify(alert)
    for spend in spends:
        course = spend.account.course
        if (
            spend.account.state == AccountState.READY
            and course.freeze_at_percent
            and spend.percent >= course.freeze_at_percent
        ):
            account_freeze(actor=None, account=spend.account, reason=f"Spent ${spend.spend:.2f} of ${spend.budget:.2f}")
    return created


def _spend_in_period(accounts: list[MemberAccount], today: date) -> list[AccountSpend]:
    periods = {a.pk: budget_period(a.course, today) for a in accounts}
    earliest = min((p.start for p in periods.values()), default=today)
    totals: dict[int, dict[date, Decimal]] = {}
    rows = AccountDailyCost.objects.filter(account__in=accounts, day__gte=earliest, day__lte=today).values_list(
        "account_id", "day", "usage"
    )
    for account_id, day, usage in rows:
        totals.setdefault(account_id, {})[day] = usage
    result = []
    for account in accounts:
        period = periods[account.pk]
        days = totals.get(account.pk, {})
        spend = sum((v for d, v in days.items() if period.start <= d <= period.end), Decimal(0))
        result.append(AccountSpend(account, period, spend, budget_amount(account)))
    return result


def _recent_days(accounts: list[MemberAccount], today: date) -> dict[int, dict[date, Decimal]]:
    since = today - timedelta(days=SPIKE_HISTORY_DAYS + 1)
    history: dict[int, dict[date, Decimal]] = {}
    for account_id, day, usage in AccountDailyCost.objects.filter(
        account__in=accounts, day__gte=since, day__lte=today
    ).values_list("account_id", "day", "usage"):
        history.setdefault(account_id, {})[day] = usage
    return history


def _alert(spend: AccountSpend, kind: AlertKind, period: str, message: str) -> Alert:
    return Alert(
        account=spend.account,
        course=spend.account.course,
        kind=kind,
        period=period,
        message=message[:500],
        spend=spend.spend.quantize(Decimal("0.01")),
        budget=spend.budget,
    )


def _threshold_alerts(spend: AccountSpend, today: date, existing: set) -> list[Alert]:
    alerts = []
    key = spend.period.key
    for threshold, kind in THRESHOLDS:
        if spend.percent >= threshold and (spend.account.pk, kind, key, spend.budget) not in existing:
            alerts.append(
                _alert(
                    spend,
                    kind,
                    key,
                    f"{spend.account.membership.display_name} passed {threshold}% of the "
                    f"${spend.budget:.2f} budget: ${spend.spend:.2f} spent ({spend.percent:.0f}%).",
                )
            )
    forecast = spend.forecast(today)
    forecast_key = (spend.account.pk, AlertKind.FORECAST_100, key, spend.budget)
    if forecast > spend.budget and spend.percent < 100 and forecast_key not in existing:
        alerts.append(
            _alert(
                spend,
                AlertKind.FORECAST_100,
                key,
                f"At this pace {spend.account.membership.display_name} will "
                f"spend about ${forecast:.2f} of the ${spend.budget:.2f} budget by {spend.period.end:%b %-d}.",
            )
        )
    return alerts


def _spike_alert(spend: AccountSpend, days: dict[date, Decimal], existing: set) -> list[Alert]:
    if not days:
        return []
    latest = max(days)
    before = [v for d, v in days.items() if d < latest]
    if len(before) < 3:
        return []
    median = Decimal(statistics.median(before))
    multiple = spend.account.course.spike_multiple
    value = days[latest]
    period = latest.isoformat()
    seen = (spend.account.pk, AlertKind.DAILY_SPIKE, period, spend.budget) in existing
    if value < SPIKE_MINIMUM_USD or value <= median * multiple or seen:
        return []
    return [
        _alert(
            spend,
            AlertKind.DAILY_SPIKE,
            period,
            f"{spend.account.membership.display_name} spent ${value:.2f} "
            f"on {latest:%b %-d}, more than {multiple}× the usual ${median:.2f} a day.",
        )
    ]


def alert_notify(alert: Alert) -> None:
    """Email the student and the course's usage contact (and the instructors when the budget is
    spent, and the instructors and TAs of a freeze), and post to the course's and the school's
    webhooks."""
    account, course = alert.account, alert.course
    recipients = {account.membership.email, course.usage_alert_email}
    if alert.kind == AlertKind.ACTUAL_100:
        recipients |= set(course.memberships.filter(role=CourseRole.INSTRUCTOR).values_list("email", flat=True))
    if alert.kind == AlertKind.FROZEN:
        recipients |= set(course.memberships.filter(role__in=STAFF_ROLES).values_list("email", flat=True))
    context = {"alert": alert, "account": account, "course": course, "ask_link": ask_for_more_link(course)}
    email_send("alert", context, recipients)
    topic = WebhookTopic.FREEZES if alert.kind == AlertKind.FROZEN else WebhookTopic.BUDGET_ALERTS
    webhooks_send(course=course, topic=topic, notice=alert_notice(alert))


def alert_notice(alert: Alert) -> Notice:
    account, course = alert.account, alert.course
    frozen = alert.kind == AlertKind.FROZEN
    text = alert.message
    if frozen and alert.limit:
        text += (
            " Everything but billing, support and cost pages is denied, and what runs is stopped,"
            " until an instructor unfreezes it."
        )
    elif frozen:
        text += " Everything but billing, support and cost pages is denied until an instructor raises the budget."
    facts = [
        ("Course", f"{course.name} ({course.code})"),
        ("Spend", f"${alert.spend} of a ${alert.budget} budget"),
        ("AWS account", account.aws_account_id or ""),
    ]
    if alert.limit:
        facts.insert(1, ("Limit", alert.get_limit_display()))
    return Notice(
        event="account.frozen" if frozen else "budget.alert",
        title=f"{course.code}: {alert.headline} ({account_name(account)})",
        text=text,
        link=account_link(account),
        link_label="Open the account's spend",
        facts=tuple(facts),
        data={
            **account_data(account),
            "alert": {
                "kind": alert.kind,
                "period": alert.period,
                "spend": str(alert.spend),
                "budget": str(alert.budget),
                "limit": alert.limit,
            },
        },
    )


def ask_for_more_link(course: Course) -> str:
    """Where a student asks for a higher budget (and says what they need): their spend page's form."""
    return absolute_url("billing:my_costs", course_id=course.pk) + "#budget-request"


# --- Freeze and unfreeze --------------------------------------------------------------------------


def account_freeze(*, actor, account: MemberAccount, reason: str, limit: SpendLimit | str = "") -> bool:
    """Mark a ready account frozen, then queue the task that attaches the deny-all freeze SCP.
    `limit` names the course limit that froze it, if one did (kept on the freeze's alert for
    pages and emails). Returns whether this call froze it (False: it was not ready)."""
    with transaction.atomic():
        if not transition(
            account,
            expected=AccountState.READY,
            to=AccountState.FROZEN,
            actor=actor,
            reason=reason,
            freeze_sync_pending=True,
        ):
            return False
        freeze_sync_enqueue(account)
        audit_record(
            actor=actor,
            action=AuditAction.ACCOUNT_FROZEN,
            course=account.course,
            target=account,
            summary=f"Froze {account.account_name}: {reason}",
        )
        spend = AccountDailyCost.objects.filter(account=account).aggregate(total=Sum("usage"))["total"] or 0
        alert = Alert.objects.create(
            account=account,
            course=account.course,
            kind=AlertKind.FROZEN,
            # One per freeze; UTC to the second fits Alert.period (20 characters).
            period=timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            message=f"{account.membership.display_name}'s AWS account was frozen: {reason}."[:500],
            limit=limit,
            spend=Decimal(spend).quantize(Decimal("0.01")),
            budget=budget_amount(account),
        )
    transaction.on_commit(lambda: alert_notify(alert))
    return True


def account_unfreeze(*, actor, account: MemberAccount, new_budget: Decimal | None = None) -> bool:
    """Give a frozen account back, raising its budget if asked, then queue the task that detaches
    the freeze SCP. Returns whether this call unfroze it (False, and nothing changed: it was not
    frozen)."""
    if new_budget is not None and new_budget <= 0:
        raise ValueError("A budget must be more than $0.")
    with transaction.atomic():
        if not transition(
            account,
            expected=AccountState.FROZEN,
            to=AccountState.READY,
            actor=actor,
            reason="Unfrozen by an instructor",
            freeze_sync_pending=True,
        ):
            return False
        if new_budget is not None:
            budget_raise(actor=actor, account=account, amount=new_budget)
        freeze_sync_enqueue(account)
        Alert.objects.filter(account=account, resolved_at=None).update(resolved_at=timezone.now())
        audit_record(
            actor=actor,
            action=AuditAction.ACCOUNT_UNFROZEN,
            course=account.course,
            target=account,
            summary=f"Unfroze {account.account_name}",
        )
    return True


def budget_raise(*, actor, account: MemberAccount, amount: Decimal) -> StudentBudget:
    """Set the account's budget, then queue the task that updates its AWS Budget."""
    if amount <= 0:
        raise ValueError("A budget must be more than $0.")
    with transaction.atomic():
        budget, _ = StudentBudget.objects.get_or_create(account=account)
        previous = budget_amount(account)
        budget.amount_override = amount
        budget.save(update_fields=["amount_override"])
        account.budget = budget
        # The old budget's alerts are settled; the new budget's thresholds fire on their own.
        Alert.objects.filter(account=account, resolved_at=None).update(resolved_at=timezone.now())
        audit_record(
            actor=actor,
            action=AuditAction.BUDGET_RAISED,
            course=account.course,
            target=account,
            summary=f"Budget of {account.account_name}: ${previous} → ${amount}",
        )
        if budget.aws_budget_name:
            from billing_app.tasks import budget_ensure_task

            budget_ensure_task.delay_on_commit(account.pk)
    return budget


def frozen_for_its_budget(account: MemberAccount) -> bool:
    """Frozen by the portal's budget check, or by the course's limit on the budget running out:
    what a higher budget lifts. An instructor's freeze names the instructor; a freeze by another
    course limit (dollars an hour, GPUs, Bedrock) is kept on its alert."""
    if account.state != AccountState.FROZEN:
        return False
    freezes = AccountEvent.objects.filter(account=account, to_state=AccountState.FROZEN)
    freeze = freezes.order_by("-created_at", "-id").first()
    if freeze is None or freeze.actor_id is not None:
        return False
    alerts = Alert.objects.filter(account=account, kind=AlertKind.FROZEN).order_by("-created_at", "-id")
    limit = alerts.values_list("limit", flat=True).first()
    return (limit or "") in LIFTED_BY_A_HIGHER_BUDGET


def under_freeze_line(account: MemberAccount, amount: Decimal, *, today: date | None = None) -> bool:
    """Whether the account's spend this period stays below the course's freeze threshold of a
    budget of `amount`: the next budget check would not freeze it again."""
    freeze_at = account.course.freeze_at_percent
    if not freeze_at:
        return True
    [spend] = _spend_in_period([account], today or timezone.localdate())
    return spend.spend * 100 < amount * freeze_at


def budget_raise_and_unfreeze(*, actor, account: MemberAccount, amount: Decimal) -> bool:
    """Raise the account's budget; if its budget froze it and the new one is above its spend,
    unfreeze it too (the state first, the SCP and what the freeze stopped by their tasks, behind
    the gate). Returns whether it was unfrozen. An instructor's own freeze stays."""
    with transaction.atomic():
        releases = frozen_for_its_budget(account) and under_freeze_line(account, amount)
        if releases and account_unfreeze(actor=actor, account=account, new_budget=amount):
            return True
        budget_raise(actor=actor, account=account, amount=amount)
    return False
