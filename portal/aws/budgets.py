"""AWS Budgets, kept in the management account and filtered to one member account, so that the
student cannot edit or delete them. Budget actions are a second line of defence behind the
portal's own freeze."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from portal.aws.errors import NotFound, PermanentAwsError, classify
from portal.aws.session import client

ACTUAL_THRESHOLDS = (50, 80, 100)
FORECAST_THRESHOLD = 100
# A budget counts what the student used: credits and refunds would hide spend from it (a school
# paying with credits would otherwise never see an alert). AWS's default includes both.
COST_TYPES = {"IncludeCredit": False, "IncludeRefund": False}


CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"


@dataclass(frozen=True)
class BudgetSpec:
    name: str
    account_id: str  # the member account the budget watches
    amount: Decimal
    time_unit: str  # MONTHLY, or ANNUALLY with a start and end for a whole-course budget
    subscribers: list[str]
    start: date | None = None
    end: date | None = None


def _call(operation: str, **params: Any) -> dict:
    try:
        return getattr(client("budgets"), operation)(**params)
    except Exception as error:
        raise classify(error, operation=operation) from error


def _notification(kind: str, threshold: int) -> dict:
    return {
        "NotificationType": kind,
        "ComparisonOperator": "GREATER_THAN",
        "Threshold": threshold,
        "ThresholdType": "PERCENTAGE",
    }


NOTIFICATIONS = [_notification("ACTUAL", t) for t in ACTUAL_THRESHOLDS] + [
    _notification("FORECASTED", FORECAST_THRESHOLD)
]


def _subscriber(email: str) -> dict:
    return {"SubscriptionType": "EMAIL", "Address": email}


def _notifications(subscribers: list[str]) -> list[dict]:
    return [
        {"Notification": notification, "Subscribers": [_subscriber(email) for email in subscribers]}
        for notification in NOTIFICATIONS
    ]


def _budget(spec: BudgetSpec) -> dict:
    budget = {
        "BudgetName": spec.name,
        "BudgetLimit": {"Amount": str(spec.amount), "Unit": "USD"},
        "TimeUnit": spec.time_unit,
        "BudgetType": "COST",
        "CostFilters": {"LinkedAccount": [spec.account_id]},
        "CostTypes": COST_TYPES,
    }
    if spec.start and spec.end:
        budget["TimePeriod"] = {"Start": spec.start.isoformat(), "End": spec.end.isoformat()}
    return budget


def describe(management_account_id: str, name: str) -> dict | None:
    try:
        return _call("describe_budget", AccountId=management_account_id, BudgetName=name)["Budget"]
    except NotFound:
        return None


def _day(value: datetime | str) -> str:
    """A TimePeriod date as AWS answers it (a timestamp) or as the portal writes it."""
    return value.date().isoformat() if hasattr(value, "date") else str(value)[:10]


def _differs(current: dict, wanted: dict) -> bool:
    """Whether AWS's budget differs from the wanted one in what the portal sets."""
    if Decimal(current["BudgetLimit"]["Amount"]) != Decimal(wanted["BudgetLimit"]["Amount"]):
        return True
    if current.get("TimeUnit") != wanted["TimeUnit"]:
        return True
    current_types = current.get("CostTypes", {})
    if any(current_types.get(key, True) != value for key, value in COST_TYPES.items()):
        return True
    if "TimePeriod" not in wanted:
        return False
    period = current.get("TimePeriod", {})
    return (_day(period.get("Start")), _day(period.get("End"))) != (
        wanted["TimePeriod"]["Start"],
        wanted["TimePeriod"]["End"],
    )


def ensure_budget(management_account_id: str, spec: BudgetSpec, *, expect_new: bool = False) -> str:
    """Create the budget with its notifications, or bring its amount, period, dates and cost types
    up to date. Returns CREATED, UPDATED or UNCHANGED. With `expect_new` (the caller has no budget
    on record for the account) it is created without asking first; one AWS has after all is then
    read and brought up to date."""
    wanted = _budget(spec)
    if expect_new and _create(management_account_id, wanted, spec):
        return CREATED
    current = describe(management_account_id, spec.name)
    if current is None:
        # Refused as a duplicate: created meanwhile by another worker, with these same figures.
        return CREATED if _create(management_account_id, wanted, spec) else UNCHANGED
    if not _differs(current, wanted):
        return UNCHANGED
    _call("update_budget", AccountId=management_account_id, NewBudget=wanted)
    return UPDATED


def _create(management_account_id: str, wanted: dict, spec: BudgetSpec) -> bool:
    """CreateBudget; False when AWS has a budget of that name already."""
    try:
        _call(
            "create_budget",
            AccountId=management_account_id,
            Budget=wanted,
            NotificationsWithSubscribers=_notifications(spec.subscribers),
        )
    except PermanentAwsError as error:
        if error.code != "DuplicateRecordException":
            raise
        return False
    return True


def ensure_subscribers(management_account_id: str, name: str, subscribers: list[str]) -> None:
    """Make every notification of the budget email exactly `subscribers`: the new ones are added
    before the old ones go, since AWS refuses a notification without a subscriber."""
    wanted = {email.lower(): email for email in subscribers}
    for notification in NOTIFICATIONS:
        answered = _call(
            "describe_subscribers_for_notification",
            AccountId=management_account_id,
            BudgetName=name,
            Notification=notification,
        )["Subscribers"]
        present = {s["Address"].lower(): s for s in answered if s["SubscriptionType"] == "EMAIL"}
        for key, email in wanted.items():
            if key not in present:
                _subscriber_change("create_subscriber", management_account_id, name, notification, _subscriber(email))
        for key, subscriber in present.items():
            if key not in wanted:
                _subscriber_change("delete_subscriber", management_account_id, name, notification, subscriber)


def _subscriber_change(
    operation: str, management_account_id: str, name: str, notification: dict, subscriber: dict
) -> None:
    """Add or remove one subscriber; one already there (or already gone) is what was wanted."""
    try:
        _call(
            operation,
            AccountId=management_account_id,
            BudgetName=name,
            Notification=notification,
            Subscriber=subscriber,
        )
    except NotFound:
        pass
    except PermanentAwsError as error:
        if error.code != "DuplicateRecordException":
            raise


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
    spend and emails `subscribers` when it runs. Returns the action id (the existing one if the
    budget has it already, its email subscribers made `subscribers`)."""
    for action in _call("describe_budget_actions_for_budget", AccountId=management_account_id, BudgetName=budget_name)[
        "Actions"
    ]:
        if action["ActionType"] == "APPLY_SCP_POLICY":
            _action_subscribers_ensure(management_account_id, budget_name, action, subscribers)
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


def _emails(subscribers: list[dict]) -> set[str]:
    return {s["Address"].lower() for s in subscribers if s["SubscriptionType"] == "EMAIL"}


def _action_subscribers_ensure(management_account_id: str, budget_name: str, action: dict, emails: list[str]) -> None:
    """AWS keeps the subscribers an action was created with until told: replace its email
    subscribers with `emails` (an SNS topic added by hand stays). No call when they match."""
    current = action.get("Subscribers", [])
    if _emails(current) == {email.lower() for email in emails}:
        return
    kept = [s for s in current if s["SubscriptionType"] != "EMAIL"]
    _call(
        "update_budget_action",
        AccountId=management_account_id,
        BudgetName=budget_name,
        ActionId=action["ActionId"],
        Subscribers=kept + [_subscriber(email) for email in emails],
    )


def delete_budget(management_account_id: str, name: str) -> None:
    """Delete a budget with its notifications and actions; one already gone is fine."""
    try:
        _call("delete_budget", AccountId=management_account_id, BudgetName=name)
    except NotFound:
        pass
