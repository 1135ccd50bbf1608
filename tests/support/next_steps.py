"""The next steps services queue for single accounts, recorded by task name instead of run."""

from __future__ import annotations

from collections import defaultdict

import pytest

from accounts_app import next_step
from accounts_app.choices import AccountState as S


def record_account_steps(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """Every task of `next_step.NEXT_STEPS` given an account's id (the vending and close queues
    and the handover still run) records the id under its name, e.g. `account_configure_task`."""
    recorded: dict[str, list[int]] = defaultdict(list)
    for state in next_step.PER_ACCOUNT - {S.HANDOVER}:
        task = next_step.NEXT_STEPS[state]
        name = task.name.rsplit(".", 1)[-1]
        monkeypatch.setattr(task, "delay_on_commit", recorded[name].append)
    return recorded
