from __future__ import annotations

from collections.abc import Iterator

import pytest
from lti_tool.models import LtiRegistration

from lms_app.models import PlatformTrust
from tests.support.lti_dynamic_registration import FakePlatform, serve

CANVAS_ISSUER = "https://canvas.instructure.com"


@pytest.fixture
def platform(settings) -> Iterator[FakePlatform]:
    """A Moodle-like LMS on this machine, which speaks plain http: allowed with DEBUG on only."""
    settings.DEBUG = True
    fake = FakePlatform()
    server = serve(fake)
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def canvas_registration(db) -> LtiRegistration:
    """Canvas registered by hand, as docs/LMS.md says: its client id is the developer key's id."""
    registration = LtiRegistration.objects.create(
        name="Canvas",
        issuer=CANVAS_ISSUER,
        client_id="10000000000042",
        auth_url="https://sso.canvaslms.com/api/lti/authorize_redirect",
        token_url="https://school.instructure.com/login/oauth2/token",
        keyset_url="https://sso.canvaslms.com/api/lti/security/jwks",
    )
    PlatformTrust.objects.create(registration=registration, email_domains=["school.example"])
    return registration
