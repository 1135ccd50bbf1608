"""Whose is it? The portal adopts an AWS account it finds by root email or name only when the
account's tags say it is that very record's; a course's OU and SCP are named and found by the
course's id, never its code; CreateAccount names the member role the guardrails protect; and
students read plain words where staff read what AWS said.

moto plays AWS in process. Where moto is kinder than AWS (it takes a second account with a root
email already in use), the tests script AWS's real answer with `AwsScript` and say so.
"""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from accounts_app.choices import AccountState as S
from accounts_app.choices import CourseRole
from accounts_app.forms import CourseForm
from accounts_app.lifecycle import transition
from accounts_app.models import AuditEvent, AwsOrganization, Course, MemberAccount
from accounts_app.services.account_requests import account_request, course_precreate
from accounts_app.services.account_setup import account_configure
from accounts_app.services.courses import CODE_LOCKED, CourseError, course_update
from accounts_app.services.guardrails import course_guardrails_apply, course_profile, portal_role
from accounts_app.services.identity import NotThePortals, record_tags
from accounts_app.services.reconcile import reconcile
from accounts_app.services.vending_queue import vending_dispatch
from portal.aws import session as aws_session
from portal.aws.guardrails import course_policy
from tests.factories import (
    CourseFactory,
    MemberAccountFactory,
    MembershipFactory,
    browser_form_data,
)
from tests.support.accounts import queued_account, student_membership

moto_db = pytest.mark.django_db(transaction=True)


# --- Helpers --------------------------------------------------------------------------------------


def account_in_organization(aws, *, email: str, name: str, tags: dict[str, str]) -> str:
    """An account someone made in the organization (moto creates it at once)."""
    status = aws.client("organizations").create_account(
        Email=email, AccountName=name, Tags=[{"Key": k, "Value": v} for k, v in tags.items()]
    )["CreateAccountStatus"]
    return status["AccountId"]


def tags_of(aws, resource_id: str) -> dict[str, str]:
    tags = aws.client("organizations").list_tags_for_resource(ResourceId=resource_id)["Tags"]
    return {tag["Key"]: tag["Value"] for tag in tags}


def parent_of(aws, account_id: str) -> str:
    return aws.client("organizations").list_parents(ChildId=account_id)["Parents"][0]["Id"]


def untouched(aws, script, account_id: str, tags: dict[str, str]) -> bool:
    """Nothing moved, tagged or created: the account is where and as its owner left it."""
    return (
        parent_of(aws, account_id) == AwsOrganization.load().root_id
        and tags_of(aws, account_id) == tags
        and script.calls["MoveAccount"] == script.calls["TagResource"] == 0
    )


# Tags an account with the student's root email might carry, none of which make it this record's.
NOT_THIS_RECORDS = {
    "untagged": lambda account, personas: {},
    "only the managed-by tag": lambda account, personas: {"managed-by": "classroom-cloud-portal"},
    "another course's": lambda account, personas: {
        **record_tags(account),
        "course-id": str(personas.other_course.pk),
    },
    "another record's": lambda account, personas: {**record_tags(account), "record-key": "0123456789abcdef"},
    "another portal's": lambda account, personas: {**record_tags(account), "portal-ou": "ou-abcd-otherportal"},
}


# --- Adoption by root email: the vending queue ----------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("holder", list(NOT_THIS_RECORDS))
def test_an_account_with_the_students_root_email_that_is_not_this_records_is_not_adopted(
    personas, aws, script, queued, holder
):
    account = queued_account(personas)
    tags = NOT_THIS_RECORDS[holder](account, personas)
    existing = account_in_organization(aws, email=account.root_email, name="not-the-portals", tags=tags)
    made_by_the_test = script.calls["CreateAccount"]

    vending_dispatch()

    account.refresh_from_db()
    assert account.state == S.FAILED
    assert account.aws_account_id is None
    assert account.last_error.startswith(f"AWS account {existing} has this record's root email")
    assert "give it the tags" in account.last_error  # what staff can do about it
    assert script.calls["CreateAccount"] == made_by_the_test  # AWS would refuse the email anyway
    assert untouched(aws, script, existing, tags)
    assert queued["account_configure_task"] == []


@pytest.mark.django_db
def test_an_account_with_the_students_root_email_and_this_records_tags_is_adopted(personas, aws, script, queued):
    account = queued_account(personas)
    existing = account_in_organization(
        aws, email=account.root_email, name=account.account_name, tags=record_tags(account)
    )
    made_by_the_test = script.calls["CreateAccount"]

    vending_dispatch()

    account.refresh_from_db()
    assert account.state == S.CONFIGURING
    assert account.aws_account_id == existing
    assert script.calls["CreateAccount"] == made_by_the_test
    assert queued["account_configure_task"] == [account.pk]

    account_configure(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.READY
    assert parent_of(aws, existing) == Course.objects.get(pk=personas.course.pk).aws_ou_id


@pytest.mark.django_db
@pytest.mark.parametrize("holder", ["untagged", "another record's", "another portal's"])
def test_configuring_moves_and_tags_only_an_account_that_carries_its_records_tags(personas, aws, script, holder):
    """A record that names an account (adopted earlier, or its id changed by hand) is set up only
    if AWS shows that account as the record's."""
    account = queued_account(personas)
    tags = NOT_THIS_RECORDS[holder](account, personas)
    foreign = account_in_organization(aws, email="someone@school.example.edu", name="someone", tags=tags)
    MemberAccount.objects.filter(pk=account.pk).update(aws_account_id=foreign)
    assert transition(account, expected=S.REQUESTED, to=S.CONFIGURING)

    account_configure(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.FAILED
    assert "does not carry this record's tags" in account.last_error
    assert untouched(aws, script, foreign, tags)


@pytest.mark.django_db
@pytest.mark.parametrize("tagged", [False, True], ids=["untagged", "this record's tags"])
def test_a_pool_account_is_adopted_by_root_email_only_with_its_records_tags(personas, aws, script, queued, tagged):
    (spare,) = course_precreate(actor=personas.instructor, course=personas.course, count=1)
    tags = record_tags(spare) if tagged else {}
    existing = account_in_organization(aws, email=spare.root_email, name=spare.account_name, tags=tags)
    made_by_the_test = script.calls["CreateAccount"]

    vending_dispatch()

    spare.refresh_from_db()
    assert script.calls["CreateAccount"] == made_by_the_test
    if tagged:
        assert (spare.state, spare.aws_account_id) == (S.CONFIGURING, existing)
    else:
        assert (spare.state, spare.aws_account_id) == (S.FAILED, None)
        assert "is not the portal's" in spare.last_error
        assert untouched(aws, script, existing, tags)


# --- Adoption after a lost answer -----------------------------------------------------------------


def in_progress(params: dict) -> dict:
    """AWS's answer to CreateAccount: accepted, not done (nothing is created in moto)."""
    return {
        "CreateAccountStatus": {
            "Id": "car-0123456789abcdef",
            "AccountName": params["AccountName"],
            "State": "IN_PROGRESS",
            "RequestedTimestamp": datetime.now(UTC),
        }
    }


@pytest.mark.django_db
def test_email_already_exists_for_an_account_that_is_not_the_portals_fails_the_record(personas, aws, script, queued):
    account = queued_account(personas)
    script.answer("organizations", "CreateAccount", in_progress)
    vending_dispatch()
    # Meanwhile someone else made an account with that root email. moto would take a second
    # account with the same email; AWS fails the creation with EMAIL_ALREADY_EXISTS (scripted).
    existing = account_in_organization(aws, email=account.root_email, name="someone-else", tags={})
    script.answer(
        "organizations",
        "DescribeCreateAccountStatus",
        lambda params: {
            "CreateAccountStatus": {
                "Id": params["CreateAccountRequestId"],
                "AccountName": account.account_name,
                "State": "FAILED",
                "FailureReason": "EMAIL_ALREADY_EXISTS",
            }
        },
    )

    vending_dispatch()  # the creation's look

    account.refresh_from_db()
    assert account.state == S.FAILED
    assert account.aws_account_id is None
    assert account.last_error.startswith(f"AWS account {existing} has this record's root email")
    assert "is not the portal's" in account.last_error
    assert untouched(aws, script, existing, {})
    assert queued["account_configure_task"] == []


@pytest.mark.django_db
def test_a_finished_creation_found_by_the_records_name_is_not_adopted_when_it_is_someone_elses(
    personas, aws, script, queued
):
    account = queued_account(personas)
    # Account names are not unique in AWS: someone made one with this record's name.
    foreign = account_in_organization(aws, email="someone@elsewhere.example", name=account.account_name, tags={})
    made_by_the_test = script.calls["CreateAccount"]

    vending_dispatch()

    account.refresh_from_db()
    assert account.state == S.CREATING
    assert script.calls["CreateAccount"] == made_by_the_test + 1  # the record's own account is created
    assert parent_of(aws, foreign) == AwsOrganization.load().root_id
    assert tags_of(aws, foreign) == {}
    sent_tags = {t["Key"]: t["Value"] for t in script.params["CreateAccount"][-1]["Tags"]}
    assert sent_tags.items() >= record_tags(account).items()

    vending_dispatch()  # the creation's look

    account.refresh_from_db()
    assert account.state == S.CONFIGURING
    assert account.aws_account_id != foreign


@pytest.mark.django_db
def test_a_creation_request_adopted_by_name_whose_account_is_not_this_records_fails_the_record(
    personas, aws, script, queued
):
    account = queued_account(personas)
    script.answer("organizations", "CreateAccount", in_progress)
    vending_dispatch()
    # The request the record polls (as if found by its name after a lost answer) made an account
    # without this record's tags.
    foreign = account_in_organization(aws, email="someone@elsewhere.example", name=account.account_name, tags={})
    script.answer(
        "organizations",
        "DescribeCreateAccountStatus",
        lambda params: {
            "CreateAccountStatus": {
                "Id": params["CreateAccountRequestId"],
                "AccountName": account.account_name,
                "State": "SUCCEEDED",
                "AccountId": foreign,
            }
        },
    )

    vending_dispatch()  # the creation's look

    account.refresh_from_db()
    assert (account.state, account.aws_account_id) == (S.FAILED, None)
    assert untouched(aws, script, foreign, {})


# --- Adoption by the reconciler -------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("tagged", [False, True], ids=["untagged", "this record's tags"])
def test_the_reconciler_adopts_an_orphan_only_with_its_records_tags(personas, aws, script, queued, tagged):
    account = queued_account(personas)
    tags = record_tags(account) if tagged else {}
    orphan = account_in_organization(aws, email=account.root_email, name=account.account_name, tags=tags)

    drift = reconcile()

    account.refresh_from_db()
    if tagged:
        assert (account.state, account.aws_account_id) == (S.CONFIGURING, orphan)
        assert queued["account_configure_task"] == [account.pk]
    else:
        assert (account.state, account.aws_account_id) == (S.FAILED, None)
        assert "is not the portal's" in account.last_error
        assert any(orphan in finding and "is not the portal's" in finding for finding in drift)
        assert untouched(aws, script, orphan, tags)
        reconcile()  # the next run reports it again and changes nothing
        assert untouched(aws, script, orphan, tags)


# --- Course OUs and SCPs --------------------------------------------------------------------------


def attached_policy_ids(aws, target_id: str) -> set[str]:
    listed = aws.client("organizations").list_policies_for_target(TargetId=target_id, Filter="SERVICE_CONTROL_POLICY")
    return {p["Id"] for p in listed["Policies"]}


def scp_content(aws, policy_id: str) -> dict:
    return json.loads(aws.client("organizations").describe_policy(PolicyId=policy_id)["Policy"]["Content"])


@moto_db
def test_a_reused_course_code_gives_the_new_course_nothing_of_the_old_ones(personas, aws):
    old = Course.objects.get(pk=personas.course.pk)
    old_account = account_request(actor=personas.student, membership=student_membership(personas))
    old.refresh_from_db()
    old_account.refresh_from_db()
    assert old_account.state == S.READY
    old_policy = scp_content(aws, old.aws_scp_id)
    # The code is freed (renamed by an earlier version of the portal, or in the database) and a
    # new course takes it, with other guardrails; the same student joins it.
    Course.objects.filter(pk=old.pk).update(code="cs101-2025")
    new = CourseFactory(code="cs101", allowed_services=["lambda", "s3"])
    membership = MembershipFactory(course=new, user=personas.student, role=CourseRole.STUDENT)

    new_account = account_request(actor=personas.student, membership=membership)

    new.refresh_from_db()
    new_account.refresh_from_db()
    assert new_account.state == S.READY
    assert new.aws_ou_id and new.aws_ou_id != old.aws_ou_id
    assert new.aws_scp_id and new.aws_scp_id != old.aws_scp_id
    assert attached_policy_ids(aws, new.aws_ou_id) >= {new.aws_scp_id}
    assert old.aws_scp_id not in attached_policy_ids(aws, new.aws_ou_id)
    assert new.aws_scp_id not in attached_policy_ids(aws, old.aws_ou_id)
    # The old course's SCP still says what the old course allows.
    assert scp_content(aws, old.aws_scp_id) == old_policy
    assert scp_content(aws, new.aws_scp_id) == course_policy(course_profile(new), portal_role=portal_role())
    # The student's new account is a new one, in the new course's OU; the old one stays put.
    assert new_account.aws_account_id != old_account.aws_account_id
    assert new_account.root_email != old_account.root_email
    assert parent_of(aws, new_account.aws_account_id) == new.aws_ou_id
    assert parent_of(aws, old_account.aws_account_id) == old.aws_ou_id
    assert tags_of(aws, old_account.aws_account_id)["course-id"] == str(old.pk)
    assert tags_of(aws, new.aws_ou_id)["course-id"] == str(new.pk)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["OU", "SCP"])
def test_an_ou_or_scp_with_the_courses_name_but_not_its_tags_is_neither_used_nor_changed(personas, aws, kind):
    course = Course.objects.get(pk=personas.course.pk)
    organization = AwsOrganization.load()
    api = aws.client("organizations")
    if kind == "OU":
        planted = api.create_organizational_unit(ParentId=organization.parent_ou_id, Name=f"Course {course.pk}")[
            "OrganizationalUnit"
        ]["Id"]
    else:
        planted = api.create_policy(
            Name=f"Classroom Cloud course {course.pk} in {organization.parent_ou_id}",
            Description="not the portal's",
            Type="SERVICE_CONTROL_POLICY",
            Content=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Policy"]["PolicySummary"]["Id"]

    attached_before = attached_policy_ids(aws, planted) if kind == "OU" else set()

    with pytest.raises(NotThePortals, match=f"The {kind} {planted} has the name"):
        course_guardrails_apply(actor=None, course=course)

    course.refresh_from_db()
    assert course.aws_ou_id == course.aws_scp_id == ""
    assert course.guardrails_error.startswith(f"The {kind} {planted} has the name")
    if kind == "OU":
        assert attached_policy_ids(aws, planted) == attached_before
    else:
        assert scp_content(aws, planted) == {"Version": "2012-10-17", "Statement": []}
        assert api.list_targets_for_policy(PolicyId=planted)["Targets"] == []
    assert tags_of(aws, planted) == {}


@pytest.mark.django_db
def test_a_course_set_up_before_ids_named_its_ou_and_scp_keeps_them_and_gets_them_tagged(personas, aws):
    course = Course.objects.get(pk=personas.course.pk)
    organization = AwsOrganization.load()
    api = aws.client("organizations")
    # What an earlier version of the portal made: named after the code, untagged.
    ou = api.create_organizational_unit(ParentId=organization.parent_ou_id, Name="cs101")["OrganizationalUnit"]["Id"]
    policy = api.create_policy(
        Name="classroom-cloud-course-cs101",
        Description="Guardrails of course cs101",
        Type="SERVICE_CONTROL_POLICY",
        Content=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Policy"]["PolicySummary"]["Id"]
    api.attach_policy(PolicyId=policy, TargetId=ou)
    Course.objects.filter(pk=course.pk).update(aws_ou_id=ou, aws_scp_id=policy)
    course.refresh_from_db()

    course_guardrails_apply(actor=None, course=course)

    course.refresh_from_db()
    assert (course.aws_ou_id, course.aws_scp_id) == (ou, policy)
    assert scp_content(aws, policy) == course_policy(course_profile(course), portal_role=portal_role())
    wanted = {
        "managed-by": "classroom-cloud-portal",
        "portal-ou": organization.parent_ou_id,
        "course-id": str(course.pk),
    }
    assert tags_of(aws, ou) == tags_of(aws, policy) == wanted
    assert [p["Name"] for p in api.list_policies(Filter="SERVICE_CONTROL_POLICY")["Policies"]].count(
        f"Classroom Cloud course {course.pk} in {organization.parent_ou_id}"
    ) == 0


# --- A course code is fixed once the course has AWS resources -------------------------------------


def lock_by(course: Course, what: str) -> None:
    if what == "an OU":
        Course.objects.filter(pk=course.pk).update(aws_ou_id="ou-abcd-11111111")
    elif what == "an account record":
        MemberAccountFactory(course=course)
    course.refresh_from_db()


@pytest.mark.django_db
@pytest.mark.parametrize("what", ["an OU", "an account record"])
def test_the_service_refuses_to_change_the_code_of_a_course_with_aws_resources(personas, what):
    course = Course.objects.get(pk=personas.course.pk)
    lock_by(course, what)

    with pytest.raises(CourseError, match="The course code cannot change any more"):
        course_update(actor=personas.instructor, course=course, changes={"code": "cs102", "name": "Renamed"})

    course.refresh_from_db()
    assert (course.code, course.name) == ("cs101", "Cloud Computing")
    assert not AuditEvent.objects.filter(course=course, summary__startswith="Edited").exists()


@pytest.mark.django_db
def test_the_code_of_a_course_without_aws_resources_can_still_change(personas):
    course = Course.objects.get(pk=personas.course.pk)

    course_update(actor=personas.instructor, course=course, changes={"code": "cs102"})

    course.refresh_from_db()
    assert course.code == "cs102"
    assert not CourseForm(instance=course).fields["code"].disabled


@pytest.mark.django_db
def test_the_course_form_shows_a_locked_code_read_only_with_why_and_ignores_a_posted_one(personas):
    course = Course.objects.get(pk=personas.course.pk)
    lock_by(course, "an account record")
    client = personas.client("instructor")
    url = reverse("courses:edit", args=[course.pk])

    page = html.unescape(client.get(url).content.decode())
    form = CourseForm(instance=course)
    response = client.post(url, browser_form_data(form, code="cs102", name="Cloud Computing II"))

    assert form.fields["code"].disabled
    assert CODE_LOCKED in page
    code_input = re.search(r'<input[^>]*name="code"[^>]*>', page).group(0)
    assert 'value="cs101"' in code_input and " disabled" in code_input
    assert response.status_code == 302
    course.refresh_from_db()
    assert (course.code, course.name) == ("cs101", "Cloud Computing II")


# --- CreateAccount names the member role ----------------------------------------------------------


@pytest.mark.django_db
def test_create_account_asks_aws_for_the_configured_member_role(personas, aws, script, queued, settings):
    settings.PORTAL_AWS_MEMBER_ROLE_NAME = "ClassroomPortalAccess"
    account = queued_account(personas)

    vending_dispatch()
    vending_dispatch()  # the creation's look

    assert [call["RoleName"] for call in script.params["CreateAccount"]] == ["ClassroomPortalAccess"]
    account.refresh_from_db()
    # The role AWS made in the new account is the one the portal assumes and the guardrails protect.
    roles = aws_session.client("iam", account_id=account.aws_account_id).list_roles()["Roles"]
    assert "ClassroomPortalAccess" in {role["RoleName"] for role in roles}
    assert "ClassroomPortalAccess" in portal_role()


# --- What students read about problems, and what staff read ---------------------------------------

SCHOOL_ACCOUNT = "999988887777"
OWN_ACCOUNT = "111122223333"
AWS_SAID = (
    f"User: arn:aws:sts::{SCHOOL_ACCOUNT}:assumed-role/classroom-portal/worker is not authorized to perform: "
    f"sts:AssumeRole on resource: arn:aws:iam::{OWN_ACCOUNT}:role/OrganizationAccountAccessRole"
)


def account_with_problem(personas, state: S) -> MemberAccount:
    """The student's account in `state`, its last problem quoting AWS (an ARN, the school's account)."""
    if state == S.AWAITING_ACCESS_ROLE:
        detail = f"The portal cannot use the role OrganizationAccountAccessRole in your account yet: {AWS_SAID}"
        return MemberAccountFactory(
            membership=student_membership(personas), state=state, aws_account_id=OWN_ACCOUNT, last_error=detail
        )
    detail = f"AWS asked us to slow down: {AWS_SAID}"
    return MemberAccountFactory(membership=student_membership(personas), state=state, last_error=detail)


def raw_aws_text_in(page: str) -> list[str]:
    """AWS's words in a page: ARNs, its phrasing, and any account id but the student's own."""
    words = [leak for leak in ("arn:aws", "not authorized", "assumed-role") if leak in page]
    return words + sorted(set(re.findall(r"\b\d{12}\b", page)) - {OWN_ACCOUNT})


@pytest.mark.django_db
@pytest.mark.parametrize("state", [S.REQUESTED, S.CREATING, S.AWAITING_ACCESS_ROLE])
def test_students_read_a_plain_note_and_staff_read_what_aws_said(personas, state):
    account_with_problem(personas, state)
    course = personas.course

    panel = html.unescape(
        personas.client("student")
        .get(reverse("courses:my_account", args=[course.pk]), headers={"HX-Request": "true"})
        .content.decode()
    )
    page = html.unescape(personas.client("student").get(reverse("courses:detail", args=[course.pk])).content.decode())

    for shown in (panel, page):
        assert raw_aws_text_in(shown) == []
        assert {
            S.REQUESTED: "AWS is busy creating other accounts.",
            S.CREATING: "AWS has not confirmed your account yet.",
            S.AWAITING_ACCESS_ROLE: "The portal cannot use the role OrganizationAccountAccessRole in your account yet.",
        }[state] in shown
    for persona in ("instructor", "ta", "admin"):
        roster = html.unescape(
            personas.client(persona).get(reverse("courses:roster", args=[course.pk])).content.decode()
        )
        assert AWS_SAID in roster


@pytest.mark.django_db
def test_a_failed_account_shows_staff_the_detail_on_the_aws_page_and_students_only_a_plain_sentence(personas):
    account = account_with_problem(personas, S.REQUESTED)
    assert transition(account, expected=S.REQUESTED, to=S.FAILED)

    overview = html.unescape(personas.client("admin").get(reverse("aws_overview")).content.decode())
    panel = html.unescape(
        personas.client("student").get(reverse("courses:my_account", args=[personas.course.pk])).content.decode()
    )

    assert AWS_SAID in overview
    assert raw_aws_text_in(panel) == []
    assert "Your account could not be set up. Your instructor has been shown why and can retry." in panel
