"""The internet as webhook deliveries meet it, in process: a DNS that knows only the names a test
gives it, and receivers that record each request and answer from a script.

`WebhookReceivers` replaces the two places where `portal.outbound` leaves the process: the name
lookup (`outbound.resolve`) and urllib3's HTTPS connection pool, which is handed the address the
portal chose to dial, the host name the certificate must match, and the request. Everything
else (the URL checks, the address checks, the headers, the body) runs as in production.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
import urllib3

from portal import outbound

PUBLIC_DNS = {
    "hooks.slack.com": ["3.33.0.10"],
    "prod-42.westeurope.logic.azure.com": ["20.50.0.7"],
    "alerts.school.example": ["129.97.0.7", "2607:f8b0:4004:c07::64"],
    "receiver.example.org": ["93.184.216.34"],
}


@dataclass
class Received:
    address: str  # what the portal dialled
    port: int
    server_hostname: str  # what the certificate had to match
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceivers:
    """`answers` are used in order, one per request: an HTTP status, or an exception to raise
    instead of answering; then every request gets 200."""

    dns: dict[str, list[str]] = field(default_factory=lambda: {k: list(v) for k, v in PUBLIC_DNS.items()})
    answers: list[int | Exception] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)

    def resolve(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        if host not in self.dns:
            raise outbound.UnsafeAddress(f"{host} does not resolve to an address (no such name).")
        return self.dns[host]

    def pool(self, address: str, port: int, **options) -> _Pool:
        return _Pool(self, address, port, options)


class _Response:
    def __init__(self, status: int, body: bytes):
        self.status, self._body = status, body

    def read(self, amount: int) -> bytes:
        return self._body[:amount]

    def release_conn(self) -> None:
        pass


class _Pool:
    def __init__(self, receivers: WebhookReceivers, address: str, port: int, options: dict):
        self.receivers, self.address, self.port, self.options = receivers, address, port, options

    def urlopen(
        self, method: str, path: str, *, body: bytes, headers: dict[str, str], redirect: bool, **_
    ) -> _Response:
        assert redirect is False, "a webhook request must not follow redirects"
        assert self.options["cert_reqs"] == "CERT_REQUIRED"
        assert self.options["assert_hostname"] == self.options["server_hostname"]
        self.receivers.received.append(
            Received(self.address, self.port, self.options["server_hostname"], method, path, dict(headers), body)
        )
        answer = self.receivers.answers.pop(0) if self.receivers.answers else 200
        if isinstance(answer, Exception):
            raise answer
        return _Response(answer, b"ok" if answer < 300 else b"no_service")

    def close(self) -> None:
        pass


def webhook_receivers(monkeypatch: pytest.MonkeyPatch) -> WebhookReceivers:
    receivers = WebhookReceivers()
    monkeypatch.setattr(outbound, "resolve", receivers.resolve)
    monkeypatch.setattr(urllib3, "HTTPSConnectionPool", receivers.pool)
    return receivers


def timed_out() -> urllib3.exceptions.ReadTimeoutError:
    return urllib3.exceptions.ReadTimeoutError(None, "/", "Read timed out. (read timeout=10)")
