"""When a course's schedule stops what runs in its students' accounts: pure functions of the
schedule, the moment and CloudWatch's figures; no database, no AWS.

A schedule is off, class hours (on the chosen weekdays, from a time until a later one), or a
nightly stop (a time of day, the night lasting `Rule.night` from it). `off_period(rule, now)`
says whether `now` falls outside the hours and, if so, which off period: when it started, when it
ends, and why in words. The start names the period: what the schedule stopped in it is not
stopped again in it once the student has started it again.

Times are wall-clock times in the course's time zone: a class from 09:00 starts at 09:00 local
time in summer and in winter. A time the clocks skip (the hour lost when they go forward) is read
with the offset before the change, an hour later on the wall clock; a time they repeat (the hour
gained when they go back) as its first occurrence (Python's fold=0).

`is_idle` decides the idle stop of one EC2 instance from its CPU and network over the last hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

NONE, CLASS_HOURS, NIGHTLY = "none", "class_hours", "nightly"
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# Class hours are looked for this many days either side of now: a week and a day, so that the
# hours before and after a long weekend are always among them.
DAYS_AROUND = 8
MEGABYTE = 1_000_000


@dataclass(frozen=True)
class Rule:
    """A course's schedule as plain values (CourseSchedule.rule())."""

    mode: str
    zone: ZoneInfo
    weekdays: frozenset[int] = frozenset()  # 0 = Monday
    class_starts: time | None = None
    class_ends: time | None = None
    stop_at: time | None = None
    night: timedelta = timedelta(hours=8)


@dataclass(frozen=True)
class OffPeriod:
    """A stretch of time outside the schedule's hours, in UTC."""

    started_at: datetime
    ends_at: datetime
    why: str


def off_period(rule: Rule, now: datetime) -> OffPeriod | None:
    """The off period `now` falls in, or None while the schedule lets things run."""
    if rule.mode == CLASS_HOURS and rule.weekdays and rule.class_starts and rule.class_ends:
        return _outside_class_hours(rule, now)
    if rule.mode == NIGHTLY and rule.stop_at:
        return _in_the_night(rule, now)
    return None


def _outside_class_hours(rule: Rule, now: datetime) -> OffPeriod | None:
    assert rule.class_starts and rule.class_ends  # for mypy: off_period checked both
    today = now.astimezone(rule.zone).date()
    days = (today + timedelta(days=offset) for offset in range(-DAYS_AROUND, DAYS_AROUND + 1))
    windows = [
        (_moment(day, rule.class_starts, rule.zone), _moment(day, rule.class_ends, rule.zone))
        for day in days
        if day.weekday() in rule.weekdays
    ]
    # A class that starts in the hour the clocks skip may end before it starts: it has no hours.
    windows = [(starts, ends) for starts, ends in windows if starts < ends]
    if not windows or any(starts <= now < ends for starts, ends in windows):
        return None
    last_end = max((ends for _, ends in windows if ends <= now), default=None)
    next_start = min((starts for starts, _ in windows if starts > now), default=None)
    if last_end is None or next_start is None:
        return None
    return OffPeriod(started_at=last_end, ends_at=next_start, why=f"outside class hours ({class_hours_text(rule)})")


def _in_the_night(rule: Rule, now: datetime) -> OffPeriod | None:
    assert rule.stop_at  # for mypy: off_period checked it
    today = now.astimezone(rule.zone).date()
    for day in (today, today - timedelta(days=1)):
        starts = _moment(day, rule.stop_at, rule.zone)
        ends = starts + rule.night
        if starts <= now < ends:
            return OffPeriod(started_at=starts, ends_at=ends, why=f"nightly stop at {rule.stop_at:%H:%M}")
    return None


def _moment(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """The UTC moment of a wall-clock time on a day in the zone."""
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


# --- In words -------------------------------------------------------------------------------------


def weekdays_text(weekdays: frozenset[int] | set[int]) -> str:
    """ "Mon–Fri", "Mon, Wed, Fri", "Mon–Wed, Sat": three days or more in a row as a range."""
    runs: list[list[int]] = []
    for day in sorted(weekdays):
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{WEEKDAY_NAMES[run[0]]}–{WEEKDAY_NAMES[run[-1]]}")
        else:
            parts.extend(WEEKDAY_NAMES[day] for day in run)
    return ", ".join(parts)


def class_hours_text(rule: Rule) -> str:
    """ "Mon–Fri 09:00–17:00"."""
    assert rule.class_starts and rule.class_ends
    return f"{weekdays_text(rule.weekdays)} {rule.class_starts:%H:%M}–{rule.class_ends:%H:%M}"


def rule_text(rule: Rule) -> str:
    """The schedule in one sentence, for the pages."""
    if rule.mode == CLASS_HOURS and rule.weekdays and rule.class_starts and rule.class_ends:
        return f"Stopped outside class hours: {class_hours_text(rule)} ({rule.zone.key})."
    if rule.mode == NIGHTLY and rule.stop_at:
        hours = rule.night.total_seconds() / 3600
        return f"Stopped every night at {rule.stop_at:%H:%M} ({rule.zone.key}), for {hours:g} hours."
    return "No schedule: nothing is stopped at set times."


def idle_text(hours: int) -> str:
    return f"idle for {hours} hour{'s' if hours != 1 else ''}"


def schedule_text(rule: Rule, idle_hours: int | None) -> str:
    """The schedule and its idle stop in words."""
    if idle_hours is None:
        return rule_text(rule)
    return f"{rule_text(rule)} EC2 instances {idle_text(idle_hours)} are stopped."


# --- Idle -----------------------------------------------------------------------------------------


def is_idle(
    *,
    launched_at: datetime,
    cpu_max: float | None,
    network_bytes: float | None,
    hours: int,
    now: datetime,
    max_cpu_percent: float,
    max_network_mb_per_hour: float,
) -> bool:
    """Whether an instance did nothing over the last `hours`: it ran all that time (an instance
    started since is not idle), its CPU never reached `max_cpu_percent`, and it sent and received
    less than `max_network_mb_per_hour` on average. Without figures it is not known to be idle."""
    if launched_at > now - timedelta(hours=hours):
        return False
    if cpu_max is None or network_bytes is None:
        return False
    return cpu_max < max_cpu_percent and network_bytes < max_network_mb_per_hour * hours * MEGABYTE
