"""Launches from the test LMS (tests/support/lti_platform.py) through the portal, as a browser
makes them: the platform's login initiation posted to the portal, the portal's redirect to the
platform's `/auth`, and the signed launch the platform's page posts back."""

from __future__ import annotations

from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth import get_user_model
from django.test import Client, RequestFactory
from django.urls import reverse
from lti_tool.models import LtiLaunch, LtiRegistration
from lti_tool.utils import get_launch_from_request

from accounts_app.models import AuditEvent, Course, Membership
from lms_app.models import LmsCourseLink, UsedLaunchNonce
from tests.support.lti_platform import LmsCourse, LmsPerson, TestPlatform, authentication_response

LAUNCH_URL = "http://testserver/lti/launch/"


def login_initiation(client: Client, registration: LtiRegistration, params: dict) -> Any:
    """The portal's answer (the test client's response) to the platform's login initiation."""
    return client.post(reverse("lms:login_init", kwargs={"registration_uuid": registration.uuid}), params)


def signed_launch(
    client: Client,
    platform: TestPlatform,
    registration: LtiRegistration,
    person: LmsPerson,
    course: LmsCourse,
    **launch: Any,
) -> dict[str, str]:
    """What the platform's page posts to the portal's launch URL (`id_token`, `state`), after the
    login initiation left the state cookie in `client`. `launch`: `launch_request`'s arguments."""
    params = platform.launch_request(person, course, target_link_uri=LAUNCH_URL, **launch)
    response = login_initiation(client, registration, params)
    assert response.status_code == 302, response.content
    return authentication_response(platform, response["Location"])


def launch(
    client: Client,
    platform: TestPlatform,
    registration: LtiRegistration,
    person: LmsPerson,
    course: LmsCourse,
    **launch: Any,
) -> Any:
    """A whole launch, from the initiation to the portal's answer to the signed launch."""
    return client.post(reverse("lms:launch"), signed_launch(client, platform, registration, person, course, **launch))


def checked_launch(
    client: Client,
    platform: TestPlatform,
    registration: LtiRegistration,
    person: LmsPerson,
    course: LmsCourse,
    **launch: Any,
) -> LtiLaunch:
    """A launch as PyLTI1p3 hands it to the portal once checked, for the services' tests."""
    request = RequestFactory().post(
        "/lti/launch/", signed_launch(client, platform, registration, person, course, **launch)
    )
    request.COOKIES.update({name: morsel.value for name, morsel in client.cookies.items()})
    return get_launch_from_request(request)


def resigned(token: str, *, kid: str, key: rsa.RSAPrivateKey | None = None, **claims: Any) -> str:
    """The same launch signed again, by `key` (a new one by default) under `kid`, with `claims`
    replaced: what a forger holding no key of the platform's could post."""
    body = jwt.decode(token, options={"verify_signature": False})
    body.update(claims)
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})


def portal_counts() -> dict[str, int]:
    """What a launch may write, counted: a refused launch leaves every number as it was."""
    models = (get_user_model(), Membership, Course, LmsCourseLink, UsedLaunchNonce, AuditEvent)
    return {model.__name__: model.objects.count() for model in models}
