"""AWS Budgets, kept in the management account and filtered to one member account, so that the
student cannot edit or delete them. Budget actions are a second line of defence behind the
portal's own freeze."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from portal.aws.errors import NotFound, PermanentAwsError, classify
from portal.aws.session import client

ACTUAL_THRESHOLDS = (50, 80, 100)
FORECAST_THRESHOLD = 100


@dataclass(frozen=True)
class BudgetSpec:
    name: str
    account_id: str  # the member account the budget watches
    amount: Decimal
    time_unit: str  # MONTHLY, or ANNUALLY with a start and end for a whole-course budget
    subscribers: list[str]
    start: date | None = None
    end: date | None = None


def _call(operation: str, **params) -> dict:
    try:
        return getattr(client("budgets"), operation)(**params)
    except Exception as error:
        raise classify(error, operation=operation) from error


def _notifications(subscribers: list[str]) -> list[dict]:
    def notification(kind: str, threshold: int) -> dict:
        return {
            "Notification": {
                "NotificationType": kind,
                "ComparisonOperator": "GREATER_THAN",
                "Threshold": threshold,
                "ThresholdType": "PERCENTAGE",
            },
            "Subscribers": [{"SubscriptionType": "EMAIL", "Address": email} for email in subscribers],
        }

    return [notification("ACTUAL", t) for t in ACTUAL_THRESHOLDS] + [
        notification("FORECASTED", FORECAST_THRESHOLD)
    ]


def _budget(spec: BudgetSpec) -> dict:
    budget = {
        "BudgetName": spec.name,
        "BudgetLimit": {"Amount": str(spec.amount), "Unit": "USD"},
        "TimeUnit": spec.time_unit,
        "BudgetType": "COST",
        "CostFilters": {"LinkedAccount": [spec.account_id]},
    }
    if spec.start and spec.end:
        budget["TimePeriod"] = {"Start": spec.start.isoformat(), "End": spec.end.isoformat()}
    return budget


def describe(management_account_id: str, name: str) -> dict | None:
    try:
        return _call("describe_budget", AccountId=management_account_id, BudgetName=name)["Budget"]
    except NotFound:
        return None


def ensure_budget(management_account_id: str, spec: BudgetSpec) -> bool:
    """Create the budget with its notifications, or bring its amount up to date. Returns whether
    anything changed."""
    current = describe(management_account_id, spec.name)
    if current is None:
        try:
            _call(
                "create_budget",
                AccountId=management_account_id,
                Budget=_budget(spec),
                NotificationsWithSubscribers=_notifications(spec.subscribers),
            )
        except PermanentAwsError as error:
            if error.code != "DuplicateRecordException":
                raise
            return False
        return True
    if Decimal(current["BudgetLimit"]["Amount"]) == spec.amount:
        return False
    _call("update_budget", AccountId=management_account_id, NewBudget=_budget(spec))
    return True


def ensure_scp_action(
    management_account_id: str,
    *,
    budget_name: str,
    policy_id: str,
    account_id: str,
    execution_role_arn: str,
    subscribers: list[str],
) -> str:
    """An APPLY_SCP_POLICY action that attaches `policy_id` to the account at 100% of actual
    spend. Returns the action id (the existing one if the budget has it already)."""
    for action in _call(
        "describe_budget_actions_for_budget", AccountId=management_account_id, BudgetName=budget_name
    )["Actions"]:
        if action["ActionType"] == "APPLY_SCP_POLICY":
            return action["ActionId"]
    created = _call(
        "create_budget_action",
        AccountId=management_account_id,
        BudgetName=budget_name,
        NotificationType="ACTUAL",
        ActionType="APPLY_SCP_POLICY",
        ActionThreshold={"ActionThresholdValue": 100.0, "ActionThresholdType": "PERCENTAGE"},
        Definition={"ScpActionDefinition": {"PolicyId": policy_id, "TargetIds": [account_id]}},
        ExecutionRoleArn=execution_role_arn,
        ApprovalModel="AUTOMATIC",
        Subscribers=[{"SubscriptionType": "EMAIL", "Address": email} for email in subscribers],
    )
    return created["ActionId"]


def delete_budget(management_account_id: str, name: str) -> None:
    """Delete a budget with its notifications and actions; one already gone is fine."""
    try:
        _call("delete_budget", AccountId=management_account_id, BudgetName=name)
    except NotFound:
        pass
