"""The gate in front of every AWS call that changes a member account.

Two questions, both asked before the call, every time:

1. Does the record's state allow the action? The state is read afresh from the database: a
   task queued an hour ago acts on what the record says now, not on what it said then. Where an
   action changes the state (freeze, unfreeze, end, cleanup, close, handover), the
   compare-and-swap transition has already happened before the task that calls AWS was queued;
   the gate checks that the record is still where that transition put it.
2. Is the account the portal's? `ownership_check` asks AWS whether the account is in the OU the
   record expects, with the portal's tag.

A record that is recycled, handed over, closed or failed, or that never got as far as an AWS
account, is in no action's states: it cannot steer a call. That is what keeps the instructor of
a course that ended from reaching an account that now serves another course: their record stays
RECYCLED, and the account's new life is another record.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from django.core.cache import cache

from accounts_app.choices import AccountState as S
from accounts_app.lifecycle import CLEANABLE_STATES, FROZEN_STATES, IN_USE_STATES
from accounts_app.models import AwsOrganization, Course, MemberAccount
from accounts_app.services.ownership import NotOurs, expected_parent, ownership_check
from portal.aws import organizations


class Action(StrEnum):
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"
    BUDGET = "budget change"
    PREVIEW = "resource listing"
    CLEANUP = "cleanup"
    RECYCLE = "recycling"
    CLOSE = "closure"
    HANDOVER = "handover"
    METER = "usage reading"
    SCHEDULE_STOP = "scheduled stop"
    SCHEDULE_START = "start of what a schedule stopped"


# The record states in which each action may call AWS about the account (the groups named in
# accounts_app/lifecycle.py).
ALLOWED_STATES: dict[Action, frozenset[S]] = {
    Action.FREEZE: FROZEN_STATES,
    Action.UNFREEZE: frozenset({S.READY}),
    Action.BUDGET: IN_USE_STATES,
    Action.PREVIEW: CLEANABLE_STATES,
    Action.CLEANUP: frozenset({S.CLEANING}),
    Action.RECYCLE: frozenset({S.CLEANING}),
    Action.CLOSE: frozenset({S.CLOSE_QUEUED}),
    Action.HANDOVER: frozenset({S.HANDOVER}),
    # Reads only (billing_app/services/meter.py): the accounts students use.
    Action.METER: IN_USE_STATES,
    # A course's schedule (billing_app/services/schedules.py) stops what runs in a ready account,
    # and the student starts it again there; a frozen account is the freeze's.
    Action.SCHEDULE_STOP: frozenset({S.READY}),
    Action.SCHEDULE_START: frozenset({S.READY}),
}
# The ownership check asks AWS Organizations twice (ListParents, ListTagsForResource) in the
# management account: the actions that run every few minutes in every account (the usage meter,
# the schedules) ask it once an hour per account.
OWNERSHIP_RECHECK_SECONDS = 60 * 60
# Setting an account up moves it into its course's OU and reads and writes its tags: AWS's own
# answers, minutes old, are the ownership check's for the actions that follow it at once and
# change nothing inside the account (its budget lives in the management account).
SETUP_CONFIRMS = frozenset({Action.BUDGET})
SETUP_CONFIRMATION_SECONDS = 10 * 60


class StateRefused(Exception):
    """The record's state does not allow the action; the message says why."""


# What a refused gate raises: callers catch both.
REFUSED = (StateRefused, NotOurs)


def state_gate(account: MemberAccount, *, action: Action) -> None:
    """Raise StateRefused unless the record, as the database has it now, allows `action`."""
    current = MemberAccount.objects.filter(pk=account.pk).values("state", "aws_account_id").first()
    if current is None or current["aws_account_id"] != account.aws_account_id:
        raise StateRefused(f"The record of {account.account_name} changed meanwhile: no {action}.")
    if not current["aws_account_id"] or current["state"] not in ALLOWED_STATES[action]:
        label = S(current["state"]).label.lower()
        raise StateRefused(f"{account.account_name} is {label}, a state that allows no {action}.")


def action_gate(account: MemberAccount, *, action: Action, organization: AwsOrganization) -> None:
    """Both checks, before an AWS call that changes the account: its record's state allows the
    action (StateRefused otherwise), and AWS shows the account in the OU the record expects with
    the portal's tag (NotOurs otherwise), or, for SETUP_CONFIRMS, showed it while setting the
    account up a few minutes ago."""
    state_gate(account, action=action)
    if action in SETUP_CONFIRMS and cache.get(_setup_confirmation_key(account, organization)):
        return
    ownership_check(account, organization)


def ownership_confirmed_by_setup(account: MemberAccount, organization: AwsOrganization) -> None:
    """The setup has just had AWS put the account in the OU its record expects and show (or take)
    the portal's tag: remembered for SETUP_CONFIRMATION_SECONDS, for SETUP_CONFIRMS only."""
    cache.set(_setup_confirmation_key(account, organization), 1, SETUP_CONFIRMATION_SECONDS)


def _setup_confirmation_key(account: MemberAccount, organization: AwsOrganization) -> str:
    return f"account-set-up:{account.pk}:{account.aws_account_id}:{expected_parent(account, organization)}"


def ownership_check_hourly(account: MemberAccount, organization: Callable[[], AwsOrganization]) -> None:
    """`ownership_check`, whose success is remembered for OWNERSHIP_RECHECK_SECONDS (a refusal
    is not: it is asked again each time). `organization` is called only when AWS is asked."""
    key = f"account-ours:{account.pk}:{account.aws_account_id}"
    if cache.get(key):
        return
    ownership_check(account, organization())
    cache.set(key, 1, OWNERSHIP_RECHECK_SECONDS)


def course_ou_check(course: Course, organization: AwsOrganization, ou_id: str) -> None:
    """Raise NotOurs unless `ou_id` sits directly under the portal's OU: a course's SCP is
    attached to its own OU and nowhere else, whatever id the database holds."""
    parent = organizations.parent_id(ou_id)
    if parent != organization.parent_ou_id:
        raise NotOurs(
            f"OU {ou_id} of course {course.code} is under {parent}, not under the portal's OU "
            f"{organization.parent_ou_id}: the portal attaches its SCPs to its own OUs only."
        )
