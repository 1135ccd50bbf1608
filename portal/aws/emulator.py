"""What only the local emulator (portal/aws/emulator_server.py, around moto) offers:
seeding Cost Explorer, which returns nothing unless told what to answer, and the time an
account takes to create. Never used against real AWS."""

from __future__ import annotations

import json
import os
import socket
import urllib.request
from urllib.parse import urlsplit

from portal.aws.session import client

SEED_PATH = "/moto-api/static/ce/cost-and-usage-results"
PACE_PATH = "/portal-emulator/creation-seconds"  # answered by emulator_server.py


def endpoint() -> str:
    """The emulator's address; ValueError when the portal is talking to real AWS."""
    url = os.environ.get("AWS_ENDPOINT_URL", "")
    if not url:
        raise ValueError("AWS_ENDPOINT_URL is not set: this is real AWS, not the emulator.")
    return url.rstrip("/")


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


def set_creation_seconds(seconds: float) -> None:
    """How long the accounts created from now on stay IN_PROGRESS, as on AWS (0: at once)."""
    _post(PACE_PATH, {"creation_seconds": seconds})


def _post(path: str, payload: dict) -> None:
    body = json.dumps(payload, default=str).encode()
    request = urllib.request.Request(
        endpoint() + path, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (local emulator)
        response.read()
