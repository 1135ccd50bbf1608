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
