"""The budget task gives its service the account's id, and the service loads the row once
(billing_app/tasks.py); the loads are counted as in tests/accounts_app/test_tasks.py. AWS is moto
(the `aws` fixture), which keeps AWS Budgets."""

from __future__ import annotations

import pytest

from accounts_app.choices import AccountState
from accounts_app.models import MemberAccount, Membership
from billing_app.models import StudentBudget
from billing_app.tasks import budget_ensure_task
from portal.aws.guardrails import MANAGED_BUDGET_PREFIX
from tests.support.aws_calls import place_as_configured
from tests.support.row_loads import account_row_loads

pytestmark = pytest.mark.django_db


@pytest.fixture
def ready(personas, aws) -> MemberAccount:
    """The student's READY account, made in moto and placed where vending puts it."""
    created = aws.client("organizations").create_account(
        Email="aws+cs101-student@school.example", AccountName="cs101-student"
    )
    account = MemberAccount.objects.create(
        course=personas.course,
        membership=Membership.objects.get(user=personas.student),
        state=AccountState.READY,
        root_email="aws+cs101-student@school.example",
        account_name="cs101-student",
        aws_account_id=created["CreateAccountStatus"]["AccountId"],
    )
    return place_as_configured(account)


def test_the_budget_task_loads_the_account_once(ready):
    with account_row_loads(ready) as ensured:
        budget_ensure_task(ready.pk)

    assert StudentBudget.objects.get(account=ready).aws_budget_name == f"{MANAGED_BUDGET_PREFIX}{ready.aws_account_id}"
    assert len(ensured) == 1, ensured
