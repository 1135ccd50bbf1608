"""A crash in the middle of vending: the worker and beat killed with SIGKILL, Redis restarted
empty (every queued message and countdown lost), and how long the course then takes to converge.

The benchmark starts its own redis-server (so that killing it touches nothing else), an emulated
AWS with its CreateAccount quotas (tests/support/faulty_aws.py, no faults), a Celery worker and
beat as subprocesses, and provisions a course of STUDENTS students. Once a quarter of the accounts
are ready it kills the worker and beat (SIGKILL, their whole process groups) and Redis, starts
Redis again empty, then the worker and beat, and measures the time from that restart until every
account is ready: what was lost is found again from the due times in the database (beat's due
tick), not from the broker. It checks that no student got a second account: AWS (the proxy) took
one CreateAccount per root email, and moto lists each root email once. AWS's pace is sped up
SPEEDUP times, and the portal's settings with it. Run with `make bench` (needs `redis-server`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from common import machine, record, setup_django, test_database
from vending import fastest_finish

AWS_CREATION_SECONDS = 60.0
POLL_SECONDS, POLL_MAX_SECONDS = 5.0, 60.0
TICK_SECONDS, GRACE_SECONDS, LOST_REQUEST_SECONDS = 15.0, 60.0, 120.0
# The course converges within this long of the restart, at AWS's pace, beyond what AWS's quotas
# alone need for the accounts left: 5 creations of a minute at a time make any course of more
# than 10 students left take longer than 2 minutes, crash or not.
TARGET_SECONDS = 120.0
DEADLINE_SECONDS = 15 * 60


@dataclass(frozen=True)
class CrashRun:
    at_kill: dict[str, int]  # the course's accounts by state when the processes were killed
    converged: float  # seconds from the restart to every account ready
    # The fastest the quotas allow, from the restart, for the accounts not created at the kill and
    # the creations then under way.
    remaining_bound: float
    duplicates: int
    violations: int
    requeued: int  # steps beat's due tick queued again after the restart (the worker's log)

    @property
    def lost(self) -> float:
        """What the crash added: the time to converge beyond what the quotas needed anyway."""
        return self.converged - self.remaining_bound


@contextmanager
def redis_server(port: int, log_path: Path) -> Iterator[subprocess.Popen]:
    """A redis-server of our own on `port`, persisting nothing: started again, it is empty."""
    process = start_redis(port, log_path)
    try:
        yield process
    finally:
        kill_group(process)


def start_redis(port: int, log_path: Path) -> subprocess.Popen:
    import redis

    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            redis.Redis(port=port, socket_connect_timeout=1).ping()
            return process
        except redis.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"redis-server did not answer on port {port}")


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL to the process and every child it started (its own process group)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def crash_once(students: int, k: float, port: int) -> CrashRun:
    from django.conf import settings
    from django.core.management import call_command

    from accounts_app.choices import AccountState
    from accounts_app.models import MemberAccount
    from accounts_app.services.account_requests import course_provision_all
    from accounts_app.services.bootstrap import aws_bootstrap
    from portal.aws import organizations
    from tests.support.faulty_aws import CreationLimits, FaultyAws
    from tests.support.vending_harness import (
        Scenario,
        aws_environment,
        course_settled,
        course_with_students,
        moto_server,
        start_beat,
        start_worker,
        stop,
        worker_environment,
    )

    aws = CreationLimits(creation_seconds=AWS_CREATION_SECONDS)
    limits = replace(aws, rate=aws.rate * k, creation_seconds=aws.creation_seconds / k)
    scenario = Scenario(
        students=students,
        limits=limits,
        poll_seconds=POLL_SECONDS / k,
        poll_max_seconds=POLL_MAX_SECONDS / k,
        tick_every=TICK_SECONDS / k,
        step_grace_seconds=GRACE_SECONDS / k,
        lost_request_seconds=LOST_REQUEST_SECONDS / k,
    )
    call_command("flush", interactive=False, verbosity=0)  # each run with a database of its own
    with tempfile.TemporaryDirectory(prefix="crash-bench-") as scratch, ExitStack() as stack:
        logs = Path(scratch)
        redis_process = [stack.enter_context(redis_server(port, logs / "redis.log"))]
        stack.callback(lambda: kill_group(redis_process[-1]))
        moto_url = stack.enter_context(moto_server(logs / "moto.log"))
        proxy = stack.enter_context(FaultyAws(moto_url, limits=scenario.limits))
        stack.enter_context(aws_environment(proxy.endpoint_url))
        organizations.create_organization()
        aws_bootstrap(actor=None)
        env = worker_environment(scenario, proxy.endpoint_url)
        processes: list[subprocess.Popen] = []
        stack.callback(lambda: [stop(process) for process in processes])

        def start_portal(*, wait: bool) -> None:
            processes.append(start_worker(env, scenario, logs / "worker.log", wait=wait))
            processes.append(start_beat(env, logs, logs / "beat.log"))

        start_portal(wait=True)
        course = course_with_students(students)
        course_provision_all(actor=None, course=course)
        accounts = MemberAccount.objects.filter(course=course)
        _wait_for(lambda: accounts.filter(state=AccountState.READY).count() >= students // 4, "a quarter ready")
        at_kill = dict(Counter(accounts.values_list("state", flat=True)))
        created_at_kill = len(proxy.creations)

        for process in processes:
            kill_group(process)
        processes.clear()
        kill_group(redis_process[-1])
        redis_process.append(start_redis(port, logs / "redis.log"))  # empty: nothing persisted
        restarted = time.monotonic()
        running, tokens = proxy.creation_quotas(restarted)
        log_before = (logs / "worker.log").read_text(errors="replace")
        # Not waiting for the worker to answer: this process's broker connections went with the
        # Redis that died, and the worker's start counts in the time to converge anyway.
        start_portal(wait=False)
        _wait_for(lambda: course_settled(course), "every account settled", DEADLINE_SECONDS)
        converged = time.monotonic() - restarted

        unready = [f"{a.account_name}: {a.state} ({a.last_error})" for a in accounts.exclude(state=AccountState.READY)]
        if unready:
            sys.exit("Accounts not ready:\n" + "\n".join(unready))
        emails = {a.root_email.lower() for a in accounts}
        in_moto = Counter(email.lower() for _, email in _moto_accounts(moto_url, settings.PORTAL_AWS_REGION))
        creations = proxy.creations_per_email()
        duplicates = sum(creations[email] > 1 for email in emails) + sum(in_moto[email] != 1 for email in emails)
        log_after = (logs / "worker.log").read_text(errors="replace")[len(log_before) :]
        remaining = students - created_at_kill
        return CrashRun(
            at_kill=at_kill,
            converged=converged,
            remaining_bound=fastest_finish(
                remaining,
                limits.rate,
                limits.burst,
                limits.max_in_progress,
                limits.creation_seconds,
                running=running,
                tokens=tokens,
            ),
            duplicates=duplicates,
            violations=len(proxy.violations),
            requeued=log_after.count("Queued again the next step"),
        )


def _wait_for(condition, what: str, timeout: float = DEADLINE_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"Gave up waiting for {what}.")
        time.sleep(0.25)


def _moto_accounts(moto_url: str, region: str) -> list[tuple[str, str]]:
    import boto3  # here only: the portal's own clients go through portal.aws

    api = boto3.client(
        "organizations", endpoint_url=moto_url, region_name=region, aws_access_key_id="x", aws_secret_access_key="x"
    )
    return [(a["Id"], a["Email"]) for page in api.get_paginator("list_accounts").paginate() for a in page["Accounts"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--speedup", type=float, default=3.0, help="how many times faster than AWS")
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    k = options.speedup
    if shutil.which("redis-server") is None:
        sys.exit("bench/crash.py starts its own redis-server, which is not installed.")

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # This process, the worker and beat all use the benchmark's own Redis, as broker and cache.
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    setup_django()
    with test_database():
        runs = []
        for n in range(options.runs):
            print(f"Crash run {n + 1} of {options.runs}…", file=sys.stderr)
            runs.append(crash_once(options.students, k, port))
        measured_on = machine()

    median = statistics.median(run.converged for run in runs)
    lost = statistics.median(run.lost for run in runs)
    rows = "\n".join(
        f"| {n + 1} | {', '.join(f'{state} {count}' for state, count in sorted(run.at_kill.items()))} | "
        f"{run.remaining_bound:.1f} s | {run.converged:.1f} s ({run.converged * k:.0f} s at AWS's pace) | "
        f"{run.lost:.1f} s ({run.lost * k:.0f} s at AWS's pace) | {run.requeued} | {run.duplicates} | {run.violations} |"
        for n, run in enumerate(runs)
    )
    figure = (
        f"Converged {median:.1f} s after the restart, median of {len(runs)} runs ({median * k:.0f} s at AWS's pace), "
        f"{lost:.1f} s more than the quotas alone allow ({lost * k:.0f} s at AWS's pace; target ≤ "
        f"{TARGET_SECONDS:.0f} s), with {sum(run.duplicates for run in runs)} second accounts."
    )
    record(
        "crash",
        "Crash and broker loss in the middle of vending",
        f"A course of {options.students} students vended at {k:g}× AWS's pace (CreateAccount {0.1 * k:g}/s, burst 3, "
        f"5 creations in progress, each {AWS_CREATION_SECONDS / k:g} s), the portal's settings sped up alike "
        f"(due tick {TICK_SECONDS / k:g} s, grace {GRACE_SECONDS / k:g} s, a lost CreateAccount resent after "
        f"{LOST_REQUEST_SECONDS / k:g} s). A worker (4 processes) and beat run as subprocesses against the "
        "benchmark's own redis-server. Once a quarter of the accounts are ready, the worker and beat are "
        "killed with SIGKILL, and Redis too, which is started again empty (no persistence): every queued "
        "message, countdown and retry is gone. The worker and beat are started again at once; *converged* is "
        "from that restart (the worker's start included) to every account ready. *Fastest left* is the earliest AWS's "
        "quotas let every account be created, from the restart: the creations under way at the kill keep "
        "their slots until AWS ends them, the bucket holds the tokens it held, and each creation not yet "
        "asked for starts as soon as a slot and a token allow; the portal's own steps after a creation "
        "(moving the account, access) count for nothing, so it is low, and *lost to the crash*, converged "
        "minus fastest left, high. *Queued again* counts the tick's log "
        "lines `Queued again the next step of …` after the restart (one line may name several accounts). "
        "*Second accounts* counts root emails AWS took a second CreateAccount for, or that moto lists twice.\n\n"
        "| run | accounts at the kill | fastest left | converged | lost to the crash | queued again | "
        "second accounts | quota violations |\n|---:|---|---:|---:|---:|---:|---:|---:|\n"
        f"{rows}\n\n{figure}",
        measured_on=measured_on,
    )  # printed too, the figure last


if __name__ == "__main__":
    main()
