from billing_app.models import CostSync
from billing_app.services.budgets import budgets_evaluate
from billing_app.services.costs import costs_sync
from portal.locks import COST_SYNC, advisory_lock


def costs_refresh(*, days: int | None = None) -> CostSync:
    """Sync costs, then check every account against its budget (alerts, freezes).

    One sync at a time, whatever the number of workers and machines (a PostgreSQL advisory
    lock): two syncs at once would each store the window's figures and delete what the other
    stored. A sync asked for meanwhile waits, then reads the window again."""
    with advisory_lock(COST_SYNC):
        sync = costs_sync(days=days)
        budgets_evaluate()
    return sync
