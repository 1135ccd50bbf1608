"""What a browser journey runs against: the portal on a live server, a real Celery worker, AWS
emulated by moto, and Debian's Chromium driven by Playwright.

- Web: pytest-django's `live_server` (a threaded WSGI server in this process) on the test
  database. Every journey is therefore a transactional test.
- Tasks: a Celery worker in this process (`celery.contrib.testing.worker.start_worker`) consuming
  from the Redis of REDIS_URL. The rest of the suite runs tasks eagerly, inline, after the request
  that queued them commits; a journey would then never see an account *being* made: the request
  would return only once it was ready. With a worker, the request returns at once and the pages
  have to show progress and refresh themselves, as in production. In process rather than a
  `celery worker` subprocess: it shares the test database settings and the locmem outbox (so the
  invitation emails it sends can be read), and stops with the test.
- AWS: `moto.server.ThreadedMotoServer` on a free loopback port, reset for every journey, behind
  tests/support/faulty_aws.py with its faults off but account creation taking a few seconds, as
  AWS's does, so that the "being created" states are on screen long enough to be seen. The
  organization is created and set up by `aws_bootstrap`, as `make run` does.
- Browser: /usr/bin/chromium (Debian's package; .ci/run installs it), never a downloaded build.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from celery.contrib.testing.worker import start_worker
from celery.signals import setup_logging
from django.core.cache import cache
from django.db import connections
from django.utils import timezone
from playwright.sync_api import Browser, expect, sync_playwright

from accounts_app.services.bootstrap import aws_bootstrap
from portal.aws import organizations, session
from portal.celery import app as celery_app
from tests.browser.journey import PAGE_TIMEOUT_MS, Journey
from tests.support.faulty_aws import CreationLimits, FaultyAws

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORTS = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
}
# How long AWS takes to create an account here (real AWS: minutes).
CREATION_SECONDS = 3.0


# --- Artifacts -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    """Emptied once per run, so that every screenshot in it is from this run."""
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    return SCREENSHOTS


# --- AWS -----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="package")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@dataclass(frozen=True)
class EmulatedAws:
    moto_url: str  # moto itself, for seeding answers (Cost Explorer)
    proxy: FaultyAws  # what the portal talks to


@pytest.fixture
def aws_stack(moto_endpoint, transactional_db, settings, monkeypatch) -> Iterator[EmulatedAws]:
    """A fresh emulated organization, set up by aws_bootstrap, that this process, the live
    server and the worker all reach through AWS_ENDPOINT_URL. tests/conftest.py removes that
    variable for the rest of the suite; monkeypatch puts it back as it was afterwards."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=30).raise_for_status()
    limits = CreationLimits(rate=100, burst=100, max_in_progress=100, creation_seconds=CREATION_SECONDS)
    with FaultyAws(moto_endpoint, limits=limits) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint_url)
        # The emulator has no quotas to speak of; AWS's would make a journey wait minutes.
        settings.PORTAL_AWS_CREATE_ACCOUNT_RATE = 100
        settings.PORTAL_AWS_CREATE_ACCOUNT_BURST = 100
        settings.PORTAL_AWS_MAX_CREATIONS_IN_PROGRESS = 100
        settings.PORTAL_AWS_POLL_SECONDS = 1
        settings.PORTAL_AWS_POLL_MAX_SECONDS = 2
        settings.PORTAL_AWS_CREATION_SECONDS = CREATION_SECONDS  # the first look at a creation
        session.reset()  # clients made before were bound to no endpoint
        try:
            organizations.create_organization()
            aws_bootstrap(actor=None)
            yield EmulatedAws(moto_url=moto_endpoint, proxy=proxy)
        finally:
            session.reset()


# --- Celery --------------------------------------------------------------------------------------


def _keep_our_logging(**kwargs) -> None:
    """Connected while the worker starts: Celery then leaves the process's logging alone
    instead of replacing the root logger's handlers for the rest of the test run."""


@pytest.fixture
def celery_worker(aws_stack, transactional_db, celery_runs_tasks_inline, settings) -> Iterator[None]:
    if not settings.REDIS_URL:
        pytest.fail("The browser journeys need REDIS_URL (the Celery broker): run them with `make test`.")
    celery_app.conf.task_always_eager = False
    # The cache (the same Redis) outlives a test: allauth's rate limits (one confirmation email
    # per address every few minutes, failed sign-ins) and vending's dispatch flag would carry
    # over from the other viewport's run. Leftover tasks of an interrupted run would point at
    # rows of another database.
    cache.clear()
    celery_app.control.purge()
    setup_logging.connect(_keep_our_logging)
    try:
        with start_worker(
            celery_app,
            pool="threads",
            concurrency=2,
            perform_ping_check=False,  # the ping needs a result backend; the portal has none
            loglevel="WARNING",
            shutdown_timeout=30,
        ):
            setup_logging.disconnect(_keep_our_logging)
            yield
    finally:
        setup_logging.disconnect(_keep_our_logging)
        logging.captureWarnings(False)  # which the worker's start turned on
        celery_app.control.purge()
        cache.clear()


# --- The portal ----------------------------------------------------------------------------------


@pytest.fixture
def portal(live_server, celery_worker, settings) -> str:
    """The live server's address, which emails (invitations, alerts) link to."""
    settings.PORTAL_BASE_URL = live_server.url
    return live_server.url


@pytest.fixture
def term():
    """Course dates around today, so that the budget period and the charts include today."""
    today = timezone.localdate()
    return today - timedelta(days=30), today + timedelta(days=60)


# --- The browser ---------------------------------------------------------------------------------


@pytest.fixture
def chromium(portal, monkeypatch) -> Iterator[Browser]:
    """Chromium, started after the live server and stopped before the database is flushed.

    Playwright's synchronous API keeps an asyncio loop running on this thread, which makes
    Django refuse ORM calls here ("you cannot call this from an async context"). The test code
    is synchronous all the same, so Django's check is turned off while the browser runs. The
    running loop also gives the test its own database connection (Django keeps connections in
    context-local storage), which is closed here: left open, it would keep PostgreSQL from
    dropping the test database at the end of the run."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does).")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
            connections.close_all()


@pytest.fixture(params=list(VIEWPORTS))
def viewport(request) -> str:
    return request.param


@pytest.fixture
def open_journey(chromium, portal, viewport, screenshot_dir) -> Iterator:
    """open_journey(name) -> Journey: a new browser context (cookies of its own) at the
    viewport under test. Several may be open at once, e.g. a person and an intruder."""
    contexts = []
    expect.set_options(timeout=PAGE_TIMEOUT_MS)

    def open_(name: str) -> Journey:
        options = VIEWPORTS[viewport]
        context = chromium.new_context(base_url=portal, locale="en-US", timezone_id="UTC", **options)
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        journey = Journey(
            name=name,
            viewport=viewport,
            context=context,
            page=page,
            screenshots=screenshot_dir,
            touch=options.get("has_touch", False),
        )
        page.on("console", lambda message: journey.on_console(message.type, message.text))
        page.on("pageerror", lambda error: journey.on_console("error", f"Uncaught: {error}"))
        return journey

    yield open_
    for context in contexts:
        context.close()
