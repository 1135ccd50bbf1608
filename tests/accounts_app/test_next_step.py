"""What runs next: the task queued for an account in each state, with its argument, once the
change that put it there commits; a whole class asking for accounts wakes the vending queue once;
and the due times in the database, from which beat's tick queues again what the broker lost."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from celery.app.task import Task as CeleryTask
from django.db import connection
from django.utils import timezone

from accounts_app import next_step, tasks
from accounts_app.choices import AccountState as S
from accounts_app.choices import CourseRole, MembershipSource
from accounts_app.lifecycle import WORKING_STATES, transition
from accounts_app.models import Handover, MemberAccount, Membership
from accounts_app.services.account_requests import course_provision_all
from portal.aws.errors import TransientAwsError
from tests.factories import CourseFactory, MemberAccountFactory
from tests.support.aws_script import Clock
from tests.support.next_steps import record_account_steps


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """The portal's clock (django.utils.timezone.now), moved on by hand."""
    frozen = Clock()
    monkeypatch.setattr(timezone, "now", frozen)
    return frozen


@pytest.fixture
def queued(monkeypatch):
    """The per-account steps queued, by task name (recorded, not run)."""
    return record_account_steps(monkeypatch)


# The task each state queues, and what it is given: nothing (the queue's run), the account's id or
# its handover's id.
EXPECTED = {
    S.REQUESTED: (tasks.vending_dispatch_task, None),
    S.CREATING: (tasks.vending_dispatch_task, None),
    S.INVITING: (tasks.account_invite_task, "account"),
    S.INVITED: (tasks.account_check_invitation_task, "account"),
    S.CONFIGURING: (tasks.account_configure_task, "account"),
    S.CLEANING: (tasks.account_cleanup_task, "account"),
    S.CLOSE_QUEUED: (tasks.close_dispatch_task, None),
    S.CLOSING: (tasks.account_poll_closure_task, "account"),
    S.HANDOVER: (tasks.handover_advance_task, "handover"),
}


def test_every_working_state_has_the_task_that_moves_it_on():
    assert set(next_step.NEXT_STEPS) >= WORKING_STATES


@pytest.mark.django_db
@pytest.mark.parametrize("state", list(S))
def test_the_next_step_of_each_state_is_queued_on_commit(state, django_capture_on_commit_callbacks):
    account = MemberAccount.objects.create(
        course=CourseFactory(), state=state, root_email="aws+x@school.example", account_name="x"
    )
    handover = Handover.objects.create(
        account=account,
        new_root_email="own@example.com",
        contact_name="Sam Student",
        contact_phone="+1 555 0100",
        previous_state=S.READY,
    )

    with django_capture_on_commit_callbacks() as queued:
        next_step.next_step_enqueue(account)

    if state not in EXPECTED:
        assert queued == []
        return
    task, given = EXPECTED[state]
    arguments = {None: (), "account": (account.pk,), "handover": (handover.pk,)}[given]
    assert [(callback.func, callback.args) for callback in queued] == [(task.delay, arguments)]


@pytest.mark.django_db
def test_provisioning_a_class_of_300_queues_one_vending_dispatch(personas, django_capture_on_commit_callbacks):
    """Each dispatch sends as many CreateAccount requests as AWS's quotas allow and schedules its
    own follow-up: 300 dispatches for 300 students would only wait on the same lock."""
    course = personas.course
    Membership.objects.bulk_create(
        Membership(
            course=course,
            email=f"student{n:03d}@school.example",
            name=f"Student {n:03d}",
            role=CourseRole.STUDENT,
            source=MembershipSource.IMPORT,
        )
        for n in range(299)
    )

    with django_capture_on_commit_callbacks() as queued:
        provisioned = course_provision_all(actor=personas.instructor, course=course)

    assert provisioned == 300  # the 299 and the course's own student
    assert MemberAccount.objects.filter(course=course, state=S.REQUESTED).count() == 300
    assert [callback.func for callback in queued] == [tasks.vending_dispatch_task.delay]


@pytest.mark.django_db
def test_provisioning_a_class_whose_students_all_have_accounts_queues_nothing(
    personas, django_capture_on_commit_callbacks
):
    course_provision_all(actor=personas.instructor, course=personas.course)

    with django_capture_on_commit_callbacks() as queued:
        provisioned = course_provision_all(actor=personas.instructor, course=personas.course)

    assert provisioned == 0
    assert queued == []


# --- Due times and beat's due tick -------------------------------------------------------------------


def due_time(account: MemberAccount):
    return MemberAccount.objects.values_list("next_attempt_at", flat=True).get(pk=account.pk)


@pytest.mark.django_db
def test_a_move_into_a_state_with_a_next_step_makes_it_due_a_grace_period_later_and_any_other_move_clears_it(
    clock, settings
):
    settings.PORTAL_STEP_GRACE_SECONDS = 60
    account = MemberAccountFactory(state=S.CLEANING)

    assert transition(account, expected=S.CLEANING, to=S.CLOSE_QUEUED)
    assert due_time(account) == clock.now + timedelta(seconds=60)

    assert transition(account, expected=S.CLOSE_QUEUED, to=S.FAILED)
    assert due_time(account) is None


@pytest.mark.django_db
def test_a_countdown_the_broker_lost_is_queued_again_by_the_tick_once_its_grace_is_over(
    clock, settings, queued, django_capture_on_commit_callbacks, caplog
):
    """A cleanup's next pass in 30 s: its countdown goes to the broker, its due time to the
    database. The broker loses it (a Redis restarted empty): the tick queues the pass."""
    settings.PORTAL_STEP_GRACE_SECONDS = 60
    account = MemberAccountFactory(state=S.CLEANING)
    with django_capture_on_commit_callbacks():  # the countdown, lost
        next_step.step_enqueue_later(account.pk, state=S.CLEANING, delay=30)
    assert due_time(account) == clock.now + timedelta(seconds=90)

    clock.advance(timedelta(seconds=89))
    with django_capture_on_commit_callbacks(execute=True):
        assert next_step.steps_due_enqueue() == 0
    assert queued["account_cleanup_task"] == []

    clock.advance(timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert next_step.steps_due_enqueue() == 1
    assert queued["account_cleanup_task"] == [account.pk]
    # Queued again: due once more a grace period on, in case this message is lost too.
    assert due_time(account) == clock.now + timedelta(seconds=60)
    assert "Queued again the next step of 1 account(s) not moved on by their due time" in caplog.text
    assert account.account_name in caplog.text


@pytest.mark.django_db
def test_the_tick_runs_a_queue_once_for_all_its_due_accounts_and_leaves_their_due_times_to_it(
    clock, django_capture_on_commit_callbacks
):
    course = CourseFactory()
    creating = [MemberAccountFactory(course=course, state=S.CREATING) for _ in range(3)]
    waiting = MemberAccountFactory(course=course, state=S.REQUESTED)
    MemberAccount.objects.filter(pk__in=[a.pk for a in [*creating, waiting]]).update(next_attempt_at=clock.now)
    ready = MemberAccountFactory(course=course, state=S.READY)
    MemberAccount.objects.filter(pk=ready.pk).update(next_attempt_at=clock.now)  # moved on by a person since

    with django_capture_on_commit_callbacks() as queued:
        assert next_step.steps_due_enqueue() == 4

    assert [callback.func for callback in queued] == [tasks.vending_dispatch_task.delay]
    assert {due_time(a) for a in [*creating, waiting]} == {clock.now}  # the queue's run writes them
    assert due_time(ready) is None


@pytest.mark.django_db
def test_a_step_waiting_on_the_student_is_looked_at_again_at_its_own_pace(clock, queued):
    account = MemberAccountFactory(state=S.INVITED)
    MemberAccount.objects.filter(pk=account.pk).update(next_attempt_at=clock.now)

    next_step.steps_due_enqueue()

    assert due_time(account) == clock.now + next_step.PERSON_PACED[S.INVITED]


@pytest.mark.django_db
def test_a_retried_step_moves_its_due_time_with_the_retry(clock, settings, monkeypatch):
    settings.PORTAL_STEP_GRACE_SECONDS = 60
    account = MemberAccountFactory(state=S.CONFIGURING)
    retried = []
    monkeypatch.setattr(CeleryTask, "retry", lambda self, *args, **kwargs: retried.append(kwargs["countdown"]))
    task = tasks.account_configure_task
    task.push_request(args=[account.pk])
    try:
        task.retry(exc=TransientAwsError("Rate exceeded"), countdown=120)
    finally:
        task.pop_request()

    assert retried == [120]
    assert due_time(account) == clock.now + timedelta(seconds=180)


@pytest.mark.django_db(transaction=True)
def test_two_ticks_at_once_never_queue_the_same_step_twice(monkeypatch):
    """The first tick holds its due rows (FOR UPDATE) while it queues their steps; a second tick
    meanwhile skips them (SKIP LOCKED), and once the first has committed they are no longer due."""
    past = timezone.now() - timedelta(seconds=1)
    accounts = [MemberAccountFactory(state=S.CONFIGURING) for _ in range(3)]
    MemberAccount.objects.filter(pk__in=[a.pk for a in accounts]).update(next_attempt_at=past)
    queued: list[int] = []
    monkeypatch.setattr(tasks.account_configure_task, "delay", queued.append)
    holding, release = threading.Event(), threading.Event()
    real_enqueue = next_step.next_step_enqueue

    def first_tick_pauses(account):
        if threading.current_thread().name == "first tick" and not holding.is_set():
            holding.set()
            release.wait(timeout=30)
        real_enqueue(account)

    monkeypatch.setattr(next_step, "next_step_enqueue", first_tick_pauses)

    def first_tick():
        try:
            next_step.steps_due_enqueue()
        finally:
            connection.close()

    thread = threading.Thread(target=first_tick, name="first tick")
    thread.start()
    assert holding.wait(timeout=30)
    second = next_step.steps_due_enqueue()
    release.set()
    thread.join(timeout=30)
    third = next_step.steps_due_enqueue()

    assert (second, third) == (0, 0)
    assert sorted(queued) == sorted(a.pk for a in accounts)
