"""A student's account record as vending starts it, ready, and cleaned at the end; what tests read
of its history; and the workers that die part-way through a step or run it twice at once."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest

from accounts_app.choices import AccountState as S
from accounts_app.models import AccountEvent, MemberAccount, Membership
from accounts_app.services.account_requests import account_request
from accounts_app.services.account_setup import account_configure
from accounts_app.services.cleanup import account_clean
from accounts_app.services.ending import account_retire
from accounts_app.services.vending_queue import vending_dispatch


class WorkerKilled(BaseException):
    """The worker process dies (SIGKILL, OOM): nothing after this point runs."""


def student_membership(personas) -> Membership:
    return Membership.objects.get(user=personas.student)


def queued_account(personas) -> MemberAccount:
    """The student's account, waiting in the vending queue."""
    account = account_request(actor=personas.student, membership=student_membership(personas))
    assert account.state == S.REQUESTED
    return account


def ready_account(membership: Membership) -> MemberAccount:
    """Vend an account through the real steps (the tasks do not run here by themselves)."""
    account = account_request(actor=None, membership=membership)
    vending_dispatch()  # CreateAccount
    vending_dispatch()  # the creation's look, due at once (moto made the account in its answer)
    account.refresh_from_db()
    account_configure(account_id=account.pk)
    account.refresh_from_db()
    assert account.state == S.READY, account.last_error
    return account


def cleaning(account: MemberAccount) -> MemberAccount:
    """The account retired at the end of its course: its cleanup is due."""
    assert account_retire(actor=None, account=account, reason="End of course")
    return account


def run_cleanup(account: MemberAccount, passes: int = 10) -> None:
    """What the cleanup task does: run steps while another pass is due."""
    for _ in range(passes):
        if account_clean(account_id=account.pk) is None:
            return
    raise AssertionError("cleanup did not finish")


def transitions(account: MemberAccount) -> list[tuple[str, str]]:
    """The account's moves so far, oldest first: (from state, to state)."""
    return [(e.from_state, e.to_state) for e in AccountEvent.objects.filter(account=account).order_by("id")]


def record_transitions(monkeypatch: pytest.MonkeyPatch, service: ModuleType) -> list[tuple[str, bool]]:
    """Each move the service makes through lifecycle.transition, in the order they finish: (the
    state asked for, whether this caller made the move)."""
    outcomes: list[tuple[str, bool]] = []
    real_transition = service.transition

    def recorded_transition(*args, **kwargs):
        moved = real_transition(*args, **kwargs)
        outcomes.append((kwargs["to"], moved))
        return moved

    monkeypatch.setattr(service, "transition", recorded_transition)
    return outcomes


def second_worker_meanwhile(aws, event: str, step: Callable[[], object]) -> None:
    """A message delivered twice, its deliveries overlapping: when the first worker reaches
    `event` (a botocore event, e.g. after-call.organizations.MoveAccount), a second worker runs
    the whole `step`, once."""
    delivered: list[bool] = []

    def second_delivery(**kwargs) -> None:
        if not delivered:
            delivered.append(True)
            step()

    aws.add_hook(event, second_delivery)
