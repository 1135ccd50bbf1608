"""The account lifecycle's table (accounts_app/lifecycle.py): the state classes partition the
states, every state the portal moves on has a task for its next step, a move the table does not
have raises, and of two moves from the same state exactly one is made. docs/ARCHITECTURE.md
shows the table; the last test keeps it true."""

import itertools
import re
import threading
from pathlib import Path
from unittest import mock

import pytest
from celery.contrib.django.task import DjangoTask
from django.db import connection

from accounts_app.choices import AccountState as S
from accounts_app.choices import HandoverStatus
from accounts_app.lifecycle import (
    FINAL_STATES,
    HANDOVER_STATES,
    IN_USE_STATES,
    PARKED_STATES,
    POOL_STATES,
    SCHEDULED_STATES,
    TRANSITIONS,
    WAITING_STATES,
    WORKING_STATES,
    IllegalTransition,
    transition,
)
from accounts_app.models import AccountEvent, Handover, MemberAccount
from accounts_app.next_step import NEXT_STEPS, QUEUES, next_step_enqueue
from accounts_app.signals import account_state_changed
from tests.factories import CourseFactory

CLASSES = {
    "working": WORKING_STATES,
    "waiting": WAITING_STATES,
    "in use": IN_USE_STATES,
    "handover": HANDOVER_STATES,
    "pool": POOL_STATES,
    "parked": PARKED_STATES,
    "final": FINAL_STATES,
}
# New records start in these: a student's request, a request to bring their own account, and
# the organization's pool record of a recycled account.
STARTING_STATES = {S.REQUESTED, S.AWAITING_APPROVAL, S.COOLING_DOWN}
ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "ARCHITECTURE.md"

_numbers = itertools.count()


def account_in(state: S, course=None) -> MemberAccount:
    """A record put straight into `state` (a handover's with its approved Handover row)."""
    n = next(_numbers)
    account = MemberAccount.objects.create(
        course=course or CourseFactory(),
        state=state,
        root_email=f"lifecycle-{n}@accounts.school.example",
        account_name=f"lifecycle-{n}",
    )
    if state == S.HANDOVER:
        Handover.objects.create(
            account=account,
            status=HandoverStatus.APPROVED,
            new_root_email=f"student-{n}@home.example",
            contact_name="Stu Dent",
            contact_phone="+1 555 0100",
            previous_state=S.READY,
        )
    return account


def moves(account: MemberAccount) -> list[tuple[str, str]]:
    return list(AccountEvent.objects.filter(account=account).values_list("from_state", "to_state"))


# --- The table ------------------------------------------------------------------------------------


def test_every_state_is_in_exactly_one_class():
    misplaced = {
        state.value: classes
        for state in S
        if len(classes := [name for name, states in CLASSES.items() if state in states]) != 1
    }
    assert misplaced == {}


def test_the_final_states_are_exactly_those_no_move_leaves():
    assert {state for state in S if not TRANSITIONS.get(state)} == FINAL_STATES


def test_every_state_is_reached_from_a_state_records_start_in():
    reached, frontier = set(STARTING_STATES), set(STARTING_STATES)
    while frontier:
        frontier = set().union(*(TRANSITIONS.get(state, frozenset()) for state in frontier)) - reached
        reached |= frontier
    assert set(S) - reached == set()


def test_the_states_with_a_due_time_are_exactly_those_with_a_next_step():
    assert WORKING_STATES <= SCHEDULED_STATES
    assert set(NEXT_STEPS) == SCHEDULED_STATES


@pytest.mark.django_db
def test_next_step_enqueue_queues_the_next_step_exactly_where_the_portal_moves_the_account_on():
    """A state outside the working ones, the reconciler's and the two queues' gets nothing queued:
    the reconciler never moves on an account that waits for a person, a date or AWS."""
    course = CourseFactory()
    queued: dict[S, list[str]] = {}
    with mock.patch.object(DjangoTask, "delay_on_commit", autospec=True) as delay_on_commit:
        for state in S:
            delay_on_commit.reset_mock()
            next_step_enqueue(account_in(state, course))
            names = [call.args[0].name.rsplit(".", 1)[-1] for call in delay_on_commit.call_args_list]
            if names:
                queued[state] = names
    assert queued == {state: [NEXT_STEPS[state].name.rsplit(".", 1)[-1]] for state in SCHEDULED_STATES | set(QUEUES)}


# --- Moves ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_move_the_table_does_not_have_raises_and_changes_nothing():
    account = account_in(S.READY)
    with pytest.raises(IllegalTransition):
        transition(account, expected=S.READY, to=S.CLOSED)
    # Every expected state must allow the move, not only the one the record is in.
    with pytest.raises(IllegalTransition):
        transition(account, expected={S.READY, S.CLOSING}, to=S.FROZEN)
    account.refresh_from_db()
    assert account.state == S.READY
    assert moves(account) == []


@pytest.mark.django_db
@pytest.mark.parametrize("final", sorted(FINAL_STATES))
def test_no_move_leaves_a_final_state(final):
    account = account_in(final)
    for to in S:
        with pytest.raises(IllegalTransition):
            transition(account, expected=final, to=to)


@pytest.mark.django_db
def test_of_two_moves_from_the_same_state_the_later_finds_the_state_gone():
    """A redelivered message or a double click: the second caller holds a stale copy."""
    first = account_in(S.READY)
    second = MemberAccount.objects.get(pk=first.pk)
    assert transition(first, expected=S.READY, to=S.FROZEN)
    assert not transition(second, expected=S.READY, to=S.ENDED)
    assert second.state == S.READY  # the loser's copy is left as it was
    assert MemberAccount.objects.get(pk=first.pk).state == S.FROZEN
    assert moves(first) == [(S.READY, S.FROZEN)]


@pytest.mark.django_db(transaction=True)
def test_of_two_workers_racing_from_the_same_state_exactly_one_moves_it():
    """Two connections, forced into the close race: the loser reads the state while the winner's
    transaction is still open, so it passes the read and its `UPDATE … WHERE state = expected`
    waits for the winner's row lock. Once the winner commits, that UPDATE changes 0 rows, and
    the loser stands back without writing an event."""
    account = account_in(S.READY)
    loser_at_update = threading.Event()
    loser: dict = {}

    def watch_the_update(execute, sql, params, many, context):
        is_update = sql.startswith(f'UPDATE "{MemberAccount._meta.db_table}"')
        if is_update:
            loser_at_update.set()  # from here on it waits for the winner's lock
        result = execute(sql, params, many, context)
        if is_update:
            loser["rows changed"] = context["cursor"].rowcount
        return result

    def lose() -> None:
        try:
            with connection.execute_wrapper(watch_the_update):
                stale = MemberAccount.objects.get(pk=account.pk)
                loser["moved"] = transition(stale, expected=S.READY, to=S.ENDED)
        finally:
            connection.close()

    rival = threading.Thread(target=lose)

    def start_the_rival(sender, account, from_state, to_state, **kwargs) -> None:
        # Sent inside the winner's transaction, after its UPDATE: the row is locked, uncommitted.
        rival.start()
        assert loser_at_update.wait(timeout=30), "the rival never reached its UPDATE"

    account_state_changed.connect(start_the_rival)
    try:
        won = transition(account, expected=S.READY, to=S.FROZEN)
    finally:
        account_state_changed.disconnect(start_the_rival)
    rival.join(timeout=30)

    assert won
    assert loser == {"rows changed": 0, "moved": False}
    assert MemberAccount.objects.get(pk=account.pk).state == S.FROZEN
    assert moves(account) == [(S.READY, S.FROZEN)]


# --- Compare-and-swap, as vending's workers meet it -----------------------------------------------


@pytest.mark.django_db
def test_transition_is_a_compare_and_swap(personas):
    account = MemberAccount.objects.create(
        course=personas.course, root_email="aws+a@school.example.edu", account_name="a"
    )
    first_worker = MemberAccount.objects.get(pk=account.pk)
    second_worker = MemberAccount.objects.get(pk=account.pk)

    won = transition(first_worker, expected=S.REQUESTED, to=S.CREATING, reason="first")
    lost = transition(second_worker, expected=S.REQUESTED, to=S.CREATING, reason="second")

    assert won is True
    assert lost is False
    assert first_worker.state == S.CREATING
    assert second_worker.state == S.REQUESTED  # the loser's copy is not touched
    assert list(AccountEvent.objects.filter(account=account).values_list("reason", flat=True)) == ["first"]


@pytest.mark.django_db
def test_transition_from_any_of_several_states_still_lets_one_caller_win(personas):
    account = MemberAccount.objects.create(
        course=personas.course,
        root_email="aws+b@school.example.edu",
        account_name="b",
        state=S.CREATING,
    )
    copies = [MemberAccount.objects.get(pk=account.pk) for _ in range(2)]

    results = [
        transition(c, expected={S.REQUESTED, S.CREATING}, to=S.CONFIGURING, aws_account_id="210987654321")
        for c in copies
    ]

    assert results == [True, False]
    account.refresh_from_db()
    assert account.state == S.CONFIGURING
    assert account.aws_account_id == "210987654321"
    assert AccountEvent.objects.filter(account=account).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_past_the_check_still_make_one_transition(personas):
    account = MemberAccount.objects.create(
        course=personas.course, root_email="aws+c@school.example.edu", account_name="c"
    )
    both_checked = threading.Barrier(2, timeout=20)
    results: dict[str, bool] = {}
    errors: list[BaseException] = []

    def hold_updates_until_both_checked(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("UPDATE") and "memberaccount" in sql:
            both_checked.wait()  # each worker has read REQUESTED before either writes
        return execute(sql, params, many, context)

    def worker(name: str) -> None:
        try:
            with connection.execute_wrapper(hold_updates_until_both_checked):
                copy = MemberAccount.objects.get(pk=account.pk)
                results[name] = transition(copy, expected=S.REQUESTED, to=S.CREATING, reason=name)
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(name,)) for name in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(results.values()) == [False, True]
    winner = next(name for name, won in results.items() if won)
    events = list(AccountEvent.objects.filter(account=account))
    assert [(e.from_state, e.to_state, e.reason) for e in events] == [(S.REQUESTED, S.CREATING, winner)]


# --- The documentation ----------------------------------------------------------------------------


def test_the_architecture_guide_classifies_every_state_as_the_code_does():
    rows = re.findall(r"^\| `(\w+)` \| ([\w ]+?) \|", ARCHITECTURE.read_text(), flags=re.MULTILINE)
    documented = dict(rows)
    assert len(rows) == len(documented)  # each state once
    assert documented == {state.value: name for name, states in CLASSES.items() for state in states}
