"""Every AWS action on a member account passes the gate first (accounts_app/services/gates.py):
the record's state allows it, moved there by a compare-and-swap before AWS is called, and AWS
shows the account in the record's OU with the portal's tag. And the web tier calls AWS for
nothing: its views change the database and queue tasks.

AWS is moto (the `aws` fixture). `AwsScript` (tests/support/aws_script.py) records every API
call the portal makes at botocore's `before-parameter-build` event, and scripts AWS's throttling
where a test needs it; `NoAwsCalls` (tests/support/aws_calls.py) stops any botocore call at all.
Tests that run with a rolled-back transaction run the tasks queued "on commit" only inside
`django_capture_on_commit_callbacks(execute=True)`, i.e. where the test says so.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from celery.app.task import Task
from django.core.cache import cache
from django.urls import resolve, reverse
from django.utils import timezone

from accounts_app.choices import AccountState as S
from accounts_app.choices import HandoverStatus
from accounts_app.models import (
    AccountEvent,
    AuditEvent,
    AwsOrganization,
    Course,
    Handover,
    MemberAccount,
    Membership,
)
from accounts_app.services.cleanup import account_cleanup_preview
from accounts_app.services.freezing import account_freeze_sync, freeze_reconcile
from accounts_app.services.gates import ALLOWED_STATES, Action, action_gate
from accounts_app.services.guardrails import course_guardrails_apply, freeze_policy_id
from accounts_app.services.handover import GATE_REFUSED, handover_advance
from accounts_app.services.ownership import MANAGED_BY_TAG, NotOurs
from accounts_app.services.reconcile import reconcile
from accounts_app.tasks import account_freeze_sync_task
from billing_app.models import StudentBudget
from billing_app.services.budgets import account_freeze, account_unfreeze, budget_ensure
from portal.aws import organizations
from portal.aws.errors import TransientAwsError
from portal.aws.session import client
from tests.accounts_app import test_permissions as authorization
from tests.accounts_app.test_permissions import DONE, MATRIX, PERSONAS, REQUESTS
from tests.support.account_api import AccountApi
from tests.support.accounts import ready_account
from tests.support.aws_calls import NoAwsCalls, place_as_configured
from tests.support.aws_script import AwsScript, Fault

# The authorization matrix's scene (and its settings), fixtures of this module too.
scene = authorization.scene
fast_test_settings = authorization.fast_test_settings

# Calls that change an account, its policies or its budget: none may be made past a closed gate.
WRITES = {
    "AttachPolicy",
    "DetachPolicy",
    "CreateBudget",
    "UpdateBudget",
    "DeleteBudget",
    "CreateBudgetAction",
    "MoveAccount",
    "TagResource",
    "UntagResource",
    "RemoveAccountFromOrganization",
    "CloseAccount",
    "StartPrimaryEmailUpdate",
    "AcceptPrimaryEmailUpdate",
    "PutAlternateContact",
    # Inside the member account: what a freeze stops and an unfreeze starts again.
    "StopInstances",
    "StartInstances",
    "ModifyInstanceAttribute",
    "UpdateAutoScalingGroup",
    "StopNotebookInstance",
    "StartNotebookInstance",
    "DeleteEndpoint",
    "CreateEndpoint",
    "StopDBInstance",
    "StartDBInstance",
    "StopDBCluster",
    "StartDBCluster",
}


def moto_member(
    personas,
    *,
    course: Course | None = None,
    membership: Membership | None = None,
    state: str = S.READY,
    name: str = "cs101-student",
) -> MemberAccount:
    """A record and its account, made in moto and placed where vending puts it."""
    course = course or personas.course
    email = f"aws+{name}@school.example"
    created = client("organizations").create_account(Email=email, AccountName=name)
    account = MemberAccount.objects.create(
        course=course,
        membership=membership or Membership.objects.get(user=personas.student),
        state=state,
        root_email=email,
        account_name=name,
        aws_account_id=created["CreateAccountStatus"]["AccountId"],
    )
    return place_as_configured(account)


def freeze_scp_on(account_id: str) -> bool:
    return account_id in organizations.policy_targets(freeze_policy_id())


def writes(script: AwsScript) -> list[str]:
    return [operation for operation in script.log if operation in WRITES]


# --- Freeze and unfreeze: the state first, AWS after, behind the gate -----------------------------


NOT_READY = [
    S.REQUESTED,
    S.CONFIGURING,
    S.POOLED,
    S.FROZEN,
    S.ENDED,
    S.CLEANING,
    S.RECYCLED,
    S.HANDED_OVER,
    S.CLOSED,
    S.FAILED,
]


@pytest.mark.django_db
@pytest.mark.parametrize("state", NOT_READY)
def test_freezing_an_account_that_is_not_ready_calls_no_aws_and_changes_nothing(
    personas, aws, script, state, django_capture_on_commit_callbacks
):
    account = moto_member(personas, state=state)
    script.log.clear()

    with django_capture_on_commit_callbacks(execute=True) as queued:
        frozen = account_freeze(actor=personas.instructor, account=account, reason="Paused")

    assert frozen is False
    assert queued == []
    assert script.log == []
    account.refresh_from_db()
    assert (account.state, account.freeze_sync_pending) == (state, False)
    assert not AccountEvent.objects.filter(account=account).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("where", ["another course's OU", "the organization's root", "untagged", "management account"])
def test_the_freeze_of_an_account_that_is_not_the_portals_attaches_nothing(
    personas, aws, script, where, django_capture_on_commit_callbacks
):
    account = moto_member(personas)
    organizations = aws.client("organizations")
    if where == "another course's OU":
        other = course_guardrails_apply(actor=None, course=personas.other_course)
        organizations.move_account(
            AccountId=account.aws_account_id,
            SourceParentId=personas.course.aws_ou_id,
            DestinationParentId=other.aws_ou_id,
        )
    elif where == "the organization's root":
        root = organizations.list_roots()["Roots"][0]["Id"]
        organizations.move_account(
            AccountId=account.aws_account_id, SourceParentId=personas.course.aws_ou_id, DestinationParentId=root
        )
    elif where == "untagged":
        organizations.untag_resource(ResourceId=account.aws_account_id, TagKeys=list(MANAGED_BY_TAG))
    else:
        management = AwsOrganization.load().management_account_id
        MemberAccount.objects.filter(pk=account.pk).update(aws_account_id=management)
        account.refresh_from_db()
    script.log.clear()

    with django_capture_on_commit_callbacks(execute=True):
        assert account_freeze(actor=personas.instructor, account=account, reason="Paused")

    calls = list(script.log)
    assert not freeze_scp_on(account.aws_account_id)
    assert [call for call in calls if call in WRITES] == []
    account.refresh_from_db()
    # The record says frozen (the instructor's decision stands); AWS was left alone, and staff
    # read why on the account. The reconciler keeps reporting the difference.
    assert (account.state, account.freeze_sync_pending) == (S.FROZEN, True)
    assert account.last_error
    if where == "management account":
        assert calls == []  # refused before AWS was even asked
    else:
        assert account.aws_account_id in account.last_error


@pytest.mark.django_db
def test_the_state_moves_before_aws_is_called_and_a_throttled_attach_is_retried(
    personas, aws, script, django_capture_on_commit_callbacks
):
    account = moto_member(personas)
    script.answer("organizations", "AttachPolicy", Fault("TooManyRequestsException", "Rate exceeded"))
    script.log.clear()

    with django_capture_on_commit_callbacks():
        assert account_freeze(actor=personas.instructor, account=account, reason="Paused")

    # Frozen in the database, AWS not called yet: the call is the task's, queued on commit.
    account.refresh_from_db()
    assert (account.state, account.freeze_sync_pending) == (S.FROZEN, True)
    assert script.log == []
    assert TransientAwsError in account_freeze_sync_task.autoretry_for
    with pytest.raises(TransientAwsError):
        account_freeze_sync(account_id=account.pk)  # the task's first run: AWS throttles, Celery retries
    account.refresh_from_db()
    assert (account.state, account.freeze_sync_pending) == (S.FROZEN, True)

    assert account_freeze_sync(account_id=account.pk)  # the retry; AWS takes it this time

    account.refresh_from_db()
    assert (account.state, account.freeze_sync_pending, account.last_error) == (S.FROZEN, False, "")
    assert freeze_scp_on(account.aws_account_id)


@pytest.mark.django_db
def test_a_second_freeze_of_the_same_account_makes_no_second_call(
    personas, aws, script, django_capture_on_commit_callbacks
):
    account = moto_member(personas)
    second_view = MemberAccount.objects.get(pk=account.pk)  # loaded by a second request, still ready
    script.log.clear()

    with django_capture_on_commit_callbacks(execute=True):
        assert account_freeze(actor=personas.instructor, account=account, reason="First click")
    with django_capture_on_commit_callbacks(execute=True) as queued:
        assert account_freeze(actor=personas.instructor, account=second_view, reason="Second click") is False

    assert queued == []
    assert script.log.count("AttachPolicy") == 1
    assert AccountEvent.objects.filter(account=account).count() == 1


@pytest.mark.django_db
def test_unfreezing_an_account_that_is_not_frozen_changes_no_budget_and_calls_no_aws(
    personas, aws, script, django_capture_on_commit_callbacks
):
    account = moto_member(personas)
    StudentBudget.objects.create(account=account, aws_budget_name=f"classroom-cloud-{account.aws_account_id}")
    script.log.clear()

    with django_capture_on_commit_callbacks(execute=True) as queued:
        done = account_unfreeze(actor=personas.instructor, account=account, new_budget=Decimal(500))

    assert done is False
    assert queued == []
    assert script.log == []
    assert StudentBudget.objects.get(account=account).amount_override is None


@pytest.mark.django_db
def test_the_sync_follows_the_state_when_it_runs_not_when_it_was_queued(
    personas, aws, django_capture_on_commit_callbacks
):
    account = moto_member(personas)
    with django_capture_on_commit_callbacks():  # queued, not run
        account_freeze(actor=personas.instructor, account=account, reason="Paused")
        account_unfreeze(actor=personas.instructor, account=account)

    assert account_freeze_sync(account_id=account.pk)  # the freeze's task, late: the account is ready now

    account.refresh_from_db()
    assert (account.state, account.freeze_sync_pending) == (S.READY, False)
    assert not freeze_scp_on(account.aws_account_id)


@pytest.mark.django_db(transaction=True)
def test_the_end_of_a_course_and_its_extension_move_the_state_first(personas, aws, script):
    from accounts_app.services.ending import account_end, account_unend

    account = moto_member(personas)
    Course.objects.filter(pk=personas.course.pk).update(ended_at=timezone.now())

    assert account_end(account_id=account.pk)  # the task runs on commit (eagerly here)

    account.refresh_from_db()
    assert (account.state, account.freeze_sync_pending) == (S.ENDED, False)
    assert freeze_scp_on(account.aws_account_id)
    assert account_unend(account_id=account.pk)
    account.refresh_from_db()
    assert (account.state, account.freeze_sync_pending) == (S.READY, False)
    assert not freeze_scp_on(account.aws_account_id)


# --- The reconciler --------------------------------------------------------------------------------


def settle(account: MemberAccount) -> None:
    """As if the last transition were an hour old."""
    MemberAccount.objects.filter(pk=account.pk).update(state_changed_at=timezone.now() - timedelta(hours=1))


@pytest.mark.django_db
def test_the_reconciler_puts_back_a_freeze_scp_taken_off_by_hand(personas, aws, django_capture_on_commit_callbacks):
    account = moto_member(personas, state=S.FROZEN)
    settle(account)

    with django_capture_on_commit_callbacks(execute=True):
        drift = reconcile()

    assert any(account.aws_account_id in line and "freeze SCP is off" in line for line in drift)
    assert freeze_scp_on(account.aws_account_id)
    assert AwsOrganization.load().drift == drift


@pytest.mark.django_db
def test_the_reconciler_takes_off_a_freeze_scp_put_on_a_ready_account_by_hand(
    personas, aws, django_capture_on_commit_callbacks
):
    account = moto_member(personas)
    aws.client("organizations").attach_policy(PolicyId=freeze_policy_id(), TargetId=account.aws_account_id)
    settle(account)

    with django_capture_on_commit_callbacks(execute=True):
        drift = freeze_reconcile()

    assert drift == [
        f"cs101-student ({account.aws_account_id}) is ready here, but its freeze SCP is on in AWS: setting it right."
    ]
    assert not freeze_scp_on(account.aws_account_id)
    account.refresh_from_db()
    assert (account.state, account.freeze_sync_pending) == (S.READY, False)


@pytest.mark.django_db
def test_the_reconciler_leaves_a_freeze_by_aws_budgets_action_in_place(
    personas, aws, settings, django_capture_on_commit_callbacks
):
    settings.PORTAL_AWS_BUDGET_ACTION_ROLE_ARN = "arn:aws:iam::123456789012:role/classroom-cloud-budget-actions"
    Course.objects.filter(pk=personas.course.pk).update(budget_action_enabled=True)
    account = moto_member(personas)
    # AWS Budgets' APPLY_SCP_POLICY action attached the freeze SCP at 100% of the budget.
    aws.client("organizations").attach_policy(PolicyId=freeze_policy_id(), TargetId=account.aws_account_id)
    settle(account)

    with django_capture_on_commit_callbacks(execute=True) as queued:
        drift = freeze_reconcile()

    assert queued == []
    assert drift == [
        f"cs101-student ({account.aws_account_id}) is ready here, but AWS Budgets' action has frozen it in AWS."
    ]
    assert freeze_scp_on(account.aws_account_id)


@pytest.mark.django_db
def test_the_reconciler_leaves_a_change_whose_task_is_on_its_way(personas, aws, django_capture_on_commit_callbacks):
    account = moto_member(personas)
    with django_capture_on_commit_callbacks():  # the freeze's task is still in the queue
        account_freeze(actor=personas.instructor, account=account, reason="Paused")

    with django_capture_on_commit_callbacks(execute=True) as queued:
        drift = freeze_reconcile()

    assert (drift, queued) == ([], [])


# --- Other actions behind the gate -----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("state", [S.ENDED, S.CLEANING, S.RECYCLED, S.HANDED_OVER, S.FAILED])
def test_an_aws_budget_is_changed_only_for_an_account_in_use(personas, aws, script, state):
    account = moto_member(personas, state=state)
    script.log.clear()

    assert budget_ensure(account_id=account.pk) is None

    assert script.log == []
    assert "AWS Budget not changed" in MemberAccount.objects.get(pk=account.pk).last_error


@pytest.mark.django_db
def test_a_failed_record_lists_no_resources(personas, aws, script):
    account = moto_member(personas, state=S.FAILED)
    script.log.clear()

    preview = account_cleanup_preview(account_id=account.pk)

    assert (preview.resources, script.log) == ([], [])
    assert "needs attention" in preview.error


@pytest.mark.django_db
def test_a_handover_stops_when_the_account_is_no_longer_in_the_courses_ou(personas, aws, script):
    AccountApi(aws)
    account = moto_member(personas, state=S.HANDOVER)
    handover = Handover.objects.create(
        account=account,
        status=HandoverStatus.APPROVED,
        new_root_email="me@home.example",
        contact_name="Stella Student",
        contact_phone="+1 555 0100",
        previous_state=S.READY,
    )
    organizations = aws.client("organizations")
    root = organizations.list_roots()["Roots"][0]["Id"]
    organizations.move_account(
        AccountId=account.aws_account_id, SourceParentId=personas.course.aws_ou_id, DestinationParentId=root
    )
    script.log.clear()

    handover_advance(handover_id=handover.pk)

    assert writes(script) == []
    handover.refresh_from_db()
    assert handover.code_sent_at is None
    assert handover.last_error == GATE_REFUSED
    assert account.aws_account_id not in handover.last_error  # the student reads it
    [stopped] = AuditEvent.objects.filter(course=personas.course, summary__startswith="Handover stopped")
    assert account.aws_account_id in stopped.summary  # the staff read why

    handover_advance(handover_id=handover.pk)  # the reconciler's next try: still stopped, said once

    assert AuditEvent.objects.filter(course=personas.course, summary__startswith="Handover stopped").count() == 1
    assert writes(script) == []


@pytest.mark.django_db
def test_a_course_scp_is_attached_only_to_an_ou_under_the_portals(personas, aws, script):
    organizations = aws.client("organizations")
    root = organizations.list_roots()["Roots"][0]["Id"]
    foreign = organizations.create_organizational_unit(ParentId=root, Name="finance")["OrganizationalUnit"]["Id"]
    Course.objects.filter(pk=personas.course.pk).update(aws_ou_id=foreign)
    personas.course.refresh_from_db()
    script.log.clear()

    with pytest.raises(NotOurs, match="under"):
        course_guardrails_apply(actor=None, course=personas.course)

    assert "AttachPolicy" not in script.log
    attached = organizations.list_policies_for_target(TargetId=foreign, Filter="SERVICE_CONTROL_POLICY")["Policies"]
    assert [policy["Name"] for policy in attached] == ["FullAWSAccess"]
    assert "not under the portal's OU" in Course.objects.get(pk=personas.course.pk).guardrails_error


def test_no_record_state_after_the_accounts_life_allows_any_action():
    after_life = {S.RECYCLED, S.HANDED_OVER, S.CLOSED, S.FAILED}
    before_configuring = {
        S.REQUESTED,
        S.CREATING,
        S.INVITING,
        S.INVITED,
        S.AWAITING_ACCESS_ROLE,
        S.WAITING_FOR_QUOTA,
        S.CONFIGURING,
        S.WAITING_FOR_DIRECTORY,
    }
    for action, states in ALLOWED_STATES.items():
        assert not states & (after_life | before_configuring), action


# --- An old course's instructor and an account that now serves another course --------------------


@pytest.fixture
def recycled(personas, aws):
    """cs101's record of an account that was recycled (RECYCLED, with its student and its old AWS
    Budget's name), and the account's new record in bio200, where it now serves Olga."""
    new_life = moto_member(
        personas,
        course=personas.other_course,
        membership=Membership.objects.get(user=personas.other_student),
        name="bio200-olga",
    )
    old_life = MemberAccount.objects.create(
        course=personas.course,
        membership=Membership.objects.get(user=personas.student),
        state=S.RECYCLED,
        root_email="aws+cs101-old@school.example",
        account_name="cs101-student",
        aws_account_id=new_life.aws_account_id,
    )
    StudentBudget.objects.create(account=old_life, aws_budget_name=f"classroom-cloud-{new_life.aws_account_id}")
    Handover.objects.create(
        account=old_life,
        new_root_email="me@home.example",
        contact_name="Stella Student",
        contact_phone="+1 555 0100",
        previous_state=S.READY,
    )
    return old_life, new_life


OLD_RECORD_ACTIONS = [
    ("billing:freeze", {}),
    ("billing:unfreeze", {"budget": "500"}),
    ("courses:handover_approve", {}),
    ("courses:handover_decline", {"reason": "No."}),
    ("courses:account_retry", {}),
]


def account_rows() -> list[dict]:
    return list(MemberAccount.objects.order_by("pk").values())


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "data"), OLD_RECORD_ACTIONS)
def test_the_old_courses_instructor_cannot_reach_the_account_through_its_recycled_record(
    personas, aws, script, recycled, name, data, django_capture_on_commit_callbacks
):
    old_life, new_life = recycled
    rows, budgets = account_rows(), list(StudentBudget.objects.values())
    events = AccountEvent.objects.count()
    script.log.clear()

    with django_capture_on_commit_callbacks(execute=True):  # whatever it queues runs
        response = personas.client("instructor").post(
            reverse(name, kwargs={"course_id": personas.course.pk, "account_id": old_life.pk}), data
        )

    assert response.status_code == 302
    assert script.log == []
    assert account_rows() == rows
    assert list(StudentBudget.objects.values()) == budgets
    assert AccountEvent.objects.count() == events
    assert not freeze_scp_on(new_life.aws_account_id)


@pytest.mark.django_db
def test_the_old_courses_cleanup_preview_lists_nothing_of_the_recycled_account(
    personas, aws, script, recycled, django_capture_on_commit_callbacks
):
    old_life, _ = recycled
    script.log.clear()

    with django_capture_on_commit_callbacks(execute=True):
        personas.client("instructor").post(reverse("courses:cleanup_preview", kwargs={"course_id": personas.course.pk}))

    assert script.log == []
    assert MemberAccount.objects.get(pk=old_life.pk).cleanup_report == {}


# --- The web tier calls no AWS --------------------------------------------------------------------


@pytest.fixture
def queued_tasks(monkeypatch) -> list[tuple[str, tuple]]:
    """Tasks are queued, never run: apply_async only records the task and its arguments."""
    queued: list[tuple[str, tuple]] = []

    def record(task, args=None, kwargs=None, **options):
        queued.append((task.name, tuple(args or ())))

    monkeypatch.setattr(Task, "apply_async", record)
    return queued


def successful_requests() -> list:
    """Every URL of the authorization matrix, as each persona who may use it."""
    return [
        pytest.param(name, method, persona, outcome, id=f"{name}-{method}-{persona}")
        for name, method, *outcomes in MATRIX
        for persona, outcome in zip(PERSONAS, outcomes, strict=True)
        if outcome == DONE or outcome == 200
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "method", "persona", "outcome"), successful_requests())
def test_no_page_or_action_calls_aws(
    scene, monkeypatch, queued_tasks, name, method, persona, outcome, django_capture_on_commit_callbacks
):
    call = REQUESTS[name]
    call.prepare(scene)
    path = reverse(name, kwargs=call.kwargs(scene))
    client = scene.personas.client(persona)
    guard = NoAwsCalls(monkeypatch)

    # Whatever runs when the request's transaction commits runs here too (emails, queueing).
    with django_capture_on_commit_callbacks(execute=True):
        response = client.get(path) if method == "GET" else client.post(path, call.data(scene))

    assert guard.calls == []
    if outcome == DONE:
        assert response.status_code == 302
        assert resolve(urlsplit(response["Location"]).path).view_name == call.redirects_to
    else:
        assert response.status_code == outcome


def frozen(scene) -> None:
    MemberAccount.objects.filter(pk=scene.student_account.pk).update(state=S.FROZEN)
    StudentBudget.objects.create(account=scene.student_account, aws_budget_name="classroom-cloud-111111111111")


def awaiting_role(scene) -> None:
    MemberAccount.objects.filter(pk=scene.student_account.pk).update(state=S.AWAITING_ACCESS_ROLE)


def code_sent(scene) -> None:
    record = authorization.handover_of(scene, approved=True)
    Handover.objects.filter(pk=record.pk).update(root_email_moved_at=None)


# (url name, persona, what the scene needs, what is posted, the tasks queued in place of AWS calls,
# and the one that sends the emails they decided)
FORMERLY_AWS = [
    (
        "billing:freeze",
        "instructor",
        lambda s: None,
        {},
        ["accounts_app.tasks.account_freeze_sync_task", "accounts_app.tasks.emails_deliver_task"],
    ),
    (
        "billing:unfreeze",
        "instructor",
        frozen,
        {"budget": "120"},
        ["billing_app.tasks.budget_ensure_task", "accounts_app.tasks.account_freeze_sync_task"],
    ),
    (
        "courses:account_check_role",
        "student",
        awaiting_role,
        {},
        ["accounts_app.tasks.account_verify_access_role_task"],
    ),
    (
        "courses:my_handover_code",
        "student",
        code_sent,
        {"code": "123456"},
        ["accounts_app.tasks.handover_code_check_task"],
    ),
    ("courses:my_handover_resend", "student", code_sent, {}, ["accounts_app.tasks.handover_advance_task"]),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "persona", "prepare", "data", "tasks"), FORMERLY_AWS)
def test_the_actions_that_called_aws_queue_a_task_instead(
    scene, monkeypatch, queued_tasks, name, persona, prepare, data, tasks, django_capture_on_commit_callbacks
):
    prepare(scene)
    kwargs = {"course_id": scene.course.pk}
    if name.startswith("billing:"):
        kwargs["account_id"] = scene.student_account.pk
    guard = NoAwsCalls(monkeypatch)

    with django_capture_on_commit_callbacks(execute=True):
        response = scene.personas.client(persona).post(reverse(name, kwargs=kwargs), data)

    assert response.status_code == 302
    assert guard.calls == []
    assert [task for task, _ in queued_tasks] == tasks


@pytest.mark.django_db
def test_the_cost_page_says_the_freeze_is_on_its_way_and_shows_staff_why_it_stopped(scene):
    account = scene.student_account
    instructor = scene.personas.client("instructor")
    page = reverse("billing:student_costs", kwargs={"course_id": scene.course.pk, "account_id": account.pk})
    MemberAccount.objects.filter(pk=account.pk).update(state=S.FROZEN, freeze_sync_pending=True)

    pending = instructor.get(page).content.decode()
    polled = instructor.get(page, headers={"HX-Request": "true"}).content.decode()
    MemberAccount.objects.filter(pk=account.pk).update(last_error="AWS account 111111111111 lacks the tag")
    stopped = instructor.get(page).content.decode()

    assert "Freezing the account in AWS… this panel updates by itself." in pending
    assert 'hx-trigger="every 3s"' in pending
    assert polled.lstrip().startswith('<section id="freeze-panel"')
    assert "AWS account 111111111111 lacks the tag" in stopped
    assert 'hx-trigger="every 3s"' not in stopped


@pytest.mark.django_db
def test_the_budget_made_right_after_setup_goes_by_aws_answers_to_the_setup_and_other_actions_ask(
    personas, aws, script
):
    """Setting an account up moves it into its course's OU and reads its tags, minutes before
    its budget is made (in the management account): those answers are the budget gate's. Any
    other action, and the budget once they are old, asks AWS again."""
    account = ready_account(Membership.objects.get(user=personas.student))
    organization = AwsOrganization.load()
    ownership_calls = ("ListParents", "ListTagsForResource")
    before = [script.calls[operation] for operation in ownership_calls]

    action_gate(account, action=Action.BUDGET, organization=organization)
    assert [script.calls[operation] for operation in ownership_calls] == before

    action_gate(account, action=Action.UNFREEZE, organization=organization)
    assert [script.calls[operation] for operation in ownership_calls] == [n + 1 for n in before]

    cache.clear()  # the setup's answers forgotten, as after SETUP_CONFIRMATION_SECONDS
    organizations.untag_account(account.aws_account_id, ["managed-by"])
    with pytest.raises(NotOurs):
        action_gate(account, action=Action.BUDGET, organization=organization)
