"""What things cost, from the AWS Price List API, for the usage meter.

A *rate* names one price the meter needs, as a key: a family and its parts, "/"-separated
(`ec2-instance/t3.micro/Linux`, `ebs-storage/gp3`, `sagemaker/Hosting/ml.t2.medium`,
`bedrock-input/anthropic.claude-3-haiku-20240307-v1:0`). Each family has a unit: a price per hour,
per GB-month, per thousand tokens… `per_hour` turns a price and a quantity into dollars an hour.

`price_list_price` asks the Price List API (GetProducts, us-east-1: the API's endpoint whatever
the region priced) for one rate in one region: one request, the first page of on-demand products
matching the rate's attributes. It returns the price when AWS lists exactly one for the rate's
unit, None when it lists none or several (the caller then falls back to price_table.py, never to
$0), and raises AwsError when the API cannot be asked (the local emulator has no Price List).
Bedrock's token prices are not asked: the Price List names models by their marketing names and
lists third-party models under other offers, so model ids do not map onto its attributes; they
come from the vendored table alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from portal.aws.errors import classify
from portal.aws.session import client

# The Price List API answers in these two regions only; us-east-1 serves every region's prices.
PRICE_LIST_REGION = "us-east-1"
PAGE_SIZE = 100
HOURS_PER_MONTH = Decimal(730)  # AWS's own convention for monthly prices


class Unit(StrEnum):
    HOUR = "hour"
    GB_MONTH = "GB-month"
    IOPS_MONTH = "IOPS-month"
    MIBPS_MONTH = "MiB/s-month"
    THOUSAND_TOKENS = "1,000 tokens"


@dataclass(frozen=True)
class Query:
    """The Price List products of one rate: a service code, attributes to match exactly, and the
    unit of the price dimension wanted (the Price List's spelling)."""

    service_code: str
    attributes: dict[str, str]
    unit: str


# The Price List's names for what the APIs call otherwise.
RDS_ENGINES = {
    "postgres": "PostgreSQL",
    "mysql": "MySQL",
    "mariadb": "MariaDB",
    "aurora-postgresql": "Aurora PostgreSQL",
    "aurora-mysql": "Aurora MySQL",
}
RDS_STORAGE = {
    "gp2": "General Purpose",
    "gp3": "General Purpose-GP3",
    "io1": "Provisioned IOPS",
    "io2": "Provisioned IOPS-IO2",
    "standard": "Magnetic",
}
LOAD_BALANCER_FAMILIES = {
    "application": "Load Balancer-Application",
    "network": "Load Balancer-Network",
    "gateway": "Load Balancer-Gateway",
    "classic": "Load Balancer",
}


def _ec2_instance(region: str, instance_type: str, operating_system: str) -> Query:
    return Query(
        "AmazonEC2",
        {
            "regionCode": region,
            "instanceType": instance_type,
            "operatingSystem": operating_system,
            "tenancy": "Shared",
            "preInstalledSw": "NA",
            "capacitystatus": "Used",
            "licenseModel": "No License required",
        },
        "Hrs",
    )


def _ebs_storage(region: str, volume_type: str) -> Query:
    return Query("AmazonEC2", {"regionCode": region, "productFamily": "Storage", "volumeApiName": volume_type}, "GB-Mo")


def _ebs_iops(region: str, volume_type: str) -> Query:
    attributes = {"regionCode": region, "productFamily": "System Operation", "volumeApiName": volume_type}
    return Query("AmazonEC2", attributes, "IOPS-Mo")


def _nat_gateway(region: str) -> Query:
    return Query("AmazonEC2", {"regionCode": region, "productFamily": "NAT Gateway"}, "Hrs")


def _load_balancer(region: str, kind: str) -> Query | None:
    if kind not in LOAD_BALANCER_FAMILIES:
        return None
    return Query("AWSELB", {"regionCode": region, "productFamily": LOAD_BALANCER_FAMILIES[kind]}, "Hrs")


def _rds_instance(region: str, instance_class: str, engine: str, deployment: str) -> Query | None:
    if engine not in RDS_ENGINES:
        return None
    attributes = {
        "regionCode": region,
        "productFamily": "Database Instance",
        "instanceType": instance_class,
        "databaseEngine": RDS_ENGINES[engine],
        "deploymentOption": deployment,
    }
    return Query("AmazonRDS", attributes, "Hrs")


def _rds_storage(region: str, storage_type: str, deployment: str) -> Query | None:
    if storage_type not in RDS_STORAGE:
        return None
    attributes = {
        "regionCode": region,
        "productFamily": "Database Storage",
        "volumeType": RDS_STORAGE[storage_type],
        "deploymentOption": deployment,
    }
    return Query("AmazonRDS", attributes, "GB-Mo")


def _sagemaker(region: str, component: str, instance_type: str) -> Query:
    attributes = {
        "regionCode": region,
        "productFamily": "ML Instance",
        "component": component,
        "instanceName": instance_type,
    }
    return Query("AmazonSageMaker", attributes, "Hrs")


@dataclass(frozen=True)
class Family:
    unit: Unit
    # The Price List query of a rate of this family in a region (None: not in the Price List).
    query: Callable[..., Query | None] | None


FAMILIES: dict[str, Family] = {
    "ec2-instance": Family(Unit.HOUR, _ec2_instance),  # type / operating system
    "ebs-storage": Family(Unit.GB_MONTH, _ebs_storage),  # volume type
    "ebs-iops": Family(Unit.IOPS_MONTH, _ebs_iops),  # volume type (gp3: above its free 3,000)
    # gp3 throughput above its free 125 MiB/s: the Price List prices it per GiBps-month under
    # names that differ by region; the vendored table has it.
    "ebs-throughput": Family(Unit.MIBPS_MONTH, None),
    "nat-gateway": Family(Unit.HOUR, _nat_gateway),
    "load-balancer": Family(Unit.HOUR, _load_balancer),  # application, network, gateway, classic
    "rds-instance": Family(Unit.HOUR, _rds_instance),  # class / engine / Single-AZ or Multi-AZ
    "rds-storage": Family(Unit.GB_MONTH, _rds_storage),  # storage type / deployment
    "sagemaker": Family(Unit.HOUR, _sagemaker),  # Notebook, Hosting or Training / instance type
    "bedrock-input": Family(Unit.THOUSAND_TOKENS, None),  # model id
    "bedrock-output": Family(Unit.THOUSAND_TOKENS, None),  # model id
}


def rate(family: str, *parts: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"No such price family: {family}")
    return "/".join((family, *parts))


def family_of(rate_key: str) -> str:
    return rate_key.split("/", 1)[0]


def unit_of(rate_key: str) -> Unit:
    return FAMILIES[family_of(rate_key)].unit


def per_hour(usd_per_unit: Decimal, quantity: Decimal, unit: Unit) -> Decimal:
    """Dollars an hour of `quantity` of something priced `usd_per_unit`. Token quantities are
    already thousands of tokens an hour (the meter reads an hour's use)."""
    if unit in (Unit.GB_MONTH, Unit.IOPS_MONTH, Unit.MIBPS_MONTH):
        return usd_per_unit * quantity / HOURS_PER_MONTH
    return usd_per_unit * quantity


def query_of(rate_key: str, region: str) -> Query | None:
    family, *parts = rate_key.split("/")
    build = FAMILIES[family].query
    return build(region, *parts) if build else None


def price_list_price(rate_key: str, region: str) -> Decimal | None:
    """The on-demand price of one unit of `rate_key` in `region` as the Price List gives it, or None
    when it gives no single one. Raises AwsError when the API cannot be asked."""
    query = query_of(rate_key, region)
    if query is None:
        return None
    filters = [{"Type": "TERM_MATCH", "Field": name, "Value": value} for name, value in query.attributes.items()]
    api = client("pricing", region=PRICE_LIST_REGION)
    try:
        answer = api.get_products(ServiceCode=query.service_code, Filters=filters, MaxResults=PAGE_SIZE)
    except Exception as error:
        raise classify(error, operation="GetProducts") from error
    prices = {price for product in answer.get("PriceList", []) for price in _on_demand(product, query.unit)}
    return prices.pop() if len(prices) == 1 else None


def _on_demand(product: str | dict, unit: str) -> set[Decimal]:
    """The first-tier on-demand prices in USD of one Price List product (a JSON string) for `unit`.
    $0 entries (capacity reservations, free tiers) price nothing here."""
    document = json.loads(product) if isinstance(product, str) else product
    found = set()
    for term in document.get("terms", {}).get("OnDemand", {}).values():
        for dimension in term.get("priceDimensions", {}).values():
            if dimension.get("unit") != unit or dimension.get("beginRange", "0") != "0":
                continue
            try:
                usd = Decimal(dimension.get("pricePerUnit", {}).get("USD", ""))
            except InvalidOperation:
                continue
            if usd > 0:
                found.add(usd.normalize())
    return found
