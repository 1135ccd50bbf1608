"""Believable cost data for the demo course: weekday lab peaks, a term that ramps up, a few
services per student, education credits for some, and one student who blows their budget."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal

SERVICES = {
    "Amazon Elastic Compute Cloud - Compute": Decimal("0.55"),
    "Amazon Simple Storage Service": Decimal("0.04"),
    "AWS Lambda": Decimal("0.01"),
    "Amazon DynamoDB": Decimal("0.03"),
    "AmazonCloudWatch": Decimal("0.02"),
    "Amazon Virtual Private Cloud": Decimal("0.12"),
    "Amazon Relational Database Service": Decimal("0.40"),
    "AWS Data Transfer": Decimal("0.02"),
}
LAB_DAYS = {1, 3}  # Tuesday and Thursday


def _amount(value: float) -> str:
    return f"{max(value, 0):.6f}"


def daily_costs(account_ids: list[str], *, start: date, days: int, over_budget: str | None, seed: int = 7):
    """{(day, account, service): amount} for usage, and {(day, account): amount} for credits."""
    rng = random.Random(seed)
    usage: dict[tuple[date, str, str], float] = {}
    credits: dict[tuple[date, str], float] = {}
    for account in account_ids:
        appetite = rng.uniform(0.4, 1.4)
        services = [s for s in SERVICES if rng.random() < 0.75] or list(SERVICES)[:2]
        has_credits = rng.random() < 0.3
        for offset in range(days):
            day = start + timedelta(days=offset)
            ramp = 0.5 + offset / days
            lab = 2.2 if day.weekday() in LAB_DAYS else 1.0
            runaway = 1.0
            if account == over_budget and offset > days * 0.6:
                runaway = 6.0 + offset / 3  # a forgotten GPU instance
            for service in services:
                base = float(SERVICES[service]) * appetite * ramp * lab * rng.uniform(0.6, 1.4)
                if service.startswith("Amazon Elastic Compute"):
                    base *= runaway
                usage[(day, account, service)] = base
            if has_credits:
                credits[(day, account)] = -min(sum(usage[(day, account, s)] for s in services), 1.5)
    return usage, credits


def cost_explorer_results(usage: dict, credits: dict, *, start: date, days: int) -> list[dict]:
    """The two GetCostAndUsage answers the sync will ask for: usage, then credits."""

    def periods(groups_by_day: dict[date, list[dict]]) -> list[dict]:
        return [
            {
                "TimePeriod": {
                    "Start": (start + timedelta(days=i)).isoformat(),
                    "End": (start + timedelta(days=i + 1)).isoformat(),
                },
                "Groups": groups_by_day.get(start + timedelta(days=i), []),
                "Estimated": i >= days - 3,
            }
            for i in range(days)
        ]

    usage_groups: dict[date, list[dict]] = {}
    for (day, account, service), amount in usage.items():
        usage_groups.setdefault(day, []).append(
            {"Keys": [account, service], "Metrics": {"UnblendedCost": {"Amount": _amount(amount), "Unit": "USD"}}}
        )
    credit_groups: dict[date, list[dict]] = {}
    for (day, account), amount in credits.items():
        credit_groups.setdefault(day, []).append(
            {"Keys": [account, "Credit"], "Metrics": {"UnblendedCost": {"Amount": f"{amount:.6f}", "Unit": "USD"}}}
        )
    return [{"ResultsByTime": periods(usage_groups)}, {"ResultsByTime": periods(credit_groups)}]
