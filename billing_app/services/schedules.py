"""Course schedules: outside class hours, or at night, what runs in the course's ready student
accounts is stopped, never terminated; and, where the course sets idle hours, so is an EC2
instance that did nothing that long. The student may start it again. The account's state does not
change: a scheduled stop is no freeze.

Every PORTAL_SCHEDULE_INTERVAL_MINUTES, `schedules_tick` (beat) queues one `account_schedule_task`
per ready account of each course whose schedule is off now (billing_app/schedule_rules.py) or that
stops idle instances, spread over the interval as the usage meter's readings are.
`account_schedule_apply` reads the schedule again when it runs and, behind the gate (SCHEDULE_STOP:
the record is ready; AWS shows the account in its course's OU with the portal's tag, confirmed once
an hour), in the course's regions:

- outside the hours, it stops EC2 instances, SageMaker notebook instances, Aurora clusters and RDS
  DB instances outside a cluster (portal/aws/spending.py). Auto Scaling groups and their instances
  are left alone: scaling a group to zero terminates its instances, and an instance stopped inside
  a group is replaced. SageMaker endpoints cannot be stopped, only deleted: left alone too. An
  instance with stop protection on is not stopped: the student asked for that.
- with idle hours, it stops each running EC2 instance outside a group that ran all that time with
  its CPU and network below the idle line (portal/aws/activity.py, schedule_rules.is_idle).

Each stop is written down (`ScheduledStop`) before the call, so that a crash or a lost answer never
makes the portal forget it: the next pass finishes it. A resource is stopped once per off period:
started again in it (from the portal or in AWS's console), it is left running until the next one.
An idle stop happens again only after the idle hours: AWS sets an instance's launch time at each
start. One pass runs per account at a time.

The student's "Start again" (`scheduled_stop_restart_request`) marks the stop and queues
`scheduled_stop_restart_task`, which starts it behind the gate (SCHEDULE_START, AWS asked afresh);
already running is success. A frozen account starts nothing: the freeze decides what runs there.
"""

from __future__ import annotations

import logging
from datetime import datetime, time, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts_app.choices import AccountState, AuditAction
from accounts_app.models import AwsOrganization, Course, MemberAccount
from accounts_app.services.audit import audit_record
from accounts_app.services.gates import (
    ALLOWED_STATES,
    Action,
    StateRefused,
    action_gate,
    ownership_check_hourly,
    state_gate,
)
from accounts_app.services.guardrails import organization_ready
from accounts_app.services.ownership import NotOurs
from billing_app.models import (
    CourseSchedule,
    ScheduledStop,
    ScheduleMode,
    StopReason,
    StopStatus,
)
from billing_app.schedule_rules import OffPeriod, idle_text, is_idle, off_period, schedule_text
from billing_app.services.meter import meter_regions, spread_over
from portal.aws import activity as aws_activity
from portal.aws import spending as aws_spending
from portal.aws.activity import InstanceActivity
from portal.aws.display import SPENDING_KIND_LABELS
from portal.aws.errors import PermanentAwsError, TransientAwsError
from portal.aws.spending import Billing

logger = logging.getLogger(__name__)

INSTANCE = "ec2:instance"
# What the schedule stops: what can be stopped and started again as it was. Not Auto Scaling
# groups (scaled to zero, their instances are terminated) nor SageMaker endpoints (deleted).
SCHEDULED_KINDS = frozenset({INSTANCE, "sagemaker:notebook-instance", "rds:db-cluster", "rds:db-instance"})
SCHEDULED_STATES = ALLOWED_STATES[Action.SCHEDULE_STOP]
# Longer than any pass (a few calls per region and resource); a worker that dies holding it
# delays the account's next pass by this much at most.
LOCK_SECONDS = 10 * 60


class ScheduleError(Exception):
    """A request refused; the message says why, to the person who asked."""


def schedule_interval() -> timedelta:
    return timedelta(minutes=settings.PORTAL_SCHEDULE_INTERVAL_MINUTES)


# --- The course's schedule ------------------------------------------------------------------------


def course_schedule_save(
    *,
    actor,
    course: Course,
    mode: str,
    weekdays: list[int],
    class_starts: time | None,
    class_ends: time | None,
    stop_at: time | None,
    time_zone: str,
    idle_hours: int | None,
) -> CourseSchedule:
    """Set the course's schedule (the form has checked it). What it already stopped stays stopped."""
    fields = {
        "mode": mode,
        "weekdays": sorted(weekdays),
        "class_starts": class_starts,
        "class_ends": class_ends,
        "stop_at": stop_at,
        "time_zone": time_zone,
        "idle_hours": idle_hours,
    }
    with transaction.atomic():
        schedule, _ = CourseSchedule.objects.update_or_create(course=course, defaults=fields)
        audit_record(
            actor=actor,
            action=AuditAction.SCHEDULE_CHANGED,
            course=course,
            target=schedule,
            summary=f"{course.code}: {schedule_text(schedule.rule(), idle_hours)}",
            data={key: value.isoformat() if isinstance(value, time) else value for key, value in fields.items()},
        )
    return schedule


# --- The tick -------------------------------------------------------------------------------------


def schedules_tick(*, now: datetime | None = None) -> int:
    """Queue a pass over every ready account of each course whose schedule is off now or that
    stops idle instances, spread over the interval. Returns how many."""
    from billing_app.tasks import account_schedule_task

    now = now or timezone.now()
    if not AwsOrganization.load().parent_ou_id:
        return 0  # not bootstrapped: no account to act on
    schedules = CourseSchedule.objects.exclude(mode=ScheduleMode.NONE, idle_hours=None)
    due = [s.course_id for s in schedules if s.idle_hours is not None or off_period(s.rule(), now) is not None]
    account_ids = list(
        MemberAccount.objects.filter(course_id__in=due, state__in=SCHEDULED_STATES, membership__isnull=False)
        .exclude(aws_account_id=None)
        .exclude(aws_account_id="")
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    spread_over(account_schedule_task, account_ids, schedule_interval())
    return len(account_ids)


# --- One account's pass ---------------------------------------------------------------------------


def account_schedule_apply(*, account_id: int, now: datetime | None = None) -> list[ScheduledStop]:
    """Stop what the course's schedule says must not run in the account now. Returns the stops this
    pass tried (none when another pass of the account runs, or the gate refuses)."""
    now = now or timezone.now()
    lock = f"schedule-step:{account_id}"
    if not cache.add(lock, 1, timeout=LOCK_SECONDS):
        return []
    try:
        account = MemberAccount.objects.select_related("course").filter(pk=account_id).first()
        schedule = CourseSchedule.objects.filter(course_id=account.course_id).first() if account else None
        if account is None or schedule is None:
            return []
        period = off_period(schedule.rule(), now)
        if period is None and schedule.idle_hours is None:
            return []
        try:
            state_gate(account, action=Action.SCHEDULE_STOP)
            ownership_check_hourly(account, organization_ready)
        except StateRefused:
            return []
        except (NotOurs, PermanentAwsError) as error:
            logger.warning("The schedule left %s alone: %s", account.account_name, error)
            return []
        tried: list[ScheduledStop] = []
        try:
            for region in meter_regions(account.course):
                _apply_in_region(account, schedule, period, region, now, tried)
        except StateRefused:
            pass  # frozen or ended meanwhile: the freeze decides what runs now
        _audit(account, tried)
        return tried
    finally:
        cache.delete(lock)


def _apply_in_region(
    account: MemberAccount,
    schedule: CourseSchedule,
    period: OffPeriod | None,
    region: str,
    now: datetime,
    tried: list[ScheduledStop],
) -> None:
    running: set[tuple[str, str]] = set()  # (kind, id) of what this pass saw running
    kinds_read: set[str] = set()
    try:
        if period is not None:
            items = [i for i in aws_spending.running(account.aws_account_id, region) if i.kind in SCHEDULED_KINDS]
            kinds_read |= SCHEDULED_KINDS
            running |= {(item.kind, item.id) for item in items}
            for item in items:
                if (stop := _stop_in_period(account, item, period, now)) is not None:
                    tried.append(stop)
        if schedule.idle_hours is not None:
            hours = schedule.idle_hours
            activities = aws_activity.instance_activity(account.aws_account_id, region, hours=hours, now=now)
            kinds_read.add(INSTANCE)
            running |= {(INSTANCE, activity.instance_id) for activity in activities}
            for activity in activities:
                if _idle(activity, hours, now):
                    tried.append(_stop_idle(account, activity, hours, now))
    except PermanentAwsError as error:
        logger.warning("The schedule could not read %s in %s: %s", account.account_name, region, error.message)
        return
    _settle(account, region, kinds_read, running)


def _stop_in_period(account: MemberAccount, item: Billing, period: OffPeriod, now: datetime) -> ScheduledStop | None:
    stop, created = ScheduledStop.objects.get_or_create(
        account=account,
        region=item.region,
        kind=item.kind,
        resource_id=item.id,
        reason=StopReason.SCHEDULE,
        period_start=period.started_at,
        defaults={"course_id": account.course_id, "label": item.label[:500], "why": period.why, "stopped_at": now},
    )
    if not created:
        if stop.status == StopStatus.STOPPED:
            # Running again in the period it was stopped in: the student started it in AWS's console.
            _update(stop, status=StopStatus.STARTED, restarted_at=now)
            return None
        if stop.status != StopStatus.STOPPING:
            return None  # started again by the student, or refused by AWS: once per off period
    return _stop(account, stop, item)


def _idle(activity: InstanceActivity, hours: int, now: datetime) -> bool:
    return is_idle(
        launched_at=activity.launched_at,
        cpu_max=activity.cpu_max,
        network_bytes=activity.network_bytes,
        hours=hours,
        now=now,
        max_cpu_percent=settings.PORTAL_IDLE_MAX_CPU_PERCENT,
        max_network_mb_per_hour=settings.PORTAL_IDLE_MAX_NETWORK_MB_PER_HOUR,
    )


def _stop_idle(account: MemberAccount, activity: InstanceActivity, hours: int, now: datetime) -> ScheduledStop:
    mine = ScheduledStop.objects.filter(
        account=account, region=activity.region, kind=INSTANCE, resource_id=activity.instance_id
    )
    # An idle stop an earlier pass wrote down but did not finish is finished, not written twice.
    stop = mine.filter(reason=StopReason.IDLE, status=StopStatus.STOPPING).first()
    if stop is None:
        stop = ScheduledStop.objects.create(
            account=account,
            course_id=account.course_id,
            region=activity.region,
            kind=INSTANCE,
            resource_id=activity.instance_id,
            label=activity.label[:500],
            reason=StopReason.IDLE,
            why=idle_text(hours),
            stopped_at=now,
        )
    item = Billing(region=activity.region, kind=INSTANCE, id=activity.instance_id, label=activity.label)
    return _stop(account, stop, item)


def _stop(account: MemberAccount, stop: ScheduledStop, item: Billing) -> ScheduledStop:
    """The call, once the stop is written down. A refusal is kept; a resource still starting, a
    throttled call or a lost answer leaves the stop as it is, for the next pass."""
    state_gate(account, action=Action.SCHEDULE_STOP)  # a freeze ends the pass between two calls
    try:
        aws_spending.stop(account.aws_account_id, item, lift_stop_protection=False)
    except PermanentAwsError as error:
        _update(stop, status=StopStatus.NOT_STOPPED, error=error.message)
    except TransientAwsError as error:
        logger.info("%s %s in %s: stopped at the next pass (%s)", item.kind, item.id, item.region, error)
    else:
        _update(stop, status=StopStatus.STOPPED, error="")
    return stop


def _settle(account: MemberAccount, region: str, kinds_read: set[str], running: set[tuple[str, str]]) -> None:
    """A stop whose outcome was not known (a lost answer, a crash after the call) and whose
    resource this pass no longer saw running was stopped."""
    waiting = ScheduledStop.objects.filter(
        account=account, region=region, kind__in=kinds_read, status=StopStatus.STOPPING
    )
    for stop in waiting:
        if (stop.kind, stop.resource_id) not in running:
            _update(stop, status=StopStatus.STOPPED)


def _audit(account: MemberAccount, tried: list[ScheduledStop]) -> None:
    done = [stop for stop in tried if stop.status in (StopStatus.STOPPED, StopStatus.NOT_STOPPED)]
    if not done:
        return
    audit_record(
        actor=None,
        action=AuditAction.SCHEDULE_STOPPED,
        course=account.course,
        target=account,
        summary=f"{account.account_name}: " + "; ".join(_outcome(stop) for stop in done),
        data={"stops": [stop.pk for stop in done]},
    )


def _outcome(stop: ScheduledStop) -> str:
    what = f"{SPENDING_KIND_LABELS[stop.kind]} {stop.label or stop.resource_id} in {stop.region}"
    return f"{what} ({stop.why}): {stop.status}" + (f" ({stop.error})" if stop.error else "")


def _update(stop: ScheduledStop, **fields) -> None:
    for name, value in fields.items():
        setattr(stop, name, value)
    ScheduledStop.objects.filter(pk=stop.pk).update(**fields)


# --- Starting again -------------------------------------------------------------------------------


def scheduled_stop_restart_request(*, actor, stop: ScheduledStop) -> bool:
    """The student asks to start again what the schedule stopped: queued for a task. Returns False
    when it is already started again or on its way; raises ScheduleError when it cannot be."""
    state = MemberAccount.objects.filter(pk=stop.account_id).values_list("state", flat=True).first()
    if state not in ALLOWED_STATES[Action.SCHEDULE_START]:
        if state == AccountState.FROZEN:
            raise ScheduleError(
                "Your account is frozen: nothing in it can be started again until your instructor unfreezes it."
            )
        raise ScheduleError("Your account is no longer in use: nothing in it can be started again.")
    from billing_app.tasks import scheduled_stop_restart_task

    now = timezone.now()
    with transaction.atomic():
        locked = ScheduledStop.objects.select_for_update().select_related("account").get(pk=stop.pk)
        if locked.status == StopStatus.STARTED or locked.is_starting(now):
            return False
        if not locked.can_start_again(now):
            raise ScheduleError("AWS refused to stop it, so it still runs: there is nothing to start again.")
        _update(locked, status=StopStatus.STARTING, restart_requested_at=now, error="")
        audit_record(
            actor=actor,
            action=AuditAction.SCHEDULE_RESTART,
            course=locked.account.course,
            target=locked.account,
            summary=f"{locked.account.account_name}: start again asked for {_outcome(locked)}",
            data={"stop": locked.pk},
        )
        scheduled_stop_restart_task.delay_on_commit(locked.pk)
    return True


def scheduled_stop_restart(*, stop_id: int) -> None:
    """Start again what the schedule stopped, behind the gate. Already running is success; a
    resource still stopping is a transient error (the task tries again)."""
    stop = ScheduledStop.objects.select_related("account__course").filter(pk=stop_id).first()
    if stop is None or stop.status != StopStatus.STARTING:
        return
    account = stop.account
    try:
        action_gate(account, action=Action.SCHEDULE_START, organization=organization_ready())
        why_not = aws_spending.restore(
            account.aws_account_id, Billing(region=stop.region, kind=stop.kind, id=stop.resource_id, label=stop.label)
        )
    except (StateRefused, NotOurs) as error:
        why_not = str(error)
    except PermanentAwsError as error:
        why_not = error.message
    with transaction.atomic():
        if why_not:
            _update(stop, status=StopStatus.NOT_STARTED, error=why_not)
        else:
            _update(stop, status=StopStatus.STARTED, restarted_at=timezone.now(), error="")
        audit_record(
            actor=None,
            action=AuditAction.SCHEDULE_RESTART,
            course=account.course,
            target=account,
            summary=f"{account.account_name}: {_outcome(stop)}",
            data={"stop": stop.pk},
        )
