"""IAM Identity Center lives in one region of the organization, often not the portal's own: every
sso-admin and identity-store call goes to PORTAL_AWS_IDENTITY_CENTER_REGION.

moto keeps Identity Center's state per region, as AWS does: an instance looked for in the wrong
region is simply not there.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from accounts_app.models import AwsOrganization, Membership
from accounts_app.services.account_requests import account_request

IDENTITY_CENTER_REGION = "eu-west-1"


@pytest.fixture
def identity_center_elsewhere(settings):
    """Set before the `aws` fixture bootstraps the organization."""
    settings.PORTAL_AWS_IDENTITY_CENTER_REGION = IDENTITY_CENTER_REGION
    assert settings.PORTAL_AWS_REGION != IDENTITY_CENTER_REGION


@pytest.fixture
def hosts(identity_center_elsewhere, aws):
    """The host each Identity Center request was sent to, from botocore's before-send event."""
    seen: list[str] = []
    aws.add_hook("before-send.sso-admin", lambda request, **kwargs: seen.append(urlsplit(request.url).hostname))
    aws.add_hook("before-send.identitystore", lambda request, **kwargs: seen.append(urlsplit(request.url).hostname))
    return seen


@pytest.mark.django_db
def test_identity_center_is_found_and_used_in_its_own_region(personas, hosts, django_capture_on_commit_callbacks):
    organization = AwsOrganization.load()
    assert organization.sso_instance_arn and organization.identity_store_id  # found by aws_bootstrap

    with django_capture_on_commit_callbacks(execute=True):  # the vending tasks run as they are queued
        account = account_request(actor=personas.student, membership=Membership.objects.get(user=personas.student))

    account.refresh_from_db()
    assert account.state == "ready", account.last_error
    assert account.identity_store_user_id
    assert hosts, "the student's user and assignment were made in Identity Center"
    assert {host.split(".")[1] for host in hosts} == {IDENTITY_CENTER_REGION}
