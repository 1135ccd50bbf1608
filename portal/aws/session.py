"""boto3 sessions and clients, configured once.

Credentials come from boto3's default chain (environment, profile, instance or task role). When
PORTAL_AWS_MANAGEMENT_ROLE_ARN is set the portal first assumes that role in the management
account. `AWS_ENDPOINT_URL` (the emulator) is honoured by boto3 itself.

Clients are cached per process: creating one costs tens of milliseconds. Calls that are not safe
to repeat get a client with botocore's retries turned off (`total_max_attempts=1`): their unknown
outcomes are resolved by looking, never by sending again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import boto3
from botocore.config import Config
from django.conf import settings

from portal.aws.errors import classify

SESSION_NAME = "classroom-cloud-portal"
CREDENTIAL_MARGIN = timedelta(minutes=5)
TIMEOUTS = {"connect_timeout": 5, "read_timeout": 20}
SAFE_CONFIG = Config(retries={"mode": "standard", "max_attempts": 4}, **TIMEOUTS)
# Non-idempotent calls: one attempt; a lost answer surfaces as UnknownOutcome.
ONCE_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 1}, **TIMEOUTS)

MAX_CACHED_CLIENTS = 512

_lock = threading.Lock()
_clients: OrderedDict[tuple[str, bool, int, str], object] = OrderedDict()
_sessions: dict[str, tuple[boto3.Session, datetime | None]] = {}
_hooks: list[tuple[str, Callable]] = []


def region() -> str:
    return settings.PORTAL_AWS_REGION


def base_session() -> boto3.Session:
    """The session of the portal's own credentials."""
    with _lock:
        cached = _sessions.get("")
        if cached is None:
            cached = (boto3.Session(region_name=region()), None)
            _sessions[""] = cached
        return cached[0]


def management_session() -> boto3.Session:
    role_arn = settings.PORTAL_AWS_MANAGEMENT_ROLE_ARN
    if not role_arn:
        return base_session()
    return _assumed_session(role_arn)


def _member_role_arn(account_id: str) -> str:
    return f"arn:aws:iam::{account_id}:role/{settings.PORTAL_AWS_MEMBER_ROLE_NAME}"


def member_session(account_id: str) -> boto3.Session:
    """A session inside a member account, through the role the organization put there."""
    return _assumed_session(_member_role_arn(account_id))


def forget_member_session(account_id: str) -> None:
    """Drop this process's session in a member account: the next call assumes the role again
    (after the role refused the sessions it had issued before a moment, see access_role.py)."""
    with _lock:
        _sessions.pop(_member_role_arn(account_id), None)


def _assumed_session(role_arn: str) -> boto3.Session:
    with _lock:
        cached = _sessions.get(role_arn)
        if cached and cached[1] and cached[1] - CREDENTIAL_MARGIN > datetime.now(UTC):
            return cached[0]
    source = base_session() if role_arn == settings.PORTAL_AWS_MANAGEMENT_ROLE_ARN else management_session()
    sts = source.client("sts", config=SAFE_CONFIG)
    try:
        credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName=SESSION_NAME)["Credentials"]
    except Exception as error:
        raise classify(error, operation="AssumeRole") from error
    session = boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=region(),
    )
    with _lock:
        _sessions[role_arn] = (session, credentials["Expiration"])
    return session


def client(service: str, *, safe_to_repeat: bool = True, account_id: str = "", region: str = ""):
    """A cached client of the management account (or of `account_id`'s member role), in `region`
    (default: the portal's region)."""
    session = member_session(account_id) if account_id else management_session()
    region = region or session.region_name
    # Keyed by the session, so that renewed credentials get fresh clients.
    key = (service, safe_to_repeat, id(session), region)
    with _lock:
        if key in _clients:
            _clients.move_to_end(key)
            return _clients[key]
    made = session.client(
        service, region_name=region, config=SAFE_CONFIG if safe_to_repeat else ONCE_CONFIG
    )
    with _lock:
        for event, handler in _hooks:
            made.meta.events.register(event, handler)
        _clients[key] = made
        while len(_clients) > MAX_CACHED_CLIENTS:
            _clients.popitem(last=False)
        return made


def add_hook(event: str, handler: Callable) -> None:
    """Register a botocore event handler on every client, present and future. Tests use it to
    script what AWS answers (throttling, lost responses); see botocore's event system."""
    with _lock:
        _hooks.append((event, handler))
        for made in _clients.values():
            made.meta.events.register(event, handler)


def reset() -> None:
    """Forget cached clients, sessions and hooks (tests, and after a credentials change)."""
    with _lock:
        _clients.clear()
        _sessions.clear()
        _hooks.clear()
