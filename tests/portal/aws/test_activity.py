"""How busy each running EC2 instance has been, from CloudWatch (portal/aws/activity.py).

AWS is moto inside a member account (moto accepts any account id for the organization role).
moto's CloudWatch has no figures for EC2 instances, nothing publishing them: its GetMetricData
answers every query with no values. AWS answers with what EC2 sends every five minutes, which the
tests script with `AwsScript` (a before-call answer built from the queries sent).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from moto import mock_aws

from portal.aws import session
from portal.aws.activity import instance_activity
from tests.support.aws_script import AwsScript

ACCOUNT_ID, REGION = "123456789012", "us-east-1"
IMAGE_ID = "ami-12c6146b"


@pytest.fixture
def aws():
    with mock_aws():
        session.reset()
        yield session
        session.reset()


@pytest.fixture
def script(aws) -> AwsScript:
    return AwsScript(aws)


def inside(service: str):
    return session.client(service, account_id=ACCOUNT_ID, region=REGION)


def run_instances(count: int = 1, name: str = "web") -> list[str]:
    answer = inside("ec2").run_instances(
        ImageId=IMAGE_ID,
        MinCount=count,
        MaxCount=count,
        InstanceType="t3.micro",
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}],
    )
    return [instance["InstanceId"] for instance in answer["Instances"]]


def every_query_answered(params: dict) -> dict:
    """AWS's answer: one period's value for each query, CPU 2% and 1 kB each way."""
    value = {"CPUUtilization": 2.0, "NetworkIn": 1000.0, "NetworkOut": 1000.0}
    return {
        "MetricDataResults": [
            {
                "Id": query["Id"],
                "Timestamps": [params["StartTime"]],
                "Values": [value[query["MetricStat"]["Metric"]["MetricName"]]],
                "StatusCode": "Complete",
            }
            for query in params["MetricDataQueries"]
        ]
    }


def test_each_running_instance_outside_a_group_comes_with_its_figures(script):
    [web] = run_instances()
    [stopped] = run_instances(name="stopped")
    inside("ec2").stop_instances(InstanceIds=[stopped])
    ec2 = inside("ec2")
    ec2.create_launch_template(LaunchTemplateName="workers", LaunchTemplateData={"ImageId": IMAGE_ID})
    inside("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName="workers",
        LaunchTemplate={"LaunchTemplateName": "workers"},
        MinSize=1,
        MaxSize=1,
        DesiredCapacity=1,
        VPCZoneIdentifier=ec2.describe_subnets()["Subnets"][0]["SubnetId"],
    )
    script.always("cloudwatch", "GetMetricData", every_query_answered)
    now = datetime.now(UTC) + timedelta(hours=4)

    [activity] = instance_activity(ACCOUNT_ID, REGION, hours=3, now=now)

    assert (activity.instance_id, activity.label) == (web, f"web ({web}): t3.micro")
    assert (activity.cpu_max, activity.network_bytes) == (2.0, 2000.0)
    [asked] = script.params["GetMetricData"]
    assert (asked["StartTime"], asked["EndTime"]) == (now - timedelta(hours=3), now)
    assert {query["MetricStat"]["Stat"] for query in asked["MetricDataQueries"]} == {"Maximum", "Sum"}
    assert {query["MetricStat"]["Period"] for query in asked["MetricDataQueries"]} == {3 * 3600}


def test_without_figures_an_instance_has_none(script):
    """moto's own answer: no values for any query."""
    run_instances()

    [activity] = instance_activity(ACCOUNT_ID, REGION, hours=3, now=datetime.now(UTC))

    assert (activity.cpu_max, activity.network_bytes) == (None, None)


def test_a_call_asks_for_at_most_500_figures(script):
    """Three queries an instance, all in one call: 170 instances take two calls, of 498 queries
    (166 instances) and 12."""
    run_instances(170)
    script.always("cloudwatch", "GetMetricData", every_query_answered)

    activities = instance_activity(ACCOUNT_ID, REGION, hours=3, now=datetime.now(UTC))

    assert len(activities) == 170 and all(a.cpu_max == 2.0 for a in activities)
    sizes = [len(params["MetricDataQueries"]) for params in script.params["GetMetricData"]]
    assert sizes == [498, 12]


def test_no_running_instance_asks_cloudwatch_nothing(script):
    assert instance_activity(ACCOUNT_ID, REGION, hours=3, now=datetime.now(UTC)) == []
    assert script.calls["GetMetricData"] == 0
