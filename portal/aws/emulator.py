"""The portal's side of the local emulator (devtools/emulator/server.py, around moto): seeding
Cost Explorer, which returns nothing unless told what to answer, the time an account takes to
create, what the demo's students run in their accounts, and whether AWS_ENDPOINT_URL is that
emulator, which the demo commands and `aws_bootstrap --create-organization` check before they
run. boto3 and HTTP only, no moto: production runs aws_bootstrap. Never used against real AWS."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import urllib.request
from urllib.parse import urlsplit

from portal.aws.session import client

SEED_PATH = "/moto-api/static/ce/cost-and-usage-results"
PACE_PATH = "/portal-emulator/creation-seconds"  # answered by devtools/emulator/server.py
DEMO_IMAGE_ID = "ami-12c6146b"  # the emulator launches from any image id


def endpoint() -> str:
    """The local emulator's address. ValueError unless AWS_ENDPOINT_URL, and every
    AWS_ENDPOINT_URL_<SERVICE>, points at this machine (loopback): any other address may be real
    AWS, or someone else's, which the demo commands must never touch."""
    url = os.environ.get("AWS_ENDPOINT_URL", "")
    if not url:
        raise ValueError("AWS_ENDPOINT_URL is not set: this is real AWS, not the local emulator.")
    for name in sorted(name for name in os.environ if name.startswith("AWS_ENDPOINT_URL")):
        if not is_loopback(os.environ[name]):
            raise ValueError(f"{name}={os.environ[name]} is not on this machine: only the local emulator is.")
    return url.rstrip("/")


def is_loopback(url: str) -> bool:
    """Whether `url` names this machine: localhost, 127.0.0.0/8 or ::1. Other names are not
    resolved: what they point at can change."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_running() -> bool:
    """Whether something listens at the emulator's address."""
    try:
        address = urlsplit(endpoint())
        with socket.create_connection((address.hostname, address.port or 80), timeout=2):
            return True
    except (OSError, ValueError):
        return False


def seed_cost_explorer(results: list[dict]) -> None:
    """Queue GetCostAndUsage answers: the emulator gives them out in order, one per distinct
    request, so list them in the order the portal will ask."""
    caller = client("sts").get_caller_identity()["Account"]
    _post(SEED_PATH, {"account_id": caller, "results": results})


def start_instance(account_id: str, region: str, instance_type: str, name: str) -> str:
    """Start an EC2 instance in a member account, as its student would (the demo's workloads).
    Returns its id. Refuses anything but the local emulator."""
    endpoint()
    ec2 = client("ec2", account_id=account_id, region=region, safe_to_repeat=False)
    answer = ec2.run_instances(
        ImageId=DEMO_IMAGE_ID,
        MinCount=1,
        MaxCount=1,
        InstanceType=instance_type,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}],
    )
    return answer["Instances"][0]["InstanceId"]


def set_creation_seconds(seconds: float) -> None:
    """How long the accounts created from now on stay IN_PROGRESS, as on AWS (0: at once)."""
    _post(PACE_PATH, {"creation_seconds": seconds})


def _post(path: str, payload: dict) -> None:
    body = json.dumps(payload, default=str).encode()
    request = urllib.request.Request(
        endpoint() + path, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
