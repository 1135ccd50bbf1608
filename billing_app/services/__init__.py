"""Every billing write: syncing costs, budgets, alerts, freezing and unfreezing accounts."""
