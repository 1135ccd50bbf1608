import pytest
from django.utils import timezone

from tests.support.aws_script import Clock
from tests.support.next_steps import record_account_steps


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """The portal's clock (django.utils.timezone.now), moved on by hand."""
    frozen = Clock()
    monkeypatch.setattr(timezone, "now", frozen)
    return frozen


@pytest.fixture
def queued(monkeypatch):
    """The follow-up tasks the services queue for an account, by task name (recorded, not run)."""
    return record_account_steps(monkeypatch)
