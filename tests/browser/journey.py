"""One person's journey through the portal in one browser viewport: the page, and the checks made
on every page the person reaches (accessibility, a screenshot, no script or CSP error)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.core import mail
from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.browser.axe import describe, serious_violations

# Waits are on conditions, never fixed sleeps; these bound them.
PAGE_TIMEOUT_MS = 15_000
VENDING_TIMEOUT_MS = 60_000
LINK = re.compile(r"https?://[^\s<>\"']+")


@dataclass
class Journey:
    name: str  # instructor, student, ta, foreign-student
    viewport: str  # desktop or phone
    context: BrowserContext
    page: Page
    screenshots: Path
    touch: bool
    console_errors: list[str] = field(default_factory=list)
    # Console errors a step expects, e.g. the browser's note that a refused page answered 404.
    expected_errors: list[re.Pattern] = field(default_factory=list)
    _step: int = 0

    def on_console(self, kind: str, text: str) -> None:
        if kind == "error":
            self.console_errors.append(text)

    def unexpected_console_errors(self) -> list[str]:
        return [e for e in self.console_errors if not any(p.search(e) for p in self.expected_errors)]

    def check(self, step: str) -> None:
        """The checks every page visited gets: no serious or critical axe violation, and a
        full-page screenshot test-artifacts/screenshots/<journey>-<viewport>-<NN>-<step>.png."""
        self.page.wait_for_load_state("load")
        self._step += 1
        label = f"{self._step:02d}-{step}"
        path = self.screenshots / f"{self.name}-{self.viewport}-{label}.png"
        self.page.screenshot(path=path, full_page=True)
        errors = self.unexpected_console_errors()
        assert not errors, f"Script or Content-Security-Policy errors by step {label}:\n" + "\n".join(errors)
        violations = serious_violations(self.page)
        assert not violations, describe(violations, f"{self.page.url} ({self.viewport}, step {label})")
        overflow = self.page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, f"{self.page.url} ({self.viewport}, step {label}) scrolls sideways by {overflow}px"

    def press(self, target: Locator) -> None:
        """A tap on a touch screen, a click elsewhere."""
        if self.touch:
            target.tap()
        else:
            target.click()

    def goto(self, path: str, *, status: int = 200) -> None:
        if status >= 400:
            self.expected_errors.append(re.compile(rf"status of {status}\b"))
        response = self.page.goto(path)
        assert response is not None and response.status == status, (
            f"GET {path}: {response.status if response else 'no response'}, expected {status}"
        )

    def chart_series(self, canvas_id: str) -> list[str]:
        """The series Chart.js drew on the canvas, once the deferred chart scripts have run."""
        self.page.wait_for_function(
            "id => window.Chart !== undefined && Chart.getChart(document.getElementById(id)) !== undefined",
            arg=canvas_id,
        )
        return self.page.evaluate(
            "id => Chart.getChart(document.getElementById(id)).data.datasets.map(d => d.label)", canvas_id
        )

    def reload_until(self, condition: Callable[[Page], Locator], *, timeout_ms: int = PAGE_TIMEOUT_MS) -> None:
        """Reload until `condition(page)` is visible: for pages that do not refresh themselves."""
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            try:
                expect(condition(self.page)).to_be_visible(timeout=1_000)
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                self.page.reload()


def wait_for[T](what: str, probe: Callable[[], T | None], *, timeout: float = 20.0) -> T:
    """Poll `probe` (database, outbox) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout:.0f} s waiting for {what}.")
        time.sleep(0.1)


def wait_for_mail(to: str, subject_contains: str, *, timeout: float = 20.0) -> mail.EmailMessage:
    """The email sent to `to` whose subject contains `subject_contains` (sent by the live server
    or the Celery worker: both run in this process and share the locmem outbox)."""

    def probe():
        return next(
            (m for m in list(mail.outbox) if to in m.to and subject_contains.lower() in m.subject.lower()),
            None,
        )

    return wait_for(f"an email to {to} about “{subject_contains}”", probe, timeout=timeout)


def links_in(message: mail.EmailMessage) -> list[str]:
    return LINK.findall(message.body)
