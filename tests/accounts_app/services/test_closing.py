"""The close queue against AWS's CloseAccount quotas, scripted on top of moto.

moto closes an account at once (SUSPENDED) and never refuses; AWS takes time (PENDING_CLOSURE),
allows three closures in progress, and max(250, 20% of the members) per rolling 30 days, and says
CLOSE_ACCOUNT_QUOTA_EXCEEDED when that is used up. Services are called directly: these tests run
in a transaction that is rolled back, so the follow-up tasks never run by themselves.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from accounts_app.choices import AccountState as S
from accounts_app.lifecycle import transition
from accounts_app.models import AuditEvent, AwsOrganization, MemberAccount
from accounts_app.selectors import close_queue_status, closure_quota
from accounts_app.services import closing
from accounts_app.services.closing import account_poll_closure, close_dispatch
from accounts_app.services.ownership import MANAGED_BY_TAG
from tests.factories import MembershipFactory
from tests.support.aws_script import LOST_AFTER_AWS, Edit, Fault


def queued_account(aws, course, n: int) -> MemberAccount:
    """A cleaned account of `course` waiting in the close queue, real in moto: in the course OU
    and tagged as the portal's."""
    from accounts_app.services.guardrails import course_guardrails_apply

    if not course.aws_ou_id:
        course_guardrails_apply(actor=None, course=course)
    organizations = aws.client("organizations")
    email = f"aws+close-{n}@school.example.edu"
    status = organizations.create_account(Email=email, AccountName=f"close-{n}")["CreateAccountStatus"]
    account_id = organizations.describe_create_account_status(CreateAccountRequestId=status["Id"])[
        "CreateAccountStatus"
    ]["AccountId"]
    root = organizations.list_roots()["Roots"][0]["Id"]
    organizations.move_account(AccountId=account_id, SourceParentId=root, DestinationParentId=course.aws_ou_id)
    organizations.tag_resource(ResourceId=account_id, Tags=[{"Key": k, "Value": v} for k, v in MANAGED_BY_TAG.items()])
    member = MembershipFactory(course=course, email=f"closing{n}@school.example")
    return MemberAccount.objects.create(
        course=course,
        membership=member,
        state=S.CLOSE_QUEUED,
        aws_account_id=account_id,
        root_email=email,
        account_name=f"close-{n}",
    )


def aws_state(aws, account_id: str) -> str:
    return aws.client("organizations").describe_account(AccountId=account_id)["Account"]["State"]


def pending_closure(parsed):
    parsed["Account"]["State"] = "PENDING_CLOSURE"


def states() -> list[str]:
    return list(MemberAccount.objects.order_by("pk").values_list("state", flat=True))


@pytest.mark.django_db
def test_a_queued_account_is_closed_and_followed_from_pending_closure_to_suspended(personas, aws, script, clock):
    account = queued_account(aws, personas.course, 1)
    # AWS takes a while: the first look says PENDING_CLOSURE (the look before closing says ACTIVE).
    script.answer("organizations", "DescribeAccount", Edit(lambda p: None), Edit(pending_closure))

    close_dispatch()

    account.refresh_from_db()
    assert account.state == S.CLOSING
    assert account.close_submitted_at == clock.now
    assert script.calls["CloseAccount"] == 1

    assert account_poll_closure(account_id=account.pk) == closing.CLOSURE_POLL_SECONDS
    account.refresh_from_db()
    assert account.state == S.CLOSING

    assert account_poll_closure(account_id=account.pk) is None
    account.refresh_from_db()
    assert account.state == S.CLOSED
    assert aws_state(aws, account.aws_account_id) == "SUSPENDED"
    assert AuditEvent.objects.filter(action="account.closed", object_id=str(account.pk)).exists()


@pytest.mark.django_db
def test_no_more_than_three_closures_are_in_progress(personas, aws, script, settings):
    accounts = [queued_account(aws, personas.course, n) for n in range(5)]
    script.always("organizations", "DescribeAccount", Edit(lambda p: p["Account"].update(State="ACTIVE")))

    for _ in range(5):
        close_dispatch()

    assert states() == [S.CLOSING] * 3 + [S.CLOSE_QUEUED] * 2
    assert script.calls["CloseAccount"] == 3
    assert close_queue_status().in_progress == 3
    assert {a.pk for a in accounts[:3]} == set(
        MemberAccount.objects.filter(state=S.CLOSING).values_list("pk", flat=True)
    )


@pytest.mark.django_db
def test_closures_are_spaced_by_the_request_rate(personas, aws, script, clock, settings):
    settings.PORTAL_AWS_CLOSE_ACCOUNT_INTERVAL = 20
    queued_account(aws, personas.course, 1)
    queued_account(aws, personas.course, 2)

    assert close_dispatch() == 20
    retry_in = close_dispatch()  # at once: the rate says wait

    assert retry_in == pytest.approx(20)
    assert states() == [S.CLOSING, S.CLOSE_QUEUED]
    clock.advance(timedelta(seconds=21))
    close_dispatch()
    assert states() == [S.CLOSING, S.CLOSING]


@pytest.mark.django_db
def test_the_portal_counts_its_closures_over_thirty_days_against_the_quota(personas, aws, script, clock, settings):
    organization = AwsOrganization.load()
    assert closure_quota(organization) == 250  # fewer than 1,250 members: the floor
    AwsOrganization.objects.filter(pk=organization.pk).update(accounts_in_organization=2000)
    assert closure_quota(AwsOrganization.load()) == 400  # 20% of 2,000
    AwsOrganization.objects.filter(pk=organization.pk).update(accounts_in_organization=9000)
    assert closure_quota(AwsOrganization.load()) == 1000  # the ceiling

    AwsOrganization.objects.filter(pk=organization.pk).update(accounts_in_organization=0)
    settings.PORTAL_AWS_MAX_CLOSURES_IN_PROGRESS = 1000
    # 250 closures 29 days ago use up the window; one queued account waits.
    MemberAccount.objects.bulk_create(
        MemberAccount(
            course=personas.course,
            state=S.CLOSED,
            account_name=f"old-{n}",
            root_email=f"old-{n}@school.example.edu",
            aws_account_id=f"{700000000000 + n}",
            close_submitted_at=clock.now - timedelta(days=29),
        )
        for n in range(250)
    )
    account = queued_account(aws, personas.course, 1)

    close_dispatch()
    account.refresh_from_db()
    assert account.state == S.CLOSE_QUEUED
    assert close_queue_status().quota_left == 0
    assert script.calls["CloseAccount"] == 0

    clock.advance(timedelta(days=1, minutes=1))  # the old closures leave the window
    close_dispatch()
    account.refresh_from_db()
    assert account.state == S.CLOSING


@pytest.mark.django_db
def test_close_account_quota_exceeded_is_back_pressure_not_failure(personas, aws, script, clock, settings):
    account = queued_account(aws, personas.course, 1)
    script.answer(
        "organizations",
        "CloseAccount",
        Fault(
            "ConstraintViolationException",
            "You have exceeded close account quota for the past 30 days.",
            Reason="CLOSE_ACCOUNT_QUOTA_EXCEEDED",
        ),
    )

    retry_in = close_dispatch()

    account.refresh_from_db()
    assert account.state == S.CLOSE_QUEUED
    assert account.close_submitted_at is None  # AWS did not count it; neither does the portal
    assert account.last_error == ""
    status = close_queue_status()
    assert status.paused_until == clock.now + timedelta(hours=settings.PORTAL_AWS_CLOSE_QUOTA_BACKOFF_HOURS)
    assert "closure quota" in status.pause_reason

    assert close_dispatch() == pytest.approx(settings.PORTAL_AWS_CLOSE_QUOTA_BACKOFF_HOURS * 3600)
    assert script.calls["CloseAccount"] == 1
    assert retry_in is not None

    clock.advance(timedelta(hours=settings.PORTAL_AWS_CLOSE_QUOTA_BACKOFF_HOURS, minutes=1))
    close_dispatch()
    account.refresh_from_db()
    assert account.state == S.CLOSING
    assert aws_state(aws, account.aws_account_id) == "SUSPENDED"


@pytest.mark.django_db
def test_a_lost_close_answer_is_followed_not_sent_again(personas, aws, script):
    account = queued_account(aws, personas.course, 1)
    script.answer("organizations", "CloseAccount", LOST_AFTER_AWS)

    close_dispatch()
    account.refresh_from_db()
    assert account.state == S.CLOSING

    account_poll_closure(account_id=account.pk)
    account.refresh_from_db()
    assert account.state == S.CLOSED
    assert script.sent["CloseAccount"] == 1


@pytest.mark.django_db
def test_a_close_request_that_never_arrived_goes_back_to_the_queue(personas, aws, script, clock):
    account = queued_account(aws, personas.course, 1)
    # The request is lost before AWS saw it: the account stays ACTIVE.
    script.answer("organizations", "CloseAccount", TimeoutError("connection reset"))

    with pytest.raises(TimeoutError):
        close_dispatch()  # the worker dies mid-dispatch; its transaction rolls back
    account.refresh_from_db()
    assert account.state == S.CLOSE_QUEUED

    # A closure whose answer was an unknown outcome, still ACTIVE after the grace: re-queued.
    transition(account, expected=S.CLOSE_QUEUED, to=S.CLOSING, close_submitted_at=clock.now)
    clock.advance(closing.LOST_REQUEST_GRACE + timedelta(seconds=1))
    account_poll_closure(account_id=account.pk)
    account.refresh_from_db()
    assert account.state == S.CLOSE_QUEUED
    assert account.close_submitted_at is None


@pytest.mark.django_db
def test_an_account_already_closing_in_aws_is_followed_without_a_second_request(personas, aws, script):
    account = queued_account(aws, personas.course, 1)
    aws.client("organizations").close_account(AccountId=account.aws_account_id)  # an earlier, lost run

    close_dispatch()

    account.refresh_from_db()
    assert account.state == S.CLOSING
    assert script.calls["CloseAccount"] == 1  # the earlier run's, none from the portal
    account_poll_closure(account_id=account.pk)
    account.refresh_from_db()
    assert account.state == S.CLOSED


@pytest.mark.django_db
@pytest.mark.parametrize("tampering", ["moved", "untagged"])
def test_nothing_is_closed_outside_the_course_ou_or_without_the_portal_tag(personas, aws, script, tampering):
    account = queued_account(aws, personas.course, 1)
    organizations = aws.client("organizations")
    if tampering == "moved":
        root = organizations.list_roots()["Roots"][0]["Id"]
        organizations.move_account(
            AccountId=account.aws_account_id, SourceParentId=personas.course.aws_ou_id, DestinationParentId=root
        )
    else:
        organizations.untag_resource(ResourceId=account.aws_account_id, TagKeys=list(MANAGED_BY_TAG))

    close_dispatch()

    account.refresh_from_db()
    assert account.state == S.FAILED
    assert "deletes and closes" in account.last_error
    assert script.calls["CloseAccount"] == 0
    assert aws_state(aws, account.aws_account_id) == "ACTIVE"


@pytest.mark.django_db
def test_the_queue_survives_a_restart_through_the_reconciler(personas, aws, script, monkeypatch):
    """Queued and closing accounts live in the database: after a restart that lost every
    message, the reconciler queues the dispatch and the polls again."""
    from accounts_app import tasks
    from accounts_app.services.reconcile import reconcile

    queued_account(aws, personas.course, 1)
    closing_account = queued_account(aws, personas.course, 2)
    MemberAccount.objects.filter(pk=closing_account.pk).update(
        state=S.CLOSING, state_changed_at=closing_account.state_changed_at - timedelta(hours=1)
    )
    queued: list[str] = []
    monkeypatch.setattr(tasks.close_dispatch_task, "delay_on_commit", lambda *a: queued.append("dispatch"))
    monkeypatch.setattr(tasks.account_poll_closure_task, "delay_on_commit", lambda *a: queued.append(f"poll {a[0]}"))

    reconcile()

    assert sorted(queued) == ["dispatch", f"poll {closing_account.pk}"]


@pytest.mark.django_db
def test_the_administrator_page_shows_the_queue_and_the_quota_left(personas, aws, script):
    queued_account(aws, personas.course, 1)
    queued_account(aws, personas.course, 2)
    close_dispatch()

    page = personas.client("admin").get(reverse("aws_overview"))

    text = page.content.decode()
    assert "Close queue" in text
    assert "<strong>249</strong> closures left" in text
    assert "close-2" in text
