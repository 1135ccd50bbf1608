"""Service Quotas: how many accounts the organization may hold."""

from portal.aws.errors import AwsError, classify
from portal.aws.session import client

ORGANIZATIONS_ACCOUNT_QUOTA = ("organizations", "L-29A0C5DF")  # "Default maximum number of accounts"
# Organizations is a global service whose quotas Service Quotas keeps in us-east-1 only: asked in
# any other region, it answers NoSuchResourceException whatever the portal's region.
ORGANIZATIONS_QUOTA_REGION = "us-east-1"


def account_limit() -> int | None:
    """The organization's account quota, or None where Service Quotas cannot tell."""
    service_code, quota_code = ORGANIZATIONS_ACCOUNT_QUOTA
    try:
        quota = client("service-quotas", region=ORGANIZATIONS_QUOTA_REGION).get_service_quota(
            ServiceCode=service_code, QuotaCode=quota_code
        )
    except Exception as error:
        if isinstance(classify(error, operation="GetServiceQuota"), AwsError):
            return None
        raise
    return int(quota["Quota"]["Value"])
