"""The AWS management commands against moto: aws_bootstrap (idempotent, and refusing an
organization without all features), provision_course and course_status."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from moto import mock_aws

from accounts_app.choices import AccountState, AuditAction
from accounts_app.lifecycle import transition
from accounts_app.models import AuditEvent, AwsOrganization, Course, MemberAccount, Membership
from accounts_app.naming import account_name_for, root_email_for, student_key
from accounts_app.services.bootstrap import BootstrapError, aws_bootstrap
from portal.aws import session as aws_session
from tests.factories import MembershipFactory


def run(*args) -> str:
    stdout = StringIO()
    call_command(*args, stdout=stdout)
    return stdout.getvalue()


def organization_units(aws) -> list[tuple[str, str]]:
    """Every OU of the organization as (parent id, name), walking down from the root."""
    organizations = aws.client("organizations")
    found, parents = [], [organizations.list_roots()["Roots"][0]["Id"]]
    while parents:
        parent = parents.pop()
        for ou in organizations.list_organizational_units_for_parent(ParentId=parent)["OrganizationalUnits"]:
            found.append((parent, ou["Name"]))
            parents.append(ou["Id"])
    return sorted(found)


def aws_inventory(aws) -> dict:
    organizations = aws.client("organizations")
    instance_arn = aws.client("sso-admin").list_instances()["Instances"][0]["InstanceArn"]
    return {
        "ous": organization_units(aws),
        "policies": sorted(p["Name"] for p in organizations.list_policies(Filter="SERVICE_CONTROL_POLICY")["Policies"]),
        "permission_sets": len(
            aws.client("sso-admin").list_permission_sets(InstanceArn=instance_arn)["PermissionSets"]
        ),
        "trusted": sorted(
            s["ServicePrincipal"]
            for s in organizations.list_aws_service_access_for_organization()["EnabledServicePrincipals"]
        ),
    }


# --- aws_bootstrap --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_aws_bootstrap_run_again_creates_nothing_and_says_trusted_access_is_already_on(aws):
    before = aws_inventory(aws)
    recorded = AwsOrganization.load()

    output = run("aws_bootstrap")

    assert aws_inventory(aws) == before
    assert before["ous"] == sorted(
        [
            (recorded.root_id, "Classroom Cloud"),
            (recorded.root_id, "Classroom Cloud leaving"),
            (recorded.parent_ou_id, "Pool"),
        ]
    )
    assert before["permission_sets"] == 3
    assert before["policies"] == [
        "FullAWSAccess",
        "classroom-cloud-deny-leaving",
        "classroom-cloud-deny-root",
        "classroom-cloud-freeze",  # made ready for frozen accounts, attached to none
        "classroom-cloud-leaving",  # on the leaving OU, for accounts being handed over
        "classroom-cloud-protect-portal",
        "classroom-cloud-regions",
    ]
    assert recorded.freeze_policy_id
    lines = output.splitlines()
    assert "Trusted access for sso.amazonaws.com: already on." in lines
    assert "Trusted access for account.amazonaws.com: already on." in lines
    assert not [line for line in lines if line.endswith("turned on.")]
    assert lines[-1] == "The AWS organization is ready for the portal."
    again = AwsOrganization.load()
    assert (
        again.parent_ou_id,
        again.pool_ou_id,
        again.permission_sets,
        again.baseline_policies,
        again.freeze_policy_id,
    ) == (
        recorded.parent_ou_id,
        recorded.pool_ou_id,
        recorded.permission_sets,
        recorded.baseline_policies,
        recorded.freeze_policy_id,
    )
    assert AuditEvent.objects.filter(action=AuditAction.AWS_BOOTSTRAPPED).count() == 2


def tags_of(aws, resource_id: str) -> dict[str, str]:
    listed = aws.client("organizations").list_tags_for_resource(ResourceId=resource_id)["Tags"]
    return {tag["Key"]: tag["Value"] for tag in listed}


@pytest.mark.django_db
def test_aws_bootstrap_tags_the_ous_and_scps_it_makes_as_the_portals(aws):
    """The portal's runtime IAM role moves accounts only into OUs, and attaches only SCPs, that
    carry the portal's tag (docs/iam/runtime-role.json)."""
    recorded = AwsOrganization.load()
    made = [
        recorded.parent_ou_id,
        recorded.pool_ou_id,
        recorded.leaving_ou_id,
        *recorded.baseline_policies.values(),
        recorded.freeze_policy_id,
        recorded.leaving_policy_id,
    ]

    assert len(made) == 9
    for resource_id in made:
        assert tags_of(aws, resource_id) == {"managed-by": "classroom-cloud-portal"}, resource_id


@pytest.mark.django_db
def test_aws_bootstrap_tags_ous_and_scps_made_before_it_tagged_them(aws):
    recorded = AwsOrganization.load()
    organizations = aws.client("organizations")
    untagged = [recorded.pool_ou_id, recorded.baseline_policies["classroom-cloud-deny-leaving"]]
    for resource_id in untagged:
        organizations.untag_resource(ResourceId=resource_id, TagKeys=["managed-by"])

    run("aws_bootstrap")

    for resource_id in untagged:
        assert tags_of(aws, resource_id) == {"managed-by": "classroom-cloud-portal"}, resource_id
    assert (AwsOrganization.load().pool_ou_id, len(organization_units(aws))) == (recorded.pool_ou_id, 3)


@pytest.fixture
def consolidated_billing_organization():
    """An organization with consolidated billing only, in its own emulator (not the `aws` one)."""
    with mock_aws():
        aws_session.reset()
        org = aws_session.client("organizations").create_organization(FeatureSet="CONSOLIDATED_BILLING")
        yield org["Organization"]["Id"]
        aws_session.reset()


@pytest.mark.django_db
def test_aws_bootstrap_refuses_an_organization_without_all_features(
    consolidated_billing_organization,
):
    org_id = consolidated_billing_organization

    with pytest.raises(BootstrapError) as refused:
        aws_bootstrap(actor=None)

    assert str(refused.value) == (
        f"Organization {org_id} has only consolidated billing. Enable all features "
        "(AWS Organizations console → Settings) and run aws_bootstrap again."
    )
    organizations = aws_session.client("organizations")
    root = organizations.list_roots()["Roots"][0]["Id"]
    assert organizations.list_organizational_units_for_parent(ParentId=root)["OrganizationalUnits"] == []
    assert AwsOrganization.load().bootstrapped_at is None


@pytest.mark.django_db
def test_aws_bootstrap_command_reports_missing_features_as_a_command_error(
    consolidated_billing_organization,
):
    with pytest.raises(CommandError) as refused:
        run("aws_bootstrap")

    assert str(refused.value).startswith(
        f"Organization {consolidated_billing_organization} has only consolidated billing."
    )
    assert not AuditEvent.objects.filter(action=AuditAction.AWS_BOOTSTRAPPED).exists()


def test_aws_bootstrap_create_organization_needs_an_emulator_endpoint(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)

    with pytest.raises(CommandError) as refused:
        run("aws_bootstrap", "--create-organization")

    assert str(refused.value) == (
        "--create-organization is for the local AWS emulator only: "
        "AWS_ENDPOINT_URL is not set: this is real AWS, not the local emulator."
    )


# --- provision_course -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_provision_course_queues_the_students_and_reports_how_many(personas, aws):
    MembershipFactory(course=personas.course, user=None, email="ann@school.example", name="Ann Arbor")

    output = run("provision_course", "cs101")

    assert output == "Queued 2 account(s) for cs101.\n"
    accounts = MemberAccount.objects.filter(course=personas.course).select_related("membership")
    assert sorted((a.membership.email, a.state) for a in accounts) == [
        ("ann@school.example", "ready"),
        ("student@school.example", "ready"),
    ]
    assert not MemberAccount.objects.filter(course=personas.other_course).exists()
    assert run("provision_course", "CS101") == "Queued 0 account(s) for cs101.\n"
    assert MemberAccount.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("command", ["provision_course", "course_status"])
def test_course_commands_refuse_an_unknown_course(personas, command):
    with pytest.raises(CommandError) as refused:
        run(command, "nope404")

    assert str(refused.value) == "No course has the code “nope404”."
    assert not MemberAccount.objects.exists()


# --- course_status --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_course_status_json_before_any_account(personas):
    output = run("course_status", "cs101", "--json")

    assert json.loads(output) == {
        "course": "cs101",
        "counts": {},
        "students": [
            {
                "email": "student@school.example",
                "state": None,
                "account_id": None,
                "last_error": "",
            },
        ],
    }


@pytest.mark.django_db(transaction=True)
def test_course_status_json_after_provisioning(personas, aws):
    run("provision_course", "cs101")
    account = MemberAccount.objects.get(membership=Membership.objects.get(user=personas.student))
    assert account.state == AccountState.READY

    output = run("course_status", "cs101", "--json")

    status = json.loads(output)
    assert status == {
        "course": "cs101",
        "counts": {"ready": 1},
        "students": [
            {
                "email": "student@school.example",
                "state": "ready",
                "account_id": account.aws_account_id,
                "last_error": "",
            }
        ],
    }
    assert list(status) == ["course", "counts", "students"]
    assert list(status["students"][0]) == ["email", "state", "account_id", "last_error"]


@pytest.mark.django_db
def test_course_status_text_lists_states_and_errors(personas):
    MembershipFactory(course=personas.course, user=None, email="ann@school.example", name="Ann Arbor")
    ann = Membership.objects.get(email="ann@school.example")
    key = student_key(ann.email)
    account = MemberAccount.objects.create(
        course=ann.course,
        membership=ann,
        root_email=root_email_for(ann.course, key),
        account_name=account_name_for(ann.course, key),
    )
    transition(account, expected=AccountState.REQUESTED, to=AccountState.FAILED, last_error="AWS said no.")

    output = run("course_status", "cs101")

    assert output.splitlines() == [
        "cs101: 1 failed",
        f"  {'ann@school.example':<40} {'failed':<22}   AWS said no.",
        f"  {'student@school.example':<40} {'no account':<22} ",
    ]


@pytest.mark.django_db
def test_provision_course_refuses_an_archived_course_with_a_command_error(personas):
    Course.objects.filter(pk=personas.course.pk).update(archived_at=timezone.now())

    with pytest.raises(CommandError) as refused:
        run("provision_course", "cs101")

    assert str(refused.value) == "This course is archived: no new AWS accounts."
    assert not MemberAccount.objects.exists()
