"""An LMS's side of LTI Dynamic Registration, served over HTTP on this machine by a thread: its
OpenID configuration and its registration endpoint, each checking the registration token as a
bearer token, the endpoint recording every registration posted to it.

`FakePlatform` is what a test changes to play a platform that misbehaves: another issuer, a
token it no longer accepts, a refusal of the registration, no deployment in its answer.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "registration-token-from-the-lms"
CONFIGURATION_PATH = "/mod/lti/openid-configuration.php"
REGISTRATION_PATH = "/mod/lti/openid-registration.php"
TOOL_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-tool-configuration"


@dataclass
class Registered:
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakePlatform:
    base: str = ""  # http://127.0.0.1:<port>, once started
    token: str = TOKEN
    issuer: str | None = None  # None: the platform's own address, as it should be
    product_family_code: str = "moodle"
    client_id: str = "vQz3kP0aLm"
    deployment_id: str | None = "7"
    # An HTTP status and JSON body the registration endpoint answers instead of accepting.
    refusal: tuple[int, dict[str, Any]] | None = None
    configuration_requests: int = 0
    registered: list[Registered] = field(default_factory=list)

    @property
    def openid_configuration_url(self) -> str:
        return self.base + CONFIGURATION_PATH

    def configuration(self) -> dict[str, Any]:
        issuer = self.issuer or self.base
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{self.base}/mod/lti/auth.php",
            "token_endpoint": f"{self.base}/mod/lti/token.php",
            "jwks_uri": f"{self.base}/mod/lti/certs.php",
            "registration_endpoint": self.base + REGISTRATION_PATH,
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "scopes_supported": ["openid", "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"],
            "response_types_supported": ["id_token"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["sub", "iss", "name", "given_name", "family_name", "email"],
            "https://purl.imsglobal.org/spec/lti-platform-configuration": {
                "product_family_code": self.product_family_code,
                "version": "4.5.2",
                "messages_supported": [{"type": "LtiResourceLinkRequest"}, {"type": "LtiDeepLinkingRequest"}],
            },
        }

    def registration_answer(self, posted: dict[str, Any]) -> dict[str, Any]:
        """The platform's answer: what was posted, with its client id and deployment."""
        tool = dict(posted.get(TOOL_CONFIGURATION, {}))
        if self.deployment_id is not None:
            tool["deployment_id"] = self.deployment_id
        return {**posted, "client_id": self.client_id, TOOL_CONFIGURATION: tool}


def serve(platform: FakePlatform) -> ThreadingHTTPServer:
    """Start `platform` on a free port of this machine; the caller shuts the server down."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != CONFIGURATION_PATH:
                return self.answer(404, {"error": "not found"})
            platform.configuration_requests += 1
            if not self.authorized():
                return self.answer(401, {"error": "invalid token"})
            return self.answer(200, platform.configuration())

        def do_POST(self) -> None:
            if self.path != REGISTRATION_PATH:
                return self.answer(404, {"error": "not found"})
            if not self.authorized():
                return self.answer(401, {"error": "invalid token"})
            posted = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            platform.registered.append(Registered(headers=dict(self.headers), body=posted))
            if platform.refusal is not None:
                return self.answer(*platform.refusal)
            return self.answer(200, platform.registration_answer(posted))

        def authorized(self) -> bool:
            return self.headers.get("Authorization") == f"Bearer {platform.token}"

        def answer(self, status: int, document: dict[str, Any]) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: a test reads what the platform recorded, not its log."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    platform.base = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def unreachable_url() -> str:
    """An address on this machine where nothing listens: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{CONFIGURATION_PATH}"
