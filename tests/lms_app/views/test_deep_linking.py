"""Deep linking: an instructor adds the portal's "My AWS account" link to the LMS course, and the
LMS receives it signed with the portal's key."""

import json
import re
from html import unescape
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from django.urls import reverse
from jwt.algorithms import RSAAlgorithm

from tests.support.lti_launches import LAUNCH_URL, launch, portal_counts

DEEP_LINKING = "LtiDeepLinkingRequest"
CONTENT_ITEMS = "https://purl.imsglobal.org/spec/lti-dl/claim/content_items"


def form_fields(html: str) -> tuple[str, dict[str, str]]:
    """The answer form's action and hidden fields, as a browser would post them."""
    action = unescape(re.search(r'<form method="post" action="([^"]+)"', html).group(1))
    fields = {unescape(name): unescape(value) for name, value in re.findall(r'name="(\w+)" value="([^"]*)"', html)}
    return action, fields


@pytest.mark.parametrize("persona", ["instructor", "ta"])
def test_the_lms_receives_the_my_account_link_signed_with_the_portals_key(
    client, lms, registration, lms_class, persona
):
    page = launch(client, lms, registration, getattr(lms_class, persona), lms_class.course, message_type=DEEP_LINKING)

    assert page.status_code == 200
    action, fields = form_fields(page.content.decode())
    assert action == f"{lms.url}/deep_link_return"
    answer = requests.post(action, data=fields, timeout=10)
    assert answer.status_code == 200
    [received] = lms.deep_link_responses
    portal_keys = client.get(reverse("lms:jwks")).json()["keys"]
    [key] = [k for k in portal_keys if k["kid"] == jwt.get_unverified_header(fields["JWT"])["kid"]]
    claims = jwt.decode(
        fields["JWT"], RSAAlgorithm.from_jwk(json.dumps(key)), algorithms=["RS256"], audience=lms.issuer
    )
    assert claims == received
    assert claims["iss"] == lms.client_id
    assert claims["https://purl.imsglobal.org/spec/lti/claim/message_type"] == "LtiDeepLinkingResponse"
    assert claims["https://purl.imsglobal.org/spec/lti/claim/deployment_id"] == lms.deployment_id
    assert claims["https://purl.imsglobal.org/spec/lti-dl/claim/data"] == "opaque-platform-data"
    [item] = claims[CONTENT_ITEMS]
    assert (item["type"], item["title"], item["url"], item["custom"]) == (
        "ltiResourceLink",
        "My AWS account",
        LAUNCH_URL,
        {"portal_target": "my_account"},
    )


def test_the_answer_page_may_be_framed_by_the_lms_and_post_to_it_alone(client, lms, registration, lms_class):
    page = launch(client, lms, registration, lms_class.instructor, lms_class.course, message_type=DEEP_LINKING)

    policy = dict(directive.strip().split(" ", 1) for directive in page["Content-Security-Policy"].split(";"))
    lms_origin = "{0.scheme}://{0.netloc}".format(urlsplit(lms.url))
    assert policy["form-action"] == f"'self' {lms_origin}"
    assert policy["frame-ancestors"] == lms_origin
    assert policy["script-src"] == "'self'"
    assert "X-Frame-Options" not in page


def test_nobody_is_signed_in_by_a_deep_linking_launch(client, lms, registration, lms_class):
    before = portal_counts()

    launch(client, lms, registration, lms_class.instructor, lms_class.course, message_type=DEEP_LINKING)

    assert "_auth_user_id" not in client.session
    after = portal_counts()
    assert after.pop("UsedLaunchNonce") == before.pop("UsedLaunchNonce") + 1
    assert after == before


def test_a_learner_cannot_add_links(client, lms, registration, lms_class):
    before = portal_counts()

    page = launch(client, lms, registration, lms_class.student, lms_class.course, message_type=DEEP_LINKING)

    assert page.status_code == 403
    assert page.context["refusal"].title == "Only instructors and TAs can add the portal's links"
    assert portal_counts() == before
    assert lms.deep_link_responses == []
