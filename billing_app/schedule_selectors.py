"""Reads of course schedules (services/schedules.py): a course's schedule as its page shows it, and
what the schedule stopped in an account, for the student's page and staff's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from accounts_app.choices import AccountState
from accounts_app.models import Course, MemberAccount
from billing_app.models import CourseSchedule, ScheduledStop
from billing_app.schedule_rules import OffPeriod, off_period, schedule_text
from portal.aws.display import SPENDING_KIND_LABELS

# The student's list shows the stops of the last two weeks: older ones are history.
SHOWN_FOR = timedelta(days=14)
SHOWN_AT_MOST = 50


@dataclass(frozen=True)
class ScheduleView:
    schedule: CourseSchedule  # unsaved (no schedule) when the course has none yet
    text: str
    now_off: OffPeriod | None  # the off period now, if any


def course_schedule(*, course: Course, now: datetime) -> ScheduleView:
    schedule = CourseSchedule.objects.filter(course=course).first() or CourseSchedule(course=course)
    rule = schedule.rule()
    return ScheduleView(schedule=schedule, text=schedule_text(rule, schedule.idle_hours), now_off=off_period(rule, now))


def schedule_initial(schedule: CourseSchedule) -> dict:
    """The schedule as its form shows it."""
    return {
        "mode": schedule.mode,
        "weekdays": [str(day) for day in schedule.weekdays],
        "class_starts": schedule.class_starts,
        "class_ends": schedule.class_ends,
        "stop_at": schedule.stop_at,
        "time_zone": schedule.time_zone,
        "idle_hours": schedule.idle_hours,
    }


@dataclass(frozen=True)
class StopLine:
    stop: ScheduledStop
    what: str  # "EC2 instance"
    can_start: bool


@dataclass(frozen=True)
class AccountStops:
    lines: list[StopLine]
    zone: str  # the course's time zone: the times are shown in it
    ready: bool  # only a ready account starts anything again (a frozen one is the freeze's)
    starting: bool  # something is being started again: the student's list looks again soon


def account_scheduled_stops(*, account: MemberAccount, now: datetime) -> AccountStops:
    """What the schedule stopped in the account lately, newest first."""
    stops = ScheduledStop.objects.filter(account=account, stopped_at__gte=now - SHOWN_FOR)[:SHOWN_AT_MOST]
    schedule = CourseSchedule.objects.filter(course_id=account.course_id).first()
    return AccountStops(
        lines=[StopLine(stop, SPENDING_KIND_LABELS[stop.kind], stop.can_start_again(now)) for stop in stops],
        zone=schedule.zone_name if schedule else settings.TIME_ZONE,
        ready=account.state == AccountState.READY,
        starting=any(stop.is_starting(now) for stop in stops),
    )
