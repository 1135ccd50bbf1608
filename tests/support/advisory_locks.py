"""Holding a PostgreSQL advisory lock from another database session (a thread with its own
connection), and seeing when a session waits for one: what two workers on two machines do."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, connections

from portal.locks import advisory_lock, lock_key


@contextmanager
def held_elsewhere(name: str) -> Iterator[None]:
    """The lock `name`, held by another session for the block."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with advisory_lock(name):
                held.set()
                release.wait(timeout=60)
        finally:
            connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(timeout=30), "the other session never got the lock"
    try:
        yield
    finally:
        release.set()
        thread.join(timeout=30)


def waiting_for(name: str, timeout: float = 30) -> bool:
    """Whether some session comes to wait for the lock `name` (a row of pg_locks not granted),
    looked for from a connection of its own."""
    key = lock_key(name)
    classid, objid = (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF
    found = threading.Event()

    def look() -> None:
        try:
            deadline = time.monotonic() + timeout
            with connections["default"].cursor() as cursor:
                while time.monotonic() < deadline:
                    cursor.execute(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                        "AND classid::bigint = %s AND objid::bigint = %s",
                        [classid, objid],
                    )
                    if cursor.fetchone()[0]:
                        found.set()
                        return
                    time.sleep(0.05)
        finally:
            connection.close()

    thread = threading.Thread(target=look)
    thread.start()
    thread.join(timeout=timeout + 5)
    return found.is_set()
