"""HTTP requests to addresses people typed in (webhooks), and nothing else.

A webhook address is chosen by an instructor or an administrator, and the worker that posts to it
sits inside the school's network, next to the database, Redis and the cloud's metadata service.
So a request goes out only over https, to an address that is public: the host name is resolved
here, every address it resolves to must be public, and the connection is made to the address
that was checked (TLS still verifies the certificate against the host name), so that a name
resolving to a public address for the check and a private one for the request (DNS rebinding)
reaches nothing. Redirects are not followed: they could point anywhere.

Knows nothing of Django: plain values in, `Answer` out, `DeliveryError` when there is none.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3

CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 10
MAX_ANSWER_BYTES = 2000  # enough to say why a receiver refused; the rest is not read
USER_AGENT = "ClassroomCloudPortal-Webhooks/1"


class UnsafeAddress(ValueError):
    """The address is not https, or not public: nothing is sent to it."""


class DeliveryError(Exception):
    """No answer: the connection failed or timed out. `transient`: trying again may work."""

    def __init__(self, message: str, *, transient: bool):
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Answer:
    status: int
    body: str  # the beginning of it

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def transient(self) -> bool:
        """Worth trying again later: the receiver is busy or broken, not refusing the message."""
        return self.status in (408, 425, 429) or self.status >= 500


def is_public(address: str) -> bool:
    """A global unicast address: not private, loopback, link-local (the cloud's metadata service
    at 169.254.169.254), shared (100.64/10), multicast, reserved or unspecified."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (IPv4 and IPv6)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise UnsafeAddress(f"{host} does not resolve to an address ({error}).") from error
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str  # with the query string


def parse_https_url(url: str) -> Target:
    """The parts of an https URL, or UnsafeAddress saying what is wrong with it."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or 443
    except ValueError as error:
        raise UnsafeAddress(f"This is not a web address ({error}).") from error
    if parts.scheme != "https":
        raise UnsafeAddress("The address must start with https:// (the message is sent encrypted).")
    if not parts.hostname:
        raise UnsafeAddress("The address has no host name.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeAddress("The address must not hold a user name or password before the host.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(host=parts.hostname.lower().rstrip("."), port=port, path=path)


def public_addresses(target: Target) -> list[str]:
    """The addresses to connect to: every address of the host, all public, or UnsafeAddress."""
    try:
        literal = ipaddress.ip_address(target.host)
    except ValueError:
        addresses = resolve(target.host, target.port)
    else:
        addresses = [str(literal)]
    private = [address for address in addresses if not is_public(address)]
    if private or not addresses:
        raise UnsafeAddress(
            f"{target.host} is a private, loopback or reserved address ({', '.join(private)}): "
            "the portal only sends to public addresses."
        )
    return addresses


def post_json(url: str, body: bytes, headers: dict[str, str]) -> Answer:
    """POST `body` as JSON to `url` once, connecting to a checked public address of its host.
    UnsafeAddress before any connection; DeliveryError when no answer came."""
    target = parse_https_url(url)
    address = public_addresses(target)[0]
    pool = urllib3.HTTPSConnectionPool(
        address,
        target.port,
        # The certificate must be the host's, whatever address was dialled.
        server_hostname=target.host,
        assert_hostname=target.host,
        cert_reqs="CERT_REQUIRED",
        timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS),
        retries=False,
        maxsize=1,
    )
    host_header = target.host if target.port == 443 else f"{target.host}:{target.port}"
    try:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body,
            headers={
                "Host": host_header,
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                **headers,
            },
            redirect=False,
            preload_content=False,
        )
        try:
            text = response.read(MAX_ANSWER_BYTES).decode("utf-8", "replace")
        finally:
            response.release_conn()
    except urllib3.exceptions.SSLError as error:
        # A certificate that does not match is not cured by waiting a minute, but a receiver
        # renewing its certificate is: tried again, and the error shown to staff meanwhile.
        raise DeliveryError(f"TLS failed: {error}", transient=True) from error
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise DeliveryError(f"No answer from {target.host}: {error}", transient=True) from error
    finally:
        pool.close()
    return Answer(status=response.status, body=text.strip())
