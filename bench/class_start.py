"""Class start: 300 students open their course page and poll their account panel every 3 s while
an instructor reloads the cost dashboard, against gunicorn and PostgreSQL; and what signing in costs.

The portal runs as in production (PORTAL_ENV=production: DEBUG off, static files collected and
served by WhiteNoise with their manifest, persistent database connections) under gunicorn with
the deployment's sync workers, two per core. The people are made in the database directly:
students with accounts in progress or ready (no AWS is reached: no request of the run calls it),
a session for each (a password sign-in is measured apart, below), an instructor who signed in
with a second factor, and a month of costs for the dashboard. Locust (bench/locustfiles/) then
plays the class, RUNS times; the medians of the runs are reported.

Run with `make bench`; CLASS_START_SECONDS (60), CLASS_START_RUNS (3) and GUNICORN_WORKERS
(two per core) change the run.
"""

from __future__ import annotations

import csv
import json
import math
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

SECRET_KEY = secrets.token_urlsafe(50)
# Sessions are signed with the key: this process writes them, gunicorn reads them.
os.environ["DJANGO_SECRET_KEY"] = SECRET_KEY

from common import ROOT, machine, record, setup_django, test_database  # noqa: E402
from dashboard import usage_rows_insert  # noqa: E402

STUDENTS = 300
READY = 60  # accounts made before class (they have a month of costs); the others are in progress
SECONDS = int(os.environ.get("CLASS_START_SECONDS", "60"))
RUNS = int(os.environ.get("CLASS_START_RUNS", "3"))
CORES = os.cpu_count() or 1
# The deployment's guidance (docs/DEPLOYMENT.md): about two sync workers per core.
WORKERS = int(os.environ.get("GUNICORN_WORKERS", str(2 * CORES)))
POLL_SECONDS = 3  # the panel's hx-trigger (accounts_app.views.aws_accounts.PANEL_REFRESH_SECONDS)
DASHBOARD_SECONDS = 5  # the instructor reloads the dashboard this often
ARRIVALS_PER_SECOND = 30  # the class arrives within ten seconds
COST_DAYS = 30
TARGET_P95_MS = 200
BIN = Path(sys.executable).parent
LOCUSTFILE = ROOT / "bench" / "locustfiles" / "class_start.py"
JWT_VERIFICATIONS = 200
PASSWORD_CHECKS = 5
ACCESS_LOG_FORMAT = "%(U)s %(s)s %(M)s"


def seed(today) -> dict:
    """The course, its people and their sessions; returns the plan Locust reads."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.hashers import make_password
    from django.contrib.sessions.backends.db import SessionStore

    from accounts_app.choices import AccountState, CourseRole, MembershipSource
    from accounts_app.models import MemberAccount, Membership, User
    from tests.factories import CourseFactory

    course = CourseFactory(
        code="lab300",
        start_date=today - timedelta(days=COST_DAYS - 1),
        end_date=today + timedelta(days=90),
        budget_per_student=Decimal("600.00"),
    )
    # No password: nobody signs in with one here, and hashing 300 would take minutes.
    no_password = make_password(None)
    users = User.objects.bulk_create(
        User(email=f"student{i}@bench.example.edu", name=f"Student {i}", password=no_password) for i in range(STUDENTS)
    )
    memberships = Membership.objects.bulk_create(
        Membership(
            course=course,
            user=user,
            email=user.email,
            name=user.name,
            role=CourseRole.STUDENT,
            source=MembershipSource.IMPORT,
        )
        for user in users
    )
    in_progress = [
        AccountState.REQUESTED,
        AccountState.CREATING,
        AccountState.CONFIGURING,
        AccountState.WAITING_FOR_QUOTA,
    ]
    states = [AccountState.READY] * READY + [in_progress[i % 4] for i in range(STUDENTS - READY)]
    MemberAccount.objects.bulk_create(
        MemberAccount(
            course=course,
            membership=membership,
            state=state,
            root_email=f"aws+lab300-{i}@bench.example.edu",
            account_name=f"lab300-student{i}",
            aws_account_id=f"{900000000000 + i}" if state in (AccountState.READY, AccountState.CONFIGURING) else None,
        )
        for i, (membership, state) in enumerate(zip(memberships, states, strict=True))
    )

    def session_of(user: User, *, second_factor: bool = False) -> str:
        from allauth.account.internal.flows.login import record_authentication
        from django.test import RequestFactory

        session = SessionStore()
        session.update(
            {
                SESSION_KEY: str(user.pk),
                BACKEND_SESSION_KEY: "allauth.account.auth_backends.AuthenticationBackend",
                HASH_SESSION_KEY: user.get_session_auth_hash(),
            }
        )
        if second_factor:
            # What allauth records of a sign-in with a password and an authenticator app.
            request = RequestFactory().get("/")
            request.session = session
            record_authentication(request, user, "password", email=user.email)
            record_authentication(request, user, "mfa", type="totp")
        session.create()
        return session.session_key or ""

    return {
        "course_id": course.pk,
        "students": [session_of(user) for user in users],
        "instructor": session_of(instructor_with_costs(course, today), second_factor=True),
        "session_cookie": "sessionid",
        "poll_seconds": POLL_SECONDS,
        "dashboard_seconds": DASHBOARD_SECONDS,
    }


def instructor_with_costs(course, today):
    """The course's instructor (with an authenticator: production asks staff for one), and a
    month of costs for each ready account, rolled up as the sync does."""
    from allauth.mfa.models import Authenticator
    from django.db import connection

    from accounts_app.choices import CourseRole
    from billing_app.models import CostSync
    from billing_app.services.costs import rollups_rebuild
    from tests.factories import MembershipFactory, UserFactory

    instructor = UserFactory(email="instructor@bench.example.edu", is_instructor=True)
    MembershipFactory(course=course, user=instructor, role=CourseRole.INSTRUCTOR)
    Authenticator.objects.create(user=instructor, type=Authenticator.Type.TOTP, data={})
    start = course.start_date
    sync = CostSync.objects.create(window_start=start, window_end=today + timedelta(days=1))
    usage_rows_insert(course, start=start, days=COST_DAYS, sync=sync)
    rollups_rebuild(start=start, end=today + timedelta(days=1))
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return instructor


def production_environment(var_dir: Path) -> dict[str, str]:
    """gunicorn's environment: production settings, pointed at the benchmark's database."""
    from django.db import connection

    database = connection.settings_dict
    environment = {name: value for name, value in os.environ.items() if not name.startswith("AWS_ENDPOINT_URL")}
    environment.update(
        PORTAL_ENV="production",
        DJANGO_SECRET_KEY=SECRET_KEY,
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=(
            f"postgres://{database['USER']}:{database['PASSWORD']}@{database['HOST']}:{database['PORT']}"
            f"/{database['NAME']}"
        ),
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"),
        EMAIL_HOST="localhost",
        PORTAL_VAR_DIR=str(var_dir),
    )
    environment.pop("DJANGO_DEBUG", None)
    return environment


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gunicorn(environment: dict[str, str], port: int, var_dir: Path) -> subprocess.Popen:
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "--verbosity", "0"],
        cwd=ROOT,
        env=environment,
        check=True,
    )
    server = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "portal.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(WORKERS),
            "--access-logfile",
            str(var_dir / "access.log"),
            # The path, the status and the milliseconds gunicorn spent on the request.
            "--access-logformat",
            ACCESS_LOG_FORMAT,
            "--error-logfile",
            str(var_dir / "error.log"),
        ],
        cwd=ROOT,
        env=environment,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/healthz", headers={"X-Forwarded-Proto": "https"})
            with urllib.request.urlopen(request, timeout=5) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise RuntimeError(f"gunicorn did not answer /healthz: see {var_dir / 'error.log'}")


def cpu_seconds(process) -> float:
    """CPU time of a process and its children (gunicorn's workers)."""
    import psutil

    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        try:
            times = each.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def scheduler_seconds(pids: list[int]) -> tuple[float, float]:
    """Seconds the processes ran on a CPU, and seconds they were ready to run but waited for one
    (Linux's /proc/PID/schedstat): how much other work on the machine held them back."""
    ran = waited = 0.0
    for pid in pids:
        try:
            running, waiting, _ = Path(f"/proc/{pid}/schedstat").read_text().split()
        except (OSError, ValueError):
            continue
        ran += int(running) / 1e9
        waited += int(waiting) / 1e9
    return ran, waited


def locust_run(port: int, plan_path: Path, out_dir: Path, run: int, server) -> dict:
    """One run of the class: every request's time, by phase and kind; what the processes used."""
    import psutil

    prefix = out_dir / f"run{run}"
    timings_path = out_dir / f"run{run}-timings.json"
    access_log = out_dir / "access.log"
    log_start = access_log.stat().st_size
    workers = [child.pid for child in psutil.Process(server.pid).children()]
    load = os.getloadavg()[0]
    started = time.monotonic()
    server_cpu = cpu_seconds(psutil.Process(server.pid))
    scheduled = scheduler_seconds(workers)
    locust = subprocess.Popen(
        [
            str(BIN / "locust"),
            "--locustfile",
            str(LOCUSTFILE),
            "--headless",
            "--host",
            f"http://127.0.0.1:{port}",
            "--users",
            str(STUDENTS + 1),
            "--spawn-rate",
            str(ARRIVALS_PER_SECOND),
            "--run-time",
            f"{SECONDS}s",
            "--stop-timeout",
            "5",
            "--csv",
            str(prefix),
            "--only-summary",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env={**os.environ, "CLASS_START_PLAN": str(plan_path), "CLASS_START_TIMINGS": str(timings_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    locust_cpu = 0.0
    while locust.poll() is None:  # its CPU time, read while it runs (it is gone once it exits)
        try:
            locust_cpu = cpu_seconds(psutil.Process(locust.pid))
        except psutil.NoSuchProcess:
            break
        time.sleep(1)
    stderr = locust.stderr.read() if locust.stderr else ""
    if locust.returncode not in (0, 1):  # 1: some requests failed, which the figures show
        raise RuntimeError(f"locust failed:\n{stderr[-3000:]}")
    elapsed = time.monotonic() - started
    ran, waited = (after - before for after, before in zip(scheduler_seconds(workers), scheduled, strict=True))
    with access_log.open() as log:
        log.seek(log_start)
        server_ms = sorted(float(line.split()[-1]) for line in log if line.strip())
    with open(f"{prefix}_failures.csv", newline="") as file:
        failures = [f"{row['Name']}: {row['Error']} (×{row['Occurrences']})" for row in csv.DictReader(file)]
    timings = json.loads(timings_path.read_text())
    return {
        "kinds": summarize(timings, lambda phase, name: name),
        "phases": summarize(timings, lambda phase, name: phase),
        "all": summarize(timings, lambda phase, name: "all")["all"],
        "rate": len(timings) / SECONDS,
        "failures": failures,
        "server_cores": (cpu_seconds(psutil.Process(server.pid)) - server_cpu) / elapsed,
        "locust_cores": locust_cpu / elapsed,
        "waited_per_cpu_second": waited / ran if ran else 0.0,
        "server_p50": percentile(server_ms, 50),
        "server_p95": percentile(server_ms, 95),
        "load": load,
    }


def summarize(timings: list, group) -> dict[str, dict[str, float]]:
    """Count, errors and percentiles (ms) of the requests, grouped by `group(phase, name)`."""
    groups: dict[str, list] = {}
    for phase, name, milliseconds, failed in timings:
        groups.setdefault(group(phase, name), []).append((milliseconds, failed))
    summary = {}
    for key, requests in groups.items():
        ordered = sorted(milliseconds for milliseconds, _ in requests)
        summary[key] = {
            "count": len(requests),
            "failures": sum(failed for _, failed in requests),
            "p50": percentile(ordered, 50),
            "p95": percentile(ordered, 95),
            "p99": percentile(ordered, 99),
        }
    return summary


def percentile(ordered: list[float], percent: float) -> float:
    """The nearest-rank percentile of sorted values."""
    return ordered[max(0, math.ceil(len(ordered) * percent / 100) - 1)] if ordered else 0.0


def password_costs() -> dict[str, float]:
    """Seconds of one check of the configured hasher, and of a whole sign-in's authenticate()."""
    from django.contrib.auth import authenticate
    from django.contrib.auth.hashers import check_password, get_hasher, make_password
    from django.test import RequestFactory

    from tests.factories import UserFactory

    password = "correct horse battery staple"
    encoded = make_password(password)
    user = UserFactory(email="signin@bench.example.edu", password=password)

    def median_seconds(work) -> float:
        """CPU seconds, which other work on the machine does not stretch as it does wall time."""
        work()
        times = []
        for _ in range(PASSWORD_CHECKS):
            started = time.process_time()
            work()
            times.append(time.process_time() - started)
        return statistics.median(times)

    def sign_in(given: str):
        return authenticate(RequestFactory().post("/accounts/login/"), email=user.email, password=given)

    assert sign_in(password) == user and sign_in("wrong") is None
    return {
        "hasher": get_hasher().algorithm,
        "iterations": getattr(get_hasher(), "iterations", 0),
        "check": median_seconds(lambda: check_password(password, encoded)),
        "right": median_seconds(lambda: sign_in(password)),
        "wrong": median_seconds(lambda: sign_in("wrong")),
    }


def jwt_verification_seconds() -> float:
    """One RS256 ID token checked as an OpenID Connect client does: signature, issuer, audience, expiry."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC)
    claims = {
        "iss": "https://idp.school.example",
        "aud": "classroom-cloud-portal",
        "sub": "student-0001",
        "email": "student0001@school.example",
        "email_verified": True,
        "nonce": secrets.token_urlsafe(16),
        "iat": now,
        "exp": now + timedelta(minutes=5),
    }
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "campus-2026"})
    public_key = key.public_key()

    def verify():
        return jwt.decode(token, public_key, algorithms=["RS256"], audience=claims["aud"], issuer=claims["iss"])

    assert verify()["sub"] == "student-0001"
    started = time.process_time()
    for _ in range(JWT_VERIFICATIONS):
        verify()
    return (time.process_time() - started) / JWT_VERIFICATIONS


def median_of(runs: list[dict], part: str, key: str, field: str) -> float:
    """The median over the runs of one figure (0 where a run has no such request)."""
    return statistics.median(run[part].get(key, {}).get(field, 0) for run in runs)


def table_rows(runs: list[dict], part: str, keys: list[str]) -> list[str]:
    return [
        f"| {key} | {median_of(runs, part, key, 'count'):,.0f} | {median_of(runs, part, key, 'failures'):,.0f} "
        f"| {median_of(runs, part, key, 'p50'):,.0f} | {median_of(runs, part, key, 'p95'):,.0f} "
        f"| {median_of(runs, part, key, 'p99'):,.0f} |"
        for key in keys
    ]


def main() -> None:
    setup_django()
    from django.utils import timezone

    with test_database(), tempfile.TemporaryDirectory(prefix="class-start-") as scratch:
        var_dir = Path(scratch)
        plan = seed(timezone.localdate())
        plan_path = var_dir / "plan.json"
        plan_path.write_text(json.dumps(plan))
        port = free_port()
        server = start_gunicorn(production_environment(var_dir), port, var_dir)
        try:
            runs = [locust_run(port, plan_path, var_dir, run, server) for run in range(1, RUNS + 1)]
        finally:
            server.terminate()
            server.wait(timeout=30)
        passwords = password_costs()
        jwt_seconds = jwt_verification_seconds()
        measured_on = machine()

    kinds = sorted(
        {kind for run in runs for kind in run["kinds"]}, key=lambda kind: -median_of(runs, "kinds", kind, "count")
    )
    for run in runs:
        run["total"] = {"all": run["all"]}
    header = "| request | requests | errors | p50 ms | p95 ms | p99 ms |\n|---|---:|---:|---:|---:|---:|\n"
    by_kind = [*table_rows(runs, "kinds", kinds), *table_rows(runs, "total", ["all"])]
    by_kind[-1] = by_kind[-1].replace("| all |", "| **all** |", 1)
    by_phase = table_rows(runs, "phases", ["arriving", "all in"])
    p95 = median_of(runs, "total", "all", "p95")
    settled_p95 = median_of(runs, "phases", "all in", "p95")
    worst_kind, worst_p95 = max(((kind, median_of(runs, "kinds", kind, "p95")) for kind in kinds), key=lambda kp: kp[1])
    errors = sum(run["all"]["failures"] for run in runs)
    rate = statistics.median(run["rate"] for run in runs)
    failures = sorted({failure for run in runs for failure in run["failures"]})
    server_cores = statistics.median(run["server_cores"] for run in runs)
    locust_cores = statistics.median(run["locust_cores"] for run in runs)
    waited = statistics.median(run["waited_per_cpu_second"] for run in runs)
    server_p50 = statistics.median(run["server_p50"] for run in runs)
    server_p95 = statistics.median(run["server_p95"] for run in runs)
    loads = ", ".join(f"{run['load']:.1f}" for run in runs)
    cpu_per_request = server_cores / rate * 1000
    capacity = CORES / passwords["check"]
    held = p95 < TARGET_P95_MS and errors == 0
    failure_note = ("\n\nErrors seen: " + "; ".join(failures[:10]) + ".") if failures else ""
    record(
        "class_start",
        "Class start: 300 students and their account panels",
        f"{STUDENTS} students signed in open their course page, then poll their account panel every "
        f"{POLL_SECONDS} s as htmx does, while their instructor reloads the cost dashboard every "
        f"{DASHBOARD_SECONDS} s. {STUDENTS - READY} accounts are being made (requested, creating, "
        f"configuring, waiting for quota): their panels poll; {READY} are ready (with {COST_DAYS} days of "
        "costs): their panel has settled and does not poll, their page loads the usage meter and the "
        "scheduled stops instead. Each browser fetches the static files once and every fragment a page "
        f"loads by itself. The class arrives at {ARRIVALS_PER_SECOND} students a second; each run lasts "
        f"{SECONDS} s. Medians of {RUNS} runs of Locust (headless, `bench/locustfiles/class_start.py`) on "
        f"the same {CORES} cores as the portal and PostgreSQL; load average before each run: {loads}.\n\n"
        f"The portal: gunicorn, {WORKERS} sync workers ({WORKERS // CORES} per core, as docs/DEPLOYMENT.md "
        "advises), `PORTAL_ENV=production` (DEBUG off, database connections kept 60 s, static files "
        "collected and served by WhiteNoise), behind no proxy: the requests carry the session cookie and "
        "`X-Forwarded-Proto: https` as the TLS proxy's do. Sessions were written to the database "
        "directly; signing in is measured below.\n\n"
        + header
        + "\n".join(by_kind)
        + "\n\nBy phase: while the class is still arriving, and once all are in.\n\n"
        + header.replace("| request |", "| phase |")
        + "\n".join(by_phase)
        + "\n\n"
        f"gunicorn used {server_cores:.2f} of the {CORES} cores, Locust {locust_cores:.2f}: "
        f"{cpu_per_request:.1f} ms of gunicorn's CPU per request on average (PostgreSQL's aside), so "
        f"{CORES} cores that were the portal's alone would serve about {CORES / cpu_per_request * 1000:,.0f} "
        f"requests/s. Inside gunicorn a request took {server_p50:,.0f} ms (median), {server_p95:,.0f} ms "
        "(p95); the rest of what Locust measures is the wait for a free worker. For every second the "
        f"workers ran, they waited {waited:.1f} s for a CPU that other work on the machine held "
        "(`/proc/PID/schedstat`).\n\n"
        "A poll of a panel in progress takes 3 queries (the session; the user, with what the middleware "
        "checks of them; the student's entry with its course and account), as "
        "`tests/accounts_app/views/test_account_panel_polls.py` checks; a poll that finds the account "
        'settled is answered 286, htmx\'s "stop polling".\n\n'
        "**Signing in.** The configured hasher is "
        f"`{passwords['hasher']}` ({passwords['iterations']:,} iterations): one check takes "
        f"{passwords['check'] * 1000:,.0f} ms of CPU, so {CORES} cores check at most {capacity:,.1f} "
        f"passwords a second and a class of {STUDENTS} signing in with passwords at once needs "
        f"{STUDENTS / capacity:,.0f} s of both cores. `authenticate()` with the right password takes "
        f"{passwords['right'] * 1000:,.0f} ms, with a wrong one {passwords['wrong'] * 1000:,.0f} ms: "
        "Django's ModelBackend and allauth's backend each check it.\n\n"
        "With campus sign-in (OpenID Connect or SAML, docs/SSO.md) the portal hashes no password. An "
        "OpenID Connect sign-in is a redirect to the university's provider and back, and four HTTPS "
        "requests from the portal to the provider (its discovery document at the start and at the "
        "return, the code exchanged at the token endpoint, the user's details): next to no CPU, but a "
        "sync worker waits through each round trip, so the provider's latency, not the cores, sets how "
        "many sign-ins a second the workers finish. The ID token comes straight from the token endpoint "
        "over TLS: allauth checks its issuer, audience and expiry, not its signature, as OpenID Connect "
        "allows. Where a signature is checked (a SAML assertion, an ID token the browser hands over), "
        f"one RS256 verification with PyJWT (signature, issuer, audience, expiry) takes "
        f"{jwt_seconds * 1_000_000:,.0f} µs of CPU: {CORES} cores verify about {CORES / jwt_seconds:,.0f} "
        f"a second, {passwords['check'] / jwt_seconds:,.0f} times what the password hasher allows."
        f"{failure_note}\n\n"
        f"**p95 {p95:,.0f} ms over all requests ({settled_p95:,.0f} ms once all are in; slowest kind: "
        f"{worst_kind}, {worst_p95:,.0f} ms), {errors} error(s), {rate:,.1f} requests/s sustained. Target "
        f"(p95 under {TARGET_P95_MS} ms, no errors): {'met' if held else 'NOT met'}.**",
        measured_on=measured_on,
    )


if __name__ == "__main__":
    main()
