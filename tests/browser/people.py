"""The people and data the journeys start from, and what they do at the sign-in page."""

from __future__ import annotations

import time
from datetime import date, timedelta

import requests
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from moto.core import DEFAULT_ACCOUNT_ID
from playwright.sync_api import expect

from accounts_app.choices import CourseRole, InviteStatus
from accounts_app.models import Course, User
from billing_app.services.refresh import costs_refresh
from tests.browser.journey import Journey
from tests.factories import PASSWORD, CourseFactory, MembershipFactory, UserFactory
from tests.support.cost_explorer import page, period

CE_SEED_PATH = "/moto-api/static/ce/cost-and-usage-results"


def person(email: str, name: str, **flags) -> User:
    """A user with a verified address and the tests' password."""
    return UserFactory(email=email, name=name, **flags)


def enrol(course: Course, user: User, role: CourseRole):
    return MembershipFactory(course=course, user=user, role=role, invite_status=InviteStatus.ACCEPTED)


def course_around(start: date, end: date, **fields) -> Course:
    return CourseFactory(start_date=start, end_date=end, **fields)


def give_totp(user: User) -> str:
    """Enrol an authenticator app for `user` (allauth's own API); returns its secret."""
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return secret


def totp_code(secret: str) -> str:
    """The code the authenticator app shows, as allauth computes it. A code about to expire
    is not typed: the portal accepts only the current 30-second window's."""
    left_in_window = 30 - time.time() % 30
    if left_in_window < 3:
        time.sleep(left_in_window + 0.1)
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def sign_in(journey: Journey, email: str, *, password: str = PASSWORD, totp_secret: str | None = None) -> None:
    """Sign in from the sign-in page, answering the second-factor step when there is one."""
    page = journey.page
    journey.goto("/accounts/login/")
    journey.check("sign-in")
    page.locator("input[name=login]").fill(email)
    page.locator("input[name=password]").fill(password)
    journey.press(page.get_by_role("button", name="Sign In"))
    if totp_secret:
        expect(page.get_by_role("heading", name="Two-Factor Authentication")).to_be_visible()
        journey.check("second-factor")
        page.locator("input[name=code]").fill(totp_code(totp_secret))
        journey.press(page.get_by_role("button", name="Sign In"))
    expect(page.get_by_role("heading", name="My courses")).to_be_visible()


def seed_costs(moto_url: str, days: dict[date, list[tuple[str, str, str]]]) -> None:
    """Queue in moto the Cost Explorer answers the next cost sync gets: `days` maps a day to its
    (aws account id, service, amount) rows of usage; no credits (tests/support/cost_explorer.py)."""
    usage = page(*(period(day, rows) for day, rows in sorted(days.items())))
    reply = requests.post(
        moto_url + CE_SEED_PATH,
        json={"account_id": DEFAULT_ACCOUNT_ID, "results": [usage, page()]},
        timeout=30,
    )
    reply.raise_for_status()


def daily_usage(account_id: str, *, today: date, amounts: list[str], service: str) -> dict:
    """One usage row a day for the last len(amounts) days up to today, oldest first."""
    first = today - timedelta(days=len(amounts) - 1)
    return {first + timedelta(days=i): [(account_id, service, amount)] for i, amount in enumerate(amounts)}


def sync_costs() -> None:
    """What beat does a few times a day: pull Cost Explorer, roll up, raise alerts."""
    costs_refresh(days=14)
