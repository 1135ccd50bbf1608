from django.contrib import admin

from billing_app.models import Alert, CostSync, CourseSchedule, MeterReading, Price, ScheduledStop, StudentBudget


@admin.register(CostSync)
class CostSyncAdmin(admin.ModelAdmin):
    """Every Cost Explorer sync, with what it cost: administrators watch the $0.01 requests here."""

    list_display = [
        "started_at",
        "window_start",
        "window_end",
        "requests",
        "cost",
        "rows",
        "duration",
        "error",
        "warnings",
    ]
    list_filter = ["started_at"]

    @admin.display(description="Cost Explorer cost")
    def cost(self, sync: CostSync) -> str:
        return f"${sync.requests * 0.01:.2f}"

    @admin.display(description="duration")
    def duration(self, sync: CostSync) -> str:
        seconds = sync.duration_seconds
        return "running" if seconds is None else f"{seconds:.1f} s"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["created_at", "course", "account", "kind", "message", "resolved_at"]
    list_filter = ["kind", "course"]


@admin.register(StudentBudget)
class StudentBudgetAdmin(admin.ModelAdmin):
    list_display = ["account", "amount_override", "aws_budget_name", "synced_at"]
    readonly_fields = ["aws_budget_name", "aws_action_id", "synced_at"]


@admin.register(MeterReading)
class MeterReadingAdmin(admin.ModelAdmin):
    """The usage meter's latest reading of each account: what it found, what it cost in AWS calls."""

    list_display = ["account", "course", "taken_at", "running", "usd_per_hour", "unknown", "calls", "error"]
    list_filter = ["course"]
    readonly_fields = [field.name for field in MeterReading._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    """The prices the meter uses, and where each came from."""

    list_display = ["rate", "region", "usd", "unit", "source", "checked_at", "note"]
    list_filter = ["source", "region"]
    search_fields = ["rate"]
    readonly_fields = [field.name for field in Price._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(CourseSchedule)
class CourseScheduleAdmin(admin.ModelAdmin):
    """Each course's schedule, read only: instructors set it on the course's Schedule page, whose
    form checks it (a time zone name, class hours that end after they start)."""

    list_display = ["course", "mode", "weekdays", "class_starts", "class_ends", "stop_at", "time_zone", "idle_hours"]
    list_filter = ["mode"]
    readonly_fields = [field.name for field in CourseSchedule._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(ScheduledStop)
class ScheduledStopAdmin(admin.ModelAdmin):
    """What course schedules stopped, and what became of it: AWS's refusals are in `error`."""

    list_display = ["account", "kind", "resource_id", "region", "why", "status", "stopped_at", "restarted_at", "error"]
    list_filter = ["status", "reason", "course"]
    search_fields = ["resource_id", "account__account_name", "account__aws_account_id"]
    readonly_fields = [field.name for field in ScheduledStop._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
