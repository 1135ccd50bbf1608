"""What the portal knows about money: raw Cost Explorer rows, the rollups dashboards read,
budgets, alerts, a record of every sync, the usage meter and course schedules."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import models

from accounts_app.models import Course, MemberAccount
from billing_app.schedule_rules import CLASS_HOURS, NIGHTLY, NONE, Rule

AMOUNT: dict[str, Any] = {"max_digits": 14, "decimal_places": 6}


class CostKind(models.TextChoices):
    USAGE = "usage", "Usage"
    CREDIT = "credit", "Credit"
    REFUND = "refund", "Refund"


class CostRecord(models.Model):
    """One Cost Explorer figure: an account's cost for one service (or its credits or refunds)
    on one day. Re-syncs overwrite it while AWS still revises the figure."""

    aws_account_id = models.CharField(max_length=12)
    # The sync sets both from a join with the accounts, so the database does not check them: a
    # deferred check per figure made a first sync's commit a third of its time. Deleting an
    # account or course sets them to NULL (Django's SET_NULL), and every sync sets the window's
    # again from the accounts as they are.
    account = models.ForeignKey(
        MemberAccount,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="cost_records",
        db_constraint=False,
    )
    # Looked up through the (course, day) index.
    course = models.ForeignKey(
        Course, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False, db_constraint=False
    )
    day = models.DateField()
    kind = models.CharField(max_length=10, choices=CostKind.choices, default=CostKind.USAGE)
    service = models.CharField(max_length=200)
    amount = models.DecimalField(**AMOUNT)
    currency = models.CharField(max_length=3, default="USD")
    estimated = models.BooleanField(default=False)
    # The last sync that reported the figure: every sync writes it on each figure of its window.
    # Neither indexed nor checked by the database, so that rewriting it costs no index entry and
    # no foreign key check per figure (nothing looks figures up by sync; a sync is never deleted
    # while figures name it: PROTECT, which Django enforces).
    sync = models.ForeignKey(
        "CostSync", on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["aws_account_id", "day", "kind", "service"], name="cost_record_unique")
        ]
        indexes = [models.Index(fields=["course", "day"]), models.Index(fields=["day"])]

    def __str__(self) -> str:
        return f"{self.aws_account_id} {self.day} {self.service}: {self.amount} {self.currency}"


class AccountDailyCost(models.Model):
    """Rollup: one account's day. Dashboards and budget checks read this, never raw rows."""

    account = models.ForeignKey(MemberAccount, on_delete=models.CASCADE, related_name="daily_costs")
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    usage = models.DecimalField(**AMOUNT, default=0)
    credits = models.DecimalField(**AMOUNT, default=0, help_text="Credits and refunds (negative).")
    estimated = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "day"], name="account_day_unique")]
        indexes = [
            # A course's days with each account's usage: the dashboard's sums over days are read
            # from the index alone.
            models.Index(fields=["course", "day", "account", "usage"], name="account_daily_course_day"),
            # The newest day Cost Explorer reports (the meter's `settled_through`).
            models.Index(fields=["day"], name="account_daily_day"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.day}: {self.usage} used, {self.credits} credits"


class AccountCostTotal(models.Model):
    """Rollup: an account's spend in a course to date, the sum of its AccountDailyCost rows. The
    course dashboard and the organization overview sort, page and total students by it, reading a
    row per account where the daily rollup has one per account and day."""

    account = models.ForeignKey(MemberAccount, on_delete=models.CASCADE, related_name="cost_totals")
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="+")
    usage = models.DecimalField(**AMOUNT, default=0)
    credits = models.DecimalField(**AMOUNT, default=0, help_text="Credits and refunds (negative).")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "course"], name="account_course_total_unique")]

    def __str__(self) -> str:
        return f"{self.account_id} in {self.course_id}: {self.usage} used, {self.credits} credits"


class CourseServiceDailyCost(models.Model):
    """Rollup: a course's spend on one service on one day, for the stacked chart and top services."""

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    service = models.CharField(max_length=200)
    usage = models.DecimalField(**AMOUNT, default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["course", "day", "service"], name="course_service_day_unique")]

    def __str__(self) -> str:
        return f"{self.course_id} {self.day} {self.service}: {self.usage}"


class TagDailyCost(models.Model):
    """Spend of one account on one day per value of its course's cost allocation tag (only for
    courses that name a tag; one tag-grouped query per such course)."""

    account = models.ForeignKey(MemberAccount, on_delete=models.CASCADE, related_name="tag_costs")
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    tag_value = models.CharField(max_length=256, help_text="Empty for untagged spend.")
    amount = models.DecimalField(**AMOUNT)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "day", "tag_value"], name="tag_cost_unique")]

    def __str__(self) -> str:
        return f"{self.account_id} {self.day} {self.tag_value or '(untagged)'}: {self.amount}"


class HourlyCost(models.Model):
    """An account's spend in one hour. AWS keeps hourly data for 14 days; the portal keeps it."""

    aws_account_id = models.CharField(max_length=12)
    account = models.ForeignKey(
        MemberAccount, null=True, blank=True, on_delete=models.SET_NULL, related_name="hourly_costs"
    )
    hour = models.DateTimeField()
    amount = models.DecimalField(**AMOUNT)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["aws_account_id", "hour"], name="hourly_cost_unique")]

    def __str__(self) -> str:
        return f"{self.aws_account_id} {self.hour:%Y-%m-%d %H:00}: {self.amount}"


class CostSync(models.Model):
    """One run of the Cost Explorer sync: what it asked, what it cost, what it stored."""

    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    window_start = models.DateField()
    window_end = models.DateField(help_text="Exclusive.")
    requests = models.PositiveIntegerField(default=0, help_text="Cost Explorer requests ($0.01 each).")
    rows = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    warnings = models.TextField(blank=True, help_text="Optional queries AWS refused; the sync went on without them.")

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"Sync {self.window_start}–{self.window_end}: {self.requests} requests, {self.rows} rows"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class StudentBudget(models.Model):
    """An account's budget: the course's amount unless an instructor raised it, and the AWS
    Budget that mirrors it."""

    account = models.OneToOneField(MemberAccount, on_delete=models.CASCADE, related_name="budget")
    amount_override = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    aws_budget_name = models.CharField(max_length=100, blank=True)
    aws_action_id = models.CharField(max_length=100, blank=True)
    recipients = models.JSONField(default=list, blank=True, help_text="The AWS Budget's notification subscribers.")
    synced_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Budget of account {self.account_id}"


class AlertKind(models.TextChoices):
    ACTUAL_50 = "actual_50", "50% of the budget spent"
    ACTUAL_80 = "actual_80", "80% of the budget spent"
    ACTUAL_100 = "actual_100", "The whole budget spent"
    FORECAST_100 = "forecast_100", "Forecast to exceed the budget"
    DAILY_SPIKE = "daily_spike", "Unusual daily spend"
    FROZEN = "frozen", "Account frozen for its budget"


class SpendLimit(models.TextChoices):
    """A course's limits on what a student account runs (CourseSpendLimits), each checked at every
    meter reading; the one crossed is kept on the freeze's alert."""

    USD_PER_HOUR = "usd_per_hour", "dollars an hour"
    ACCELERATORS = "accelerators", "GPU and accelerator instances"
    BEDROCK_TOKENS = "bedrock_tokens", "Bedrock tokens a day"
    BEDROCK_USD = "bedrock_usd", "Bedrock dollars a day"
    PROJECTION = "projection", "the budget running out"


class Alert(models.Model):
    """Raised once per account, kind, period (a month, the course, or a day for spikes) and
    budget: raising a budget lets its thresholds fire again, and keeps the old alerts."""

    account = models.ForeignKey(MemberAccount, on_delete=models.CASCADE, related_name="alerts")
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=20, choices=AlertKind.choices)
    limit = models.CharField(
        max_length=20,
        choices=SpendLimit.choices,
        blank=True,
        help_text="For a freeze: the course limit that froze the account (empty: the budget or a person).",
    )
    period = models.CharField(max_length=20, help_text="e.g. 2026-11, course, or a day for spikes")
    message = models.CharField(max_length=500)
    spend = models.DecimalField(max_digits=12, decimal_places=2)
    budget = models.DecimalField(max_digits=12, decimal_places=2)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["account", "kind", "period", "budget"], name="alert_once_per_period")
        ]

    def __str__(self) -> str:
        return self.message

    @property
    def headline(self) -> str:
        """What happened, in a few words: a subject line, a chat title."""
        if self.kind == AlertKind.FROZEN and self.limit:
            return f"Account frozen by the course's limit on {self.get_limit_display()}"
        return self.get_kind_display()


class BudgetRequestStatus(models.TextChoices):
    PENDING = "pending", "Waiting for an instructor"
    APPROVED = "approved", "Approved"
    DECLINED = "declined", "Declined"


class BudgetRequest(models.Model):
    """A student's request for a higher budget, approved or declined by an instructor of the
    course. One waits at a time per account."""

    account = models.ForeignKey(MemberAccount, on_delete=models.CASCADE, related_name="budget_requests")
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="+")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    budget_before = models.DecimalField(max_digits=10, decimal_places=2, help_text="The budget when asked.")
    amount = models.DecimalField("new budget (USD)", max_digits=10, decimal_places=2)
    reason = models.TextField(max_length=1000)
    status = models.CharField(max_length=20, choices=BudgetRequestStatus.choices, default=BudgetRequestStatus.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decline_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account"],
                condition=models.Q(status="pending"),
                name="one_pending_budget_request_per_account",
            )
        ]

    def __str__(self) -> str:
        return f"${self.amount} for {self.account} ({self.get_status_display()})"


# --- The usage meter --------------------------------------------------------------------------------


class PriceSource(models.TextChoices):
    PRICE_LIST = "price_list", "AWS Price List"
    TABLE = "table", "the portal's price table (approximate)"
    UNKNOWN = "unknown", "unknown"


class Price(models.Model):
    """The price of one unit of a rate in a region (portal/aws/prices.py), as the Price List gave
    it, or the vendored table when it could not, or unknown. Asked again once it is older than a
    day (an hour when the Price List could not be asked)."""

    rate = models.CharField(max_length=200, help_text="e.g. ec2-instance/t3.micro/Linux")
    region = models.CharField(max_length=30)
    usd = models.DecimalField(max_digits=16, decimal_places=10, null=True, blank=True, help_text="Empty: unknown.")
    unit = models.CharField(max_length=20)
    source = models.CharField(max_length=20, choices=PriceSource.choices)
    checked_at = models.DateTimeField()
    note = models.CharField(max_length=500, blank=True, help_text="Why the Price List was not used.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rate", "region"], name="price_rate_region_unique")]

    def __str__(self) -> str:
        return f"{self.rate} in {self.region}: {self.usd if self.usd is not None else 'unknown'} per {self.unit}"


class MeterReading(models.Model):
    """The latest look at what an account runs now and what it costs an hour, replaced by each
    reading. `items` lists each thing with its dollars an hour, or none when its price is unknown
    (counted in `unknown`, left out of `usd_per_hour`)."""

    account = models.OneToOneField(MemberAccount, on_delete=models.CASCADE, related_name="meter_reading")
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="+")
    taken_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never read yet.")
    items = models.JSONField(default=list, blank=True)
    running = models.PositiveIntegerField(default=0)
    usd_per_hour = models.DecimalField(**AMOUNT, default=0, help_text="What runs with a known price, per hour.")
    unknown = models.PositiveIntegerField(default=0, help_text="Items whose price is unknown.")
    regions = models.JSONField(default=list, blank=True)
    calls = models.PositiveIntegerField(default=0, help_text="AWS requests the reading took.")
    checked_at = models.DateTimeField(help_text="The last attempt, successful or not.")
    error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"{self.account}: {self.running} running, ${self.usd_per_hour}/h"


class MeteredDailyCost(models.Model):
    """What the meter counted an account spent on one day (UTC, as Cost Explorer's days): its
    dollars an hour integrated between readings. Only days Cost Explorer has not settled count."""

    account = models.ForeignKey(MemberAccount, on_delete=models.CASCADE, related_name="metered_days")
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    amount = models.DecimalField(**AMOUNT, default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "day"], name="metered_day_unique")]
        indexes = [models.Index(fields=["course", "day"])]

    def __str__(self) -> str:
        return f"{self.account} on {self.day}"


# --- Schedules --------------------------------------------------------------------------------------


class ScheduleMode(models.TextChoices):
    NONE = NONE, "No schedule"
    CLASS_HOURS = CLASS_HOURS, "Class hours: stopped outside them"
    NIGHTLY = NIGHTLY, "Nightly stop: stopped every night at a set time"


class CourseSchedule(models.Model):
    """When what runs in the course's student accounts is stopped (billing_app/schedule_rules.py):
    outside class hours or every night, and, with `idle_hours`, an EC2 instance idle that long.
    A course without one, or with mode "none" and no idle hours, has nothing stopped."""

    course = models.OneToOneField(Course, on_delete=models.CASCADE, related_name="stop_schedule")
    mode = models.CharField(max_length=20, choices=ScheduleMode.choices, default=ScheduleMode.NONE)
    weekdays = models.JSONField(default=list, blank=True, help_text="Days with class hours: 0 = Monday … 6 = Sunday.")
    class_starts = models.TimeField(null=True, blank=True)
    class_ends = models.TimeField(null=True, blank=True)
    stop_at = models.TimeField(null=True, blank=True, help_text="The nightly stop's time.")
    time_zone = models.CharField(max_length=64, blank=True, help_text="Empty: the portal's (TIME_ZONE).")
    idle_hours = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Empty: no idle stop.")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Schedule of {self.course}: {self.get_mode_display()}"

    @property
    def zone_name(self) -> str:
        return self.time_zone or settings.TIME_ZONE

    def rule(self) -> Rule:
        return Rule(
            mode=self.mode,
            zone=ZoneInfo(self.zone_name),
            weekdays=frozenset(self.weekdays),
            class_starts=self.class_starts,
            class_ends=self.class_ends,
            stop_at=self.stop_at,
            night=timedelta(hours=settings.PORTAL_SCHEDULE_NIGHT_HOURS),
        )

    @property
    def stops_anything(self) -> bool:
        return self.mode != ScheduleMode.NONE or self.idle_hours is not None


class StopReason(models.TextChoices):
    SCHEDULE = "schedule", "The course's schedule"
    IDLE = "idle", "Idle"


class StopStatus(models.TextChoices):
    """What the schedule did to one resource, and what the student did after."""

    STOPPING = "stopping", "Being stopped"  # written down before the call: it may be stopped
    STOPPED = "stopped", "Stopped"
    NOT_STOPPED = "not stopped", "Not stopped"
    STARTING = "starting", "Starting again"
    STARTED = "started", "Started again"
    NOT_STARTED = "not started", "Not started again"


# What the student may start again: stopped, perhaps stopped (the answer was lost), or a start that
# failed.
RESTARTABLE_STATUSES = frozenset({StopStatus.STOPPING, StopStatus.STOPPED, StopStatus.NOT_STARTED})
# A start still not done after this long (its task gave up on a resource that stayed busy) may be
# asked for again.
START_PATIENCE = timedelta(minutes=15)


class ScheduledStop(models.Model):
    """One resource the schedule stopped (or tried to), written before the stop call so that a
    crash never makes the portal forget it. A resource is stopped once per off period
    (`period_start`): started again by the student in that period, it is left running. An idle
    stop has no period: an instance started again is idle again only after the idle hours."""

    account = models.ForeignKey(MemberAccount, on_delete=models.CASCADE, related_name="scheduled_stops")
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="+")
    region = models.CharField(max_length=30)
    kind = models.CharField(max_length=40, help_text="e.g. ec2:instance (portal/aws/display.py's kinds)")
    resource_id = models.CharField(max_length=255)
    label = models.CharField(max_length=500, blank=True)
    reason = models.CharField(max_length=10, choices=StopReason.choices)
    why = models.CharField(max_length=200, help_text="In words, as the student reads it.")
    period_start = models.DateTimeField(null=True, blank=True, help_text="The off period's start; empty when idle.")
    status = models.CharField(max_length=20, choices=StopStatus.choices, default=StopStatus.STOPPING)
    stopped_at = models.DateTimeField()
    restart_requested_at = models.DateTimeField(null=True, blank=True)
    restarted_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, help_text="AWS's refusal, for staff.")

    class Meta:
        ordering = ["-stopped_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "region", "kind", "resource_id", "period_start"],
                condition=models.Q(reason="schedule"),
                name="one_schedule_stop_per_off_period",
            )
        ]
        indexes = [models.Index(fields=["account", "stopped_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.resource_id} in {self.region} ({self.why}): {self.status}"

    def is_starting(self, now: datetime) -> bool:
        """A start asked for lately and not done yet."""
        requested = self.restart_requested_at
        return self.status == StopStatus.STARTING and requested is not None and now - requested < START_PATIENCE

    def can_start_again(self, now: datetime) -> bool:
        return self.status in RESTARTABLE_STATUSES or (self.status == StopStatus.STARTING and not self.is_starting(now))


# --- Spend limits ---------------------------------------------------------------------------------


class CourseSpendLimits(models.Model):
    """What each student account of the course may run, checked at every meter reading
    (billing_app/services/limits.py): crossing one freezes the account within one meter interval.
    An empty field is no limit; a course without a row has none."""

    course = models.OneToOneField(Course, on_delete=models.CASCADE, related_name="spend_limits")
    max_usd_per_hour = models.DecimalField(
        "most dollars an hour per student",
        max_digits=10,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="What runs with a known price, at each reading. Empty: no limit.",
    )
    max_accelerated_instances = models.PositiveSmallIntegerField(
        "most GPU or accelerator instances at once per student",
        null=True,
        blank=True,
        help_text="EC2 p, g, inf, trn, dl, f and vt families; SageMaker ml.p, ml.g, ml.inf and ml.trn. "
        "0: none allowed. Empty: no limit.",
    )
    bedrock_daily_tokens = models.PositiveBigIntegerField(
        "most Bedrock tokens a day per model family",
        null=True,
        blank=True,
        help_text="Input and output tokens since midnight UTC, for each model family (e.g. anthropic.claude). "
        "Empty: no limit.",
    )
    bedrock_daily_usd = models.DecimalField(
        "most Bedrock dollars a day per model family",
        max_digits=10,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Since midnight UTC, for each model family. Empty: no limit.",
    )
    freeze_within_hours = models.PositiveSmallIntegerField(
        "freeze when the budget runs out within (hours)",
        null=True,
        blank=True,
        help_text="At what runs now, the budget would be gone within this many hours. Empty: no limit.",
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "course spend limits"
        verbose_name_plural = "course spend limits"

    def __str__(self) -> str:
        return f"Spend limits of {self.course}"

    @property
    def rules(self) -> list[str]:
        """Each limit set, as a sentence for pages and emails."""
        rules = []
        if self.max_usd_per_hour is not None:
            rules.append(f"At most ${self.max_usd_per_hour:,.2f} an hour per student account.")
        if self.max_accelerated_instances == 0:
            rules.append("No GPU or accelerator instances.")
        elif self.max_accelerated_instances is not None:
            rules.append(f"At most {self.max_accelerated_instances} GPU or accelerator instance(s) at once.")
        if self.bedrock_daily_tokens is not None:
            rules.append(f"At most {self.bedrock_daily_tokens:,} Bedrock tokens a day per model family.")
        if self.bedrock_daily_usd is not None:
            rules.append(f"At most ${self.bedrock_daily_usd:,.2f} of Bedrock a day per model family.")
        if self.freeze_within_hours is not None:
            rules.append(f"Frozen when, at what runs now, the budget runs out within {self.freeze_within_hours} hours.")
        return rules
