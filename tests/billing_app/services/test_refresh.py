"""The cost refresh (billing_app/services/refresh.py) runs one at a time on every machine: two
syncs at once would each store the window's figures and delete what the other stored."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from billing_app.services import refresh
from portal.locks import COST_SYNC
from tests.support.advisory_locks import held_elsewhere, waiting_for


@pytest.mark.django_db(transaction=True)
def test_a_cost_sync_waits_for_the_one_running_then_runs(monkeypatch):
    ran: list[str] = []
    monkeypatch.setattr(refresh, "costs_sync", lambda days=None: ran.append(f"sync {days}"))
    monkeypatch.setattr(refresh, "budgets_evaluate", lambda: ran.append("budgets"))

    def second_sync() -> None:
        try:
            refresh.costs_refresh(days=3)
        finally:
            connection.close()

    with held_elsewhere(COST_SYNC):  # a sync running on another worker
        thread = threading.Thread(target=second_sync)
        thread.start()
        assert waiting_for(COST_SYNC)
        assert ran == []
    thread.join(timeout=30)

    assert ran == ["sync 3", "budgets"]
