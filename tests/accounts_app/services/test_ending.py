"""The end of a course against moto: the notice, the freeze at the end date, the grace period,
cleanup and closing; extending a course after its accounts froze; keeping one student out; the
instructor's page and the end_course command. Celery tasks run eagerly as transactions commit."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from accounts_app.choices import AccountState as S
from accounts_app.choices import AuditAction, EndPolicy
from accounts_app.models import AccountEvent, AuditEvent, Course, MemberAccount, Membership
from accounts_app.services import ending
from accounts_app.services.account_requests import account_request
from accounts_app.services.guardrails import FREEZE_POLICY_NAME
from billing_app.services.budgets import account_freeze
from tests.factories import MembershipFactory

moto_db = pytest.mark.django_db(transaction=True)


def attached_policies(aws, account_id: str) -> set[str]:
    policies = aws.client("organizations").list_policies_for_target(
        TargetId=account_id, Filter="SERVICE_CONTROL_POLICY"
    )["Policies"]
    return {p["Name"] for p in policies}


def aws_state(aws, account_id: str) -> str:
    return aws.client("organizations").describe_account(AccountId=account_id)["Account"]["State"]


@pytest.fixture
def course_with_accounts(personas, aws):
    """cs101 ending in ten days, with two students whose accounts are ready."""
    course = personas.course
    today = timezone.localdate()
    Course.objects.filter(pk=course.pk).update(
        start_date=today - timedelta(days=90), end_date=today + timedelta(days=10), end_notice_days=7, grace_days=14
    )
    course.refresh_from_db()
    second = MembershipFactory(course=course, email="second@school.example", name="Second Student")
    accounts = [
        account_request(actor=None, membership=Membership.objects.get(user=personas.student)),
        account_request(actor=None, membership=second),
    ]
    for account in accounts:
        account.refresh_from_db()
        assert account.state == S.READY
    return course, accounts


def days_from_now(days: float):
    return timezone.now() + timedelta(days=days)


@moto_db
def test_students_are_told_once_when_the_notice_period_starts(course_with_accounts):
    course, accounts = course_with_accounts
    mail.outbox.clear()

    ending.courses_end_tick(now=days_from_now(1))  # nine days before the end: too early
    assert mail.outbox == []

    ending.courses_end_tick(now=days_from_now(4))  # six days before
    ending.courses_end_tick(now=days_from_now(5))

    assert sorted(m.to[0] for m in mail.outbox) == sorted(a.membership.email for a in accounts)
    notice = mail.outbox[0]
    assert "cs101" in notice.subject
    assert "Keep my account" in notice.body
    assert AuditEvent.objects.filter(action=AuditAction.COURSE_ENDING_NOTIFIED, course=course).count() == 1
    assert {a.state for a in MemberAccount.objects.all()} == {S.READY}


@moto_db
def test_at_the_end_date_accounts_freeze_and_after_the_grace_period_they_are_closed(course_with_accounts, aws):
    course, accounts = course_with_accounts

    ending.courses_end_tick(now=days_from_now(11))  # the end date is over

    course.refresh_from_db()
    assert course.is_ended
    for account in accounts:
        account.refresh_from_db()
        assert account.state == S.ENDED
        assert FREEZE_POLICY_NAME in attached_policies(aws, account.aws_account_id)
    assert any("frozen" in m.subject for m in mail.outbox)

    ending.courses_end_tick(now=days_from_now(11 + 13))  # still in the grace period
    assert {a.state for a in MemberAccount.objects.all()} == {S.ENDED}

    ending.courses_end_tick(now=days_from_now(11 + 15))

    for account in accounts:
        account.refresh_from_db()
        assert account.state == S.CLOSED, account.last_error
        assert aws_state(aws, account.aws_account_id) == "SUSPENDED"
        assert account.cleanup_report["finished_at"]
        assert account.close_submitted_at is not None
    path = list(AccountEvent.objects.filter(account=accounts[0]).values_list("to_state", flat=True))
    assert path[-5:] == [S.ENDED, S.CLEANING, S.CLOSE_QUEUED, S.CLOSING, S.CLOSED]
    assert AuditEvent.objects.filter(action=AuditAction.ACCOUNT_CLOSED).count() == 2


@moto_db
def test_a_course_extended_after_its_accounts_froze_gives_them_back_as_they_were(course_with_accounts, aws):
    course, (ready, over_budget) = course_with_accounts
    account_freeze(actor=None, account=over_budget, reason="Spent $60.00 of $50.00")
    ending.courses_end_tick(now=timezone.now())  # nothing due yet
    ending.course_end(actor=None, course=course)
    for account in (ready, over_budget):
        account.refresh_from_db()
        assert account.state == S.ENDED

    back = ending.course_extend(actor=None, course=course, end_date=timezone.localdate() + timedelta(days=20))

    assert back == 2
    ready.refresh_from_db()
    over_budget.refresh_from_db()
    course.refresh_from_db()
    assert not course.is_ended
    assert ready.state == S.READY
    assert FREEZE_POLICY_NAME not in attached_policies(aws, ready.aws_account_id)
    # Frozen for its budget before the end: still frozen for its budget.
    assert over_budget.state == S.FROZEN
    assert FREEZE_POLICY_NAME in attached_policies(aws, over_budget.aws_account_id)
    assert AuditEvent.objects.filter(action=AuditAction.COURSE_EXTENDED).exists()


@moto_db
def test_editing_the_end_date_in_the_settings_also_reopens_an_ended_course(course_with_accounts, personas):
    course, _ = course_with_accounts
    ending.course_end(actor=personas.instructor, course=course)
    from accounts_app.services.courses import course_update

    course_update(
        actor=personas.instructor, course=course, changes={"end_date": timezone.localdate() + timedelta(days=3)}
    )

    assert {a.state for a in MemberAccount.objects.all()} == {S.READY}


@moto_db
def test_extending_into_the_past_is_refused_and_changes_nothing(course_with_accounts):
    course, _ = course_with_accounts
    before = course.end_date

    with pytest.raises(ending.EndingError, match="in the past"):
        ending.course_extend(actor=None, course=course, end_date=timezone.localdate() - timedelta(days=1))

    course.refresh_from_db()
    assert course.end_date == before


@moto_db
def test_an_excluded_student_is_left_alone_and_an_ended_one_comes_back_when_excluded(course_with_accounts, personas):
    _, (first, second) = course_with_accounts
    ending.account_exclude(actor=personas.instructor, account=first, excluded=True)

    ending.courses_end_tick(now=days_from_now(11))
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.state == S.READY
    assert second.state == S.ENDED

    ending.account_exclude(actor=personas.instructor, account=second, excluded=True)
    second.refresh_from_db()
    assert second.state == S.READY

    ending.courses_end_tick(now=days_from_now(30))
    assert {a.state for a in MemberAccount.objects.all()} == {S.READY}
    assert AuditEvent.objects.filter(action=AuditAction.ACCOUNT_EXCLUDED, actor=personas.instructor).count() == 2


@moto_db
def test_a_recycle_course_returns_its_accounts_to_the_pool(course_with_accounts, aws):
    from accounts_app.models import AwsOrganization

    course, accounts = course_with_accounts
    Course.objects.filter(pk=course.pk).update(end_policy=EndPolicy.RECYCLE, grace_days=0)
    course.refresh_from_db()

    ending.course_end(actor=None, course=course)
    ending.courses_end_tick(now=days_from_now(1))

    pool_ou = AwsOrganization.load().pool_ou_id
    for account in accounts:
        account.refresh_from_db()
        assert account.state == S.RECYCLED
        pooled = MemberAccount.objects.get(aws_account_id=account.aws_account_id, course=None)
        assert pooled.state == S.COOLING_DOWN
        parents = aws.client("organizations").list_parents(ChildId=account.aws_account_id)["Parents"]
        assert parents[0]["Id"] == pool_ou


@moto_db
def test_the_instructor_ends_the_course_early_from_the_page_and_the_ta_cannot(course_with_accounts, personas):
    course, _ = course_with_accounts
    page = reverse("courses:end", kwargs={"course_id": course.pk})

    ta_view = personas.client("ta").get(page)
    assert ta_view.status_code == 200
    assert b"End the course now" not in ta_view.content
    assert personas.client("ta").post(reverse("courses:end_now", kwargs={"course_id": course.pk})).status_code == 403

    response = personas.client("instructor").post(
        reverse("courses:end_now", kwargs={"course_id": course.pk}), follow=True
    )

    assert b"Ended the course: freezing 2 account(s)." in response.content
    assert {a.state for a in MemberAccount.objects.all()} == {S.ENDED}
    assert AuditEvent.objects.get(action=AuditAction.COURSE_ENDED).actor == personas.instructor


@moto_db
def test_the_cleanup_dry_run_lists_resources_without_deleting_them(course_with_accounts, personas, aws):
    course, (account, _) = course_with_accounts
    s3 = aws.client("s3", account_id=account.aws_account_id)
    s3.create_bucket(Bucket="student-lab-data")
    s3.put_object(Bucket="student-lab-data", Key="results.csv", Body=b"1,2,3")

    personas.client("instructor").post(reverse("courses:cleanup_preview", kwargs={"course_id": course.pk}))
    page = personas.client("instructor").get(reverse("courses:end", kwargs={"course_id": course.pk}))

    account.refresh_from_db()
    listed = account.cleanup_report["preview"]["resources"]
    assert [r["id"] for r in listed] == ["student-lab-data"]
    assert b"student-lab-data" in page.content
    assert s3.list_objects_v2(Bucket="student-lab-data")["KeyCount"] == 1


@moto_db
def test_end_course_dry_run_prints_the_plan_and_changes_nothing(course_with_accounts, aws):
    course, (account, _) = course_with_accounts
    aws.client("s3", account_id=account.aws_account_id).create_bucket(Bucket="kept-until-the-end")
    before = list(MemberAccount.objects.values_list("state", "cleanup_report"))
    out = StringIO()

    call_command("end_course", "cs101", "--dry-run", stdout=out)

    text = out.getvalue()
    assert "dry run, nothing changes" in text
    assert "frozen, then cleaned up and closed" in text
    assert "kept-until-the-end" in text
    assert list(MemberAccount.objects.values_list("state", "cleanup_report")) == before
    course.refresh_from_db()
    assert not course.is_ended


@moto_db
def test_end_course_with_skip_grace_runs_the_whole_policy_now(course_with_accounts, aws):
    _, accounts = course_with_accounts
    out = StringIO()

    call_command("end_course", "cs101", "--skip-grace", stdout=out)

    assert "End policy started for 2 account(s)." in out.getvalue()
    for account in accounts:
        account.refresh_from_db()
        assert account.state == S.CLOSED
        assert aws_state(aws, account.aws_account_id) == "SUSPENDED"


def test_end_course_names_an_unknown_course(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No course has the code"):
        call_command("end_course", "nope101", "--dry-run")


@moto_db
def test_removing_a_student_from_the_roster_cleans_up_and_closes_their_account(course_with_accounts, personas, aws):
    course, (account, other) = course_with_accounts
    member = account.membership

    response = personas.client("instructor").post(
        reverse("courses:member_remove", kwargs={"course_id": course.pk, "member_id": member.pk})
    )

    assert response.status_code == 302
    account.refresh_from_db()
    other.refresh_from_db()
    assert account.membership is None
    assert account.state == S.CLOSED
    assert aws_state(aws, account.aws_account_id) == "SUSPENDED"
    assert other.state == S.READY
    assert AuditEvent.objects.filter(action=AuditAction.ACCOUNT_ENDED, actor=personas.instructor).exists()


@moto_db
def test_freezing_a_course_attaches_the_freeze_scp_without_searching_for_it_per_account(course_with_accounts, aws):
    from tests.support.aws_script import AwsScript

    course, accounts = course_with_accounts
    script = AwsScript(aws)

    ending.course_end(actor=None, course=course)

    assert {a.state for a in MemberAccount.objects.filter(pk__in=[a.pk for a in accounts])} == {S.ENDED}
    assert script.calls["AttachPolicy"] == 2
    assert script.calls["ListPolicies"] == 0  # aws_bootstrap stored the freeze SCP's id
