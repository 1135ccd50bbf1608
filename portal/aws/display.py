"""What the portal shows people of AWS: sign-in pages, console links, the names of things.

Plain strings only: this module imports nothing that can reach AWS, so that views and selectors,
which never call AWS, may import it (and nothing else of portal.aws: tests/test_conventions.py).
"""

from __future__ import annotations

from urllib.parse import urlencode

# The permission set students sign in with (portal/aws/guardrails.py makes it).
STUDENT_PERMISSION_SET = "ClassroomStudent"

# What a freeze stops, by kind, in the order it stops them (portal/aws/spending.py).
SPENDING_KIND_LABELS: dict[str, str] = {
    "autoscaling:group": "Auto Scaling group",
    "ec2:instance": "EC2 instance",
    "sagemaker:notebook-instance": "SageMaker notebook instance",
    "sagemaker:endpoint": "SageMaker endpoint",
    "rds:db-cluster": "Aurora DB cluster",
    "rds:db-instance": "RDS DB instance",
}


def signin_url(account_id_or_alias: str) -> str:
    """The console sign-in page of an account's IAM users."""
    return f"https://{account_id_or_alias}.signin.aws.amazon.com/console"


def console_deep_link(portal_url: str, account_id: str, permission_set_name: str) -> str:
    """Opens the console in `account_id` with that permission set, through the access portal."""
    query = urlencode({"account_id": account_id, "role_name": permission_set_name})
    return f"{portal_url.rstrip('/')}/#/console?{query}"
