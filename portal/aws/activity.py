"""How busy each running EC2 instance in one region of a member account has been over the last
hours, from CloudWatch: for a course schedule's idle stop.

`instance_activity` lists the running instances that are no Auto Scaling group's (a group replaces
an instance stopped inside it, so the schedule leaves groups alone) and asks CloudWatch with one
GetMetricData call for all of them (a call takes 500 queries: three per instance, so a call per
166 instances): each instance's highest CPUUtilization and its NetworkIn and NetworkOut sums over
`hours` up to `now`. EC2 sends these every five minutes without any agent (basic monitoring). An
instance CloudWatch has no figures for has None: it is not known to be idle.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from portal.aws.member import Place

QUERIES_PER_CALL = 500
METRICS = (("cpu", "CPUUtilization", "Maximum"), ("in", "NetworkIn", "Sum"), ("out", "NetworkOut", "Sum"))


@dataclass(frozen=True)
class InstanceActivity:
    region: str
    instance_id: str
    label: str
    launched_at: datetime  # the last start: AWS sets LaunchTime again at each start
    cpu_max: float | None  # percent
    network_bytes: float | None  # in and out


def instance_activity(account_id: str, region: str, *, hours: int, now: datetime) -> list[InstanceActivity]:
    """The running instances of the region outside Auto Scaling groups, with their activity over
    the last `hours`. Reads only."""
    at = Place(account_id, region)
    in_groups = {
        instance["InstanceId"]
        for instance in at.items("autoscaling", "describe_auto_scaling_instances", "AutoScalingInstances")
    }
    instances = [instance for instance in _running(at) if instance["InstanceId"] not in in_groups]
    if not instances:
        return []
    values = _metric_values(at, [instance["InstanceId"] for instance in instances], hours=hours, now=now)
    activities = []
    for position, instance in enumerate(instances):
        cpu, received, sent = (values.get(f"{short}{position}") for short, _, _ in METRICS)
        activities.append(
            InstanceActivity(
                region=region,
                instance_id=instance["InstanceId"],
                label=_label(instance),
                launched_at=instance["LaunchTime"],
                cpu_max=max(cpu) if cpu else None,
                network_bytes=sum(received) + sum(sent) if received and sent else None,
            )
        )
    return activities


def _running(at: Place) -> Iterator[dict]:
    # Pending too: starting, it bills, and is not idle (its launch time is now).
    filters = [{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    for reservation in at.items("ec2", "describe_instances", "Reservations", Filters=filters):
        yield from reservation["Instances"]


def _label(instance: dict) -> str:
    name = next((t["Value"] for t in instance.get("Tags") or [] if t["Key"] == "Name"), "")
    title = f"{name} ({instance['InstanceId']})" if name else instance["InstanceId"]
    return f"{title}: {instance['InstanceType']}"


def _metric_values(at: Place, instance_ids: list[str], *, hours: int, now: datetime) -> dict[str, list[float]]:
    """Each query's values by its id (the metric's short name and the instance's position), over
    one period of `hours` (CloudWatch may split it at a period boundary: the values are summed
    or their maximum taken, whatever the split)."""
    per_call = QUERIES_PER_CALL // len(METRICS)  # an instance's queries in one call
    values: dict[str, list[float]] = defaultdict(list)
    for first in range(0, len(instance_ids), per_call):
        queries = [
            _query(f"{short}{position}", instance_id, metric, stat, hours)
            for position, instance_id in enumerate(instance_ids[first : first + per_call], start=first)
            for short, metric, stat in METRICS
        ]
        for result in at.items(
            "cloudwatch",
            "get_metric_data",
            "MetricDataResults",
            MetricDataQueries=queries,
            StartTime=now - timedelta(hours=hours),
            EndTime=now,
        ):
            values[result["Id"]].extend(result.get("Values", []))
    return values


def _query(query_id: str, instance_id: str, metric: str, stat: str, hours: int) -> dict:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": "AWS/EC2",
                "MetricName": metric,
                "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
            },
            "Period": hours * 3600,
            "Stat": stat,
        },
    }
