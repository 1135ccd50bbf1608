"""What runs next: the Celery task that moves an account on from each state the portal works in,
and the functions that queue one.

Services queue an account's next step only through here, and beat's due tick and the reconciler
re-queue lost work from the same table, so they never disagree on what follows a state. Every
task is queued on commit: a worker never reads a state the database does not hold yet, and a
change rolled back queues nothing. Tasks take ids; the service a task calls loads the row.

The broker is the fast path, never the only record: every account whose next step is the
portal's carries when it is due (`MemberAccount.next_attempt_at`, written with the change that
schedules the step), and `steps_due_enqueue`, beat's tick, queues each step whose time has come.
A countdown the broker lost, a worker killed mid-step or a Redis restarted empty thus delays a
step by a tick and a grace period (lifecycle.step_due), never forever.

Tasks import services and services import this module, yet the tasks are imported here at module
level, not inside each function: `accounts_app.tasks` imports a service only inside the task that
calls it, so loading a service loads this module and the tasks without coming back to any service,
and the table can hold the task objects themselves. A service imported at the top of tasks.py would
close that cycle.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta

from celery.contrib.django.task import DjangoTask
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts_app import tasks
from accounts_app.choices import AccountState as S
from accounts_app.lifecycle import step_due
from accounts_app.models import Handover, MemberAccount

NEXT_STEPS: dict[S, DjangoTask] = {
    S.REQUESTED: tasks.vending_dispatch_task,
    # One run of the vending queue looks at every creation that is due, in as few reads as it can.
    S.CREATING: tasks.vending_dispatch_task,
    S.INVITING: tasks.account_invite_task,
    S.INVITED: tasks.account_check_invitation_task,
    S.CONFIGURING: tasks.account_configure_task,
    S.CLEANING: tasks.account_cleanup_task,
    S.CLOSE_QUEUED: tasks.close_dispatch_task,
    S.CLOSING: tasks.account_poll_closure_task,
    S.HANDOVER: tasks.handover_advance_task,
}
# The task of a queue takes no id: one run moves on as many of its accounts as AWS's quotas allow,
# and writes their due times itself.
QUEUES = (S.REQUESTED, S.CREATING, S.CLOSE_QUEUED)
# Every other task of the table is given the account's id (a handover's, the handover's id).
PER_ACCOUNT = frozenset(NEXT_STEPS) - set(QUEUES)
# A state not in the table waits for someone else: a person (an approval, the access role, a
# retry), AWS's account quota or the school's directory (the reconciler looks again), the end
# schedule (ended, cooling down), or nothing (in use, final).

logger = logging.getLogger(__name__)

# Steps that wait on the student (accepting the invitation, the handover's steps) look again this
# long after the tick queued them, not every grace period.
PERSON_PACED: dict[S, timedelta] = {S.INVITED: timedelta(minutes=10), S.HANDOVER: timedelta(minutes=10)}
# Accounts one tick takes, the longest due first; the next tick takes the rest.
DUE_BATCH = 1000


def next_step_enqueue(account: MemberAccount) -> None:
    """Queue the task that moves `account` on from the state it is in now, if the portal is the
    one to move it."""
    state = S(account.state)
    task = NEXT_STEPS.get(state)
    if task is None:
        return
    if state in QUEUES:
        task.delay_on_commit()
    elif state == S.HANDOVER:
        task.delay_on_commit(account.handover.pk)
    else:
        task.delay_on_commit(account.pk)


def step_enqueue_later(account_id: int, *, state: S, delay: float) -> None:
    """The step of `state` again in `delay` seconds (a closure's next look, a cleanup's next
    pass), for an account still in that state: its due time in the database, then its countdown."""
    MemberAccount.objects.filter(pk=account_id, state=state).update(next_attempt_at=step_due(timezone.now(), delay))
    NEXT_STEPS[state].apply_async_on_commit((account_id,), countdown=delay)


def queue_enqueue(state: S) -> None:
    """Queue one run of the vending queue (REQUESTED, CREATING) or the close queue (CLOSE_QUEUED)."""
    NEXT_STEPS[state].delay_on_commit()


def queue_wake(state: S, *, at: datetime) -> None:
    """Run the queue again at `at` (its countdown; the queue's accounts carry the due time the
    tick goes by). Runs asked for the same moment are one run: each run of a queue asks for its
    next, and runs started by a request or a tick would otherwise each keep a chain going."""
    task = NEXT_STEPS[state]
    delay = max((at - timezone.now()).total_seconds(), 0.0)
    if cache.add(f"queue-wake:{task.name}:{at.timestamp():.1f}", 1, timeout=delay + 60):
        task.apply_async_on_commit(countdown=delay)


def vending_dispatch_enqueue() -> None:
    queue_enqueue(S.REQUESTED)


def close_dispatch_enqueue() -> None:
    queue_enqueue(S.CLOSE_QUEUED)


def handover_advance_enqueue(handover: Handover) -> None:
    NEXT_STEPS[S.HANDOVER].delay_on_commit(handover.pk)


# --- Beat's due tick --------------------------------------------------------------------------------


def steps_due_enqueue(*, now: datetime | None = None) -> int:
    """Queue the next step of every account whose due time has come; returns how many accounts.

    The rows are taken with `FOR UPDATE SKIP LOCKED`, and each one given its next due time in the
    same transaction: two ticks at once (two beats by mistake, or one slow) never queue the same
    step twice. A queue's accounts get one run of their queue, which writes their due times; any
    other account gets its own step, due again after the grace period (or, waiting on the
    student, after PERSON_PACED): if that message is lost too, a later tick queues it again.
    What the broker had lost is logged, for the operator.
    """
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            MemberAccount.objects.select_for_update(skip_locked=True)
            .filter(next_attempt_at__lte=now)
            .order_by("next_attempt_at")
            .only("pk", "state", "account_name", "next_attempt_at")[:DUE_BATCH]
        )
        stepped = [account for account in due if account.state in PER_ACCOUNT]
        for account in stepped:
            paced = PERSON_PACED.get(S(account.state))
            again = now + paced if paced is not None else step_due(now)
            MemberAccount.objects.filter(pk=account.pk).update(next_attempt_at=again)
            next_step_enqueue(account)
        _log_lost(stepped, due, now)
        for task in {NEXT_STEPS[S(account.state)] for account in due if account.state in QUEUES}:
            task.delay_on_commit()
        # A state with no step of the portal's (moved on by a person meanwhile) has nothing due.
        idle = [account.pk for account in due if account.state not in NEXT_STEPS]
        MemberAccount.objects.filter(pk__in=idle).update(next_attempt_at=None)
    return len(due) - len(idle)


def _log_lost(stepped: list[MemberAccount], due: list[MemberAccount], now: datetime) -> None:
    """Say which steps the tick queues because their message was lost: an account's own step
    (not one that waits on the student), a queue whose run is overdue by more than the grace."""
    if lost := [account.account_name for account in stepped if account.state not in PERSON_PACED]:
        logger.warning(
            "Queued again the next step of %d account(s) not moved on by their due time (the broker lost the "
            "message, or the worker running it died): %s",
            len(lost),
            ", ".join(lost[:20]) + (", …" if len(lost) > 20 else ""),
        )
    late = now - timedelta(seconds=settings.PORTAL_STEP_GRACE_SECONDS)
    overdue = Counter(NEXT_STEPS[S(a.state)] for a in due if a.state in QUEUES and a.next_attempt_at < late)
    for task, count in overdue.items():
        logger.warning(
            "Queued again %s: %d of its accounts overdue by more than the grace period (the broker lost its run, "
            "or the worker running it died)",
            task.name.rsplit(".", 1)[-1],
            count,
        )


# --- Steps the state alone does not decide --------------------------------------------------------


def access_role_check_enqueue(account: MemberAccount, *, actor) -> None:
    """AWAITING_ACCESS_ROLE waits for the student: they say when the role is in place."""
    tasks.account_verify_access_role_task.delay_on_commit(account.pk, actor.pk if actor else None)


def account_end_enqueue(account: MemberAccount) -> None:
    """An account in use, of a course that has ended."""
    tasks.account_end_task.delay_on_commit(account.pk)


def account_unend_enqueue(account: MemberAccount) -> None:
    """An ENDED account, of a course that goes on (or kept out of its end)."""
    tasks.account_unend_task.delay_on_commit(account.pk)


def account_recycle_enqueue(account: MemberAccount) -> None:
    """A CLEANING account whose cleanup is over, bound for the organization's pool."""
    tasks.account_recycle_task.delay_on_commit(account.pk)


def handover_return_enqueue(handover: Handover) -> None:
    """A HANDOVER cancelled after the account started to leave: it goes back."""
    tasks.handover_return_task.delay_on_commit(handover.pk)


def handover_code_check_enqueue(handover: Handover, *, actor) -> None:
    """The code the student typed, for AWS."""
    tasks.handover_code_check_task.delay_on_commit(handover.pk, actor.pk if actor else None)
