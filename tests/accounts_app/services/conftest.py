import pytest
from django.utils import timezone

from tests.support.account_api import AccountApi
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


@pytest.fixture
def account_api(aws) -> AccountApi:
    """AWS Account Management's primary-email API, which moto lacks (tests/support/account_api.py)."""
    return AccountApi(aws)


@pytest.fixture
def school_addresses(settings):
    """Root emails live on the school's domain, as the students' own school addresses do (the
    handover's tests: pytest.mark.usefixtures("school_addresses"))."""
    settings.PORTAL_ROOT_EMAIL_PATTERN = "aws+{course}-{student}@school.example"
    settings.PORTAL_HANDOVER_WAIT_DAYS = 4
