"""What AWS offers, read from the endpoint data that ships with botocore (no network call)."""

from functools import cache

import botocore.session


@cache
def _aws_partition() -> dict:
    loader = botocore.session.get_session().get_component("data_loader")
    endpoints = loader.load_data("endpoints")
    return next(p for p in endpoints["partitions"] if p["partition"] == "aws")


@cache
def region_names() -> dict[str, str]:
    """Commercial AWS regions: code → description, e.g. "us-east-1" → "US East (N. Virginia)"."""
    regions = _aws_partition()["regions"]
    return {code: regions[code].get("description", code) for code in sorted(regions)}


# IAM action prefixes of services whose endpoint prefix is another name (CloudWatch: "monitoring").
IAM_PREFIXES_NOT_IN_ENDPOINTS = frozenset({"cloudwatch"})


@cache
def service_prefixes() -> frozenset[str]:
    """Service names as they start IAM actions (ec2, s3, lambda, …), as endpoint prefixes give them."""
    endpoint_prefixes = {name.removeprefix("api.") for name in _aws_partition()["services"]}
    return frozenset(endpoint_prefixes) | IAM_PREFIXES_NOT_IN_ENDPOINTS


# --- Price classes ---------------------------------------------------------------------------------
# APPROXIMATE on-demand prices in us-east-1 (Linux, USD per hour, as listed on aws.amazon.com/ec2/pricing
# in November 2026), of the smallest size of each family: a guide for instructors choosing what to
# allow, not a quote. Other regions cost up to ~30% more; larger sizes of a family cost more in
# proportion. The portal never bills from this table.
PRICES_AS_OF = "November 2026"
PRICE_SOURCE = "approximate on-demand prices, us-east-1, " + PRICES_AS_OF
CHEAP_BELOW_USD_PER_HOUR = 0.05
MODERATE_BELOW_USD_PER_HOUR = 0.50
# family → (USD per hour of its smallest size, carries a GPU or ML accelerator)
INSTANCE_FAMILY_PRICES: dict[str, tuple[float, bool]] = {
    "t2": (0.0058, False),
    "t3": (0.0052, False),
    "t3a": (0.0047, False),
    "t4g": (0.0042, False),
    "m5": (0.096, False),
    "m6i": (0.096, False),
    "m7i": (0.1008, False),
    "m6g": (0.0385, False),
    "m7g": (0.0408, False),
    "c5": (0.085, False),
    "c6i": (0.085, False),
    "c6g": (0.034, False),
    "c7g": (0.0363, False),
    "r5": (0.126, False),
    "r6i": (0.126, False),
    "r6g": (0.0504, False),
    "r7g": (0.0536, False),
    "i3": (0.156, False),
    "z1d": (0.186, False),
    "d3": (0.499, False),
    "x1e": (0.834, False),
    "x2idn": (6.669, False),
    "inf1": (0.228, True),
    "g4dn": (0.526, True),
    "g6": (0.805, True),
    "inf2": (0.758, True),
    "g5": (1.006, True),
    "trn1": (1.344, True),
    "p3": (3.06, True),
    "p4d": (32.77, True),
    "p5": (55.04, True),
}
# Services by what a student's forgotten resource costs: "$" pay per request with a free tier (an
# idle resource costs nothing or cents), "$$" billed by the hour while it exists (a few dollars a
# day), "$$$" tens to hundreds of dollars a day for one forgotten resource.
SERVICE_PRICE_CLASSES: dict[str, str] = {
    **dict.fromkeys(
        [
            "s3",
            "lambda",
            "dynamodb",
            "sqs",
            "sns",
            "cloudwatch",
            "logs",
            "cloudformation",
            "iam",
            "apigateway",
            "events",
            "states",
            "ecr",
            "cognito-idp",
            "xray",
            "ssm",
            "codecommit",
            "codebuild",
            "cloud9",
            "kms",
            "secretsmanager",
            "athena",
            "glue",
        ],
        "$",
    ),
    **dict.fromkeys(
        [
            "ec2",
            "rds",
            "ecs",
            "elasticloadbalancing",
            "autoscaling",
            "elasticache",
            "eks",
            "kinesis",
            "firehose",
            "lightsail",
            "elasticbeanstalk",
            "elasticfilesystem",
            "backup",
            "route53",
        ],
        "$$",
    ),
    **dict.fromkeys(
        [
            "sagemaker",
            "bedrock",
            "redshift",
            "es",
            "aoss",
            "elasticmapreduce",
            "kafka",
            "workspaces",
            "fsx",
            "mediaconvert",
            "medialive",
            "outposts",
            "gamelift",
            "braket",
            "comprehend",
            "rekognition",
            "textract",
        ],
        "$$$",
    ),
}


def instance_family_price_class(family: str) -> str:
    """ "$", "$$", "$$$", with " GPU" for accelerated families; "?" for a family not in the table."""
    if family not in INSTANCE_FAMILY_PRICES:
        return "?"
    hourly, accelerated = INSTANCE_FAMILY_PRICES[family]
    if hourly < CHEAP_BELOW_USD_PER_HOUR:
        price_class = "$"
    elif hourly < MODERATE_BELOW_USD_PER_HOUR:
        price_class = "$$"
    else:
        price_class = "$$$"
    return f"{price_class} GPU" if accelerated else price_class


def service_price_class(service: str) -> str:
    """ "$", "$$" or "$$$"; "?" for a service not in the table."""
    return SERVICE_PRICE_CLASSES.get(service, "?")
