"""Vending against moto (in process): Identity Center and IAM-user access, the school directory,
the course pool, provisioning a whole course, and the course guardrails (SCP) with the form that
edits them. Celery tasks run eagerly as their transactions commit."""

import json
import re
from datetime import date

import pytest

from accounts_app.choices import AccessMode, AccountState, AuditAction, CourseRole
from accounts_app.crypto import decrypt
from accounts_app.forms import CourseForm
from accounts_app.models import AuditEvent, AwsOrganization, Course, MemberAccount, Membership
from accounts_app.services import reconcile as reconcile_service
from accounts_app.services.account_requests import (
    account_password_reveal,
    account_request,
    course_precreate,
    course_provision_all,
)
from accounts_app.services.courses import course_update
from accounts_app.services.guardrails import course_guardrails_apply, course_profile, portal_role
from accounts_app.services.identity import record_key
from portal.aws import session as aws_session
from portal.aws.catalog import service_prefixes
from portal.aws.guardrails import SCP_MAX_CHARACTERS, course_policy, iam_user_policy
from tests.factories import MembershipFactory

moto_db = pytest.mark.django_db(transaction=True)


def membership_of(user) -> Membership:
    return Membership.objects.get(user=user)


def organization_accounts(aws) -> list[dict]:
    return aws.client("organizations").list_accounts()["Accounts"]


def account_tags(aws, account_id: str) -> dict[str, str]:
    tags = aws.client("organizations").list_tags_for_resource(ResourceId=account_id)["Tags"]
    return {tag["Key"]: tag["Value"] for tag in tags}


def scp_content(aws, policy_id: str) -> dict:
    return json.loads(aws.client("organizations").describe_policy(PolicyId=policy_id)["Policy"]["Content"])


def identity_user_id(aws, email: str) -> str:
    store = AwsOrganization.load().identity_store_id
    return aws.client("identitystore").get_user_id(
        IdentityStoreId=store,
        AlternateIdentifier={"UniqueAttribute": {"AttributePath": "userName", "AttributeValue": email}},
    )["UserId"]


def assigned_principals(aws, account_id: str, role: str) -> set[str]:
    organization = AwsOrganization.load()
    assignments = aws.client("sso-admin").list_account_assignments(
        InstanceArn=organization.sso_instance_arn,
        AccountId=account_id,
        PermissionSetArn=organization.permission_sets[role],
    )["AccountAssignments"]
    return {a["PrincipalId"] for a in assignments if a["PrincipalType"] == "USER"}


# --- Identity Center mode -------------------------------------------------------------------------


@moto_db
def test_identity_center_request_makes_a_ready_account_in_the_course_ou_with_its_tags(personas, aws):
    student = membership_of(personas.student)

    account = account_request(actor=personas.student, membership=student)

    account.refresh_from_db()
    assert account.state == AccountState.READY
    assert account.last_error == ""
    assert re.fullmatch(r"\d{12}", account.aws_account_id)
    course = Course.objects.get(pk=personas.course.pk)
    assert course.aws_ou_id
    parents = aws.client("organizations").list_parents(ChildId=account.aws_account_id)["Parents"]
    assert parents == [{"Id": course.aws_ou_id, "Type": "ORGANIZATIONAL_UNIT"}]
    course_ou = aws.client("organizations").describe_organizational_unit(OrganizationalUnitId=course.aws_ou_id)
    # Named and tagged after the course's id, which never changes nor is reused (its code may be).
    assert course_ou["OrganizationalUnit"]["Name"] == f"Course {course.pk}"
    portal_ou = AwsOrganization.load().parent_ou_id
    assert account_tags(aws, course.aws_ou_id) == {
        "managed-by": "classroom-cloud-portal",
        "portal-ou": portal_ou,
        "course-id": str(course.pk),
    }
    assert account_tags(aws, account.aws_account_id) == {
        "managed-by": "classroom-cloud-portal",
        "portal-ou": portal_ou,
        "course-id": str(course.pk),
        "record-key": record_key(account),
        "course": "cs101",
        "student": "student@school.example",
    }


@moto_db
def test_identity_center_request_creates_and_attaches_the_course_scp(personas, aws):
    account_request(actor=personas.student, membership=membership_of(personas.student))

    course = Course.objects.get(pk=personas.course.pk)
    organizations = aws.client("organizations")
    attached = organizations.list_policies_for_target(TargetId=course.aws_ou_id, Filter="SERVICE_CONTROL_POLICY")
    assert course.aws_scp_id in {p["Id"] for p in attached["Policies"]}
    policy = organizations.describe_policy(PolicyId=course.aws_scp_id)["Policy"]
    portal_ou = AwsOrganization.load().parent_ou_id
    assert policy["PolicySummary"]["Name"] == f"Classroom Cloud course {course.pk} in {portal_ou}"
    assert account_tags(aws, course.aws_scp_id) == {
        "managed-by": "classroom-cloud-portal",
        "portal-ou": portal_ou,
        "course-id": str(course.pk),
    }
    assert json.loads(policy["Content"]) == course_policy(course_profile(course), portal_role=portal_role())
    assert course.guardrails_applied_at is not None
    assert course.guardrails_error == ""
    # The portal's runtime IAM role attaches only SCPs, and moves accounts only into OUs, that
    # carry the portal's tag: what it makes carries it from the start.
    for made in (course.aws_ou_id, course.aws_scp_id):
        assert account_tags(aws, made)["managed-by"] == "classroom-cloud-portal"


@moto_db
def test_identity_center_request_assigns_student_ta_and_instructor_permission_sets(personas, aws):
    account = account_request(actor=personas.student, membership=membership_of(personas.student))

    account.refresh_from_db()
    student_user = identity_user_id(aws, "student@school.example")
    assert account.identity_store_user_id == student_user
    assert assigned_principals(aws, account.aws_account_id, "student") == {student_user}
    assert assigned_principals(aws, account.aws_account_id, "ta") == {identity_user_id(aws, "ta@school.example")}
    assert assigned_principals(aws, account.aws_account_id, "instructor") == {
        identity_user_id(aws, "instructor@school.example")
    }


@moto_db
def test_asking_twice_returns_the_same_account_and_creates_one_aws_account(personas, aws):
    student = membership_of(personas.student)

    first = account_request(actor=personas.student, membership=student)
    second = account_request(actor=personas.student, membership=student)

    assert second.pk == first.pk
    assert MemberAccount.objects.count() == 1
    management_id = AwsOrganization.load().management_account_id
    member_ids = sorted(a["Id"] for a in organization_accounts(aws) if a["Id"] != management_id)
    first.refresh_from_db()
    assert member_ids == [first.aws_account_id]
    assert AuditEvent.objects.filter(action=AuditAction.ACCOUNT_REQUESTED).count() == 1


# --- IAM-user mode --------------------------------------------------------------------------------


@pytest.fixture
def iam_user_course(personas):
    Course.objects.filter(pk=personas.course.pk).update(access_mode=AccessMode.IAM_USER)
    return Course.objects.get(pk=personas.course.pk)


@moto_db
def test_iam_user_mode_creates_a_guarded_iam_user_with_a_login_profile(personas, aws, iam_user_course):
    account = account_request(actor=personas.student, membership=membership_of(personas.student))

    account.refresh_from_db()
    assert account.state == AccountState.READY
    assert account.iam_user_name == "student"
    iam = aws_session.client("iam", account_id=account.aws_account_id)
    user = iam.get_user(UserName="student")["User"]
    assert user["Arn"] == f"arn:aws:iam::{account.aws_account_id}:user/student"
    assert iam.get_login_profile(UserName="student")["LoginProfile"]["UserName"] == "student"
    policy = iam.get_user_policy(UserName="student", PolicyName="classroom-cloud-guardrails")
    assert policy["PolicyDocument"] == iam_user_policy(course_profile(iam_user_course))
    assert iam.list_account_aliases()["AccountAliases"] == [account.account_alias]
    assert account.account_alias == f"{account.account_name}-{account.aws_account_id[-4:]}"
    # No Identity Center user or assignment in this mode.
    assert not aws.client("identitystore").list_users(IdentityStoreId=AwsOrganization.load().identity_store_id)["Users"]


@moto_db
def test_iam_user_first_password_is_stored_encrypted_and_revealed_once(personas, aws, iam_user_course):
    account = account_request(actor=personas.student, membership=membership_of(personas.student))
    account.refresh_from_db()
    stored = account.one_time_password
    password = decrypt(stored)
    assert password is not None and len(password) == 20
    assert password not in stored

    shown = account_password_reveal(actor=personas.student, account=account)
    again = account_password_reveal(actor=personas.student, account=account)

    assert shown == password
    assert again is None
    account.refresh_from_db()
    assert account.one_time_password == ""
    event = AuditEvent.objects.get(action=AuditAction.ACCOUNT_PASSWORD_REVEALED)
    assert event.actor == personas.student
    assert event.course_id == personas.course.pk
    assert event.summary == "Showed the first console password of student"


# --- An external school directory -----------------------------------------------------------------


@moto_db
def test_external_directory_waits_for_the_user_then_reconcile_finishes_the_account(personas, aws, settings):
    settings.PORTAL_IDENTITY_SOURCE = "external"
    student = membership_of(personas.student)

    account = account_request(actor=personas.student, membership=student)

    account.refresh_from_db()
    assert account.state == AccountState.WAITING_FOR_DIRECTORY
    assert account.last_error == (
        "student@school.example has not been synced from the school's directory to IAM Identity Center yet. "
        "The account opens once the directory has synced."
    )
    store = AwsOrganization.load().identity_store_id
    assert aws.client("identitystore").list_users(IdentityStoreId=store)["Users"] == []

    # The school's directory syncs the student.
    user_id = aws.client("identitystore").create_user(
        IdentityStoreId=store,
        UserName="student@school.example",
        DisplayName="Student",
        Name={"GivenName": "Stu", "FamilyName": "Dent"},
    )["UserId"]
    reconcile_service.reconcile()

    account.refresh_from_db()
    assert account.state == AccountState.READY
    assert account.last_error == ""
    assert account.identity_store_user_id == user_id
    assert assigned_principals(aws, account.aws_account_id, "student") == {user_id}
    assert list(account.events.values_list("to_state", flat=True)) == [
        "creating",
        "configuring",
        "waiting_for_directory",
        "configuring",
        "ready",
    ]


# --- The course pool ------------------------------------------------------------------------------


@moto_db
def test_precreated_pool_accounts_are_pooled_and_a_student_takes_one(personas, aws):
    course = personas.course

    pooled = course_precreate(actor=personas.instructor, course=course, count=2)

    assert len(pooled) == 2
    assert set(MemberAccount.objects.values_list("state", "membership")) == {(AccountState.POOLED, None)}
    pool_ids = set(MemberAccount.objects.values_list("aws_account_id", flat=True))
    assert all(account_tags(aws, account_id)["student"] == "pool" for account_id in pool_ids)
    accounts_before = len(organization_accounts(aws))

    account = account_request(actor=personas.student, membership=membership_of(personas.student))

    account.refresh_from_db()
    assert account.state == AccountState.READY
    assert account.aws_account_id in pool_ids
    assert len(organization_accounts(aws)) == accounts_before
    assert account_tags(aws, account.aws_account_id)["student"] == "student@school.example"
    assert MemberAccount.objects.filter(course=course, membership=None, state=AccountState.POOLED).count() == 1
    assert account.events.filter(from_state="pooled", to_state="configuring", reason="Taken from the pool").exists()


# --- Provisioning a whole course ------------------------------------------------------------------


@moto_db
def test_provision_all_requests_one_account_per_student_and_then_none(personas, aws):
    course = personas.course
    MembershipFactory(course=course, user=None, email="ann@school.example", name="Ann Arbor")
    MembershipFactory(course=course, user=None, email="bob@school.example", name="Bob Builder")

    first = course_provision_all(actor=personas.instructor, course=course)
    second = course_provision_all(actor=personas.instructor, course=course)

    assert first == 3
    assert second == 0
    accounts = MemberAccount.objects.filter(course=course).select_related("membership")
    assert sorted((a.membership.email, a.state) for a in accounts) == [
        ("ann@school.example", "ready"),
        ("bob@school.example", "ready"),
        ("student@school.example", "ready"),
    ]
    assert len({a.aws_account_id for a in accounts}) == 3
    # Staff and the other course's students get none.
    assert not MemberAccount.objects.filter(membership__role__in=[CourseRole.TA, CourseRole.INSTRUCTOR]).exists()
    assert not MemberAccount.objects.filter(course=personas.other_course).exists()
    management_id = AwsOrganization.load().management_account_id
    assert len([a for a in organization_accounts(aws) if a["Id"] != management_id]) == 3


# --- Guardrails -----------------------------------------------------------------------------------


@moto_db
def test_editing_allowed_services_reapplies_the_course_scp(personas, aws):
    course = course_guardrails_apply(actor=None, course=Course.objects.get(pk=personas.course.pk))
    before = scp_content(aws, course.aws_scp_id)
    assert "lambda:*" not in before["Statement"][0]["NotAction"]

    course_update(
        actor=personas.instructor,
        course=course,
        changes={"allowed_services": ["ec2", "lambda", "s3"]},
    )

    course.refresh_from_db()
    after = scp_content(aws, course.aws_scp_id)
    assert after != before
    assert "lambda:*" in after["Statement"][0]["NotAction"]
    assert after == course_policy(course_profile(course), portal_role=portal_role())
    assert AuditEvent.objects.filter(course=course, action=AuditAction.GUARDRAILS_APPLIED).count() == 2
    # Still one course SCP, updated in place.
    names = [p["Name"] for p in aws.client("organizations").list_policies(Filter="SERVICE_CONTROL_POLICY")["Policies"]]
    assert names.count(f"Classroom Cloud course {course.pk} in {AwsOrganization.load().parent_ou_id}") == 1


def course_form_data(**overrides) -> dict:
    data = {
        "name": "Big Data",
        "code": "bd300",
        "term": "Fall 2026",
        "start_date": date(2026, 9, 1),
        "end_date": date(2026, 12, 15),
        "description": "",
        "budget_per_student": "50.00",
        "budget_period": "course",
        "freeze_at_percent": "100",
        "spike_multiple": "3",
        "access_mode": AccessMode.IDENTITY_CENTER,
        "end_policy": "close",
        "end_notice_days": 7,
        "grace_days": 14,
        "allowed_regions": ["us-east-1"],
        "allowed_services": "ec2, s3",
        "allowed_instance_families": "",
        "billing_contact_email": "billing@school.example",
        "usage_alert_email": "alerts@school.example",
    }
    return {**data, **overrides}


@pytest.mark.django_db
def test_course_form_refuses_guardrails_that_compile_over_the_scp_limit():
    """AWS takes 5,120 characters in one SCP: every service AWS has is far more."""
    services = sorted(service_prefixes())

    form = CourseForm(data=course_form_data(allowed_services=", ".join(services), allowed_instance_families="t3"))

    assert not form.is_valid()
    [message] = form.errors["allowed_services"]
    size = re.fullmatch(
        r"The course's guardrails compile to ([\d,]+) characters, over AWS's limit of 5,120 for one SCP\. "
        rf"Allow fewer services \({len(services)} now\) or fewer EC2 instance families\.",
        message,
    )
    assert size is not None, message
    assert int(size.group(1).replace(",", "")) > SCP_MAX_CHARACTERS


@pytest.mark.django_db
def test_course_form_accepts_a_hundred_and_fifty_services_when_the_scp_fits():
    services = sorted(service_prefixes())[:150]

    form = CourseForm(data=course_form_data(allowed_services=", ".join(services), allowed_instance_families="t3 m5"))

    assert form.is_valid(), form.errors
    assert form.cleaned_data["allowed_services"] == services
    assert form.cleaned_data["allowed_instance_families"] == ["m5", "t3"]


@pytest.mark.django_db
def test_course_form_accepts_an_instance_family():
    form = CourseForm(data=course_form_data(allowed_instance_families="t3"))

    assert form.is_valid(), form.errors
    assert form.cleaned_data["allowed_instance_families"] == ["t3"]


@pytest.mark.django_db
def test_course_form_refuses_an_instance_type_where_a_family_is_expected():
    form = CourseForm(data=course_form_data(allowed_instance_families="t3, t3.micro"))

    assert not form.is_valid()
    assert form.errors["allowed_instance_families"] == [
        "Not an EC2 instance family: t3.micro. Write the family only, e.g. t3 or m5."
    ]


@moto_db
def test_pool_can_be_refilled_after_a_student_took_an_account(personas, aws):
    course = personas.course
    course_precreate(actor=personas.instructor, course=course, count=2)
    account_request(actor=personas.student, membership=membership_of(personas.student))

    refill = course_precreate(actor=personas.instructor, course=course, count=1)

    assert [a.account_name for a in refill] == [f"cs101-{course.pk}-pool-003"]
    assert MemberAccount.objects.filter(course=course).count() == 3
    assert MemberAccount.objects.filter(course=course, membership=None, state=AccountState.POOLED).count() == 2
    assert len(set(MemberAccount.objects.values_list("root_email", flat=True))) == 3
