"""The billing tests' calendar and what a cost sync would have recorded."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from accounts_app.models import MemberAccount
from billing_app.models import AccountDailyCost

TODAY = date(2026, 10, 20)  # day 50 of a course running from Sep 1 to Dec 15, 2026 (106 days)
DAYS = 14  # the cost sync's window here: it re-reads Oct 6 up to Oct 20 included


def d(day: int, month: int = 10) -> date:
    """A day of 2026, in October unless said otherwise."""
    return date(2026, month, day)


def spend(account: MemberAccount, days: dict[date, str]) -> None:
    """What the cost sync's rollup would say about these days."""
    for day, usage in days.items():
        AccountDailyCost.objects.update_or_create(
            account=account, day=day, defaults={"course": account.course, "usage": Decimal(usage)}
        )


def attached_policies(aws, account_id: str) -> list[str]:
    """The names of the SCPs attached to the account, sorted."""
    found = aws.client("organizations").list_policies_for_target(TargetId=account_id, Filter="SERVICE_CONTROL_POLICY")
    return sorted(policy["Name"] for policy in found["Policies"])
