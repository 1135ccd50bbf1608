"""Which Identity Center users the portal may delete, against moto: only those it created
(recorded), never with the school's directory (SCIM), never one still assigned anywhere,
directly or through a group. The user goes, or stays, when cleanup revokes an account's access."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from django.urls import reverse

from accounts_app.models import AwsOrganization, IdentityCenterUser, Membership
from tests.support.accounts import cleaning, ready_account, run_cleanup


def identity_user_exists(aws, user_id: str) -> bool:
    try:
        store = AwsOrganization.load().identity_store_id
        aws.client("identitystore").describe_user(IdentityStoreId=store, UserId=user_id)
    except ClientError:
        return False
    return True


def make_user(aws, email: str) -> str:
    """A user made outside the portal: by the school's directory, or by an administrator."""
    return aws.client("identitystore").create_user(
        IdentityStoreId=AwsOrganization.load().identity_store_id,
        UserName=email,
        DisplayName="Stella Student",
        Name={"GivenName": "Stella", "FamilyName": "Student"},
    )["UserId"]


def assign_elsewhere(aws, principal_id: str, principal_type: str) -> None:
    """An assignment outside the course: the student set on the management account."""
    organization = AwsOrganization.load()
    aws.client("sso-admin").create_account_assignment(
        InstanceArn=organization.sso_instance_arn,
        TargetId=organization.management_account_id,
        TargetType="AWS_ACCOUNT",
        PermissionSetArn=organization.permission_sets["student"],
        PrincipalType=principal_type,
        PrincipalId=principal_id,
    )


def in_a_group(aws, user_id: str) -> str:
    store = AwsOrganization.load().identity_store_id
    identity = aws.client("identitystore")
    group = identity.create_group(IdentityStoreId=store, DisplayName="Research assistants")["GroupId"]
    identity.create_group_membership(IdentityStoreId=store, GroupId=group, MemberId={"UserId": user_id})
    return group


@pytest.fixture
def student(personas) -> Membership:
    return Membership.objects.get(user=personas.student)


@pytest.mark.django_db
def test_a_user_the_portal_created_and_nothing_else_needs_is_deleted_with_its_record(aws, student):
    account = ready_account(student)
    user_id = account.identity_store_user_id
    assert IdentityCenterUser.objects.filter(user_id=user_id, email="student@school.example").exists()

    run_cleanup(cleaning(account))

    assert not identity_user_exists(aws, user_id)
    assert not IdentityCenterUser.objects.filter(user_id=user_id).exists()


@pytest.mark.django_db
def test_a_directory_user_survives_cleanup(aws, student, settings):
    settings.PORTAL_IDENTITY_SOURCE = "external"
    synced = make_user(aws, "student@school.example")  # SCIM, from the school's directory
    account = ready_account(student)
    assert account.identity_store_user_id == synced

    run_cleanup(cleaning(account))

    assert identity_user_exists(aws, synced)


@pytest.mark.django_db
def test_in_directory_mode_even_a_user_the_portal_once_created_survives(aws, student, settings):
    account = ready_account(student)
    settings.PORTAL_IDENTITY_SOURCE = "external"  # the school moved to its directory since

    run_cleanup(cleaning(account))

    assert identity_user_exists(aws, account.identity_store_user_id)


@pytest.mark.django_db
def test_a_user_the_portal_did_not_create_survives_cleanup(aws, student):
    by_hand = make_user(aws, "student@school.example")  # an administrator's, before the course
    account = ready_account(student)
    assert account.identity_store_user_id == by_hand
    assert not IdentityCenterUser.objects.filter(user_id=by_hand).exists()

    run_cleanup(cleaning(account))

    assert identity_user_exists(aws, by_hand)


@pytest.mark.django_db
def test_a_user_in_a_group_that_is_assigned_survives_cleanup(aws, student):
    account = ready_account(student)
    user_id = account.identity_store_user_id
    assign_elsewhere(aws, in_a_group(aws, user_id), "GROUP")

    run_cleanup(cleaning(account))

    assert identity_user_exists(aws, user_id)


@pytest.mark.django_db
def test_a_user_in_any_group_survives_cleanup(aws, student):
    # A group is made outside the portal: what it opens (accounts, applications) is not the
    # portal's to take away.
    account = ready_account(student)
    in_a_group(aws, account.identity_store_user_id)

    run_cleanup(cleaning(account))

    assert identity_user_exists(aws, account.identity_store_user_id)


@pytest.mark.django_db
def test_a_user_assigned_directly_elsewhere_survives_cleanup(aws, student):
    account = ready_account(student)
    assign_elsewhere(aws, account.identity_store_user_id, "USER")

    run_cleanup(cleaning(account))

    assert identity_user_exists(aws, account.identity_store_user_id)
    assert IdentityCenterUser.objects.filter(user_id=account.identity_store_user_id).exists()


@pytest.mark.django_db
def test_administrators_read_the_record_of_created_users_and_nobody_writes_it(personas):
    IdentityCenterUser.objects.create(identity_store_id="d-1234567890", user_id="u-1", email="ann@school.example")
    admin = personas.client("admin")

    listed = admin.get(reverse("admin:accounts_app_identitycenteruser_changelist"))

    assert listed.status_code == 200
    assert "ann@school.example" in listed.content.decode()
    assert admin.get(reverse("admin:accounts_app_identitycenteruser_add")).status_code == 403
    record = IdentityCenterUser.objects.get()
    delete_url = reverse("admin:accounts_app_identitycenteruser_delete", args=[record.pk])
    assert admin.post(delete_url, {"post": "yes"}).status_code == 403
    assert IdentityCenterUser.objects.filter(pk=record.pk).exists()
