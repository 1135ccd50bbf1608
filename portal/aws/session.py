"""boto3 sessions and clients, configured once.

Credentials come from boto3's default chain (environment, profile, instance or task role). When
PORTAL_AWS_MANAGEMENT_ROLE_ARN is set the portal first assumes that role in the management
account. `AWS_ENDPOINT_URL` (the emulator) is honoured by boto3 itself.

Clients are cached per process: creating one costs tens of milliseconds, and more in a new
session, which would parse the service's model again: every member account's session reads the
models through the process's one loader. A client is keyed by the
role whose credentials sign it and by their expiry, never by the identity of a session object
(`id()` of a freed session is reused by the next one, which may be another account's): renewed or
forgotten credentials drop their clients with them, so no call is signed with expired credentials
or with another account's. Calls that are not safe
to repeat get a client with botocore's retries turned off (`total_max_attempts=1`): their unknown
outcomes are resolved by looking, never by sending again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.loaders import Loader, create_loader
from django.conf import settings
from django.utils import timezone

from portal.aws.errors import classify

SESSION_NAME = "classroom-cloud-portal"
CREDENTIAL_MARGIN = timedelta(minutes=5)
TIMEOUTS = {"connect_timeout": 5, "read_timeout": 20}
SAFE_CONFIG = Config(retries={"mode": "standard", "max_attempts": 4}, **TIMEOUTS)
# Non-idempotent calls: one attempt; a lost answer surfaces as UnknownOutcome.
ONCE_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 1}, **TIMEOUTS)

MAX_CACHED_CLIENTS = 512

_lock = threading.Lock()
# (service, safe_to_repeat, role ARN ("" for the portal's own credentials), expiry, region) -> client
_clients: OrderedDict[tuple[str, bool, str, datetime | None, str], Any] = OrderedDict()
# role ARN ("" for the portal's own credentials) -> (session, expiry of its credentials)
_sessions: dict[str, tuple[boto3.Session, datetime | None]] = {}
_hooks: list[tuple[str, Callable]] = []


def region() -> str:
    return settings.PORTAL_AWS_REGION


def identity_center_region() -> str:
    """The region of the organization's IAM Identity Center instance and its identity store."""
    return settings.PORTAL_AWS_IDENTITY_CENTER_REGION


def base_session() -> boto3.Session:
    """The session of the portal's own credentials."""
    with _lock:
        cached = _sessions.get("")
        if cached is None:
            cached = (boto3.Session(region_name=region()), None)
            _sessions[""] = cached
        return cached[0]


def management_session() -> boto3.Session:
    return _session_of(settings.PORTAL_AWS_MANAGEMENT_ROLE_ARN)[0]


def _session_of(role_arn: str) -> tuple[boto3.Session, datetime | None]:
    """The session signing as `role_arn` ("" for the portal's own credentials) and its expiry."""
    if not role_arn:
        return base_session(), None
    return _assumed(role_arn)


def _member_role_arn(account_id: str) -> str:
    return f"arn:aws:iam::{account_id}:role/{settings.PORTAL_AWS_MEMBER_ROLE_NAME}"


def member_session(account_id: str) -> boto3.Session:
    """A session inside a member account, through the role the organization put there."""
    return _assumed(_member_role_arn(account_id))[0]


def forget_member_session(account_id: str) -> None:
    """Drop this process's session in a member account, and its clients: the next call assumes the
    role again (after the role refused the sessions it had issued before a moment, see access_role.py)."""
    with _lock:
        _forget(_member_role_arn(account_id))


def _forget(role_arn: str) -> None:
    """Drop a role's session and every client signed with its credentials (caller holds the lock)."""
    _sessions.pop(role_arn, None)
    for key in [key for key in _clients if key[2] == role_arn]:
        del _clients[key]


def _fresh(expiry: datetime | None) -> bool:
    """Whether assumed credentials still have CREDENTIAL_MARGIN to run (timezone.now(): tests move it)."""
    return expiry is not None and expiry - CREDENTIAL_MARGIN > timezone.now()


def _assumed(role_arn: str) -> tuple[boto3.Session, datetime | None]:
    with _lock:
        cached = _sessions.get(role_arn)
        if cached and _fresh(cached[1]):
            return cached
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
        botocore_session=_botocore_session(),
    )
    expiry = credentials["Expiration"]
    if expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=UTC)
    with _lock:
        # The old credentials' clients go with them: nothing signs with credentials about to expire.
        _forget(role_arn)
        _sessions[role_arn] = (session, expiry)
    return session, expiry


@cache
def _service_models() -> Loader:
    """One loader of botocore's service models for the whole process."""
    return create_loader()


def _botocore_session() -> botocore.session.Session:
    """A botocore session that reads service models through the process's one loader: every member
    account has its own session, and each would otherwise parse the models of its clients again
    (a few hundred milliseconds for EC2, SageMaker, RDS… at each usage meter reading)."""
    made = botocore.session.get_session()
    made.register_component("data_loader", _service_models())
    return made


def client(service: str, *, safe_to_repeat: bool = True, account_id: str = "", region: str = "") -> Any:
    """A cached client of the management account (or of `account_id`'s member role), in `region`
    (default: the portal's region)."""
    role_arn = _member_role_arn(account_id) if account_id else settings.PORTAL_AWS_MANAGEMENT_ROLE_ARN
    session, expiry = _session_of(role_arn)
    region = region or session.region_name
    # Keyed by whose credentials sign and until when: renewed credentials get fresh clients.
    key = (service, safe_to_repeat, role_arn, expiry, region)
    with _lock:
        if key in _clients:
            _clients.move_to_end(key)
            return _clients[key]
    made = session.client(service, region_name=region, config=SAFE_CONFIG if safe_to_repeat else ONCE_CONFIG)
    with _lock:
        for event, handler in _hooks:
            made.meta.events.register(event, handler)
        if _sessions.get(role_arn, (session, expiry))[1] != expiry:
            return made  # renewed meanwhile by another thread: used once, not cached under old credentials
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
