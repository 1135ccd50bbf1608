"""A student's account record as vending starts it, what tests read of its history, and the
workers that die part-way through a step or run it twice at once."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest

from accounts_app.choices import AccountState as S
from accounts_app.models import AccountEvent, MemberAccount, Membership
from accounts_app.services.account_requests import account_request


class WorkerKilled(BaseException):
    """The worker process dies (SIGKILL, OOM): nothing after this point runs."""


def student_membership(personas) -> Membership:
    return Membership.objects.get(user=personas.student)


def queued_account(personas) -> MemberAccount:
    """The student's account, waiting in the vending queue."""
    account = account_request(actor=personas.student, membership=student_membership(personas))
    assert account.state == S.REQUESTED
    return account


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
