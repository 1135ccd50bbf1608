"""Cost Explorer. Every request costs the school $0.01, so each sync asks one query family for the
whole organization (grouped by linked account), never one query per account."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from portal.aws.errors import classify
from portal.aws.session import client

METRIC = "UnblendedCost"
CREDIT_RECORD_TYPES = ["Credit", "Refund"]


@dataclass(frozen=True)
class CostRow:
    day: date
    account_id: str
    key: str  # the service name, or the record type (Credit, Refund)
    amount: Decimal
    currency: str
    estimated: bool


@dataclass
class CostQueryResult:
    rows: list[CostRow]
    requests: int


def _get(params: dict) -> dict:
    try:
        return client("ce").get_cost_and_usage(**params)
    except Exception as error:
        raise classify(error, operation="GetCostAndUsage") from error


def _query(params: dict) -> CostQueryResult:
    """Every page of one query. `requests` counts the pages, each one billed by AWS."""
    rows: list[CostRow] = []
    requests = 0
    token = None
    while True:
        page = _get({**params, **({"NextPageToken": token} if token else {})})
        requests += 1
        rows.extend(_rows(page))
        token = page.get("NextPageToken")
        if not token:
            return CostQueryResult(rows, requests)


def _rows(page: dict) -> Iterator[CostRow]:
    for period in page.get("ResultsByTime", []):
        day = date.fromisoformat(period["TimePeriod"]["Start"])
        estimated = bool(period.get("Estimated", False))
        for group in period.get("Groups", []):
            account_id, key = group["Keys"]
            metric = group["Metrics"][METRIC]
            yield CostRow(day, account_id, key, Decimal(metric["Amount"]), metric.get("Unit", "USD"), estimated)


def _params(start: date, end: date, granularity: str, second_dimension: str, record_filter: dict) -> dict:
    return {
        "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
        "Granularity": granularity,
        "Metrics": [METRIC],
        "GroupBy": [
            {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"},
            {"Type": "DIMENSION", "Key": second_dimension},
        ],
        "Filter": record_filter,
    }


def usage_by_account_and_service(start: date, end: date, *, granularity: str = "DAILY") -> CostQueryResult:
    """Spend per account per service per day in [start, end), without credits and refunds."""
    not_credits = {"Not": {"Dimensions": {"Key": "RECORD_TYPE", "Values": CREDIT_RECORD_TYPES}}}
    return _query(_params(start, end, granularity, "SERVICE", not_credits))


def credits_by_account(start: date, end: date) -> CostQueryResult:
    """Credits and refunds per account per day in [start, end), keyed by record type."""
    only_credits = {"Dimensions": {"Key": "RECORD_TYPE", "Values": CREDIT_RECORD_TYPES}}
    return _query(_params(start, end, "DAILY", "RECORD_TYPE", only_credits))


@dataclass(frozen=True)
class HourlyCost:
    hour: datetime
    account_id: str
    amount: Decimal


def hourly_usage_by_account(start: datetime, end: datetime) -> tuple[list[HourlyCost], int]:
    """Spend per account per hour (HOURLY granularity: opt-in, billed, 14 days deep).
    Returns the rows and the number of requests made."""
    params = {
        "TimePeriod": {"Start": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "End": end.strftime("%Y-%m-%dT%H:%M:%SZ")},
        "Granularity": "HOURLY",
        "Metrics": [METRIC],
        "GroupBy": [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}],
        "Filter": {"Not": {"Dimensions": {"Key": "RECORD_TYPE", "Values": CREDIT_RECORD_TYPES}}},
    }
    rows: list[HourlyCost] = []
    requests, token = 0, None
    while True:
        page = _get({**params, **({"NextPageToken": token} if token else {})})
        requests += 1
        for period in page.get("ResultsByTime", []):
            hour = datetime.fromisoformat(period["TimePeriod"]["Start"].replace("Z", "+00:00"))
            for group in period.get("Groups", []):
                rows.append(HourlyCost(hour, group["Keys"][0], Decimal(group["Metrics"][METRIC]["Amount"])))
        token = page.get("NextPageToken")
        if not token:
            return rows, requests


def usage_by_tag(start: date, end: date, *, tag_key: str, account_ids: list[str]) -> CostQueryResult:
    """Spend per account per value of a cost allocation tag, for one course's accounts."""
    params = {
        "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
        "Granularity": "DAILY",
        "Metrics": [METRIC],
        "GroupBy": [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}, {"Type": "TAG", "Key": tag_key}],
        "Filter": {"Dimensions": {"Key": "LINKED_ACCOUNT", "Values": account_ids}},
    }
    return _query(params)


def activate_cost_allocation_tags(tag_keys: list[str]) -> None:
    if not tag_keys:
        return
    try:
        client("ce").update_cost_allocation_tags_status(
            CostAllocationTagsStatus=[{"TagKey": key, "Status": "Active"} for key in tag_keys]
        )
    except Exception as error:
        raise classify(error, operation="UpdateCostAllocationTagsStatus") from error
