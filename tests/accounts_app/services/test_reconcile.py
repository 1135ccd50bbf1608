"""The reconciler's stuck rule (accounts_app/services/reconcile.py): an account whose next step
is the portal's is stuck once its due time is past by more than what beat's due tick allows
(four ticks), not after a fixed age; it gets its step queued again and the drift report says so.
The reconciler's other repairs are tested with what they repair (the vending queue, staff access,
freezing, spending, handovers, brought accounts)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from accounts_app.choices import AccountState as S
from accounts_app.models import AwsOrganization, MemberAccount
from accounts_app.services.reconcile import reconcile, stuck_accounts, stuck_after
from tests.factories import MemberAccountFactory


def due(state: S, at) -> MemberAccount:
    """A record in `state` whose next step is due `at` (None: a record from before due times)."""
    pk = MemberAccountFactory.create(state=state).pk
    MemberAccount.objects.filter(pk=pk).update(next_attempt_at=at)
    return MemberAccount.objects.get(pk=pk)


@pytest.mark.django_db
def test_the_stuck_threshold_is_four_due_ticks(settings):
    settings.PORTAL_DUE_TICK_SECONDS = 15
    assert stuck_after() == timedelta(seconds=60)


@pytest.mark.django_db
def test_an_account_is_stuck_once_its_due_time_is_past_by_more_than_the_threshold(clock, settings):
    settings.PORTAL_DUE_TICK_SECONDS = 15
    overdue = due(S.CLEANING, clock.now - timedelta(seconds=61))
    late_but_the_ticks_own = due(S.CONFIGURING, clock.now - timedelta(seconds=59))
    due_later = due(S.CREATING, clock.now + timedelta(hours=1))
    # Working for hours, but its next look is not due yet: not stuck (a fixed age would say so).
    long_closing = due(S.CLOSING, clock.now + timedelta(minutes=5))
    MemberAccount.objects.filter(pk=long_closing.pk).update(state_changed_at=clock.now - timedelta(hours=6))
    frozen = due(S.FROZEN, clock.now - timedelta(hours=1))  # nothing of the portal's to do

    assert set(stuck_accounts(clock.now)) == {overdue}
    assert {late_but_the_ticks_own, due_later, long_closing, frozen}.isdisjoint(stuck_accounts(clock.now))


@pytest.mark.django_db
def test_an_account_without_a_due_time_counts_from_its_last_change(clock, settings):
    """Records from before due times have none: their last change stands for it."""
    settings.PORTAL_DUE_TICK_SECONDS = 15
    old = due(S.CONFIGURING, None)
    MemberAccount.objects.filter(pk=old.pk).update(state_changed_at=clock.now - timedelta(minutes=2))
    recent = due(S.CONFIGURING, None)
    MemberAccount.objects.filter(pk=recent.pk).update(state_changed_at=clock.now - timedelta(seconds=30))

    assert set(stuck_accounts(clock.now)) == {old}


@pytest.mark.django_db
def test_the_reconciler_queues_a_stuck_step_again_and_reports_that_the_tick_did_not(
    personas, aws, clock, settings, queued
):
    settings.PORTAL_DUE_TICK_SECONDS = 15
    settings.PORTAL_STEP_GRACE_SECONDS = 60
    stuck = due(S.CLEANING, clock.now - timedelta(minutes=10))
    on_time = due(S.CLEANING, clock.now + timedelta(seconds=5))

    drift = reconcile()

    assert queued["account_cleanup_task"] == [stuck.pk]
    assert MemberAccount.objects.get(pk=stuck.pk).next_attempt_at == clock.now + timedelta(seconds=60)
    assert MemberAccount.objects.get(pk=on_time.pk).next_attempt_at == clock.now + timedelta(seconds=5)
    (line,) = [line for line in drift if "overdue" in line]
    assert line.startswith("1 account(s) had their next step overdue by more than 60 s")
    assert "steps-due" in line
    assert AwsOrganization.load().drift == drift
