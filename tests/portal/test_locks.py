"""Advisory locks (portal/locks.py): held by one database session at a time, whatever process
or machine it belongs to; another waits until the holder lets go, and a holder that dies (its
connection gone) lets go with it."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from portal.locks import advisory_lock, lock_key
from tests.support.advisory_locks import held_elsewhere, waiting_for


def free_now(name: str) -> bool:
    """Whether this session can take the lock at once (it then lets it go again)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [lock_key(name)])
        taken = cursor.fetchone()[0]
        if taken:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [lock_key(name)])
    return taken


def test_every_process_knows_a_lock_by_the_same_key():
    assert lock_key("vending-queue") == lock_key("vending-queue") != lock_key("cost-sync")


@pytest.mark.django_db(transaction=True)
def test_a_second_session_waits_until_the_holder_lets_go():
    order: list[str] = []

    def second() -> None:
        try:
            with advisory_lock("test-lock"):
                order.append("second session in")
        finally:
            connection.close()

    with held_elsewhere("test-lock"):
        thread = threading.Thread(target=second)
        thread.start()
        assert waiting_for("test-lock")
        order.append("holder lets go")
    thread.join(timeout=30)

    assert order == ["holder lets go", "second session in"]


@pytest.mark.django_db(transaction=True)
def test_the_lock_of_a_holder_whose_connection_dies_is_free():
    def dies_holding() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [lock_key("test-lock")])
        connection.close()  # as a worker killed with SIGKILL: no unlock ever sent

    thread = threading.Thread(target=dies_holding)
    thread.start()
    thread.join(timeout=30)

    assert free_now("test-lock")


@pytest.mark.django_db(transaction=True)
def test_a_block_that_raises_lets_the_lock_go():
    with pytest.raises(RuntimeError), advisory_lock("test-lock"):
        raise RuntimeError("the step failed")

    def other_session() -> bool:
        try:
            return free_now("test-lock")
        finally:
            connection.close()

    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(other_session()))
    thread.start()
    thread.join(timeout=30)
    assert result == [True]
