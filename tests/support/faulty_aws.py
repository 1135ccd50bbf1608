"""An unreliable, rate-limited AWS: a small HTTP proxy between boto3 and moto_server.

moto answers at once and never refuses: every CreateAccount is SUCCEEDED in its first answer,
nothing is throttled, no answer is lost. Real AWS is not like that, and the portal's vending must
cope. Between the portal (AWS_ENDPOINT_URL = this proxy) and moto, the proxy puts back:

- faults, drawn per request from a seeded generator: throttling and 5xx errors (nothing reaches
  moto), lost responses (moto does the work, the answer never comes back) and dropped
  connections (nothing reaches moto, no answer);
- asynchronous account creation: a CreateAccount stays IN_PROGRESS, without an account id, for
  `creation_seconds`, and the new account is not listed meanwhile;
- AWS's CreateAccount quotas: a token bucket of `rate` requests per second holding `burst`, and
  at most `max_in_progress` creations running. A request over them is refused as AWS refuses it
  and recorded in `violations`, so that a portal that ignores the quotas fails its tests.

It counts requests per (client, operation); the client is the caller's AWS_SDK_UA_APP_ID.
Standard library only, loopback only.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

# Headers that belong to one connection, or that the proxy writes itself.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "server",
        "date",
    }
)
# JSON services that call throttling TooManyRequestsException; the others say ThrottlingException.
TOO_MANY_REQUESTS_SERVICES = frozenset({"organizations", "servicequotas"})
CREATION_STATES = ["IN_PROGRESS", "SUCCEEDED", "FAILED"]


@dataclass(frozen=True)
class Faults:
    """Probability per request of each fault; they exclude each other."""

    throttle: float = 0.0
    server_error: float = 0.0
    lost_response: float = 0.0
    dropped_connection: float = 0.0


NO_FAULTS = Faults()


@dataclass(frozen=True)
class CreationLimits:
    """CreateAccount quotas and creation time. AWS publishes 0.1 request/s with a burst of 3
    and 5 creations in progress."""

    rate: float = 0.1
    burst: int = 3
    max_in_progress: int = 5
    creation_seconds: float = 60.0


class Fault(Enum):
    THROTTLE = "throttle"
    SERVER_ERROR = "server_error"
    LOST_RESPONSE = "lost_response"
    DROPPED_CONNECTION = "dropped_connection"


@dataclass(frozen=True)
class Call:
    """One HTTP request to AWS, with what AWS would read from it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    service: str  # the signing name, e.g. organizations, sso, iam
    operation: str
    protocol: str  # json, query or rest
    client: str  # AWS_SDK_UA_APP_ID of the caller, "" if none

    @classmethod
    def parse(cls, method: str, path: str, headers: dict[str, str], body: bytes) -> Call:
        lowered = {name.lower(): value for name, value in headers.items()}
        target = lowered.get("x-amz-target", "")
        if target:
            protocol, operation = "json", target.rpartition(".")[2]
        elif lowered.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            protocol, operation = "query", parse_qs(body.decode()).get("Action", [""])[0]
        else:
            protocol, operation = "rest", f"{method} {urlsplit(path).path}"
        scope = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/", lowered.get("authorization", ""))
        app = re.search(r"\bapp/(\S+)", lowered.get("user-agent", ""))
        return cls(
            method=method,
            path=path,
            headers={name: value for name, value in headers.items() if name.lower() not in HOP_BY_HOP},
            body=body,
            service=scope.group(1) if scope else "",
            operation=operation,
            protocol=protocol,
            client=app.group(1) if app else "",
        )


@dataclass(frozen=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Creation:
    """One CreateAccount that moto carried out; times are time.monotonic()."""

    started: float
    done_at: float
    email: str = ""  # the root email asked for
    request_id: str = ""
    account_id: str = ""
    answered_at: float | None = None  # when moto had answered the CreateAccount
    reported_at: float | None = None  # when a caller was first told that it succeeded


class TokenBucket:
    def __init__(self, rate: float, burst: int, now: float):
        self.rate, self.burst = rate, burst
        self.tokens, self.updated = float(burst), now

    def held(self, now: float) -> float:
        """The tokens the bucket holds at `now`."""
        return min(float(self.burst), self.tokens + (now - self.updated) * self.rate)

    def take(self, now: float) -> bool:
        self.tokens = self.held(now)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def error_reply(call: Call, status: int, code: str, message: str, **fields: str) -> Reply:
    """An AWS error in the call's protocol, as botocore parses it."""
    request_id = str(uuid.uuid4())
    if call.protocol == "query":
        kind = "Receiver" if status >= 500 else "Sender"
        body = (
            f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code>"
            f"<Message>{escape(message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return Reply(status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], body.encode())
    # x-amzn-query-error is sent only by JSON services that replaced a query API
    # (awsQueryCompatible); none of the services the portal calls is one.
    headers = [
        ("Content-Type", "application/x-amz-json-1.1"),
        ("x-amzn-RequestId", request_id),
        ("x-amzn-ErrorType", code),
    ]
    return Reply(status, headers, json.dumps({"__type": code, "message": message, **fields}).encode())


def throttling_reply(call: Call) -> Reply:
    if call.protocol == "query":
        code = "Throttling"
    elif call.service in TOO_MANY_REQUESTS_SERVICES:
        code = "TooManyRequestsException"
    else:
        code = "ThrottlingException"
    return error_reply(call, 400, code, "Rate exceeded")


class FaultyAws:
    """The proxy. Use as a context manager; point AWS_ENDPOINT_URL at `endpoint_url`."""

    def __init__(self, upstream: str, *, limits: CreationLimits, faults: Faults = NO_FAULTS, seed: int = 0):
        target = urlsplit(upstream)
        self._upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.limits = limits
        self._faults = faults
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self._bucket = TokenBucket(limits.rate, limits.burst, self.started)
        self.creations: list[Creation] = []
        self._by_request: dict[str, Creation] = {}
        self.calls: Counter[tuple[str, str]] = Counter()
        self.faults_injected: Counter[Fault] = Counter()
        self.violations: list[str] = []
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def set_faults(self, faults: Faults) -> None:
        with self._lock:
            self._faults = faults

    def creations_per_email(self) -> Counter[str]:
        """How many CreateAccount requests AWS took (moto carried out) for each root email: more
        than one is a second account for the same student."""
        with self._lock:
            return Counter(creation.email for creation in self.creations)

    def creation_quotas(self, now: float) -> tuple[list[float], float]:
        """Where AWS's CreateAccount quotas stand at `now` (time.monotonic()): how long each
        creation in progress still takes, and the tokens in the bucket."""
        with self._lock:
            running = sorted(creation.done_at - now for creation in self.creations if creation.done_at > now)
            return running, self._bucket.held(now)

    def calls_of(self, client: str) -> Counter[str]:
        with self._lock:
            return Counter({operation: n for (who, operation), n in self.calls.items() if who == client})

    # --- One request ------------------------------------------------------------------------------

    def handle(self, call: Call) -> Reply | None:
        """The answer to a request, or None to close the connection without one."""
        fault = self._draw(call)
        if fault is Fault.THROTTLE:
            return throttling_reply(call)
        if fault is Fault.SERVER_ERROR:
            return self._server_error(call)
        if fault is Fault.DROPPED_CONNECTION:
            return None
        creation = None
        if call.service == "organizations" and call.operation == "CreateAccount":
            admitted = self._admit_creation(call)
            if isinstance(admitted, Reply):
                return admitted
            creation = admitted
        reply = self._emulate(call, self._forward(_unfiltered(call)), creation)
        return None if fault is Fault.LOST_RESPONSE else reply

    def _draw(self, call: Call) -> Fault | None:
        with self._lock:
            self.calls[call.client, call.operation] += 1
            roll = self._random.random()
            for fault, probability in (
                (Fault.THROTTLE, self._faults.throttle),
                (Fault.SERVER_ERROR, self._faults.server_error),
                (Fault.LOST_RESPONSE, self._faults.lost_response),
                (Fault.DROPPED_CONNECTION, self._faults.dropped_connection),
            ):
                if roll < probability:
                    self.faults_injected[fault] += 1
                    return fault
                roll -= probability
        return None

    def _server_error(self, call: Call) -> Reply:
        with self._lock:
            unavailable = self._random.random() < 0.5
        if unavailable:
            return error_reply(call, 503, "ServiceUnavailable", "Service unavailable")
        return error_reply(call, 500, "InternalFailure", "Internal failure")

    def _forward(self, call: Call) -> Reply:
        connection = http.client.HTTPConnection(*self._upstream, timeout=60)
        try:
            connection.request(call.method, call.path, body=call.body, headers=call.headers)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        headers = [(name, value) for name, value in response.getheaders() if name.lower() not in HOP_BY_HOP]
        return Reply(response.status, headers, body)

    # --- CreateAccount quotas and asynchronous creation ---------------------------------------------

    def _admit_creation(self, call: Call) -> Creation | Reply:
        """Take a token and a creation slot, or refuse as AWS does (and record the violation)."""
        now = time.monotonic()
        with self._lock:
            if not self._bucket.take(now):
                self.violations.append(f"CreateAccount at {now - self.started:.1f} s: over {self.limits.rate}/s")
                return error_reply(call, 400, "TooManyRequestsException", "Rate exceeded", Type="CreateAccount")
            running = sum(creation.done_at > now for creation in self.creations)
            if running >= self.limits.max_in_progress:
                self.violations.append(f"CreateAccount at {now - self.started:.1f} s: {running} creations in progress")
                return error_reply(
                    call,
                    400,
                    "ConstraintViolationException",
                    "You have exceeded the allowed number of accounts being created at the same time.",
                    Reason="ACCOUNT_CREATION_RATE_LIMIT_EXCEEDED",
                )
            email = json.loads(call.body or b"{}").get("Email", "")
            creation = Creation(started=now, done_at=now + self.limits.creation_seconds, email=email.lower())
            self.creations.append(creation)
            return creation

    def _emulate(self, call: Call, reply: Reply, creation: Creation | None) -> Reply:
        if creation is not None:
            return self._created(reply, creation)
        if call.service != "organizations" or reply.status != 200:
            return reply
        now = time.monotonic()
        if call.operation == "DescribeCreateAccountStatus":
            return _edit_json(
                reply, lambda data: {**data, "CreateAccountStatus": self._seen(data["CreateAccountStatus"], now)}
            )
        if call.operation == "ListCreateAccountStatus":
            wanted = json.loads(call.body or b"{}").get("States") or CREATION_STATES

            def rewrite(data: dict) -> dict:
                statuses = [self._seen(status, now) for status in data.get("CreateAccountStatuses", [])]
                return {**data, "CreateAccountStatuses": [s for s in statuses if s["State"] in wanted]}

            return _edit_json(reply, rewrite)
        hidden = self._accounts_in_creation(now)
        if call.operation in {"ListAccounts", "ListAccountsForParent"}:
            return _edit_json(
                reply, lambda data: {**data, "Accounts": [a for a in data["Accounts"] if a["Id"] not in hidden]}
            )
        if call.operation == "DescribeAccount" and json.loads(call.body).get("AccountId") in hidden:
            return error_reply(call, 400, "AccountNotFoundException", "You specified an account that doesn't exist.")
        return reply

    def _created(self, reply: Reply, creation: Creation) -> Reply:
        if reply.status != 200:
            with self._lock:
                self.creations.remove(creation)
            return reply
        status = json.loads(reply.body)["CreateAccountStatus"]
        with self._lock:
            creation.request_id, creation.account_id = status["Id"], status.get("AccountId", "")
            creation.answered_at = time.monotonic()
            self._by_request[creation.request_id] = creation
        return _edit_json(reply, lambda data: {"CreateAccountStatus": self._seen(status, time.monotonic())})

    def _seen(self, status: dict, now: float) -> dict:
        """A creation status as AWS would show it at `now`."""
        with self._lock:
            creation = self._by_request.get(status.get("Id", ""))
            if creation is None:
                return status
            if now < creation.done_at:
                unfinished = {k: v for k, v in status.items() if k not in {"AccountId", "CompletedTimestamp"}}
                return {**unfinished, "State": "IN_PROGRESS"}
            if creation.reported_at is None:
                creation.reported_at = now
            return status

    def _accounts_in_creation(self, now: float) -> set[str]:
        with self._lock:
            return {c.account_id for c in self.creations if c.done_at > now and c.account_id}


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A client that went away mid-answer (a worker killed on purpose) is no error of ours."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _unfiltered(call: Call) -> Call:
    """What moto is asked: every creation status, whatever States the caller wants, since moto's
    are all SUCCEEDED at once; the proxy filters them as AWS would at the time (`_emulate`)."""
    if call.operation != "ListCreateAccountStatus":
        return call
    asked = json.loads(call.body or b"{}")
    return replace(call, body=json.dumps({k: v for k, v in asked.items() if k != "States"}).encode())


def _edit_json(reply: Reply, edit) -> Reply:
    return replace(reply, body=json.dumps(edit(json.loads(reply.body))).encode())


def _handler_for(proxy: FaultyAws) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as boto3's connection pool expects
        timeout = 300  # idle keep-alive connections end eventually

        def serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            reply = proxy.handle(Call.parse(self.command, self.path, dict(self.headers.items()), body))
            if reply is None:
                # No answer: the client sees the connection close before any response.
                self.close_connection = True
                return
            self.send_response(reply.status)
            for name, value in reply.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        do_GET = do_POST = do_PUT = do_DELETE = serve

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: moto's own log has every request."""

    return Handler
