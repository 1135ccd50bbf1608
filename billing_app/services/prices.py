"""Prices for the usage meter, kept in the database (`Price`) and asked again daily.

A reading needs a handful of rates (portal/aws/prices.py); each is looked up once for every account
and region that runs it: the Price List API is asked when the stored price is older than
PRICE_MAX_AGE, and a price it cannot give comes from the vendored table (portal/aws/price_table.py),
or is unknown. When the Price List cannot be asked at all (the local emulator has none, AWS
refuses or throttles), the table's price is kept for PRICE_RETRY only, so the Price List is asked
again soon. The Price List is a management-account call (docs/iam/runtime-role.json).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Q

from billing_app.models import Price, PriceSource
from portal.aws import price_table
from portal.aws import prices as aws_prices
from portal.aws.errors import AwsError

logger = logging.getLogger(__name__)

PRICE_MAX_AGE = timedelta(days=1)
PRICE_RETRY = timedelta(hours=1)
NO_SINGLE_PRICE = "The Price List gives no single on-demand price for it."
NOT_IN_PRICE_LIST = "The Price List does not name it the way the meter does."
UNREACHABLE = "The Price List could not be asked: "


@dataclass(frozen=True)
class Quote:
    usd: Decimal | None  # per unit; None: unknown
    source: str  # a PriceSource value


def prices_for(wanted: set[tuple[str, str]], *, now: datetime) -> dict[tuple[str, str], Quote]:
    """The price of each (rate, region): one query for those stored and fresh, the Price List (or
    the table) for the others, stored for the next reading."""
    if not wanted:
        return {}
    stored = {
        (price.rate, price.region): price
        for price in Price.objects.filter(_any_of(wanted), checked_at__gt=now - PRICE_MAX_AGE)
    }
    quotes, fresh = {}, []
    for key in sorted(wanted):
        price = stored.get(key)
        if price is not None and _still_good(price, now):
            quotes[key] = Quote(price.usd, price.source)
            continue
        price = _looked_up(*key, now=now)
        fresh.append(price)
        quotes[key] = Quote(price.usd, price.source)
    if fresh:
        Price.objects.bulk_create(
            fresh,
            update_conflicts=True,
            unique_fields=["rate", "region"],
            update_fields=["usd", "unit", "source", "checked_at", "note"],
        )
    return quotes


def _any_of(wanted: set[tuple[str, str]]) -> Q:
    condition = Q(pk__in=[])
    for rate, region in wanted:
        condition |= Q(rate=rate, region=region)
    return condition


def _still_good(price: Price, now: datetime) -> bool:
    """A price the Price List could not be asked for is asked again after PRICE_RETRY."""
    return not price.note.startswith(UNREACHABLE) or price.checked_at > now - PRICE_RETRY


def _looked_up(rate: str, region: str, *, now: datetime) -> Price:
    if aws_prices.query_of(rate, region) is None:
        return _from_table(rate, region, now, NOT_IN_PRICE_LIST)
    try:
        usd = aws_prices.price_list_price(rate, region)
    except AwsError as error:
        logger.info("Price of %s in %s from the table: %s", rate, region, error)
        return _from_table(rate, region, now, f"{UNREACHABLE}{error}"[:500])
    if usd is None:
        return _from_table(rate, region, now, NO_SINGLE_PRICE)
    return _price(rate, region, usd, PriceSource.PRICE_LIST, now, "")


def _from_table(rate: str, region: str, now: datetime, note: str) -> Price:
    usd = price_table.table_price(rate, region)
    source = PriceSource.UNKNOWN if usd is None else PriceSource.TABLE
    return _price(rate, region, usd, source, now, note)


def _price(rate: str, region: str, usd: Decimal | None, source: str, now: datetime, note: str) -> Price:
    unit = aws_prices.unit_of(rate)
    return Price(rate=rate, region=region, usd=usd, unit=unit, source=source, checked_at=now, note=note)
