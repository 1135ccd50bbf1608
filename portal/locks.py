"""Locks that hold across every worker process on every machine: PostgreSQL advisory locks.

A queue that must keep to AWS's quotas (the vending queue) or a job that must not run twice at
once (the cost sync) takes one by name. The lock belongs to the database session of the process
that holds it, not to a transaction: the holder may commit as it goes (a record marked as sent
before the request that sends it), and a process that dies, whatever the signal, loses its
connection and with it the lock. A lock in the cache or in one process would do neither.

SQLite (the single-machine demo) has no advisory locks and lets one writer in at a time: there
the lock is a no-op, as `select_for_update` is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connection

VENDING_QUEUE = "vending-queue"
COST_SYNC = "cost-sync"


def lock_key(name: str) -> int:
    """The 64-bit key PostgreSQL knows the lock `name` by, the same in every process."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def advisory_lock(name: str) -> Iterator[None]:
    """Hold the lock `name` for the block, waiting while another session holds it."""
    if connection.vendor != "postgresql":
        yield
        return
    key = lock_key(name)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [key])
    try:
        yield
    finally:
        _unlock(key)


def _unlock(key: int) -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
    except DatabaseError:
        # A failed transaction refuses the unlock; closing the session is what releases it then,
        # rather than leaving every other worker waiting on a lock nobody uses.
        connection.close()
