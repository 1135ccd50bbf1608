"""Each task gives its service the id, and the service loads the row once (accounts_app/tasks.py).

Every family of tasks that moves one account on is run here through its main path, against moto
(the `aws` fixture) with AWS's answers where moto lacks them, and the loads of the account's row
are counted (tests/support/row_loads.py): one per task run. The reads of a single field that the
gate and the compare-and-swap make are not loads, and are not counted.

Tasks are called directly, in the test's rolled-back transaction: the follow-ups they queue on
commit never run, and a task that queues itself again is recorded instead (Celery would run it
at once in the tests' eager mode).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from accounts_app import tasks
from accounts_app.choices import AccountOrigin, HandoverStatus
from accounts_app.choices import AccountState as S
from accounts_app.models import AwsOrganization, Course, Handover, MemberAccount, Membership
from accounts_app.services.account_requests import account_request
from accounts_app.services.handover import handover_approve, handover_cancel, handover_request, handover_submit_code
from accounts_app.services.identity import account_tags
from accounts_app.services.vending_queue import vending_dispatch
from portal.aws import organizations
from tests.factories import MemberAccountFactory
from tests.support.account_api import AccountApi
from tests.support.aws_calls import place_as_configured
from tests.support.aws_script import AwsScript, Fault
from tests.support.row_loads import account_row_loads

pytestmark = pytest.mark.django_db


def student_of(personas) -> Membership:
    return Membership.objects.get(user=personas.student)


def moto_account_id(aws, name: str) -> str:
    created = aws.client("organizations").create_account(Email=f"aws+{name}@school.example", AccountName=name)
    return created["CreateAccountStatus"]["AccountId"]


@pytest.fixture
def ready(personas, aws) -> MemberAccount:
    """The student's READY account, made in moto and placed where vending puts it."""
    account = MemberAccount.objects.create(
        course=personas.course,
        membership=student_of(personas),
        state=S.READY,
        root_email="aws+cs101-student@school.example",
        account_name="cs101-student",
        aws_account_id=moto_account_id(aws, "cs101-student"),
    )
    return place_as_configured(account)


def moved_to(account: MemberAccount, state: S, **fields) -> None:
    """The record as an earlier step leaves it (that step's own task is not what is counted)."""
    MemberAccount.objects.filter(pk=account.pk).update(state=state, **fields)


def state_of(account: MemberAccount) -> str:
    return MemberAccount.objects.values_list("state", flat=True).get(pk=account.pk)


# --- Vending ----------------------------------------------------------------------------------------


def test_the_vending_tasks_load_the_account_once(personas, aws):
    account = account_request(actor=personas.student, membership=student_of(personas))
    vending_dispatch()  # moto makes the account at once: the next run's look finds it made

    with account_row_loads(account) as looked:
        tasks.vending_dispatch_task()
    assert state_of(account) == S.CONFIGURING
    with account_row_loads(account) as configured:
        tasks.account_configure_task(account.pk)
    assert state_of(account) == S.READY

    # The queue's run reads every creation due in one query, never an account by its id.
    assert looked == []
    assert len(configured) == 1, configured


# --- A student's own account ------------------------------------------------------------------------


def handshake(state: str, account: MemberAccount, notes: str = "") -> dict:
    """A handshake of the portal's organization inviting `account`, as AWS describes it."""
    organization = AwsOrganization.load()
    now = datetime.now(UTC)
    return {
        "Id": "h-0a1b2c3d4e5f6a7b",
        "Arn": f"arn:aws:organizations::{organization.management_account_id}:handshake/"
        f"{organization.organization_id}/invite/h-0a1b2c3d4e5f6a7b",
        "Parties": [
            {"Id": account.aws_account_id, "Type": "ACCOUNT"},
            {"Id": organization.organization_id.removeprefix("o-"), "Type": "ORGANIZATION"},
        ],
        "State": state,
        "RequestedTimestamp": now,
        "ExpirationTimestamp": now + timedelta(days=15),
        "Action": "INVITE",
        "Resources": [{"Type": "NOTES", "Value": notes}, {"Type": "ACCOUNT", "Value": account.aws_account_id}],
    }


def test_the_invitation_tasks_load_the_account_once(personas, aws):
    """moto has no handshakes: `AwsScript` answers them as AWS does. The check of an accepted
    invitation goes on to the access role's check in the same run, on the account it loaded."""
    script = AwsScript(aws)
    account = MemberAccountFactory(
        membership=student_of(personas),
        origin=AccountOrigin.INVITED,
        state=S.INVITING,
        aws_account_id=moto_account_id(aws, "stella"),
    )
    # Before the student accepts, AWS does not know the account as a member.
    script.answer("organizations", "DescribeAccount", Fault("AccountNotFoundException", "No such account."))
    script.answer(
        "organizations",
        "InviteAccountToOrganization",
        lambda params: {"Handshake": handshake("OPEN", account, params["Notes"])},
    )

    with account_row_loads(account) as invited:
        tasks.account_invite_task(account.pk)
    assert state_of(account) == S.INVITED

    # The student accepts: AWS puts the invitation's tags on the account as it joins.
    organizations.tag_account(account.aws_account_id, account_tags(account))
    script.answer("organizations", "DescribeHandshake", {"Handshake": handshake("ACCEPTED", account)})
    with account_row_loads(account) as checked:
        tasks.account_check_invitation_task(account.pk)
    assert state_of(account) == S.CONFIGURING

    moved_to(account, S.AWAITING_ACCESS_ROLE)  # as if the role had not worked at first
    with account_row_loads(account) as verified:
        tasks.account_verify_access_role_task(account.pk, personas.student.pk)
    assert state_of(account) == S.CONFIGURING

    assert len(invited) == 1, invited
    assert len(checked) == 1, checked
    assert len(verified) == 1, verified


# --- The end of the course --------------------------------------------------------------------------


def test_the_end_of_course_tasks_load_the_account_once(ready):
    Course.objects.filter(pk=ready.course_id).update(ended_at=timezone.now())
    with account_row_loads(ready) as ended:
        tasks.account_end_task(ready.pk)
    assert state_of(ready) == S.ENDED

    Course.objects.filter(pk=ready.course_id).update(ended_at=None)  # extended
    with account_row_loads(ready) as unended:
        tasks.account_unend_task(ready.pk)
    assert state_of(ready) == S.READY

    assert len(ended) == 1, ended
    assert len(unended) == 1, unended


def test_the_freeze_and_spending_tasks_load_the_account_once(ready):
    moved_to(ready, S.FROZEN, freeze_sync_pending=True)

    with account_row_loads(ready) as synced:
        tasks.account_freeze_sync_task(ready.pk)
    assert not MemberAccount.objects.get(pk=ready.pk).freeze_sync_pending  # the SCP is on
    with account_row_loads(ready) as stopped:
        tasks.account_spending_sync_task(ready.pk)
    assert MemberAccount.objects.get(pk=ready.pk).spending_report["checked_at"]

    assert len(synced) == 1, synced
    assert len(stopped) == 1, stopped


def test_the_cleanup_tasks_load_the_account_once(ready, monkeypatch):
    passes: list[tuple] = []
    monkeypatch.setattr(tasks.account_cleanup_task, "apply_async", lambda *args, **kwargs: passes.append(args))
    moved_to(ready, S.CLEANING, cleanup_report={"destination": "close"})

    with account_row_loads(ready) as previewed:
        tasks.account_cleanup_preview_task(ready.pk)
    assert "preview" in MemberAccount.objects.get(pk=ready.pk).cleanup_report
    with account_row_loads(ready) as cleaned:
        tasks.account_cleanup_task(ready.pk)
    assert state_of(ready) == S.CLOSE_QUEUED  # nothing to delete: done in one pass

    assert passes == []
    assert len(previewed) == 1, previewed
    assert len(cleaned) == 1, cleaned


def test_the_recycle_task_loads_the_account_once(ready):
    moved_to(ready, S.CLEANING, cleanup_report={"destination": "recycle", "access_revoked_at": "2026-12-01"})

    with account_row_loads(ready) as recycled:
        tasks.account_recycle_task(ready.pk)

    assert state_of(ready) == S.RECYCLED
    assert len(recycled) == 1, recycled


def test_the_closure_poll_loads_the_account_once(ready, aws, monkeypatch):
    looks: list[tuple] = []
    monkeypatch.setattr(tasks.account_poll_closure_task, "apply_async", lambda *args, **kwargs: looks.append(args))
    moved_to(ready, S.CLOSING, close_submitted_at=timezone.now())
    aws.client("organizations").close_account(AccountId=ready.aws_account_id)

    with account_row_loads(ready) as polled:
        tasks.account_poll_closure_task(ready.pk)

    assert (state_of(ready), looks) == (S.CLOSED, [])
    assert len(polled) == 1, polled


# --- Handover ---------------------------------------------------------------------------------------


def test_the_handover_tasks_load_the_account_once(personas, aws, ready):
    """The primary-email API, which moto lacks, is played by `AccountApi`. The handover's steps
    read the account the handover was loaded with: its own writes keep it."""
    api = AccountApi(aws)
    record = handover_request(
        actor=personas.student,
        account=ready,
        new_root_email="ada.lovelace@home.example",
        contact_name="Ada Lovelace",
        contact_phone="+44 20 7946 0958",
    )
    assert handover_approve(actor=personas.instructor, handover=record)

    with account_row_loads(ready, handover=record) as code_sent:
        tasks.handover_advance_task(record.pk)
    record.refresh_from_db()
    assert record.code_sent_at is not None

    handover_submit_code(actor=personas.student, handover=record, code=api.code(ready.aws_account_id))
    with account_row_loads(ready, handover=record) as code_checked:
        tasks.handover_code_check_task(record.pk, personas.student.pk)
    with account_row_loads(ready, handover=record) as advanced:
        tasks.handover_advance_task(record.pk)
    record.refresh_from_db()
    assert record.root_email_moved_at and record.contacts_set_at and record.access_removed_at

    assert handover_cancel(actor=personas.student, handover=record, reason="I changed my mind")
    with account_row_loads(ready, handover=record) as returned:
        tasks.handover_return_task(record.pk)
    assert Handover.objects.get(pk=record.pk).status == HandoverStatus.CANCELLED
    assert state_of(ready) == S.READY

    assert len(code_sent) == 1, code_sent
    assert len(code_checked) == 1, code_checked
    assert len(advanced) == 1, advanced
    assert len(returned) == 1, returned
