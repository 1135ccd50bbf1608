"""Cost Explorer. Every request costs the school $0.01, so each sync asks one query family for the
whole organization (grouped by linked account), never one query per account."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from portal.aws.errors import TransientAwsError, classify
from portal.aws.session import client

METRIC = "UnblendedCost"
CREDIT_RECORD_TYPES = ["Credit", "Refund"]
# Cost Explorer answers LimitExceededException when asked too fast (botocore's own retries may
# already have been spent): wait and ask again, these many seconds apart.
THROTTLE_WAITS = (2, 5, 15, 30)
THROTTLED = "LimitExceededException"


@dataclass
class RequestMeter:
    """Requests answered so far, shared by every query of one sync: AWS bills each one, also when
    a later query fails."""

    requests: int = 0


# One figure of a page: (day, account id, key, amount, currency, estimated), the key being the
# service name or the record type (Credit, Refund) and the amount AWS's decimal text, exact (the
# database, or Decimal, parses it where it is stored). A plain tuple of strings: a month of a
# large organization is millions of them, which the garbage collector stops tracking, where it
# would walk as many objects again and again.
CostRow = tuple[date, str, str, str, str, bool]


@dataclass
class CostQueryResult:
    rows: list[CostRow]
    requests: int


def _get(params: dict, meter: RequestMeter | None) -> dict:
    """One page, asked again while Cost Explorer says it is asked too fast. A throttled request
    is not answered, so only answered pages count."""
    waits = iter(THROTTLE_WAITS)
    while True:
        try:
            page = client("ce").get_cost_and_usage(**params)
        except Exception as error:
            failure = classify(error, operation="GetCostAndUsage")
            if failure.code != THROTTLED:
                raise failure from error
            wait = next(waits, None)
            if wait is None:
                # Still throttled after every wait: a later run will do, nothing is wrong.
                raise TransientAwsError(failure.message, code=failure.code, operation=failure.operation) from error
            time.sleep(wait)
            continue
        if meter is not None:
            meter.requests += 1
        return page


def _pages(params: dict, meter: RequestMeter | None) -> Iterator[list[CostRow]]:
    """The rows of every page of one query, each page as it is answered: the next page is asked
    for only once the caller is done with this one."""
    token = None
    while True:
        page = _get({**params, **({"NextPageToken": token} if token else {})}, meter)
        yield _rows(page)
        token = page.get("NextPageToken")
        if not token:
            return


def _query(params: dict, meter: RequestMeter | None) -> CostQueryResult:
    """Every page of one query. `requests` counts the pages, each one billed by AWS."""
    rows: list[CostRow] = []
    requests = 0
    for page_rows in _pages(params, meter):
        rows.extend(page_rows)
        requests += 1
    return CostQueryResult(rows, requests)


def _rows(page: dict) -> list[CostRow]:
    rows = []
    for period in page.get("ResultsByTime", []):
        day = date.fromisoformat(period["TimePeriod"]["Start"])
        estimated = bool(period.get("Estimated", False))
        for group in period.get("Groups", []):
            account_id, key = group["Keys"]
            metric = group["Metrics"][METRIC]
            rows.append((day, account_id, key, metric["Amount"], metric.get("Unit", "USD"), estimated))
    return rows


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


def usage_by_account_and_service(
    start: date, end: date, *, granularity: str = "DAILY", meter: RequestMeter | None = None
) -> Iterator[list[CostRow]]:
    """Spend per account per service per day in [start, end), without credits and refunds: the
    rows of each page as it is answered (a month of 10,000 accounts is 2.5 million figures, which
    the caller stores page by page rather than holds)."""
    not_credits = {"Not": {"Dimensions": {"Key": "RECORD_TYPE", "Values": CREDIT_RECORD_TYPES}}}
    return _pages(_params(start, end, granularity, "SERVICE", not_credits), meter)


def credits_by_account(start: date, end: date, *, meter: RequestMeter | None = None) -> Iterator[list[CostRow]]:
    """Credits and refunds per account per day in [start, end), keyed by record type, page by page."""
    only_credits = {"Dimensions": {"Key": "RECORD_TYPE", "Values": CREDIT_RECORD_TYPES}}
    return _pages(_params(start, end, "DAILY", "RECORD_TYPE", only_credits), meter)


@dataclass(frozen=True)
class HourlyCost:
    hour: datetime
    account_id: str
    amount: Decimal


def hourly_usage_by_account(
    start: datetime, end: datetime, *, meter: RequestMeter | None = None
) -> tuple[list[HourlyCost], int]:
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
        page = _get({**params, **({"NextPageToken": token} if token else {})}, meter)
        requests += 1
        for period in page.get("ResultsByTime", []):
            hour = datetime.fromisoformat(period["TimePeriod"]["Start"].replace("Z", "+00:00"))
            for group in period.get("Groups", []):
                rows.append(HourlyCost(hour, group["Keys"][0], Decimal(group["Metrics"][METRIC]["Amount"])))
        token = page.get("NextPageToken")
        if not token:
            return rows, requests


def usage_by_tag(
    start: date, end: date, *, tag_key: str, account_ids: list[str], meter: RequestMeter | None = None
) -> CostQueryResult:
    """Spend per account per value of a cost allocation tag, for one course's accounts."""
    params = {
        "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
        "Granularity": "DAILY",
        "Metrics": [METRIC],
        "GroupBy": [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}, {"Type": "TAG", "Key": tag_key}],
        "Filter": {"Dimensions": {"Key": "LINKED_ACCOUNT", "Values": account_ids}},
    }
    return _query(params, meter)


@dataclass(frozen=True)
class TagActivation:
    active: list[str]
    refused: dict[str, str]  # tag key -> AWS's reason


def activate_cost_allocation_tags(tag_keys: list[str]) -> TagActivation:
    """Activate the tag keys. AWS answers success even when it refuses some keys (a key it has
    not yet seen on a billed resource): those come back in the answer's Errors."""
    if not tag_keys:
        return TagActivation([], {})
    try:
        answer = client("ce").update_cost_allocation_tags_status(
            CostAllocationTagsStatus=[{"TagKey": key, "Status": "Active"} for key in tag_keys]
        )
    except Exception as error:
        raise classify(error, operation="UpdateCostAllocationTagsStatus") from error
    refused = {
        error["TagKey"]: " ".join(part for part in (error.get("Code", ""), error.get("Message", "")) if part)
        for error in answer.get("Errors", [])
    }
    return TagActivation([key for key in tag_keys if key not in refused], refused)
