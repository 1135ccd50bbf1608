"""The usage meter's fallback prices: used when the Price List API cannot be asked (the local
emulator has none) or gives no single price, and for Bedrock's token prices, which it does not give
by model id (prices.py).

APPROXIMATE on-demand prices in us-east-1 (USD, Linux, as listed on aws.amazon.com/<service>/pricing
in November 2026) of what the course catalog lets students run: the instance families of
catalog.py in their small sizes, EBS volumes, NAT gateways, load balancers, small RDS and Aurora
instances, the SageMaker instances the guardrails allow (ml.t2.*, ml.t3.*, ml.m5.large and xlarge)
and common Bedrock models. Other regions are priced from us-east-1 with REGION_FACTORS, measured on
EC2, EBS and NAT prices; a region without a factor, or a rate not listed, has no fallback price
(shown as unknown, never as $0).
"""

from __future__ import annotations

from decimal import Decimal

from portal.aws.prices import family_of

PRICES_AS_OF = "November 2026"

# What a region costs against us-east-1 (the school's default regions).
REGION_FACTORS: dict[str, Decimal] = {
    "us-east-1": Decimal(1),
    "us-east-2": Decimal(1),
    "us-west-2": Decimal(1),
    "eu-west-1": Decimal("1.10"),
    "eu-central-1": Decimal("1.16"),
}
# Bedrock's on-demand token prices are the same in every region that serves the model.
SAME_IN_EVERY_REGION = frozenset({"bedrock-input", "bedrock-output"})
# AWS prices a Multi-AZ DB instance, and its storage, at twice the Single-AZ one.
MULTI_AZ_FACTOR = Decimal(2)

_EC2_LINUX_PER_HOUR = {
    "t2.nano": "0.0058",
    "t2.micro": "0.0116",
    "t2.small": "0.023",
    "t2.medium": "0.0464",
    "t2.large": "0.0928",
    "t3.nano": "0.0052",
    "t3.micro": "0.0104",
    "t3.small": "0.0208",
    "t3.medium": "0.0416",
    "t3.large": "0.0832",
    "t3.xlarge": "0.1664",
    "t3a.nano": "0.0047",
    "t3a.micro": "0.0094",
    "t3a.small": "0.0188",
    "t3a.medium": "0.0376",
    "t3a.large": "0.0752",
    "t4g.nano": "0.0042",
    "t4g.micro": "0.0084",
    "t4g.small": "0.0168",
    "t4g.medium": "0.0336",
    "t4g.large": "0.0672",
    "m5.large": "0.096",
    "m5.xlarge": "0.192",
    "m6i.large": "0.096",
    "m7i.large": "0.1008",
    "m6g.medium": "0.0385",
    "m6g.large": "0.077",
    "m7g.medium": "0.0408",
    "m7g.large": "0.0816",
    "c5.large": "0.085",
    "c6i.large": "0.085",
    "c6g.medium": "0.034",
    "c6g.large": "0.068",
    "c7g.medium": "0.0363",
    "r5.large": "0.126",
    "r6i.large": "0.126",
    "r6g.medium": "0.0504",
    "r7g.medium": "0.0536",
    "inf1.xlarge": "0.228",
    "g4dn.xlarge": "0.526",
    "g6.xlarge": "0.8048",
    "inf2.xlarge": "0.7582",
    "g5.xlarge": "1.006",
    "p3.2xlarge": "3.06",
}
_RDS_SINGLE_AZ_PER_HOUR = {
    ("db.t3.micro", "postgres"): "0.018",
    ("db.t3.micro", "mysql"): "0.017",
    ("db.t3.micro", "mariadb"): "0.017",
    ("db.t3.small", "postgres"): "0.036",
    ("db.t3.small", "mysql"): "0.034",
    ("db.t3.small", "mariadb"): "0.034",
    ("db.t3.medium", "postgres"): "0.072",
    ("db.t3.medium", "mysql"): "0.068",
    ("db.t3.medium", "mariadb"): "0.068",
    ("db.t4g.micro", "postgres"): "0.016",
    ("db.t4g.micro", "mysql"): "0.016",
    ("db.t4g.small", "postgres"): "0.032",
    ("db.t4g.small", "mysql"): "0.032",
    ("db.t4g.medium", "postgres"): "0.065",
    ("db.t4g.medium", "mysql"): "0.065",
    ("db.m5.large", "postgres"): "0.178",
    ("db.m5.large", "mysql"): "0.171",
    ("db.t3.medium", "aurora-postgresql"): "0.082",
    ("db.t3.medium", "aurora-mysql"): "0.082",
    ("db.t4g.medium", "aurora-postgresql"): "0.073",
    ("db.t4g.medium", "aurora-mysql"): "0.073",
    ("db.r5.large", "aurora-postgresql"): "0.29",
    ("db.r5.large", "aurora-mysql"): "0.29",
}
_SAGEMAKER_PER_HOUR = {
    ("Notebook", "ml.t2.medium"): "0.0464",
    ("Notebook", "ml.t3.medium"): "0.05",
    ("Notebook", "ml.t3.large"): "0.10",
    ("Notebook", "ml.t3.xlarge"): "0.20",
    ("Notebook", "ml.m5.large"): "0.115",
    ("Notebook", "ml.m5.xlarge"): "0.23",
    ("Hosting", "ml.t2.medium"): "0.056",
    ("Hosting", "ml.t2.large"): "0.111",
    ("Hosting", "ml.t2.xlarge"): "0.223",
    ("Hosting", "ml.m5.large"): "0.115",
    ("Hosting", "ml.m5.xlarge"): "0.23",
    ("Training", "ml.m5.large"): "0.115",
    ("Training", "ml.m5.xlarge"): "0.23",
}
# Per 1,000 tokens: (input, output).
_BEDROCK_PER_THOUSAND_TOKENS = {
    "anthropic.claude-3-haiku-20240307-v1:0": ("0.00025", "0.00125"),
    "anthropic.claude-3-5-haiku-20241022-v1:0": ("0.0008", "0.004"),
    "anthropic.claude-3-5-sonnet-20240620-v1:0": ("0.003", "0.015"),
    "anthropic.claude-3-5-sonnet-20241022-v2:0": ("0.003", "0.015"),
    "anthropic.claude-3-7-sonnet-20250219-v1:0": ("0.003", "0.015"),
    "anthropic.claude-sonnet-4-20250514-v1:0": ("0.003", "0.015"),
    "amazon.nova-micro-v1:0": ("0.000035", "0.00014"),
    "amazon.nova-lite-v1:0": ("0.00006", "0.00024"),
    "amazon.nova-pro-v1:0": ("0.0008", "0.0032"),
    "amazon.titan-text-express-v1": ("0.0002", "0.0006"),
    "amazon.titan-text-lite-v1": ("0.00015", "0.0002"),
    "amazon.titan-embed-text-v2:0": ("0.00002", "0"),
    "meta.llama3-8b-instruct-v1:0": ("0.0003", "0.0006"),
    "meta.llama3-1-8b-instruct-v1:0": ("0.00022", "0.00022"),
    "mistral.mistral-7b-instruct-v0:2": ("0.00015", "0.0002"),
}

US_EAST_1: dict[str, Decimal] = {
    **{f"ec2-instance/{kind}/Linux": Decimal(usd) for kind, usd in _EC2_LINUX_PER_HOUR.items()},
    "ebs-storage/gp3": Decimal("0.08"),
    "ebs-storage/gp2": Decimal("0.10"),
    "ebs-storage/io1": Decimal("0.125"),
    "ebs-storage/io2": Decimal("0.125"),
    "ebs-storage/st1": Decimal("0.045"),
    "ebs-storage/sc1": Decimal("0.015"),
    "ebs-storage/standard": Decimal("0.05"),
    "ebs-iops/gp3": Decimal("0.005"),
    "ebs-iops/io1": Decimal("0.065"),
    "ebs-iops/io2": Decimal("0.065"),
    "ebs-throughput/gp3": Decimal("0.04"),
    "nat-gateway": Decimal("0.045"),
    "load-balancer/application": Decimal("0.0225"),
    "load-balancer/network": Decimal("0.0225"),
    "load-balancer/gateway": Decimal("0.0125"),
    "load-balancer/classic": Decimal("0.025"),
    **{
        f"rds-instance/{kind}/{engine}/Single-AZ": Decimal(usd)
        for (kind, engine), usd in _RDS_SINGLE_AZ_PER_HOUR.items()
    },
    "rds-storage/gp2/Single-AZ": Decimal("0.115"),
    "rds-storage/gp3/Single-AZ": Decimal("0.115"),
    "rds-storage/io1/Single-AZ": Decimal("0.125"),
    "rds-storage/standard/Single-AZ": Decimal("0.10"),
    **{f"sagemaker/{part}/{kind}": Decimal(usd) for (part, kind), usd in _SAGEMAKER_PER_HOUR.items()},
    **{f"bedrock-input/{model}": Decimal(usd) for model, (usd, _) in _BEDROCK_PER_THOUSAND_TOKENS.items()},
    **{f"bedrock-output/{model}": Decimal(usd) for model, (_, usd) in _BEDROCK_PER_THOUSAND_TOKENS.items()},
}


def table_price(rate_key: str, region: str) -> Decimal | None:
    """The table's price of one unit of `rate_key` in `region`, or None when it has none."""
    usd = _us_east_1(rate_key)
    if usd is None:
        return None
    if family_of(rate_key) in SAME_IN_EVERY_REGION:
        return usd
    factor = REGION_FACTORS.get(region)
    return None if factor is None else (usd * factor).normalize()


def _us_east_1(rate_key: str) -> Decimal | None:
    if rate_key in US_EAST_1:
        return US_EAST_1[rate_key]
    family = family_of(rate_key)
    if family in ("rds-instance", "rds-storage") and rate_key.endswith("/Multi-AZ"):
        single = US_EAST_1.get(rate_key.removesuffix("/Multi-AZ") + "/Single-AZ")
        return None if single is None else single * MULTI_AZ_FACTOR
    return None
