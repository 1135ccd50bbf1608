"""The people of bench/class_start.py, for Locust: students who open their course page and then
poll their account panel as htmx does, and an instructor who reloads the cost dashboard.

bench/class_start.py starts Locust with this file and a plan (CLASS_START_PLAN, a JSON file):
the course, each person's session key (made directly in the database: signing in is measured
apart), and the intervals. Each simulated browser sends what a browser behind the TLS proxy sends
(the session cookie, X-Forwarded-Proto), fetches each static file a page names once (a browser
caches them), and the fragments a page loads by itself (hx-trigger="load") every time.

Every request's time is written to CLASS_START_TIMINGS when the run ends, with the phase it fell
in (the class still arriving, or all in), for the benchmark to take percentiles of.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

from locust import FastHttpUser, constant, events, task

PLAN = json.loads(Path(os.environ["CLASS_START_PLAN"]).read_text())
STUDENT_SESSIONS: Iterator[str] = iter(PLAN["students"])

STATIC = re.compile(r'(?:href|src)="(/static/[^"]+)"')
LOAD_FRAGMENT = re.compile(r'hx-get="([^"]+)"\s+hx-trigger="load"')
PANEL = re.compile(r'<section id="account-panel"[^>]*>')
POLLING = 'hx-trigger="every '
# htmx's answer for "stop polling".
STOP_POLLING = 286
# (phase, request name, milliseconds, failed), one per request.
TIMINGS: list[tuple[str, str, float, bool]] = []
CLASS = {"all_in": False}


@events.spawning_complete.add_listener
def class_all_in(**kwargs) -> None:
    CLASS["all_in"] = True


@events.request.add_listener
def record_timing(name: str, response_time: float, exception: BaseException | None, **kwargs) -> None:
    TIMINGS.append(("all in" if CLASS["all_in"] else "arriving", name, response_time, exception is not None))


@events.quitting.add_listener
def write_timings(**kwargs) -> None:
    Path(os.environ["CLASS_START_TIMINGS"]).write_text(json.dumps(TIMINGS))


class Browser(FastHttpUser):
    abstract = True
    session_key = ""
    last_status = 0

    def on_start(self) -> None:
        self.cached: set[str] = set()

    def headers(self, **more: str) -> dict[str, str]:
        return {
            "Cookie": f"{PLAN['session_cookie']}={self.session_key}",
            "X-Forwarded-Proto": "https",
            "Accept-Encoding": "gzip, br",
            **more,
        }

    def fetch(self, path: str, name: str, *, expected: tuple[int, ...] = (200,), **headers: str) -> str:
        """GET `path`; anything but an expected status (a redirect to the sign-in page, an error)
        is a failure."""
        with self.client.get(
            path, name=name, headers=self.headers(**headers), allow_redirects=False, catch_response=True
        ) as response:
            if response.status_code not in expected:
                response.failure(f"{response.status_code} for {path}")
                return ""
            self.last_status = response.status_code
            return response.text or ""

    def open_page(self, path: str, name: str) -> str:
        page = self.fetch(path, name)
        self.after_swap(page, current_url=path)
        return page

    def after_swap(self, html: str, *, current_url: str) -> None:
        """What the browser does with new content: the static files it has not cached yet, and
        the fragments that load themselves."""
        for static in STATIC.findall(html):
            if static not in self.cached:
                self.cached.add(static)
                self.fetch(static, "static file")
        for fragment in LOAD_FRAGMENT.findall(html):
            name = fragment.replace(f"/{PLAN['course_id']}/", "/{course}/")
            self.fetch(fragment, f"fragment {name}", **{"HX-Request": "true", "HX-Current-URL": current_url})


class Student(Browser):
    fixed_count = len(PLAN["students"])
    wait_time = constant(PLAN["poll_seconds"])  # hx-trigger="every 3s"

    def on_start(self) -> None:
        super().on_start()
        self.session_key = next(STUDENT_SESSIONS)
        self.page = f"/courses/{PLAN['course_id']}/"
        html = self.open_page(self.page, "course page")
        panel = PANEL.search(html)
        self.polling = bool(panel and POLLING in panel.group(0))

    @task
    def poll_account_panel(self) -> None:
        if not self.polling:
            return  # the panel has settled: htmx polls no more
        html = self.fetch(
            f"/courses/{PLAN['course_id']}/my-account/",
            "account panel poll",
            expected=(200, STOP_POLLING),
            **{
                "HX-Request": "true",
                "HX-Trigger": "account-panel",
                "HX-Current-URL": self.page,
                "X-Portal-Auto-Refresh": "1",
            },
        )
        if not html:
            return
        # htmx swaps the panel in, then polls again only if the answer was not "stop" and the new
        # panel still asks to.
        self.after_swap(html, current_url=self.page)
        self.polling = self.last_status != STOP_POLLING and POLLING in html


class Instructor(Browser):
    fixed_count = 1
    wait_time = constant(PLAN["dashboard_seconds"])

    def on_start(self) -> None:
        super().on_start()
        self.session_key = PLAN["instructor"]

    @task
    def reload_cost_dashboard(self) -> None:
        self.open_page(f"/courses/{PLAN['course_id']}/costs/", "cost dashboard")
