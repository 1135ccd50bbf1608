"""The member account's state machine: the only code that writes `MemberAccount.state`.

Every change is a compare-and-swap (`UPDATE … WHERE id = … AND state = expected`) with an
`AccountEvent` in the same transaction. When two workers (a redelivered Celery message, a double
click, the reconciler) try the same step, exactly one UPDATE changes a row; the other caller sees
False and stands back.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts_app.choices import AccountState as S
from accounts_app.models import AccountEvent, MemberAccount, User
from accounts_app.signals import account_state_changed

TRANSITIONS: dict[S, frozenset[S]] = {
    # Vending
    S.REQUESTED: frozenset({S.CREATING, S.CONFIGURING, S.WAITING_FOR_QUOTA, S.FAILED}),
    S.CREATING: frozenset({S.CONFIGURING, S.REQUESTED, S.WAITING_FOR_QUOTA, S.FAILED}),
    # A student's own account: an instructor approves the request before anything reaches AWS
    # (see account_requests.account_bring_existing); a declined request frees the student's place.
    S.AWAITING_APPROVAL: frozenset({S.INVITING, S.DECLINED}),
    S.INVITING: frozenset({S.INVITED, S.FAILED}),
    S.INVITED: frozenset({S.AWAITING_ACCESS_ROLE, S.FAILED}),
    S.AWAITING_ACCESS_ROLE: frozenset({S.CONFIGURING, S.FAILED}),
    S.CONFIGURING: frozenset({S.READY, S.POOLED, S.WAITING_FOR_DIRECTORY, S.FAILED}),
    S.WAITING_FOR_DIRECTORY: frozenset({S.CONFIGURING, S.FAILED}),
    S.WAITING_FOR_QUOTA: frozenset({S.REQUESTED, S.FAILED}),
    S.POOLED: frozenset({S.CONFIGURING, S.CLEANING}),
    # In use
    S.READY: frozenset({S.CONFIGURING, S.FROZEN, S.ENDED, S.HANDOVER_REQUESTED}),
    S.FROZEN: frozenset({S.READY, S.ENDED, S.HANDOVER_REQUESTED}),
    # End of course: a course extended after its end gives the accounts back.
    S.ENDED: frozenset({S.READY, S.FROZEN, S.CLEANING, S.HANDOVER_REQUESTED}),
    # A student's own (invited) account is given back to them rather than closed.
    S.CLEANING: frozenset({S.CLOSE_QUEUED, S.RECYCLED, S.HANDED_OVER, S.FAILED}),
    S.CLOSE_QUEUED: frozenset({S.CLOSING, S.FAILED}),
    S.CLOSING: frozenset({S.CLOSED, S.CLOSE_QUEUED, S.FAILED}),
    S.COOLING_DOWN: frozenset({S.POOLED}),
    # Handover: a declined request puts the account back where it was.
    S.HANDOVER_REQUESTED: frozenset({S.HANDOVER, S.READY, S.FROZEN, S.ENDED}),
    S.HANDOVER: frozenset({S.HANDED_OVER, S.READY, S.FROZEN, S.ENDED}),  # cancelled or timed out: back
    # A brought account that failed before it joined the organization may be declined instead.
    S.FAILED: frozenset(
        {
            S.REQUESTED,
            S.INVITING,
            S.INVITED,
            S.AWAITING_ACCESS_ROLE,
            S.CONFIGURING,
            S.CLEANING,
            S.CLOSE_QUEUED,
            S.DECLINED,
        }
    ),
}

# --- The state vocabulary ---------------------------------------------------------------------
# Every state is in exactly one of the seven classes below (tests/accounts_app/test_lifecycle.py
# pins it), and docs/ARCHITECTURE.md tabulates each state's class and who moves it on. The sets
# after them are what one part of the portal means by a group of states: code names a group here,
# never inline.

# The portal, not a person, moves the account on: its next step is a task
# (next_step.next_step_enqueue).
WORKING_STATES = frozenset({S.REQUESTED, S.CREATING, S.INVITING, S.CONFIGURING, S.CLEANING, S.CLOSING})
# Someone outside the portal moves it on: a student, AWS support, the school directory, AWS's
# closure quota, an instructor's approval.
WAITING_STATES = frozenset(
    {
        S.AWAITING_APPROVAL,
        S.INVITED,
        S.AWAITING_ACCESS_ROLE,
        S.WAITING_FOR_DIRECTORY,
        S.WAITING_FOR_QUOTA,
        S.CLOSE_QUEUED,
    }
)
# The student may use the account.
IN_USE_STATES = frozenset({S.READY, S.FROZEN})
# A handover: an instructor decides on the request, then the portal and the student work through
# the checklist (services/handover.py).
HANDOVER_STATES = frozenset({S.HANDOVER_REQUESTED, S.HANDOVER})
# No student: kept for one, or cooling down before it may be given to one.
POOL_STATES = frozenset({S.POOLED, S.COOLING_DOWN})
# Standing still until a date or a person: ended (frozen until the end policy's date, or until
# the course is extended), failed (until staff retry it, or decline a brought account).
PARKED_STATES = frozenset({S.ENDED, S.FAILED})
# The account never leaves: its record is history.
FINAL_STATES = frozenset({S.CLOSED, S.RECYCLED, S.HANDED_OVER, S.DECLINED})

# The record can still move: the course may still hold its account.
LIVE_STATES = frozenset(S) - FINAL_STATES
# The account is the student's for the course: in use, or frozen at its end until the end policy
# runs. A student may ask to keep it from these (services/handover.py).
HELD_STATES = IN_USE_STATES | {S.ENDED}
# The freeze SCP belongs on the account: frozen for its budget, or for the end of the course.
FROZEN_STATES = frozenset({S.FROZEN, S.ENDED})
# People sign in to the account: staff access is granted there (services/staff_access.py), and a
# brought account's access role is checked again there (services/access_roles.py): the account
# is configured and not being given back.
SIGN_IN_STATES = HELD_STATES | {S.HANDOVER_REQUESTED}
# AWS may be creating the account and the record does not know its id yet: an account found
# with the record's root email is adopted from these (vending.account_adopt).
CREATION_STATES = frozenset({S.REQUESTED, S.CREATING})
# The end policy starts from these (services/ending.py): an ended account, or an unused pool one.
RETIRABLE_STATES = frozenset({S.ENDED, S.POOLED})
# Waiting for AWS's closure quota, or closing (services/closing.py).
CLOSURE_STATES = frozenset({S.CLOSE_QUEUED, S.CLOSING})
# The end policy runs: the cleanup, then the closure.
RETIRING_STATES = CLOSURE_STATES | {S.CLEANING}
# The end policy is done: the account was closed, or returned to the organization's pool.
RETIRED_STATES = frozenset({S.CLOSED, S.RECYCLED})
# The account holds something to clean that the cleanup's dry run may list.
CLEANABLE_STATES = HELD_STATES | {S.POOLED, S.CLEANING}
# The portal has a next step for these (next_step.NEXT_STEPS): the record carries when that step is
# due (`next_attempt_at`), from which beat's due tick queues it and the reconciler finds it stuck.
# Every step looks at AWS first, so nothing is done twice. Besides the working states: an
# invitation the student may have accepted, a handover's next step, the close queue.
SCHEDULED_STATES = WORKING_STATES | {S.INVITED, S.HANDOVER, S.CLOSE_QUEUED}
# The reconciler reports a record in these whose account the organization does not list.
ORGANIZATION_CHECKED_STATES = frozenset({S.READY, S.POOLED})

# --- What a student's account panel shows -------------------------------------------------------
# The setup steps, in order, of an account the portal creates and of one the student brings.
CREATED_ACCOUNT_STEPS = (S.REQUESTED, S.CREATING, S.CONFIGURING, S.READY)
BROUGHT_ACCOUNT_STEPS = (
    S.AWAITING_APPROVAL,
    S.INVITING,
    S.INVITED,
    S.AWAITING_ACCESS_ROLE,
    S.CONFIGURING,
    S.READY,
)
# The panel asks for news every few seconds while the account is in one of these: something is
# moving it on. In any other state it has settled (ready, failed, closed, …): a poll is answered
# with the settled panel and told to stop.
PANEL_POLLED_STATES = WORKING_STATES | WAITING_STATES
# A waiting state is shown as the step it waits in.
STEP_SHOWN_FOR = {S.WAITING_FOR_QUOTA: S.REQUESTED, S.WAITING_FOR_DIRECTORY: S.CONFIGURING}
# States whose panel text already says all a student needs to know: no note from `last_error`.
STATES_THAT_EXPLAIN_THEMSELVES = frozenset({S.FAILED, S.WAITING_FOR_QUOTA, S.WAITING_FOR_DIRECTORY})


class IllegalTransition(ValueError):
    pass


def step_due(now: datetime, delay: float = 0.0) -> datetime:
    """When a step queued at `now` to run after `delay` seconds must have moved its account on:
    past it, the broker is taken to have lost the step, and beat's due tick queues it again."""
    return now + timedelta(seconds=delay + settings.PORTAL_STEP_GRACE_SECONDS)


def transition(
    account: MemberAccount,
    *,
    expected: S | Iterable[S],
    to: S,
    actor: User | None = None,
    reason: str = "",
    **changes: Any,
) -> bool:
    """Move `account` from `expected` to `to` if, and only if, it is still in `expected`.

    `changes` are other fields written in the same UPDATE (e.g. `last_error`). Returns whether
    this caller made the change; `account` is updated in memory when it did.

    The move also sets when the next step is due, unless `changes` does: in a state whose next
    step is the portal's, the step the caller queues now must have run by `step_due(now)`; in any
    other state nothing is due.
    """
    expected_states = {expected} if isinstance(expected, str) else set(expected)
    for state in expected_states:
        if to not in TRANSITIONS.get(S(state), frozenset()):
            raise IllegalTransition(f"{state} → {to} is not a transition of the account lifecycle.")

    now = timezone.now()
    changes.setdefault("next_attempt_at", step_due(now) if to in SCHEDULED_STATES else None)
    with transaction.atomic():
        current = (
            MemberAccount.objects.filter(pk=account.pk, state__in=expected_states)
            .values_list("state", flat=True)
            .first()
        )
        if current is None:
            return False
        changed = MemberAccount.objects.filter(pk=account.pk, state=current).update(
            state=to, state_changed_at=now, updated_at=now, **changes
        )
        if changed != 1:
            return False
        AccountEvent.objects.create(
            account_id=account.pk,
            from_state=current,
            to_state=to,
            actor=actor,
            reason=reason[:1000],
        )
        account.state = to
        account.state_changed_at = now
        for name, value in changes.items():
            setattr(account, name, value)
        account_state_changed.send(MemberAccount, account=account, from_state=current, to_state=to)
    return True
