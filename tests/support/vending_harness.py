"""A running vending stack, for the reliability tests and the vending and crash benchmarks.

moto_server stands for AWS, behind the FaultyAws proxy; the portal's Celery workers run as
subprocesses against the proxy (one or more, as on several machines); this process sets the
organization up, provisions a course and plays beat (the due tick and the reconciler) until every
account is READY or FAILED.

The workers share this process's database (for pytest-django, the test database: the test must
commit its data, `@pytest.mark.django_db(transaction=True)`) and Redis (broker and cache, from
REDIS_URL). Everything listens on loopback and is stopped on the way out, failure or not.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.core.cache import cache
from django.db import connections

from accounts_app.choices import AccountState, CourseRole, MembershipSource
from accounts_app.models import Course, MemberAccount, Membership
from accounts_app.next_step import steps_due_enqueue
from accounts_app.services.account_requests import course_provision_all
from accounts_app.services.bootstrap import aws_bootstrap
from accounts_app.services.reconcile import reconcile
from portal.aws import organizations, session
from portal.aws.errors import AwsError
from portal.celery import app as celery_app
from tests.factories import CourseFactory
from tests.support.faulty_aws import NO_FAULTS, CreationLimits, Faults, FaultyAws

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# User-agent app ids, so that the proxy counts each worker's calls apart from this process's.
WORKER_CLIENT = "portal-worker"
BEAT_CLIENT = "portal-beat"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "harness", "AWS_SECRET_ACCESS_KEY": "harness"}
SETTLED_STATES = {AccountState.READY, AccountState.FAILED}


@dataclass(frozen=True)
class Scenario:
    students: int
    limits: CreationLimits
    faults: Faults = NO_FAULTS
    poll_seconds: float = 1.0
    poll_max_seconds: float = 5.0
    reconcile_every: float = 5.0
    # Bounds the wait for every account to settle, so that a stuck portal fails instead of hanging.
    deadline_seconds: float = 600.0
    seed: int = 0
    worker_concurrency: int = 4
    # Worker processes, each with its own hostname, as on as many machines.
    workers: int = 1
    # The portal's PORTAL_AWS_CREATION_SECONDS (when it first looks at a creation); by default
    # how long the proxy takes to create an account.
    creation_seconds: float | None = None
    # Beat's due tick (PORTAL_DUE_TICK_SECONDS), which this process plays, and the grace past a
    # step's time after which it is queued again (PORTAL_STEP_GRACE_SECONDS).
    tick_every: float = 1.0
    step_grace_seconds: float = 10.0
    # How long a CreateAccount with no answer waits to be listed before it is sent again.
    lost_request_seconds: float = 120.0

    @property
    def typical_creation_seconds(self) -> float:
        return self.limits.creation_seconds if self.creation_seconds is None else self.creation_seconds


@dataclass(frozen=True)
class Outcome:
    course: Course
    started: float  # time.monotonic() when provisioning was asked for
    settled: float | None  # when every account was READY or FAILED; None if the deadline passed


@dataclass
class VendingStack:
    scenario: Scenario
    proxy: FaultyAws
    moto_url: str
    workers: list[subprocess.Popen]
    worker_logs: list[Path]

    def vend(self) -> Outcome:
        """Provision a course of `scenario.students` students, with the faults on, and wait,
        playing beat."""
        course = course_with_students(self.scenario.students)
        self.proxy.set_faults(self.scenario.faults)
        started = time.monotonic()
        course_provision_all(actor=None, course=course)
        return Outcome(course, started, self._wait_until_settled(course))

    def _wait_until_settled(self, course: Course) -> float | None:
        deadline = time.monotonic() + self.scenario.deadline_seconds
        beat = PlayedBeat(self.scenario)
        while time.monotonic() < deadline:
            for worker in self.workers:
                if worker.poll() is not None:
                    raise RuntimeError(f"A Celery worker stopped ({worker.returncode}):\n{self.worker_log_tail()}")
            if course_settled(course):
                return time.monotonic()
            beat.run_due()
            time.sleep(0.2)
        return None

    def moto_accounts(self) -> list[tuple[str, str]]:
        """(id, email) of every account, straight from moto: neither the proxy nor the portal."""
        import boto3  # here only: the portal's own clients go through portal.aws

        api = boto3.client(
            "organizations",
            endpoint_url=self.moto_url,
            region_name=settings.PORTAL_AWS_REGION,
            **_lowercase(FAKE_CREDENTIALS),
        )
        return [
            (a["Id"], a["Email"]) for page in api.get_paginator("list_accounts").paginate() for a in page["Accounts"]
        ]

    def worker_calls(self) -> Counter[str]:
        """The AWS calls of every worker process, by operation."""
        calls: Counter[str] = Counter()
        for n in range(len(self.workers)):
            calls += self.proxy.calls_of(worker_client(n))
        return calls

    def worker_log_tail(self, lines: int = 60) -> str:
        return "\n".join(
            f"{log.name}: {line}"
            for log in self.worker_logs
            for line in log.read_text(errors="replace").splitlines()[-lines:]
        )


def course_with_students(students: int) -> Course:
    """A course of `students` students and an instructor, no account asked for yet."""
    course = CourseFactory()
    roster = [(f"teacher@{course.code}.example", CourseRole.INSTRUCTOR)]
    roster += [(f"student{i:03d}@{course.code}.example", CourseRole.STUDENT) for i in range(students)]
    Membership.objects.bulk_create(
        Membership(course=course, email=email, role=role, source=MembershipSource.IMPORT) for email, role in roster
    )
    return course


def course_settled(course: Course) -> bool:
    """Every account of the course is READY or FAILED."""
    return not MemberAccount.objects.filter(course=course).exclude(state__in=SETTLED_STATES).exists()


class PlayedBeat:
    """Beat's vending jobs, run from this process on the scenario's clock: the due tick and the
    reconciler. Their tasks go to the workers through the broker."""

    def __init__(self, scenario: Scenario):
        self.scenario = scenario
        now = time.monotonic()
        self.next_tick, self.next_reconcile = now + scenario.tick_every, now + scenario.reconcile_every

    def run_due(self) -> None:
        now = time.monotonic()
        if now >= self.next_tick:
            steps_due_enqueue()
            self.next_tick = now + self.scenario.tick_every
        if now >= self.next_reconcile:
            _reconcile_once()
            self.next_reconcile = now + self.scenario.reconcile_every


@contextmanager
def vending_stack(scenario: Scenario) -> Iterator[VendingStack]:
    """moto_server, the proxy (faults off until vend()), a bootstrapped organization, the
    workers."""
    with tempfile.TemporaryDirectory(prefix="vending-harness-") as scratch, ExitStack() as stack:
        logs = Path(scratch)
        moto_url = stack.enter_context(moto_server(logs / "moto.log"))
        proxy = stack.enter_context(FaultyAws(moto_url, limits=scenario.limits, seed=scenario.seed))
        stack.enter_context(aws_environment(proxy.endpoint_url))
        organizations.create_organization()
        aws_bootstrap(actor=None)
        stack.enter_context(tasks_go_to_the_broker())
        environment = worker_environment(scenario, proxy.endpoint_url)
        worker_logs = [logs / f"worker-{n}.log" for n in range(scenario.workers)]
        workers = [
            stack.enter_context(worker_process({**environment, "AWS_SDK_UA_APP_ID": worker_client(n)}, scenario, log))
            for n, log in enumerate(worker_logs)
        ]
        yield VendingStack(scenario, proxy, moto_url, workers, worker_logs)


def worker_client(n: int) -> str:
    """The user-agent app id of the stack's nth worker process."""
    return f"{WORKER_CLIENT}-{n}"


def _reconcile_once() -> None:
    try:
        reconcile()
    except AwsError as error:
        # Beat would simply run it again later.
        logger.warning("Reconcile failed: %s", error)


# --- Processes ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"moto_server did not listen on port {port} within {timeout} s")


def stop(process: subprocess.Popen, grace: float = 20) -> None:
    """Ask politely, then kill the process group (its own session, so only what we started)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


@contextmanager
def moto_server(log_path: Path) -> Iterator[str]:
    port = free_port()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            # The portal's emulator: moto_server with what moto lacks put back (at moto's pace
            # for new accounts unless told otherwise), as `make run` starts it.
            [sys.executable, "-m", "devtools.emulator.server", "-H", "127.0.0.1", "-p", str(port)],
            env={**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_for_port(port, process, timeout=60)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(process)


def start_worker(env: dict[str, str], scenario: Scenario, log_path: Path, *, wait: bool = True) -> subprocess.Popen:
    """A worker process with its own hostname, once it answers a ping (unless not `wait`); its
    output appended to `log_path`."""
    node = f"vending-harness-{os.getpid()}-{log_path.stem}@{socket.gethostname()}"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                str(BIN / "celery"),
                "-A",
                "portal",
                "worker",
                "--concurrency",
                str(scenario.worker_concurrency),
                "--loglevel",
                "warning",
                "--hostname",
                node,
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        if wait:
            _wait_for_worker(node, process, log_path, timeout=120)
    except BaseException:
        stop(process)
        raise
    return process


def start_beat(env: dict[str, str], scratch: Path, log_path: Path) -> subprocess.Popen:
    """Celery beat, with the portal's schedule (the due tick every PORTAL_DUE_TICK_SECONDS), its
    state kept in `scratch`; its output appended to `log_path`."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [
                str(BIN / "celery"),
                "-A",
                "portal",
                "beat",
                "--schedule",
                str(scratch / "beat-schedule"),
                "--loglevel",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@contextmanager
def worker_process(env: dict[str, str], scenario: Scenario, log_path: Path) -> Iterator[subprocess.Popen]:
    process = start_worker(env, scenario, log_path)
    try:
        yield process
    finally:
        stop(process)


def _wait_for_worker(node: str, process: subprocess.Popen, log_path: Path, timeout: float) -> None:
    """Until the worker answers a ping, so that its start-up is not counted as vending time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"The Celery worker exited with {process.returncode}:\n{log_path.read_text(errors='replace')}"
            )
        # A connection of its own, not the pool's: a pooled one may be to a Redis that has been
        # restarted since (bench/crash.py), and a ping does not reconnect.
        with celery_app.connection_for_write() as connection:
            if celery_app.control.ping(destination=[node], timeout=1.0, connection=connection):
                return
    raise RuntimeError(f"The Celery worker did not answer within {timeout} s.")


# --- Configuration --------------------------------------------------------------------------------


def _lowercase(variables: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in variables.items()}


def _database_url() -> str:
    """The database this process uses right now (pytest-django renames it to test_…)."""
    db = connections["default"].settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql":
        raise RuntimeError("The vending harness shares its database with a worker process: use PostgreSQL.")
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    at = f"{credentials}@" if credentials else ""
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{at}{db['HOST']}{port}/{quote(db['NAME'], safe='')}"


def _aws_settings() -> dict[str, str]:
    return {"AWS_DEFAULT_REGION": settings.PORTAL_AWS_REGION, **FAKE_CREDENTIALS}


def worker_environment(scenario: Scenario, endpoint_url: str) -> dict[str, str]:
    """What a worker (or beat) of the stack reads: this process's database and Redis, the proxy
    as AWS, the scenario's quotas and pace."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "PORTAL_AWS_", "CELERY_", "DATABASE_", "REDIS_"))
    }
    limits = scenario.limits
    return {
        **inherited,
        **_aws_settings(),
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_SDK_UA_APP_ID": WORKER_CLIENT,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "PORTAL_LOG_LEVEL": "WARNING",
        "PORTAL_AWS_CREATE_ACCOUNT_RATE": str(limits.rate),
        "PORTAL_AWS_CREATE_ACCOUNT_BURST": str(limits.burst),
        "PORTAL_AWS_MAX_CREATIONS_IN_PROGRESS": str(limits.max_in_progress),
        "PORTAL_AWS_POLL_SECONDS": str(scenario.poll_seconds),
        "PORTAL_AWS_POLL_MAX_SECONDS": str(scenario.poll_max_seconds),
        "PORTAL_AWS_CREATION_SECONDS": str(scenario.typical_creation_seconds),
        "PORTAL_DUE_TICK_SECONDS": str(scenario.tick_every),
        "PORTAL_STEP_GRACE_SECONDS": str(scenario.step_grace_seconds),
        "PORTAL_AWS_LOST_REQUEST_SECONDS": str(scenario.lost_request_seconds),
    }


@contextmanager
def aws_environment(endpoint_url: str) -> Iterator[None]:
    """This process's AWS clients talk to the proxy (boto3 reads AWS_ENDPOINT_URL from the
    environment when a client is made, hence the session resets)."""
    wanted = {**_aws_settings(), "AWS_ENDPOINT_URL": endpoint_url, "AWS_SDK_UA_APP_ID": BEAT_CLIENT}
    cleared = ["AWS_PROFILE", "AWS_SESSION_TOKEN"]
    saved = {name: os.environ.get(name) for name in [*wanted, *cleared]}
    os.environ.update(wanted)
    for name in cleared:
        os.environ.pop(name, None)
    session.reset()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        session.reset()


@contextmanager
def tasks_go_to_the_broker() -> Iterator[None]:
    """Tasks queued here go to the workers through Redis instead of running inline (the tests'
    conftest makes them eager). Leftovers of an interrupted run are purged first: their ids
    would point at rows of another database."""
    if not settings.REDIS_URL:
        raise RuntimeError("The vending harness needs REDIS_URL: the worker takes its tasks from Redis.")
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    celery_app.control.purge()
    cache.clear()
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = eager
        celery_app.control.purge()
