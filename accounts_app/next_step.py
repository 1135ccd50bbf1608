"""What runs next: the Celery task that moves an account on from each state the portal works in,
and the functions that queue one.

Services queue an account's next step only through here, and the reconciler re-queues stuck work
from the same table, so the two never disagree on what follows a state. Every task is queued with
`delay_on_commit`: a worker never reads a state the database does not hold yet, and a change
rolled back queues nothing. Tasks take ids; the service a task calls loads the row.

Tasks import services and services import this module, yet the tasks are imported here at module
level, not inside each function: `accounts_app.tasks` imports a service only inside the task that
calls it, so loading a service loads this module and the tasks without coming back to any service,
and the table can hold the task objects themselves. A service imported at the top of tasks.py would
close that cycle.
"""

from __future__ import annotations

from celery.contrib.django.task import DjangoTask

from accounts_app import tasks
from accounts_app.choices import AccountState as S
from accounts_app.models import Handover, MemberAccount

NEXT_STEPS: dict[S, DjangoTask] = {
    S.REQUESTED: tasks.vending_dispatch_task,
    S.CREATING: tasks.account_poll_task,
    S.INVITING: tasks.account_invite_task,
    S.INVITED: tasks.account_check_invitation_task,
    S.CONFIGURING: tasks.account_configure_task,
    S.CLEANING: tasks.account_cleanup_task,
    S.CLOSE_QUEUED: tasks.close_dispatch_task,
    S.CLOSING: tasks.account_poll_closure_task,
    S.HANDOVER: tasks.handover_advance_task,
}
# The task of a queue takes no id: one run moves on as many of its accounts as AWS's quotas allow.
QUEUES = (S.REQUESTED, S.CLOSE_QUEUED)
# Every other task of the table is given the account's id (a handover's, the handover's id).
PER_ACCOUNT = frozenset(NEXT_STEPS) - set(QUEUES)
# A state not in the table waits for someone else: a person (an approval, the access role, a
# retry), AWS's account quota or the school's directory (the reconciler looks again), the end
# schedule (ended, cooling down), or nothing (in use, final).


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


def queue_enqueue(state: S) -> None:
    """Queue one run of the vending queue (REQUESTED) or the close queue (CLOSE_QUEUED)."""
    NEXT_STEPS[state].delay_on_commit()


def vending_dispatch_enqueue() -> None:
    queue_enqueue(S.REQUESTED)


def close_dispatch_enqueue() -> None:
    queue_enqueue(S.CLOSE_QUEUED)


def handover_advance_enqueue(handover: Handover) -> None:
    NEXT_STEPS[S.HANDOVER].delay_on_commit(handover.pk)


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
