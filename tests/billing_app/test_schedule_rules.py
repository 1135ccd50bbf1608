"""When a schedule stops things (billing_app/schedule_rules.py): pure functions of the schedule and
the moment, checked at chosen instants, across time zones and the days clocks change."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from billing_app.schedule_rules import (
    CLASS_HOURS,
    NIGHTLY,
    NONE,
    OffPeriod,
    Rule,
    is_idle,
    off_period,
    schedule_text,
    weekdays_text,
)

PARIS, NEW_YORK, BERLIN = ZoneInfo("Europe/Paris"), ZoneInfo("America/New_York"), ZoneInfo("Europe/Berlin")
WEEKDAYS = frozenset(range(5))


def class_hours(zone: ZoneInfo, starts: str = "09:00", ends: str = "17:00", weekdays=WEEKDAYS) -> Rule:
    return Rule(
        mode=CLASS_HOURS,
        zone=zone,
        weekdays=frozenset(weekdays),
        class_starts=time.fromisoformat(starts),
        class_ends=time.fromisoformat(ends),
    )


def nightly(zone: ZoneInfo, at: str = "22:00", hours: int = 8) -> Rule:
    return Rule(mode=NIGHTLY, zone=zone, stop_at=time.fromisoformat(at), night=timedelta(hours=hours))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(text: str, zone: ZoneInfo) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


# --- Class hours ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "moment",
    ["2026-11-11T09:00", "2026-11-11T12:30", "2026-11-11T16:59", "2026-11-13T09:00"],
)
def test_within_class_hours_nothing_is_stopped(moment):
    assert off_period(class_hours(PARIS), local(moment, PARIS)) is None


def test_after_class_the_off_period_runs_until_the_next_class():
    period = off_period(class_hours(PARIS), local("2026-11-11T17:00", PARIS))  # a Wednesday

    assert period == OffPeriod(
        started_at=utc("2026-11-11T16:00"),  # 17:00 in Paris, UTC+1 in November
        ends_at=utc("2026-11-12T08:00"),
        why="outside class hours (Mon–Fri 09:00–17:00)",
    )


@pytest.mark.parametrize(
    "moment",
    ["2026-11-13T17:00", "2026-11-14T12:00", "2026-11-15T23:59", "2026-11-16T08:59"],
)
def test_the_weekend_is_one_off_period_from_friday_evening_to_monday_morning(moment):
    period = off_period(class_hours(PARIS), local(moment, PARIS))

    assert (period.started_at, period.ends_at) == (utc("2026-11-13T16:00"), utc("2026-11-16T08:00"))


def test_only_the_chosen_days_have_class_hours():
    rule = class_hours(PARIS, "14:00", "16:00", weekdays={0, 2})  # Monday and Wednesday afternoons

    tuesday = off_period(rule, local("2026-11-10T15:00", PARIS))

    assert (tuesday.started_at, tuesday.ends_at) == (utc("2026-11-09T15:00"), utc("2026-11-11T13:00"))
    assert tuesday.why == "outside class hours (Mon, Wed 14:00–16:00)"
    assert off_period(rule, local("2026-11-11T15:00", PARIS)) is None


def test_the_same_moment_is_in_class_in_one_time_zone_and_outside_in_another():
    moment = utc("2026-11-11T08:30")

    assert off_period(class_hours(PARIS), moment) is None  # 09:30 in Paris
    assert off_period(class_hours(NEW_YORK), moment) is not None  # 03:30 in New York


def test_class_hours_keep_to_the_wall_clock_when_the_clocks_go_forward():
    """New York moves from UTC-5 to UTC-4 on Sunday March 8, 2026: 09:00 on Monday is 13:00 UTC,
    where it was 14:00 UTC the Monday before, and that weekend's off period is an hour shorter."""
    rule = class_hours(NEW_YORK)

    assert off_period(rule, utc("2026-03-09T13:30")) is None  # 09:30 EDT: in class
    assert off_period(rule, utc("2026-03-02T13:30")) is not None  # 08:30 EST: not yet
    weekend = off_period(rule, utc("2026-03-08T12:00"))
    assert (weekend.started_at, weekend.ends_at) == (utc("2026-03-06T22:00"), utc("2026-03-09T13:00"))
    assert weekend.ends_at - weekend.started_at == timedelta(hours=63)


def test_class_hours_keep_to_the_wall_clock_when_the_clocks_go_back():
    """Paris moves from UTC+2 to UTC+1 on Sunday October 25, 2026: that weekend lasts 65 hours."""
    weekend = off_period(class_hours(PARIS), utc("2026-10-25T12:00"))

    assert (weekend.started_at, weekend.ends_at) == (utc("2026-10-23T15:00"), utc("2026-10-26T08:00"))
    assert weekend.ends_at - weekend.started_at == timedelta(hours=65)


def test_two_looks_in_one_off_period_name_the_same_period():
    rule = class_hours(PARIS)

    first = off_period(rule, local("2026-11-11T17:05", PARIS))
    second = off_period(rule, local("2026-11-12T02:40", PARIS))

    assert first == second


# --- Nightly stop -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "started"),
    [
        ("2026-11-11T21:59", None),
        ("2026-11-11T22:00", "2026-11-11T21:00"),
        ("2026-11-12T05:59", "2026-11-11T21:00"),
        ("2026-11-12T06:00", None),
        ("2026-11-12T12:00", None),
    ],
)
def test_the_night_lasts_from_the_stop_time_for_the_nights_hours(moment, started):
    period = off_period(nightly(BERLIN), local(moment, BERLIN))

    assert (period.started_at if period else None) == (utc(started) if started else None)
    if period:
        assert period.why == "nightly stop at 22:00"
        assert period.ends_at == period.started_at + timedelta(hours=8)


def test_the_night_the_clocks_go_back_lasts_its_hours_not_its_wall_clock():
    """22:00 on Saturday October 24, 2026 is 20:00 UTC in Berlin (UTC+2); eight hours later, at
    04:00 UTC, the clocks have gone back and it is 05:00 there, not 06:00."""
    rule = nightly(BERLIN)

    assert off_period(rule, utc("2026-10-25T03:30")).started_at == utc("2026-10-24T20:00")  # 04:30 CET
    assert off_period(rule, utc("2026-10-25T04:30")) is None  # 05:30 CET: the night is over


def test_a_stop_time_the_clocks_skip_happens_an_hour_later_on_the_wall_clock():
    """02:30 does not exist in New York on March 8, 2026 (02:00 EST becomes 03:00 EDT): read with
    the offset before the change, the stop comes at 07:30 UTC, 03:30 EDT."""
    rule = nightly(NEW_YORK, "02:30")

    assert off_period(rule, utc("2026-03-08T07:15")) is None
    assert off_period(rule, utc("2026-03-08T07:45")).started_at == utc("2026-03-08T07:30")


def test_a_stop_time_the_clocks_repeat_happens_the_first_time():
    """01:30 comes twice in New York on November 1, 2026: the stop is at the first, 05:30 UTC (EDT)."""
    rule = nightly(NEW_YORK, "01:30")

    assert off_period(rule, utc("2026-11-01T05:45")).started_at == utc("2026-11-01T05:30")


# --- No schedule, and words -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        Rule(mode=NONE, zone=PARIS),
        Rule(mode=CLASS_HOURS, zone=PARIS, class_starts=time(9), class_ends=time(17)),  # no day
        Rule(mode=NIGHTLY, zone=PARIS),  # no time
    ],
)
def test_a_schedule_without_hours_stops_nothing(rule):
    assert off_period(rule, local("2026-11-14T03:00", PARIS)) is None


@pytest.mark.parametrize(
    ("days", "text"),
    [
        ({0, 1, 2, 3, 4}, "Mon–Fri"),
        ({0, 2, 4}, "Mon, Wed, Fri"),
        ({0, 1, 5, 6}, "Mon, Tue, Sat, Sun"),
        ({0, 1, 2, 5}, "Mon–Wed, Sat"),
    ],
)
def test_weekdays_read_as_ranges(days, text):
    assert weekdays_text(days) == text


def test_the_schedule_in_words_names_its_zone_and_the_idle_stop():
    assert schedule_text(class_hours(PARIS), 3) == (
        "Stopped outside class hours: Mon–Fri 09:00–17:00 (Europe/Paris). EC2 instances idle for 3 hours are stopped."
    )
    assert schedule_text(nightly(BERLIN), None) == "Stopped every night at 22:00 (Europe/Berlin), for 8 hours."


# --- Idle -------------------------------------------------------------------------------------------

NOW = utc("2026-11-11T12:00")
QUIET = {"cpu_max": 1.5, "network_bytes": 2_000_000.0}


def idle(launched_hours_ago: float = 10, **figures) -> bool:
    return is_idle(
        launched_at=NOW - timedelta(hours=launched_hours_ago),
        hours=3,
        now=NOW,
        max_cpu_percent=5,
        max_network_mb_per_hour=5,
        **{**QUIET, **figures},
    )


def test_an_instance_quiet_for_the_idle_hours_is_idle():
    assert idle()


@pytest.mark.parametrize(
    ("launched_hours_ago", "figures", "why"),
    [
        (2, {}, "started less than the idle hours ago"),
        (10, {"cpu_max": 5.0}, "its CPU reached the line"),
        (10, {"network_bytes": 15_000_000.0}, "5 MB an hour over 3 hours"),
        (10, {"cpu_max": None}, "CloudWatch has no CPU figures"),
        (10, {"network_bytes": None}, "CloudWatch has no network figures"),
    ],
)
def test_an_instance_is_not_idle(launched_hours_ago, figures, why):
    assert not idle(launched_hours_ago, **figures), why
