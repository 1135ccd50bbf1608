"""A course's schedule stops what runs in its ready student accounts, and the student starts it
again (billing_app/services/schedules.py).

AWS is moto (the `aws` fixture), the student's account made in it and placed where vending puts
it; the course's region is us-east-1. moto stops and starts EC2 instances (StopInstances,
StartInstances), SageMaker notebook instances and RDS DB instances and Aurora clusters as AWS does.
Where it answers otherwise, `AwsScript` (tests/support/aws_script.py) gives AWS's answer at
botocore's events, and each test says which:

- moto's CloudWatch has no figures for EC2 instances (nothing publishes them): GetMetricData
  answers each query with no values. AWS answers with what EC2 sent every five minutes; the idle
  tests script that answer.
- a lost answer: moto does the work and botocore's answer never comes back (ReadTimeoutError).

`timezone.now` is a Clock set by each test: the night is 23:00 in Berlin, November 11, 2026.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from botocore.exceptions import ReadTimeoutError
from django.core.cache import cache
from django.utils import timezone
from moto.core.models import botocore_stubber

from accounts_app.choices import AccountState as S
from accounts_app.choices import AuditAction
from accounts_app.models import AuditEvent, MemberAccount
from billing_app.models import CourseSchedule, ScheduledStop, ScheduleMode, StopReason, StopStatus
from billing_app.services.schedules import (
    ScheduleError,
    account_schedule_apply,
    scheduled_stop_restart_request,
    schedules_tick,
)
from portal.aws import organizations
from portal.aws.session import client
from tests.factories import MemberAccountFactory
from tests.support.aws_calls import students_ready_account
from tests.support.aws_script import AwsScript, Clock

pytestmark = pytest.mark.django_db

REGION = "us-east-1"
IMAGE_ID = "ami-12c6146b"  # any id does: moto does not check images
BERLIN = ZoneInfo("Europe/Berlin")
NIGHT = datetime(2026, 11, 11, 23, 0, tzinfo=BERLIN)
WRITES = {
    "StopInstances",
    "StartInstances",
    "ModifyInstanceAttribute",
    "UpdateAutoScalingGroup",
    "StopNotebookInstance",
    "StartNotebookInstance",
    "DeleteEndpoint",
    "StopDBInstance",
    "StartDBInstance",
    "StopDBCluster",
    "StartDBCluster",
}


@pytest.fixture(autouse=True)
def forget_cached_checks():
    """The ownership confirmations and the per-account lock live in the cache (Redis), which
    outlives each test."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def clock(monkeypatch) -> Clock:
    frozen = Clock()
    frozen.now = NIGHT
    monkeypatch.setattr(timezone, "now", frozen)
    return frozen


@pytest.fixture
def script(aws) -> AwsScript:
    return AwsScript(aws)


@pytest.fixture
def account(personas, aws) -> MemberAccount:
    """The persona student's ready account, made in moto and placed where vending puts it."""
    return students_ready_account(personas)


def set_schedule(course, **fields) -> CourseSchedule:
    values = {"mode": ScheduleMode.NIGHTLY, "stop_at": time(22), "time_zone": "Europe/Berlin", **fields}
    schedule, _ = CourseSchedule.objects.update_or_create(course=course, defaults=values)
    return schedule


@pytest.fixture
def nightly(personas) -> CourseSchedule:
    return set_schedule(personas.course)


def inside(account, service: str):
    return client(service, account_id=account.aws_account_id, region=REGION)


# --- What a student leaves running -----------------------------------------------------------------


def run_instance(account, name: str, **options) -> str:
    return inside(account, "ec2").run_instances(
        ImageId=IMAGE_ID,
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.micro",
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}],
        **options,
    )["Instances"][0]["InstanceId"]


def make_group(account) -> None:
    ec2 = inside(account, "ec2")
    ec2.create_launch_template(
        LaunchTemplateName="workers", LaunchTemplateData={"ImageId": IMAGE_ID, "InstanceType": "t3.micro"}
    )
    inside(account, "autoscaling").create_auto_scaling_group(
        AutoScalingGroupName="workers",
        LaunchTemplate={"LaunchTemplateName": "workers"},
        MinSize=1,
        MaxSize=2,
        DesiredCapacity=1,
        VPCZoneIdentifier=ec2.describe_subnets()["Subnets"][0]["SubnetId"],
    )


def make_notebook(account) -> None:
    inside(account, "sagemaker").create_notebook_instance(
        NotebookInstanceName="lab-notebook",
        InstanceType="ml.t3.medium",
        RoleArn=f"arn:aws:iam::{account.aws_account_id}:role/sagemaker",
    )


def make_endpoint(account) -> None:
    sagemaker = inside(account, "sagemaker")
    sagemaker.create_model(
        ModelName="digits",
        ExecutionRoleArn=f"arn:aws:iam::{account.aws_account_id}:role/sagemaker",
        PrimaryContainer={"Image": "digits:latest"},
    )
    variant = {"VariantName": "all", "ModelName": "digits", "InitialInstanceCount": 1, "InstanceType": "ml.t2.medium"}
    sagemaker.create_endpoint_config(EndpointConfigName="digits", ProductionVariants=[variant])
    sagemaker.create_endpoint(EndpointName="digits", EndpointConfigName="digits")


def make_database(account) -> None:
    inside(account, "rds").create_db_instance(
        DBInstanceIdentifier="lab-db",
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="student",
        MasterUserPassword="not-a-secret-1",
        AllocatedStorage=20,
    )


def make_aurora(account) -> None:
    rds = inside(account, "rds")
    rds.create_db_cluster(
        DBClusterIdentifier="lab-aurora",
        Engine="aurora-postgresql",
        MasterUsername="student",
        MasterUserPassword="not-a-secret-1",
    )
    rds.create_db_instance(
        DBInstanceIdentifier="lab-aurora-1",
        DBClusterIdentifier="lab-aurora",
        Engine="aurora-postgresql",
        DBInstanceClass="db.t3.medium",
    )


# --- Reading the world back ------------------------------------------------------------------------


def instance_state(account, instance_id: str) -> str:
    reservations = inside(account, "ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    return reservations[0]["Instances"][0]["State"]["Name"]


def notebook_status(account) -> str:
    notebook = inside(account, "sagemaker").describe_notebook_instance(NotebookInstanceName="lab-notebook")
    return notebook["NotebookInstanceStatus"]


def db_status(account) -> str:
    return inside(account, "rds").describe_db_instances(DBInstanceIdentifier="lab-db")["DBInstances"][0][
        "DBInstanceStatus"
    ]


def cluster_status(account) -> str:
    return inside(account, "rds").describe_db_clusters(DBClusterIdentifier="lab-aurora")["DBClusters"][0]["Status"]


def stops(account) -> dict[str, ScheduledStop]:
    """The account's stops by "kind/id"."""
    return {f"{s.kind}/{s.resource_id}": s for s in ScheduledStop.objects.filter(account=account).order_by("pk")}


def writes(script: AwsScript) -> list[str]:
    return [operation for operation in script.log if operation in WRITES]


def restart(personas, stop: ScheduledStop, capture) -> None:
    """The student asks to start it again; the task queued on commit runs."""
    with capture(execute=True):
        assert scheduled_stop_restart_request(actor=personas.student, stop=stop)


# --- The night ------------------------------------------------------------------------------------


def test_the_night_stops_instances_notebooks_and_databases_and_writes_each_down(account, nightly, clock):
    web = run_instance(account, "web")
    make_notebook(account)
    make_database(account)
    make_aurora(account)

    tried = account_schedule_apply(account_id=account.pk)

    assert instance_state(account, web) == "stopped"  # stopped, not terminated
    assert notebook_status(account) == "Stopped"
    assert db_status(account) == "stopped"
    assert cluster_status(account) == "stopped"
    assert len(tried) == 4
    night_began = datetime(2026, 11, 11, 22, 0, tzinfo=BERLIN)
    stopped = (StopStatus.STOPPED, StopReason.SCHEDULE, "nightly stop at 22:00", night_began, NIGHT)
    keys = [
        f"ec2:instance/{web}",
        "sagemaker:notebook-instance/lab-notebook",
        "rds:db-cluster/lab-aurora",
        "rds:db-instance/lab-db",
    ]
    assert {key: (s.status, s.reason, s.why, s.period_start, s.stopped_at) for key, s in stops(account).items()} == (
        dict.fromkeys(keys, stopped)
    )
    assert stops(account)[f"ec2:instance/{web}"].label == f"web ({web}): t3.micro, running"
    audit = AuditEvent.objects.get(action=AuditAction.SCHEDULE_STOPPED)
    assert audit.actor_label == "system" and audit.object_id == str(account.pk)
    assert f"EC2 instance web ({web}): t3.micro, running in {REGION} (nightly stop at 22:00): stopped" in audit.summary
    account.refresh_from_db()
    assert account.state == S.READY  # a scheduled stop is no freeze


def test_auto_scaling_groups_and_sagemaker_endpoints_are_left_alone(account, nightly, clock, script):
    """Scaling a group to zero would terminate its instances, and an instance stopped inside a group
    is replaced; an endpoint can only be deleted. The schedule touches neither."""
    make_group(account)
    make_endpoint(account)

    assert account_schedule_apply(account_id=account.pk) == []

    group = inside(account, "autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"][0]
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == (1, 2, 1)
    [grouped] = group["Instances"]
    assert instance_state(account, grouped["InstanceId"]) == "running"
    assert inside(account, "sagemaker").describe_endpoint(EndpointName="digits")["EndpointStatus"] == "InService"
    assert writes(script) == []
    assert not ScheduledStop.objects.exists()


def test_in_class_hours_nothing_is_stopped_and_the_tick_queues_nothing(account, personas, clock, script):
    set_schedule(
        personas.course,
        mode=ScheduleMode.CLASS_HOURS,
        weekdays=[0, 1, 2, 3, 4],
        class_starts=time(9),
        class_ends=time(17),
        stop_at=None,
    )
    web = run_instance(account, "web")
    clock.now = datetime(2026, 11, 11, 10, 0, tzinfo=BERLIN)  # a Wednesday morning

    assert schedules_tick() == 0
    assert account_schedule_apply(account_id=account.pk) == []

    assert instance_state(account, web) == "running"
    assert writes(script) == []


def test_the_tick_run_twice_stops_each_resource_once(account, personas, nightly, clock, script):
    web = run_instance(account, "web")
    make_database(account)
    frozen = MemberAccountFactory(course=personas.course, state=S.FROZEN)

    assert schedules_tick() == 1  # the frozen account is the freeze's: not queued
    clock.advance(timedelta(minutes=10))
    assert schedules_tick() == 1

    assert instance_state(account, web) == "stopped"
    assert (script.calls["StopInstances"], script.calls["StopDBInstance"]) == (1, 1)
    assert ScheduledStop.objects.filter(account=account).count() == 2
    assert not ScheduledStop.objects.filter(account=frozen).exists()
    assert AuditEvent.objects.filter(action=AuditAction.SCHEDULE_STOPPED).count() == 1


def test_what_the_student_starts_again_runs_until_the_next_night(
    account, personas, nightly, clock, script, django_capture_on_commit_callbacks
):
    web = run_instance(account, "web")
    account_schedule_apply(account_id=account.pk)
    [stop] = ScheduledStop.objects.all()

    restart(personas, stop, django_capture_on_commit_callbacks)

    assert instance_state(account, web) == "running"
    stop.refresh_from_db()
    assert (stop.status, stop.error) == (StopStatus.STARTED, "")
    assert stop.restarted_at is not None and stop.restart_requested_at is not None
    assert AuditEvent.objects.filter(action=AuditAction.SCHEDULE_RESTART).count() == 2  # asked, then done

    clock.advance(timedelta(hours=2))  # later the same night
    script.log.clear()
    assert account_schedule_apply(account_id=account.pk) == []
    assert instance_state(account, web) == "running"
    assert writes(script) == []

    clock.advance(timedelta(days=1))  # the next night
    [again] = account_schedule_apply(account_id=account.pk)
    assert instance_state(account, web) == "stopped"
    assert again.pk != stop.pk and again.period_start == stop.period_start + timedelta(days=1)


def test_started_in_the_console_the_same_night_counts_as_started_again(account, nightly, clock, script):
    web = run_instance(account, "web")
    account_schedule_apply(account_id=account.pk)
    inside(account, "ec2").start_instances(InstanceIds=[web])
    clock.advance(timedelta(minutes=10))
    script.log.clear()

    account_schedule_apply(account_id=account.pk)

    assert instance_state(account, web) == "running"
    assert writes(script) == []
    [stop] = ScheduledStop.objects.all()
    assert (stop.status, stop.restarted_at) == (StopStatus.STARTED, NIGHT + timedelta(minutes=10))


@pytest.mark.parametrize("kind", ["notebook", "database", "cluster"])
def test_notebooks_and_databases_start_again(
    account, personas, nightly, clock, kind, django_capture_on_commit_callbacks
):
    make, status, running = {
        "notebook": (make_notebook, notebook_status, "InService"),
        "database": (make_database, db_status, "available"),
        "cluster": (make_aurora, cluster_status, "available"),
    }[kind]
    make(account)
    account_schedule_apply(account_id=account.pk)
    [stop] = ScheduledStop.objects.all()
    assert status(account) != running

    restart(personas, stop, django_capture_on_commit_callbacks)

    assert status(account) == running
    stop.refresh_from_db()
    assert stop.status == StopStatus.STARTED


def test_already_running_when_the_start_runs_is_success(
    account, personas, nightly, clock, script, django_capture_on_commit_callbacks
):
    web = run_instance(account, "web")
    account_schedule_apply(account_id=account.pk)
    [stop] = ScheduledStop.objects.all()
    inside(account, "ec2").start_instances(InstanceIds=[web])
    script.log.clear()

    restart(personas, stop, django_capture_on_commit_callbacks)

    stop.refresh_from_db()
    assert stop.status == StopStatus.STARTED
    assert writes(script) == []


def test_a_frozen_account_starts_nothing_again(account, personas, nightly, clock, script):
    run_instance(account, "web")
    account_schedule_apply(account_id=account.pk)
    [stop] = ScheduledStop.objects.all()
    MemberAccount.objects.filter(pk=account.pk).update(state=S.FROZEN)

    with pytest.raises(ScheduleError, match="Your account is frozen"):
        scheduled_stop_restart_request(actor=personas.student, stop=stop)

    stop.refresh_from_db()
    assert (stop.status, stop.restart_requested_at) == (StopStatus.STOPPED, None)
    assert account_schedule_apply(account_id=account.pk) == []  # and the schedule leaves it to the freeze


def test_stop_protection_is_respected_and_aws_refusal_kept(account, nightly, clock, script):
    """The freeze lifts an instance's stop protection; a schedule does not: AWS refuses the stop
    (moto as AWS: OperationNotPermitted), the refusal is kept, and the night does not ask again."""
    web = run_instance(account, "web", DisableApiStop=True)

    account_schedule_apply(account_id=account.pk)
    clock.advance(timedelta(minutes=10))
    account_schedule_apply(account_id=account.pk)

    assert instance_state(account, web) == "running"
    [stop] = ScheduledStop.objects.all()
    assert stop.status == StopStatus.NOT_STOPPED and "disableApiStop" in stop.error
    assert script.calls["StopInstances"] == 1 and script.calls["ModifyInstanceAttribute"] == 0


def test_a_lost_answer_is_not_forgotten_and_the_next_pass_finishes(account, nightly, clock, script, aws):
    """AWS stops the instance but the answer never comes back (botocore's retries too): the stop,
    written down before the call, is finished by the next pass without a second call."""
    web = run_instance(account, "web")
    answers_lost = True

    def lose_the_answer(request, event_name, **kwargs):
        if answers_lost:
            botocore_stubber(event_name=event_name, request=request)  # AWS does the work…
            raise ReadTimeoutError(endpoint_url=request.url)  # …and its answer never comes back

    aws.add_hook("before-send.ec2.StopInstances", lose_the_answer)

    account_schedule_apply(account_id=account.pk)
    [stop] = ScheduledStop.objects.all()
    assert (stop.status, instance_state(account, web)) == (StopStatus.STOPPING, "stopped")

    answers_lost = False
    calls = script.calls["StopInstances"]
    clock.advance(timedelta(minutes=10))
    account_schedule_apply(account_id=account.pk)

    stop.refresh_from_db()
    assert stop.status == StopStatus.STOPPED
    assert script.calls["StopInstances"] == calls


def test_an_account_not_in_its_courses_ou_is_left_alone(account, nightly, clock, script, aws):
    web = run_instance(account, "web")
    root = aws.client("organizations").list_roots()["Roots"][0]["Id"]
    organizations.move_account(account.aws_account_id, root)

    assert account_schedule_apply(account_id=account.pk) == []

    assert instance_state(account, web) == "running"
    assert writes(script) == []


# --- Idle -----------------------------------------------------------------------------------------


def cloudwatch_answer(figures: dict[str, tuple[float, float, float]], instance_ids: dict[str, str]):
    """GetMetricData's answer as AWS gives it for EC2's basic monitoring: for each query, the
    values of the one period asked. `figures` are (CPU maximum, bytes in, bytes out) by instance
    name; `instance_ids` the names by id. moto would answer every query with no values."""

    def answer(params: dict) -> dict:
        results = []
        for query in params["MetricDataQueries"]:
            stat = query["MetricStat"]
            instance_id = stat["Metric"]["Dimensions"][0]["Value"]
            cpu, received, sent = figures[instance_ids[instance_id]]
            value = {"CPUUtilization": cpu, "NetworkIn": received, "NetworkOut": sent}[stat["Metric"]["MetricName"]]
            results.append(
                {
                    "Id": query["Id"],
                    "Label": stat["Metric"]["MetricName"],
                    "Timestamps": [params["StartTime"]],
                    "Values": [value],
                    "StatusCode": "Complete",
                }
            )
        return {"MetricDataResults": results, "Messages": []}

    return answer


def test_an_idle_instance_is_stopped_and_a_busy_one_left_running(account, personas, clock, script):
    set_schedule(personas.course, mode=ScheduleMode.NONE, idle_hours=3)
    ids = {run_instance(account, "quiet"): "quiet", run_instance(account, "busy"): "busy"}
    figures = {"quiet": (1.5, 200_000.0, 300_000.0), "busy": (63.0, 90_000_000.0, 4_000_000.0)}
    script.always("cloudwatch", "GetMetricData", cloudwatch_answer(figures, ids))
    clock.now = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=4)  # both launched 4 hours ago

    [stop] = account_schedule_apply(account_id=account.pk)

    quiet, busy = list(ids)
    assert (instance_state(account, quiet), instance_state(account, busy)) == ("stopped", "running")
    assert (stop.resource_id, stop.reason, stop.period_start) == (quiet, StopReason.IDLE, None)
    assert (stop.status, stop.why) == (StopStatus.STOPPED, "idle for 3 hours")
    assert script.calls["GetMetricData"] == 1  # one call for the region's instances
    [asked] = script.params["GetMetricData"]
    assert len(asked["MetricDataQueries"]) == 6
    assert asked["EndTime"] - asked["StartTime"] == timedelta(hours=3)


def test_an_instance_younger_than_the_idle_hours_is_not_idle(account, personas, clock, script):
    set_schedule(personas.course, mode=ScheduleMode.NONE, idle_hours=3)
    ids = {run_instance(account, "fresh"): "fresh"}
    script.always("cloudwatch", "GetMetricData", cloudwatch_answer({"fresh": (0.0, 0.0, 0.0)}, ids))
    clock.now = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)

    assert account_schedule_apply(account_id=account.pk) == []
    assert instance_state(account, next(iter(ids))) == "running"


def test_without_cloudwatch_figures_nothing_is_idle(account, personas, clock, script):
    """moto's own answer: no datapoints for any EC2 metric. Not known to be idle: left running."""
    set_schedule(personas.course, mode=ScheduleMode.NONE, idle_hours=3)
    web = run_instance(account, "web")
    clock.now = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=4)

    assert account_schedule_apply(account_id=account.pk) == []
    assert instance_state(account, web) == "running"
    assert script.calls["GetMetricData"] == 1
