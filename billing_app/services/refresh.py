from billing_app.models import CostSync
from billing_app.services.budgets import budgets_evaluate
from billing_app.services.costs import costs_sync


def costs_refresh(*, days: int | None = None) -> CostSync:
    """Sync costs, then check every account against its budget (alerts, freezes)."""
    sync = costs_sync(days=days)
    budgets_evaluate()
    return sync
