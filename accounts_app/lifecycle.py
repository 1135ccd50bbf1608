"""The member account's state machine: the only code that writes `MemberAccount.state`.

Every change is a compare-and-swap (`UPDATE … WHERE id = … AND state = expected`) with an
`AccountEvent` in the same transaction. When two workers (a redelivered Celery message, a double
click, the reconciler) try the same step, exactly one UPDATE changes a row; the other caller sees
False and stands back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts_app.choices import AccountState as S
from accounts_app.models import AccountEvent, MemberAccount
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

# States in which the portal, not a person, is expected to move the account on.
WORKING_STATES = frozenset({S.REQUESTED, S.CREATING, S.INVITING, S.CONFIGURING, S.CLEANING, S.CLOSING})
# States that wait for someone outside the portal (a student, AWS support, the school directory,
# AWS's closure quota, an instructor's approval).
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
# States an account never leaves: its record is history.
FINAL_STATES = frozenset({S.CLOSED, S.RECYCLED, S.HANDED_OVER, S.DECLINED})
# States in which the student may use the account.
IN_USE_STATES = frozenset({S.READY, S.FROZEN})


class IllegalTransition(ValueError):
    pass


def transition(
    account: MemberAccount,
    *,
    expected: S | Iterable[S],
    to: S,
    actor=None,
    reason: str = "",
    **changes: Any,
) -> bool:
    """Move `account` from `expected` to `to` if, and only if, it is still in `expected`.

    `changes` are other fields written in the same UPDATE (e.g. `last_error`). Returns whether
    this caller made the change; `account` is updated in memory when it did.
    """
    expected_states = {expected} if isinstance(expected, str) else set(expected)
    for state in expected_states:
        if to not in TRANSITIONS.get(S(state), frozenset()):
            raise IllegalTransition(f"{state} → {to} is not a transition of the account lifecycle.")

    now = timezone.now()
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
