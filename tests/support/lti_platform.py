"""A learning management system for the LTI tests: an LTI 1.3 platform on Flask, served over HTTP
on loopback by werkzeug in a thread, that signs its launches with an RS256 key made for the test
run. It stands for Canvas or Moodle.

What it serves, as a platform does:
- `/jwks`: its public keys, which the portal fetches to check a launch's signature;
- `/auth`: the OpenID Connect authorization endpoint a launch goes through. It answers the portal's
  authentication request (state, nonce, redirect_uri) with the page a platform answers with: a form
  that posts the signed `id_token` and the `state` back to the portal, and that a browser submits
  by itself;
- `/token`: OAuth 2 client credentials, where the portal trades a JWT signed with its own key (which
  the platform checks against the tool's public keys, `trust_tool`) for an access token;
- `/nrps/<context id>`: Names and Role Provisioning Services' membership container, a page at a
  time with a `Link: <…>; rel="next"` header, for a valid access token only.

The tests describe the LMS with `LmsPerson` and `LmsCourse`, and start a launch with `launch_request`
(what the platform sends to the tool's login initiation URL). `TestPlatform.requests` records what
the portal asked of the platform.
"""

from __future__ import annotations

import html
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, Response, abort, request
from jwt.algorithms import RSAAlgorithm
from werkzeug.serving import BaseWSGIServer, make_server

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
DEEP_LINKING_CLAIM = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"
MEMBERSHIP_MEDIA_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"

ROLES = {
    "Instructor": "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor",
    "TeachingAssistant": "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant",
    "Learner": "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner",
    "Administrator": "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Administrator",
}


@dataclass
class LmsPerson:
    """Someone the LMS knows: `sub` is their id on the platform (LTI's user id)."""

    email: str
    name: str
    sub: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def given_name(self) -> str:
        return self.name.split(" ")[0]

    @property
    def family_name(self) -> str:
        return self.name.rpartition(" ")[2]


@dataclass
class LmsCourse:
    """A course in the LMS (an LTI context) and who is in it, with LTI role names (`ROLES`)."""

    title: str
    label: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    members: dict[str, tuple[LmsPerson, list[str], str]] = field(default_factory=dict)

    def enrol(self, person: LmsPerson, *roles: str, status: str = "Active") -> LmsPerson:
        self.members[person.sub] = (person, list(roles), status)
        return person

    def drop(self, person: LmsPerson) -> None:
        del self.members[person.sub]

    def roles_of(self, person: LmsPerson) -> list[str]:
        return self.members[person.sub][1]


@dataclass
class PendingLaunch:
    """What a launch will carry, kept by the platform under its `lti_message_hint`."""

    person: LmsPerson
    course: LmsCourse
    message_type: str
    target_link_uri: str
    custom: dict[str, str]
    resource_link_id: str
    deep_link_return_url: str | None
    claims: dict[str, Any]


class TestPlatform:
    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex
        self.client_id = f"client-{secrets.token_hex(4)}"
        self.deployment_id = f"deployment-{secrets.token_hex(4)}"
        self.courses: dict[str, LmsCourse] = {}
        self.page_size = 50
        self.requests: list[tuple[str, str]] = []  # (method, path with query) of each request
        self.token_requests: list[dict[str, Any]] = []  # the client assertions' claims
        self.deep_link_responses: list[dict[str, Any]] = []  # the tool's decoded responses
        self._pending: dict[str, PendingLaunch] = {}
        self._tool_keys: dict[str, Any] = {"keys": []}
        self._access_tokens: set[str] = set()
        self._server: BaseWSGIServer | None = None
        self.url = ""

    # --- what the portal's administrator enters about the platform --------------------------------
    @property
    def issuer(self) -> str:
        return self.url

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/jwks"

    @property
    def auth_url(self) -> str:
        return f"{self.url}/auth"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    def memberships_url(self, course: LmsCourse) -> str:
        return f"{self.url}/nrps/{course.id}"

    def trust_tool(self, jwks: dict[str, Any]) -> None:
        """The tool's public keys, which the platform checks its token requests against."""
        self._tool_keys = jwks

    # --- the LMS's side of a launch ---------------------------------------------------------------
    def add_course(self, course: LmsCourse) -> LmsCourse:
        self.courses[course.id] = course
        return course

    def launch_request(
        self,
        person: LmsPerson,
        course: LmsCourse,
        *,
        target_link_uri: str,
        message_type: str = "LtiResourceLinkRequest",
        custom: dict[str, str] | None = None,
        resource_link_id: str = "portal-link",
        claims: dict[str, Any] | None = None,
    ) -> dict[str, str]:
        """The parameters of the third-party login initiation the LMS sends the tool (and the
        launch it will then sign): the tool answers with a redirect to `/auth`. `claims` replaces
        or adds claims of the signed launch, to make bad ones."""
        hint = secrets.token_urlsafe(12)
        self._pending[hint] = PendingLaunch(
            person=person,
            course=course,
            message_type=message_type,
            target_link_uri=target_link_uri,
            custom=custom or {},
            resource_link_id=resource_link_id,
            deep_link_return_url=f"{self.url}/deep_link_return" if message_type == "LtiDeepLinkingRequest" else None,
            claims=claims or {},
        )
        return {
            "iss": self.issuer,
            "login_hint": person.sub,
            "target_link_uri": target_link_uri,
            "lti_message_hint": hint,
            "client_id": self.client_id,
            "lti_deployment_id": self.deployment_id,
        }

    def id_token(self, *, nonce: str, lti_message_hint: str, login_hint: str) -> str:
        """The signed launch for an authentication request the portal sent to `/auth`."""
        pending = self._pending[lti_message_hint]
        if pending.person.sub != login_hint:
            raise ValueError("login_hint does not match the launch")
        return self.sign(self._launch_claims(pending, nonce))

    def sign(self, claims: dict[str, Any], *, kid: str | None = None) -> str:
        return jwt.encode(claims, self._private_pem(), algorithm="RS256", headers={"kid": kid or self.kid})

    def _launch_claims(self, pending: PendingLaunch, nonce: str) -> dict[str, Any]:
        person, course = pending.person, pending.course
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "sub": person.sub,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            "email": person.email,
            "name": person.name,
            "given_name": person.given_name,
            "family_name": person.family_name,
            LTI + "message_type": pending.message_type,
            LTI + "version": "1.3.0",
            LTI + "deployment_id": self.deployment_id,
            LTI + "target_link_uri": pending.target_link_uri,
            LTI + "roles": [ROLES[role] for role in course.roles_of(person)] if person.sub in course.members else [],
            LTI + "context": {
                "id": course.id,
                "label": course.label,
                "title": course.title,
                "type": ["http://purl.imsglobal.org/vocab/lis/v2/course#CourseOffering"],
            },
            LTI + "tool_platform": {"guid": "test-lms", "name": "Test LMS", "product_family_code": "canvas"},
            LTI + "custom": pending.custom,
            NRPS_CLAIM: {"context_memberships_url": self.memberships_url(course), "service_versions": ["2.0"]},
        }
        if pending.message_type == "LtiResourceLinkRequest":
            claims[LTI + "resource_link"] = {"id": pending.resource_link_id, "title": "Cloud lab"}
        else:
            claims[DEEP_LINKING_CLAIM] = {
                "deep_link_return_url": pending.deep_link_return_url,
                "accept_types": ["ltiResourceLink"],
                "accept_presentation_document_targets": ["iframe", "window"],
                "accept_multiple": False,
                "data": "opaque-platform-data",
            }
        claims.update(pending.claims)
        return claims

    def _private_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def public_jwks(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self._key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}]}

    # --- the service endpoints --------------------------------------------------------------------
    def check_client_assertion(self, assertion: str) -> dict[str, Any]:
        """A token request's JWT, checked as a platform does: signed by one of the tool's keys,
        issued by and about the client, for this token endpoint."""
        kid = jwt.get_unverified_header(assertion).get("kid")
        for jwk in self._tool_keys.get("keys", []):
            if jwk.get("kid") == kid:
                key = RSAAlgorithm.from_jwk(json.dumps(jwk))
                claims = jwt.decode(assertion, key, algorithms=["RS256"], audience=self.token_url)  # type: ignore[arg-type]
                if claims["iss"] != self.client_id or claims["sub"] != self.client_id:
                    raise jwt.InvalidTokenError("the assertion is not the client's")
                return claims
        raise jwt.InvalidTokenError(f"no tool key with kid {kid!r}")

    def membership_page(self, course: LmsCourse, page: int) -> tuple[dict[str, Any], str | None]:
        members = list(course.members.values())
        start = page * self.page_size
        chunk = members[start : start + self.page_size]
        body = {
            "id": f"{self.memberships_url(course)}?page={page}",
            "context": {"id": course.id, "label": course.label, "title": course.title},
            "members": [
                {
                    "status": status,
                    "user_id": person.sub,
                    "name": person.name,
                    "given_name": person.given_name,
                    "family_name": person.family_name,
                    "email": person.email,
                    "roles": [ROLES[role] for role in roles],
                }
                for person, roles, status in chunk
            ],
        }
        has_next = start + self.page_size < len(members)
        return body, f"{self.memberships_url(course)}?page={page + 1}" if has_next else None

    # --- serving ----------------------------------------------------------------------------------
    def start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request in the test output
        self._server = make_server("127.0.0.1", 0, self._app(), threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()

    def _app(self) -> Flask:
        app = Flask("test_lms")
        platform = self

        @app.before_request
        def record() -> None:
            platform.requests.append((request.method, request.full_path.rstrip("?")))

        @app.get("/favicon.ico")
        def favicon() -> Response:
            return Response(status=204)  # what a browser asks the LMS's host for, besides its pages

        @app.get("/jwks")
        def jwks() -> Response:
            return Response(json.dumps(platform.public_jwks()), mimetype="application/json")

        @app.route("/auth", methods=["GET", "POST"])
        def auth() -> Response:
            params = request.values
            if params.get("client_id") != platform.client_id or params.get("response_type") != "id_token":
                abort(400)
            token = platform.id_token(
                nonce=params["nonce"], lti_message_hint=params["lti_message_hint"], login_hint=params["login_hint"]
            )
            return Response(auto_post_form(params["redirect_uri"], {"id_token": token, "state": params["state"]}))

        @app.post("/token")
        def token() -> Response:
            form = request.form
            if form.get("grant_type") != "client_credentials":
                return _oauth_error("unsupported_grant_type")
            try:
                claims = platform.check_client_assertion(form.get("client_assertion", ""))
            except jwt.InvalidTokenError:
                return _oauth_error("invalid_client", status=401)
            platform.token_requests.append({**claims, "scope": form.get("scope", "")})
            access_token = secrets.token_urlsafe(24)
            platform._access_tokens.add(access_token)
            body = {"access_token": access_token, "token_type": "Bearer", "expires_in": 3600, "scope": NRPS_SCOPE}
            return Response(json.dumps(body), mimetype="application/json")

        @app.get("/nrps/<course_id>")
        def memberships(course_id: str) -> Response:
            bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if bearer not in platform._access_tokens:
                return Response(status=401)
            course = platform.courses.get(course_id) or abort(404)
            body, next_url = platform.membership_page(course, int(request.args.get("page", 0)))
            headers = {"Link": f'<{next_url}>; rel="next"'} if next_url else {}
            return Response(json.dumps(body), mimetype=MEMBERSHIP_MEDIA_TYPE, headers=headers)

        @app.post("/deep_link_return")
        def deep_link_return() -> Response:
            claims = jwt.decode(
                request.form["JWT"], options={"verify_signature": False, "verify_aud": False}
            )  # the tests check the signature against the tool's JWKS themselves
            platform.deep_link_responses.append(claims)
            return Response("Link added to the course")

        return app


def _oauth_error(error: str, status: int = 400) -> Response:
    return Response(json.dumps({"error": error}), status=status, mimetype="application/json")


def auto_post_form(action: str, fields: dict[str, str]) -> str:
    """The page a platform answers an authentication request with: a form the browser posts."""
    inputs = "".join(
        f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
        for name, value in fields.items()
    )
    return (
        f'<html><body onload="document.forms[0].submit()"><form method="post" action="{html.escape(action)}">'
        f'{inputs}<button type="submit">Continue</button></form></body></html>'
    )


def serve() -> Iterator[TestPlatform]:
    """A running platform for a fixture: `yield from serve()`."""
    platform = TestPlatform()
    platform.start()
    try:
        yield platform
    finally:
        platform.stop()


def login_redirect_query(location: str) -> dict[str, str]:
    """The authentication request's parameters in the tool's redirect to `/auth`."""
    return dict(parse_qsl(urlsplit(location).query))


def authentication_response(platform: TestPlatform, location: str) -> dict[str, str]:
    """What the platform posts back to the tool for the tool's redirect to `/auth` (without a
    browser): the signed launch and the state."""
    query = login_redirect_query(location)
    token = platform.id_token(
        nonce=query["nonce"], lti_message_hint=query["lti_message_hint"], login_hint=query["login_hint"]
    )
    return {"id_token": token, "state": query["state"]}
