"""Recycling: a cleaned account of a "recycle" course goes to the organization's pool, waits out
the billing cool-down, and is given to a student of another course
(accounts_app/services/recycling.py), its costs split between its records by day
(billing_app/services/costs.py: AccountOwners).

AWS is moto. Journeys that vend run with real transactions (`moto_db`), so the Celery tasks queued
"on commit" run eagerly as in production; `account_recycle` is called where its task would be.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.utils import timezone

from accounts_app.choices import AccountOrigin, AccountState, AuditAction, EndPolicy
from accounts_app.lifecycle import transition
from accounts_app.models import (
    AccountEvent,
    AuditEvent,
    AwsOrganization,
    Course,
    MemberAccount,
    Membership,
)
from accounts_app.services import recycling
from accounts_app.services.account_requests import account_request, course_precreate
from accounts_app.services.guardrails import freeze_policy_id
from accounts_app.services.identity import record_key
from accounts_app.services.recycling import account_recycle, cooldown_end, pool_release_cooled
from billing_app.models import AccountDailyCost, CostRecord
from billing_app.services.costs import AccountOwners, costs_sync
from portal.aws import organizations
from tests.factories import CourseFactory, MemberAccountFactory, MembershipFactory
from tests.support.accounts import WorkerKilled
from tests.support.aws_script import AwsScript, Clock
from tests.support.cost_explorer import page, period, seed

moto_db = pytest.mark.django_db(transaction=True)


def pool_tags(pooled: MemberAccount) -> dict[str, str]:
    """An account in the pool: still the portal's (and this portal's), no course's, and its pool
    record's, which keeps its root email and so its key."""
    return {
        "managed-by": "classroom-cloud-portal",
        "portal-ou": AwsOrganization.load().parent_ou_id,
        "course-id": "pool",
        "record-key": record_key(pooled),
        "course": "pool",
        "student": "pool",
    }


EC2 = "Amazon Elastic Compute Cloud - Compute"


@pytest.fixture(autouse=True)
def two_day_cool_down(settings):
    settings.PORTAL_RECYCLE_COOLDOWN_DAYS = 2


# The regions enabled in member accounts: the two the cleanup passes work in (conftest's
# PORTAL_CLEANUP_REGIONS) and one more, besides one the account has not opted in to. moto enables
# some thirty; the check before the pool would list every one of them on each recycle.
ENABLED_REGIONS = ["ap-southeast-2", "eu-west-1", "us-east-1"]


@pytest.fixture(autouse=True)
def member_account_regions(request):
    """DescribeRegions answers ENABLED_REGIONS, and af-south-1 not opted in (AwsScript)."""
    if "aws" not in request.fixturenames:
        return
    regions = [
        {"RegionName": name, "Endpoint": f"ec2.{name}.amazonaws.com", "OptInStatus": "opt-in-not-required"}
        for name in ENABLED_REGIONS
    ]
    regions.append(
        {"RegionName": "af-south-1", "Endpoint": "ec2.af-south-1.amazonaws.com", "OptInStatus": "not-opted-in"}
    )
    AwsScript(request.getfixturevalue("aws")).always("ec2", "DescribeRegions", {"Regions": regions})


def recycle_policy(course: Course) -> Course:
    course.end_policy = EndPolicy.RECYCLE
    course.save()
    return course


def cleaning_account(personas) -> MemberAccount:
    """The student's account, vended, frozen for the end of its "recycle" course and being
    cleaned: what `account_clean` hands to `account_recycle`."""
    recycle_policy(personas.course)
    account = account_request(actor=personas.student, membership=Membership.objects.get(user=personas.student))
    account.refresh_from_db()
    assert account.state == AccountState.READY
    organizations.attach_policy(freeze_policy_id(), account.aws_account_id)
    assert transition(account, expected=AccountState.READY, to=AccountState.ENDED, reason="The course has ended")
    assert transition(account, expected=AccountState.ENDED, to=AccountState.CLEANING, reason="End of course")
    return account


def parent_of(aws, account_id: str) -> str:
    return aws.client("organizations").list_parents(ChildId=account_id)["Parents"][0]["Id"]


def tags_of(aws, account_id: str) -> dict[str, str]:
    tags = aws.client("organizations").list_tags_for_resource(ResourceId=account_id)["Tags"]
    return {tag["Key"]: tag["Value"] for tag in tags}


def budget_names(aws) -> set[str]:
    organization = AwsOrganization.load()
    budgets = aws.client("budgets").describe_budgets(AccountId=organization.management_account_id)
    return {budget["BudgetName"] for budget in budgets.get("Budgets", [])}


def attached_policy_ids(aws, account_id: str) -> set[str]:
    found = aws.client("organizations").list_policies_for_target(TargetId=account_id, Filter="SERVICE_CONTROL_POLICY")
    return {policy["Id"] for policy in found["Policies"]}


def count_calls(aws) -> dict[str, int]:
    calls: dict[str, int] = {}

    def record(model, **kwargs):
        calls[model.name] = calls.get(model.name, 0) + 1

    aws.add_hook("before-parameter-build", record)
    return calls


# --- Into the pool --------------------------------------------------------------------------------


@moto_db
def test_a_cleaned_account_goes_to_the_pool_and_its_record_stays_with_the_course(personas, aws, monkeypatch, settings):
    account = cleaning_account(personas)
    account_id = account.aws_account_id
    membership = Membership.objects.get(user=personas.student)
    assert f"classroom-cloud-{account_id}" in budget_names(aws)
    assert freeze_policy_id() in attached_policy_ids(aws, account_id)
    # 03:00 UTC on Dec 31 is still Dec 30 in Los Angeles: the cool-down ends at midnight UTC.
    settings.TIME_ZONE = "America/Los_Angeles"
    clock = Clock()
    clock.now = datetime(2026, 12, 31, 3, 0, tzinfo=UTC)
    # Recycling's clock only: moto's assumed-role credentials expire in real time, and would all
    # look expired to the portal's client cache at a later date.
    monkeypatch.setattr(recycling, "timezone", SimpleNamespace(now=clock))

    pooled = account_recycle(account_id=account.pk)

    monkeypatch.undo()
    account.refresh_from_db()
    assert account.state == AccountState.RECYCLED
    assert (account.course_id, account.membership_id, account.aws_account_id) == (
        personas.course.pk,
        membership.pk,
        account_id,
    )
    pooled.refresh_from_db()
    assert pooled.pk != account.pk
    assert (pooled.course_id, pooled.membership_id, pooled.state) == (
        None,
        None,
        AccountState.COOLING_DOWN,
    )
    assert pooled.aws_account_id == account_id
    assert pooled.root_email == account.root_email
    assert pooled.origin == account.origin
    assert pooled.identity_store_user_id == ""
    assert pooled.available_from == datetime(2027, 1, 3, tzinfo=UTC)  # Dec 31 03:00 + 2 days, next midnight UTC
    assert pooled.costs_since == date(2027, 1, 3)
    assert MemberAccount.objects.filter(aws_account_id=account_id).count() == 2
    # In AWS: in the pool OU, tagged for the pool, without the course's budget or the freeze.
    assert parent_of(aws, account_id) == AwsOrganization.load().pool_ou_id
    assert tags_of(aws, account_id) == pool_tags(pooled)
    assert f"classroom-cloud-{account_id}" not in budget_names(aws)
    assert freeze_policy_id() not in attached_policy_ids(aws, account_id)
    assert AccountEvent.objects.filter(
        account=account, from_state=AccountState.CLEANING, to_state=AccountState.RECYCLED
    ).exists()
    [event] = AuditEvent.objects.filter(action=AuditAction.ACCOUNT_RECYCLED)
    assert (event.actor, event.actor_label, event.course_id, event.object_id) == (
        None,
        "system",
        personas.course.pk,
        str(account.pk),
    )
    assert "usable from Jan 3, 2027" in event.summary
    # The days before the cool-down's end are the course's; from then on, the pool's.
    owners = AccountOwners()
    assert owners.owner(account_id, date(2027, 1, 2)) == (account.pk, personas.course.pk)
    assert owners.owner(account_id, date(2027, 1, 3)) == (pooled.pk, None)


@pytest.mark.parametrize(
    ("now", "available"),
    [
        (datetime(2026, 11, 10, 0, 0, tzinfo=UTC), datetime(2026, 11, 13, tzinfo=UTC)),
        (datetime(2026, 11, 10, 23, 59, 59, tzinfo=UTC), datetime(2026, 11, 13, tzinfo=UTC)),
        # 02:00 UTC is still the day before at UTC-5: the day counted is UTC's (Cost Explorer's).
        (
            datetime(2026, 11, 10, 2, 0, tzinfo=UTC).astimezone(timezone.get_fixed_timezone(-300)),
            datetime(2026, 11, 13, tzinfo=UTC),
        ),
        (datetime(2026, 2, 27, 12, 0, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)),
    ],
)
def test_the_cool_down_ends_at_the_midnight_utc_after_the_cool_down_days(now, available):
    assert cooldown_end(now) == available


@moto_db
def test_recycling_twice_makes_one_pool_record_and_moves_the_account_once(personas, aws):
    account = cleaning_account(personas)
    calls = count_calls(aws)

    first = account_recycle(account_id=account.pk)
    second = account_recycle(account_id=account.pk)

    assert first is not None
    assert second.pk == first.pk
    assert MemberAccount.objects.filter(aws_account_id=account.aws_account_id, course=None).count() == 1
    assert MemberAccount.objects.filter(aws_account_id=account.aws_account_id).count() == 2
    assert calls.get("MoveAccount") == 1
    assert AuditEvent.objects.filter(action=AuditAction.ACCOUNT_RECYCLED).count() == 1


def add_tags(aws, account_id: str, tags: dict[str, str]) -> None:
    aws.client("organizations").tag_resource(
        ResourceId=account_id, Tags=[{"Key": key, "Value": value} for key, value in tags.items()]
    )


# Tags the account carries besides the portal's: an instructor's, and one of the billing team's.
STRAY_TAGS = {"project": "cs101-final", "cost-center": "CS-4410"}


@moto_db
def test_a_recycled_account_carries_the_pools_tags_and_no_other(personas, aws):
    account = cleaning_account(personas)
    account_id = account.aws_account_id
    add_tags(aws, account_id, STRAY_TAGS)
    assert tags_of(aws, account_id)["course-id"] == str(personas.course.pk)
    calls = count_calls(aws)

    pooled = account_recycle(account_id=account.pk)

    assert tags_of(aws, account_id) == pool_tags(pooled)
    assert calls.get("UntagResource") == 1


@moto_db
def test_tags_that_already_match_the_pool_are_left_alone(personas, aws):
    account = cleaning_account(personas)
    add_tags(aws, account.aws_account_id, STRAY_TAGS)
    organizations.set_account_tags(account.aws_account_id, pool_tags(account))
    calls = count_calls(aws)

    organizations.set_account_tags(account.aws_account_id, pool_tags(account))  # run again

    assert tags_of(aws, account.aws_account_id) == pool_tags(account)
    assert (calls.get("TagResource"), calls.get("UntagResource")) == (None, None)


@moto_db
@pytest.mark.parametrize("operation", ["MoveAccount", "TagResource", "UntagResource"])
def test_a_recycle_killed_after_moving_the_account_resumes_on_the_retry(personas, aws, operation):
    account = cleaning_account(personas)
    add_tags(aws, account.aws_account_id, STRAY_TAGS)
    killed = []

    def kill_once(**kwargs):  # AWS did the work; the worker dies before it goes on
        if not killed:
            killed.append(True)
            raise WorkerKilled

    aws.add_hook(f"after-call.organizations.{operation}", kill_once)

    with pytest.raises(WorkerKilled):
        account_recycle(account_id=account.pk)
    account.refresh_from_db()
    assert account.state == AccountState.CLEANING

    pooled = account_recycle(account_id=account.pk)  # the task runs again

    account.refresh_from_db()
    assert account.state == AccountState.RECYCLED
    assert account.last_error == ""
    assert pooled is not None and pooled.state == AccountState.COOLING_DOWN
    assert parent_of(aws, account.aws_account_id) == AwsOrganization.load().pool_ou_id
    assert tags_of(aws, account.aws_account_id) == pool_tags(pooled)


# --- Nothing is left for the next student ---------------------------------------------------------


def leftovers_outside_the_cleanup_regions(aws, account_id: str) -> None:
    """What the cleanup passes never see: they work in us-east-1 and eu-west-1 only."""
    s3 = aws.client("s3", account_id=account_id, region="ap-southeast-2")
    s3.create_bucket(Bucket="old-lab-sydney", CreateBucketConfiguration={"LocationConstraint": "ap-southeast-2"})
    aws.client("dynamodb", account_id=account_id, region="ap-southeast-2").create_table(
        TableName="scores",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


@moto_db
def test_an_account_with_anything_left_in_any_enabled_region_does_not_go_to_the_pool(personas, aws):
    account = cleaning_account(personas)
    account_id = account.aws_account_id
    leftovers_outside_the_cleanup_regions(aws, account_id)
    course_ou = Course.objects.get(pk=personas.course.pk).aws_ou_id
    calls = count_calls(aws)

    assert account_recycle(account_id=account.pk) is None

    account.refresh_from_db()
    assert account.state == AccountState.FAILED
    assert account.last_error == (
        "Not returned to the pool: 2 resource(s) left, which the next student would inherit. "
        "ap-southeast-2: DynamoDB tables scores; S3 buckets old-lab-sydney. "
        "Cleanup works only in PORTAL_CLEANUP_REGIONS (us-east-1, eu-west-1). Delete them by hand; then Retry."
    )
    verification = account.cleanup_report["verification"]
    assert verification["regions"] == ENABLED_REGIONS  # every enabled one, and only those
    assert {(r["region"], r["kind"], r["id"]) for r in verification["found"]} == {
        ("ap-southeast-2", "dynamodb:table", "scores"),
        ("ap-southeast-2", "s3:bucket", "old-lab-sydney"),
    }
    # Nothing changed in AWS, and no pool record.
    assert parent_of(aws, account_id) == course_ou
    assert f"classroom-cloud-{account_id}" in budget_names(aws)
    for changing in ("MoveAccount", "TagResource", "UntagResource", "DeleteBudget", "DetachPolicy"):
        assert changing not in calls
    assert not MemberAccount.objects.filter(course=None).exists()


@moto_db
def test_after_a_person_deleted_the_leftovers_a_retry_puts_the_account_in_the_pool(personas, aws):
    """The whole way: cleanup's passes (two regions), the check of every region, a person's fix,
    Retry, cleanup again and the pool. Tasks run on commit, as in production."""
    from accounts_app.services.account_requests import account_retry
    from accounts_app.services.cleanup import account_clean

    account = cleaning_account(personas)
    account_id = account.aws_account_id
    MemberAccount.objects.filter(pk=account.pk).update(cleanup_report={"destination": "recycle"})
    leftovers_outside_the_cleanup_regions(aws, account_id)
    aws.client("dynamodb", account_id=account_id, region="eu-west-1").create_table(
        TableName="lab-scores",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

    while account_clean(account_id=account.pk) is not None:  # what the cleanup task does; the last queues the recycle
        pass

    account.refresh_from_db()
    assert account.state == AccountState.FAILED
    assert "ap-southeast-2: DynamoDB tables scores; S3 buckets old-lab-sydney." in account.last_error
    report = account.cleanup_report
    assert [r["id"] for r in report["passes"][0]["deleted"]] == ["lab-scores"]  # in a cleanup region
    assert report["remaining"] == []

    aws.client("s3", account_id=account_id, region="ap-southeast-2").delete_bucket(Bucket="old-lab-sydney")
    aws.client("dynamodb", account_id=account_id, region="ap-southeast-2").delete_table(TableName="scores")
    assert account_retry(actor=personas.instructor, account=account)  # cleanup again, then the pool

    account.refresh_from_db()
    assert account.state == AccountState.RECYCLED
    assert account.cleanup_report["verification"]["found"] == []
    assert parent_of(aws, account_id) == AwsOrganization.load().pool_ou_id


@moto_db
def test_a_check_aws_refuses_keeps_the_account_out_of_the_pool(personas, aws):
    """AWS refuses a listing in a region (an SCP on the portal's role, say): nothing is known, so
    nothing goes to the pool (AwsScript)."""
    from tests.support.aws_script import Fault

    account = cleaning_account(personas)
    script = AwsScript(aws)
    script.always("dynamodb", "ListTables", Fault("AccessDeniedException", "Denied by an SCP", status=400))

    assert account_recycle(account_id=account.pk) is None

    account.refresh_from_db()
    assert account.state == AccountState.FAILED
    assert account.last_error == (
        "Not returned to the pool: AWS refused the check of its regions (Denied by an SCP). Fix that; then Retry."
    )
    assert parent_of(aws, account.aws_account_id) == Course.objects.get(pk=personas.course.pk).aws_ou_id


# --- What is not the portal's is not recycled -----------------------------------------------------


@moto_db
@pytest.mark.parametrize(
    "tampering",
    ["moved out of the course OU", "managed-by tag removed", "moved to the pool OU untagged"],
)
def test_an_account_the_portal_cannot_prove_is_its_own_fails_and_nothing_moves(personas, aws, tampering):
    account = cleaning_account(personas)
    account_id = account.aws_account_id
    course_ou = Course.objects.get(pk=personas.course.pk).aws_ou_id
    client = aws.client("organizations")
    if tampering == "moved out of the course OU":
        root = client.list_roots()["Roots"][0]["Id"]
        client.move_account(AccountId=account_id, SourceParentId=course_ou, DestinationParentId=root)
        expected_error = (
            f"AWS account {account_id} is in {root}, not in {course_ou}: the portal deletes and closes "
            "nothing outside its own OUs. Move it back or handle it by hand."
        )
    elif tampering == "moved to the pool OU untagged":
        pool_ou = AwsOrganization.load().pool_ou_id
        client.move_account(AccountId=account_id, SourceParentId=course_ou, DestinationParentId=pool_ou)
        client.untag_resource(ResourceId=account_id, TagKeys=["managed-by"])
        expected_error = (
            f"AWS account {account_id} is in {pool_ou}, not in {course_ou}: the portal deletes and closes "
            "nothing outside its own OUs. Move it back or handle it by hand."
        )
    else:
        client.untag_resource(ResourceId=account_id, TagKeys=["managed-by"])
        expected_error = (
            f"AWS account {account_id} lacks the tag managed-by=classroom-cloud-portal: the portal deletes "
            "and closes only accounts it tagged as its own."
        )
    parent_before, tags_before = parent_of(aws, account_id), tags_of(aws, account_id)
    calls = count_calls(aws)

    result = account_recycle(account_id=account.pk)

    assert result is None
    account.refresh_from_db()
    assert account.state == AccountState.FAILED
    assert account.last_error == expected_error
    assert AccountEvent.objects.filter(account=account, to_state=AccountState.FAILED).count() == 1
    # Nothing moved, nothing deleted, nothing detached, no pool record.
    assert parent_of(aws, account_id) == parent_before
    assert tags_of(aws, account_id) == tags_before
    assert f"classroom-cloud-{account_id}" in budget_names(aws)
    assert freeze_policy_id() in attached_policy_ids(aws, account_id)
    assert not MemberAccount.objects.filter(course=None).exists()
    for changing in ("MoveAccount", "TagResource", "DeleteBudget", "DetachPolicy"):
        assert changing not in calls
    assert not AuditEvent.objects.filter(action=AuditAction.ACCOUNT_RECYCLED).exists()


@moto_db
def test_a_students_own_invited_account_is_not_given_to_anyone_else(personas, aws):
    account = cleaning_account(personas)
    MemberAccount.objects.filter(pk=account.pk).update(origin=AccountOrigin.INVITED)
    course_ou = Course.objects.get(pk=personas.course.pk).aws_ou_id
    calls = count_calls(aws)

    assert account_recycle(account_id=account.pk) is None

    account.refresh_from_db()
    assert account.state == AccountState.FAILED
    assert account.last_error == (
        f"AWS account {account.aws_account_id} is the student's own (invited into the organization): its root "
        "user is theirs, so it is not given to another student. Return it to them or handle it by hand."
    )
    assert parent_of(aws, account.aws_account_id) == course_ou
    assert not MemberAccount.objects.filter(course=None).exists()
    assert "MoveAccount" not in calls and "TagResource" not in calls


@moto_db
def test_an_unused_account_of_the_courses_own_pool_is_recycled_too(personas, aws):
    recycle_policy(personas.course)
    [spare] = course_precreate(actor=personas.instructor, course=personas.course, count=1)
    spare.refresh_from_db()
    assert spare.state == AccountState.POOLED
    assert transition(spare, expected=AccountState.POOLED, to=AccountState.CLEANING, reason="End of course")

    pooled = account_recycle(account_id=spare.pk)  # nothing to detach: no freeze, no budget

    spare.refresh_from_db()
    assert (spare.state, spare.course_id, spare.membership_id) == (
        AccountState.RECYCLED,
        personas.course.pk,
        None,
    )
    assert (pooled.course_id, pooled.state, pooled.aws_account_id) == (
        None,
        AccountState.COOLING_DOWN,
        spare.aws_account_id,
    )
    assert parent_of(aws, spare.aws_account_id) == AwsOrganization.load().pool_ou_id
    assert tags_of(aws, spare.aws_account_id) == pool_tags(pooled)


# --- Out of the pool ------------------------------------------------------------------------------


@moto_db
def test_after_the_cool_down_a_student_of_another_course_gets_the_pooled_account(personas, aws):
    account = cleaning_account(personas)
    pooled = account_recycle(account_id=account.pk)
    account_id = account.aws_account_id

    assert pool_release_cooled(now=pooled.available_from - timedelta(seconds=1)) == 0
    pooled.refresh_from_db()
    assert pooled.state == AccountState.COOLING_DOWN

    assert pool_release_cooled(now=pooled.available_from) == 1
    pooled.refresh_from_db()
    assert pooled.state == AccountState.POOLED
    assert pool_release_cooled(now=pooled.available_from + timedelta(days=1)) == 0

    calls = count_calls(aws)
    other = Membership.objects.get(user=personas.other_student)
    given = account_request(actor=personas.other_student, membership=other)

    given.refresh_from_db()
    assert given.pk == pooled.pk
    assert given.aws_account_id == account_id
    assert given.state == AccountState.READY
    assert (given.course_id, given.membership_id) == (personas.other_course.pk, other.pk)
    assert "CreateAccount" not in calls
    other_course = Course.objects.get(pk=personas.other_course.pk)
    assert parent_of(aws, account_id) == other_course.aws_ou_id
    assert tags_of(aws, account_id) == {
        "managed-by": "classroom-cloud-portal",
        "portal-ou": AwsOrganization.load().parent_ou_id,
        "course-id": str(other_course.pk),
        "record-key": record_key(given),
        "course": "bio200",
        "student": "other_student@school.example",
    }
    assert f"classroom-cloud-{account_id}" in budget_names(aws)  # the new course's budget
    assert given.identity_store_user_id
    # The old record is untouched: still the first course's, with its student.
    account.refresh_from_db()
    assert (account.state, account.course_id) == (AccountState.RECYCLED, personas.course.pk)
    assert AuditEvent.objects.filter(
        action=AuditAction.ACCOUNT_REQUESTED,
        object_id=str(given.pk),
        summary__contains="from the pool",
    ).exists()


@moto_db
def test_a_cooling_account_is_not_given_out_and_a_new_one_is_created_instead(personas, aws):
    account = cleaning_account(personas)
    pooled = account_recycle(account_id=account.pk)
    calls = count_calls(aws)

    given = account_request(
        actor=personas.other_student, membership=Membership.objects.get(user=personas.other_student)
    )

    given.refresh_from_db()
    assert given.pk != pooled.pk
    assert given.aws_account_id != account.aws_account_id
    assert calls.get("CreateAccount") == 1
    pooled.refresh_from_db()
    assert pooled.state == AccountState.COOLING_DOWN


# --- Costs: split by day between the records ------------------------------------------------------


def recycled_records(course: Course, other_course: Course | None, *, since: date, aws_id: str = "444444444444"):
    """An account's record of its first course (RECYCLED) and its pool record from `since`,
    taken by `other_course` (or still in the pool)."""
    old = MemberAccountFactory(
        membership=MembershipFactory(course=course, user=None, email="first@school.example"),
        state=AccountState.RECYCLED,
        root_email="aws+first@school.example",
        aws_account_id=aws_id,
    )
    new = MemberAccountFactory(
        course=other_course,
        membership=(
            MembershipFactory(course=other_course, user=None, email="second@school.example") if other_course else None
        ),
        state=AccountState.READY if other_course else AccountState.POOLED,
        root_email=old.root_email,
        account_name=f"pool-{aws_id}",
        aws_account_id=aws_id,
        costs_since=since,
        available_from=datetime.combine(since, datetime.min.time(), tzinfo=UTC),
    )
    return old, new


@pytest.mark.django_db
def test_each_day_of_a_recycled_accounts_costs_belongs_to_one_record():
    first_course, second_course, third_course = CourseFactory(), CourseFactory(), CourseFactory()
    old, second = recycled_records(first_course, second_course, since=date(2027, 1, 3))
    MemberAccount.objects.filter(pk=second.pk).update(state=AccountState.RECYCLED)  # recycled again
    third = MemberAccountFactory(
        course=third_course,
        root_email=old.root_email,
        aws_account_id=old.aws_account_id,
        costs_since=date(2027, 6, 1),
    )

    owners = AccountOwners()

    aws_id = old.aws_account_id
    assert owners.owner(aws_id, date(2026, 9, 1)) == (old.pk, first_course.pk)
    assert owners.owner(aws_id, date(2027, 1, 2)) == (old.pk, first_course.pk)
    assert owners.owner(aws_id, date(2027, 1, 3)) == (second.pk, second_course.pk)
    assert owners.owner(aws_id, date(2027, 5, 31)) == (second.pk, second_course.pk)
    assert owners.owner(aws_id, date(2027, 6, 1)) == (third.pk, third_course.pk)
    assert owners.owner("999999999999", date(2027, 1, 3)) == (None, None)


def seed_days(aws_id: str, days: dict[date, str]) -> None:
    seed(
        page(*[period(day, [(aws_id, EC2, amount)]) for day, amount in days.items()]),
        page(),  # no credits
    )


@pytest.mark.django_db
def test_the_cost_sync_gives_days_before_costs_since_to_the_old_record_and_later_days_to_the_new(
    cost_explorer,
):
    first_course, second_course = CourseFactory(code="cs101"), CourseFactory(code="bio200")
    since = date(2027, 1, 3)
    old, new = recycled_records(first_course, second_course, since=since)
    seed_days(
        old.aws_account_id,
        {date(2027, 1, 1): "1.50", date(2027, 1, 2): "0.25", date(2027, 1, 3): "4.00"},
    )

    costs_sync(days=5, today=date(2027, 1, 4))

    rows = set(CostRecord.objects.values_list("day", "account_id", "course_id", "amount"))
    assert rows == {
        (date(2027, 1, 1), old.pk, first_course.pk, Decimal("1.50")),
        (date(2027, 1, 2), old.pk, first_course.pk, Decimal("0.25")),
        (date(2027, 1, 3), new.pk, second_course.pk, Decimal("4.00")),
    }
    rollups = set(AccountDailyCost.objects.values_list("account_id", "course_id", "day", "usage"))
    assert rollups == {
        (old.pk, first_course.pk, date(2027, 1, 1), Decimal("1.50")),
        (old.pk, first_course.pk, date(2027, 1, 2), Decimal("0.25")),
        (new.pk, second_course.pk, date(2027, 1, 3), Decimal("4.00")),
    }


@pytest.mark.django_db
def test_costs_of_an_account_still_in_the_pool_do_not_break_the_cost_sync(cost_explorer):
    first_course = CourseFactory(code="cs101")
    since = date(2027, 1, 3)
    old, pooled = recycled_records(first_course, None, since=since)
    seed_days(old.aws_account_id, {date(2027, 1, 2): "0.25", date(2027, 1, 3): "0.01"})

    sync = costs_sync(days=5, today=date(2027, 1, 4))

    assert sync.error == ""
    assert set(CostRecord.objects.values_list("day", "account_id", "course_id")) == {
        (date(2027, 1, 2), old.pk, first_course.pk),
        (date(2027, 1, 3), pooled.pk, None),
    }
    # The course's figures are the course's days only.
    assert set(AccountDailyCost.objects.values_list("account_id", "day", "usage")) == {
        (old.pk, date(2027, 1, 2), Decimal("0.25")),
    }
