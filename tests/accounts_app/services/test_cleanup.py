"""Cleaning an ended account against moto: access revoked, resources deleted in repeated passes,
a pass that dies half-way and resumes, what cannot be deleted reported, and nothing touched in an
account the portal cannot prove is its own. Services are called directly; the transaction is
rolled back, so queued follow-ups never run by themselves."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from django.urls import reverse

from accounts_app.choices import AccessMode, EndPolicy
from accounts_app.choices import AccountState as S
from accounts_app.models import AwsOrganization, Course, MemberAccount, Membership
from accounts_app.services.cleanup import account_clean, account_cleanup_preview
from accounts_app.services.ownership import MANAGED_BY_TAG
from tests.factories import CourseFactory, MembershipFactory
from tests.support.accounts import WorkerKilled, cleaning, ready_account, run_cleanup
from tests.support.aws_script import Fault


@pytest.fixture
def student_account(personas, aws):
    return cleaning(ready_account(Membership.objects.get(user=personas.student)))


def lab_resources(aws, account_id: str) -> dict:
    """A student's leftovers: an instance with an attached volume and an Elastic IP in one
    region, a versioned bucket, a table and a function in another."""
    ec2 = aws.client("ec2", account_id=account_id, region="us-east-1")
    image = ec2.register_image(Name="lab-image", RootDeviceName="/dev/sda1")["ImageId"]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro")["Instances"][0]
    volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
    ec2.attach_volume(VolumeId=volume, InstanceId=instance["InstanceId"], Device="/dev/sdf")
    address = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.associate_address(AllocationId=address, InstanceId=instance["InstanceId"])
    s3 = aws.client("s3", account_id=account_id, region="eu-west-1")
    s3.create_bucket(Bucket="lab-results-2026", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_bucket_versioning(Bucket="lab-results-2026", VersioningConfiguration={"Status": "Enabled"})
    for body in (b"v1", b"v2"):
        s3.put_object(Bucket="lab-results-2026", Key="data.csv", Body=body)
    s3.delete_object(Bucket="lab-results-2026", Key="data.csv")  # a delete marker on top
    aws.client("dynamodb", account_id=account_id, region="eu-west-1").create_table(
        TableName="lab-scores",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return {"instance": instance["InstanceId"], "volume": volume, "address": address}


def assignments(aws, account_id: str) -> list[dict]:
    organization = AwsOrganization.load()
    found = []
    for arn in organization.permission_sets.values():
        found += aws.client("sso-admin").list_account_assignments(
            InstanceArn=organization.sso_instance_arn, AccountId=account_id, PermissionSetArn=arn
        )["AccountAssignments"]
    return found


def identity_user_exists(aws, user_id: str) -> bool:
    try:
        aws.client("identitystore").describe_user(
            IdentityStoreId=AwsOrganization.load().identity_store_id, UserId=user_id
        )
    except ClientError:
        return False
    return True


@pytest.mark.django_db
def test_the_dry_run_lists_everything_in_every_region_and_deletes_nothing(student_account, aws):
    made = lab_resources(aws, student_account.aws_account_id)

    preview = account_cleanup_preview(account_id=student_account.pk)

    listed = {(r.region, r.kind, r.id) for r in preview.resources}
    assert ("us-east-1", "ec2:instance", made["instance"]) in listed
    assert ("us-east-1", "ec2:volume", made["volume"]) in listed
    assert ("us-east-1", "ec2:elastic-ip", made["address"]) in listed
    assert ("eu-west-1", "s3:bucket", "lab-results-2026") in listed
    assert ("eu-west-1", "dynamodb:table", "lab-scores") in listed
    student_account.refresh_from_db()
    assert len(student_account.cleanup_report["preview"]["resources"]) == len(preview.resources)
    assert account_cleanup_preview(account_id=student_account.pk).resources == preview.resources  # still there


@pytest.mark.django_db
def test_cleanup_revokes_access_deletes_everything_and_queues_the_closure(student_account, aws, personas, script):
    account_id = student_account.aws_account_id
    lab_resources(aws, account_id)
    assert assignments(aws, account_id)  # the student, the TA and the instructor
    user_id = student_account.identity_store_user_id

    run_cleanup(student_account)

    student_account.refresh_from_db()
    assert student_account.state == S.CLOSE_QUEUED
    assert assignments(aws, account_id) == []
    assert not identity_user_exists(aws, user_id)  # no other course
    report = student_account.cleanup_report
    assert report["remaining"] == []
    deleted = {r["kind"] for r in report["passes"][0]["deleted"]}
    assert {"ec2:instance", "ec2:volume", "s3:bucket", "dynamodb:table"} <= deleted
    # One listing per pass, plus the one that finds nothing left: each region listed once each time.
    assert script.calls["ListTables"] == 2 * (len(report["passes"]) + 1)
    assert account_cleanup_preview(account_id=student_account.pk).resources == []
    s3 = aws.client("s3", account_id=account_id, region="eu-west-1")
    assert "lab-results-2026" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


@pytest.mark.django_db
def test_a_students_identity_center_user_stays_while_another_course_needs_it(personas, aws):
    other_course = CourseFactory(code="cs202")
    here = ready_account(Membership.objects.get(user=personas.student))
    MembershipFactory(course=other_course, user=personas.student, email=personas.student.email)
    there = ready_account(Membership.objects.get(user=personas.student, course=other_course))
    assert here.identity_store_user_id == there.identity_store_user_id

    run_cleanup(cleaning(here))

    assert identity_user_exists(aws, here.identity_store_user_id)
    assert assignments(aws, here.aws_account_id) == []
    assert assignments(aws, there.aws_account_id) != []


@pytest.mark.django_db
def test_in_iam_user_mode_the_iam_user_and_its_password_go(personas, aws):
    personas.course.access_mode = AccessMode.IAM_USER
    personas.course.save()
    account = cleaning(ready_account(Membership.objects.get(user=personas.student)))
    iam = aws.client("iam", account_id=account.aws_account_id)
    assert iam.get_login_profile(UserName=account.iam_user_name)

    run_cleanup(account)

    with pytest.raises(ClientError, match="NoSuchEntity"):
        iam.get_user(UserName=account.iam_user_name)


@pytest.mark.django_db
def test_a_pass_that_dies_half_way_resumes_with_the_next_one(student_account, aws, script):
    lab_resources(aws, student_account.aws_account_id)
    # The worker dies while deleting the table: nothing of this pass is recorded.
    script.answer("dynamodb", "DeleteTable", WorkerKilled())

    with pytest.raises(WorkerKilled):
        account_clean(account_id=student_account.pk)

    student_account.refresh_from_db()
    assert student_account.state == S.CLEANING
    assert "passes" not in student_account.cleanup_report
    run_cleanup(student_account)  # the redelivered task

    student_account.refresh_from_db()
    assert student_account.state == S.CLOSE_QUEUED
    assert student_account.cleanup_report["remaining"] == []
    assert script.calls["DeleteTable"] == 2


@pytest.mark.django_db
def test_throttling_in_a_pass_is_retried_by_the_task(student_account, aws, script):
    from portal.aws.errors import TransientAwsError

    lab_resources(aws, student_account.aws_account_id)
    script.answer("dynamodb", "DeleteTable", Fault("ThrottlingException", "Rate exceeded"))

    with pytest.raises(TransientAwsError):
        account_clean(account_id=student_account.pk)

    run_cleanup(student_account)
    student_account.refresh_from_db()
    assert student_account.state == S.CLOSE_QUEUED


@pytest.mark.django_db
def test_what_cannot_be_deleted_is_reported_and_the_closure_removes_it(student_account, aws, script):
    lab_resources(aws, student_account.aws_account_id)
    script.always("dynamodb", "DeleteTable", Fault("AccessDeniedException", "Denied by a resource policy"))

    run_cleanup(student_account)

    student_account.refresh_from_db()
    remaining = student_account.cleanup_report["remaining"]
    assert [(r["kind"], r["id"]) for r in remaining] == [("dynamodb:table", "lab-scores")]
    assert "Denied by a resource policy" in remaining[0]["error"]
    # A closed account loses everything anyway: closing goes ahead.
    assert student_account.state == S.CLOSE_QUEUED
    # It stopped once a pass removed nothing new, not after the maximum.
    assert len(student_account.cleanup_report["passes"]) < 8


@pytest.mark.django_db
def test_an_account_for_recycling_with_leftovers_waits_for_a_person(student_account, aws, script, personas):
    Course.objects.filter(pk=personas.course.pk).update(end_policy=EndPolicy.RECYCLE)
    MemberAccount.objects.filter(pk=student_account.pk).update(cleanup_report={"destination": "recycle"})
    student_account.refresh_from_db()
    lab_resources(aws, student_account.aws_account_id)
    script.always("dynamodb", "DeleteTable", Fault("AccessDeniedException", "Denied by a resource policy"))

    run_cleanup(student_account)

    student_account.refresh_from_db()
    assert student_account.state == S.FAILED
    assert "1 resource(s) could not be deleted" in student_account.last_error


@pytest.mark.django_db
@pytest.mark.parametrize("tampering", ["moved", "untagged"])
def test_nothing_is_deleted_in_an_account_the_portal_cannot_prove_is_its_own(student_account, aws, personas, tampering):
    account_id = student_account.aws_account_id
    made = lab_resources(aws, account_id)
    organizations = aws.client("organizations")
    if tampering == "moved":
        root = organizations.list_roots()["Roots"][0]["Id"]
        course_ou = student_account.course.aws_ou_id
        organizations.move_account(AccountId=account_id, SourceParentId=course_ou, DestinationParentId=root)
    else:
        organizations.untag_resource(ResourceId=account_id, TagKeys=list(MANAGED_BY_TAG))

    run_cleanup(student_account)

    student_account.refresh_from_db()
    assert student_account.state == S.FAILED
    assert account_id in student_account.last_error
    assert assignments(aws, account_id)  # access untouched
    ec2 = aws.client("ec2", account_id=account_id, region="us-east-1")
    state = ec2.describe_instances(InstanceIds=[made["instance"]])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state == "running"


@pytest.mark.django_db
def test_a_failed_cleanup_is_retried_from_where_it_failed(student_account, aws, personas, script):
    from accounts_app.services.account_requests import account_retry

    organizations = aws.client("organizations")
    organizations.untag_resource(ResourceId=student_account.aws_account_id, TagKeys=list(MANAGED_BY_TAG))
    run_cleanup(student_account)
    student_account.refresh_from_db()
    assert student_account.state == S.FAILED
    organizations.tag_resource(
        ResourceId=student_account.aws_account_id, Tags=[{"Key": k, "Value": v} for k, v in MANAGED_BY_TAG.items()]
    )

    assert account_retry(actor=personas.instructor, account=student_account)

    student_account.refresh_from_db()
    assert student_account.state == S.CLEANING
    run_cleanup(student_account)
    student_account.refresh_from_db()
    assert student_account.state == S.CLOSE_QUEUED


@pytest.mark.django_db
def test_a_students_own_invited_account_is_given_back_not_cleaned_or_closed(student_account, aws, script):
    from accounts_app.choices import AccountOrigin
    from accounts_app.models import MemberAccount

    MemberAccount.objects.filter(pk=student_account.pk).update(origin=AccountOrigin.INVITED)
    student_account.refresh_from_db()
    account_id = student_account.aws_account_id
    lab_resources(aws, account_id)

    run_cleanup(student_account)

    student_account.refresh_from_db()
    assert student_account.state == S.HANDED_OVER
    assert assignments(aws, account_id) == []
    listed = {a["Id"] for a in aws.client("organizations").list_accounts()["Accounts"]}
    assert account_id not in listed
    assert script.calls["DeleteTable"] == 0
    assert script.calls["CloseAccount"] == 0


def test_the_guardrails_that_freeze_or_fence_an_account_let_the_portals_role_clean_it():
    """SCPs bind OrganizationAccountAccessRole too: without the exemption, cleanup in a frozen
    account (or outside the course's services and regions) is denied in real AWS, which moto
    never enforces."""
    from portal.aws.guardrails import (
        GuardrailProfile,
        baseline_policies,
        course_policy,
        freeze_policy,
        portal_role_arn,
    )

    role = portal_role_arn("OrganizationAccountAccessRole")
    # Conditions on the type of instance launched: the portal launches none.
    instance_type_sids = {
        "OnlyAllowedInstanceTypes",
        "OnlyAllowedAutoScalingTypes",
        "OnlyAllowedLaunchConfigurationTypes",
    }
    profile = GuardrailProfile(regions=["us-east-1"], services=["s3"], instance_families=["t3"])
    fences = [
        *freeze_policy(portal_role=role)["Statement"],
        *[s for s in course_policy(profile, portal_role=role)["Statement"] if s["Sid"] not in instance_type_sids],
        *baseline_policies(member_role_name="OrganizationAccountAccessRole", allowed_regions=["us-east-1"])[
            "classroom-cloud-regions"
        ]["Statement"],
    ]

    assert [s["Sid"] for s in fences] == [
        "FrozenForBudget",
        "FrozenRootOwnerTasksOnly",
        "OnlyAllowedServices",
        "OnlyAllowedRegions",
        "NoFleetsOrSpotRequests",
        "SchoolRegions",
    ]
    for statement in fences:
        assert statement["Condition"]["ArnNotLike"] == {"aws:PrincipalArn": role}, statement["Sid"]


# --- The report, region by region ------------------------------------------------------------------


def end_page(personas, persona: str = "instructor") -> str:
    response = personas.client(persona).get(reverse("courses:end", kwargs={"course_id": personas.course.pk}))
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.django_db
def test_the_end_page_shows_what_was_deleted_and_what_was_not_region_by_region(student_account, aws, script, personas):
    lab_resources(aws, student_account.aws_account_id)
    script.always("dynamodb", "DeleteTable", Fault("AccessDeniedException", "Denied by a resource policy"))
    run_cleanup(student_account)
    student_account.refresh_from_db()
    passes = student_account.cleanup_report["passes"]
    deleted_in_us_east_1 = {r["id"] for run in passes for r in run["deleted"] if r["region"] == "us-east-1"}
    assert len(deleted_in_us_east_1) >= 3  # the instance, its volume and its address at least

    for persona in ("instructor", "ta"):
        page = end_page(personas, persona)

        # The account's report: each region with its counts, the leftover with AWS's reason.
        assert f"<strong>us-east-1</strong>: {len(deleted_in_us_east_1)} deleted</p>" in page
        assert "<strong>eu-west-1</strong>: 1 deleted, 1 could not be deleted</p>" in page
        assert "Not deleted: lab-scores: ACTIVE: Denied by a resource policy" in page
        assert "Deleted: lab-results-2026" in page
        # The course's summary.
        assert '<h2 id="cleanup-regions-heading">Cleanup by region</h2>' in page
        for region, counts in {"eu-west-1": (1, 1, 0, 1), "us-east-1": (len(deleted_in_us_east_1), 0, 0, 1)}.items():
            cells = "".join(f'<td class="num">{count}</td>' for count in counts)
            assert f'<tr><th scope="row">{region}</th>{cells}</tr>' in page


def resource(region: str, kind: str, id: str, **extra) -> dict:
    return {"region": region, "kind": kind, "id": id, "label": id, **extra}


@pytest.mark.django_db
def test_the_course_summary_adds_up_its_accounts_and_counts_a_resource_deleted_twice_once(personas):
    stack = resource("us-east-1", "cloudformation:stack", "arn:aws:cloudformation:us-east-1:1:stack/lab/1")
    reports = [
        {
            # AWS was still deleting the stack at the second pass: listed, and deleted, again.
            "passes": [
                {"found": [], "deleted": [stack, resource("us-east-1", "s3:bucket", "a")], "failed": []},
                {"found": [], "deleted": [stack], "failed": []},
            ],
            "remaining": [],
            "finished_at": "2026-12-20T10:00:00+00:00",
            "verification": {
                "at": "2026-12-20T10:01:00+00:00",
                "regions": ["ap-southeast-2", "eu-west-1", "us-east-1"],
                "found": [resource("ap-southeast-2", "dynamodb:table", "scores")],
            },
        },
        {
            "passes": [{"found": [], "deleted": [resource("us-east-1", "ec2:volume", "vol-1")], "failed": []}],
            "remaining": [resource("eu-west-1", "s3:bucket", "locked", error="Access Denied")],
        },
    ]
    for number, report in enumerate(reports):
        MemberAccount.objects.create(
            course=personas.course,
            state=S.FAILED,
            root_email=f"aws+cs101-{number}@school.example",
            account_name=f"cs101-{number}",
            aws_account_id=f"11112222333{number}",
            cleanup_report=report,
        )

    page = end_page(personas)

    # Region: deleted, could not be deleted, found before the pool, accounts.
    for region, counts in {
        "ap-southeast-2": (0, 0, 1, 1),
        "eu-west-1": (0, 1, 0, 1),
        "us-east-1": (3, 0, 0, 2),
    }.items():
        cells = "".join(f'<td class="num">{count}</td>' for count in counts)
        assert f'<tr><th scope="row">{region}</th>{cells}</tr>' in page
    assert "<strong>us-east-1</strong>: 2 deleted</p>" in page  # the stack once, and the bucket
    assert "<strong>ap-southeast-2</strong>: 0 deleted, 1 found before the pool</p>" in page
    assert "Found before the pool: scores" in page
    assert "Checked before the pool: 3 enabled region(s), 1 resource(s) left" in page
    assert "Not deleted: locked: Access Denied" in page
