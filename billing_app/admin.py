from django.contrib import admin

from billing_app.models import Alert, CostSync, StudentBudget


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
