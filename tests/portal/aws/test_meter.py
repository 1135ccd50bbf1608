"""The usage meter's Bedrock reading (portal/aws/meter.py): each model's last full hour and its day
since UTC midnight, from one GetMetricData per region.

AWS is moto (the `aws` fixture): Bedrock's metrics are put into the member account's CloudWatch as
Bedrock publishes them (AWS/Bedrock, per ModelId), and moto's GetMetricData sums them in the
periods asked. Where moto is kinder than CloudWatch, the test scripts CloudWatch's answer on top of
moto (tests/support/aws_script.py) and says so: moto lists every metric ever put, whatever
`RecentlyActive`, where CloudWatch lists only those with data in the last three hours; moto answers
oldest first, CloudWatch newest first by default; moto takes any number of data points, CloudWatch
at most 100,800 a call (more is another page, another call).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from portal.aws import meter
from portal.aws.session import client
from tests.support.aws_script import AwsScript

pytestmark = pytest.mark.django_db

REGION = "us-east-1"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
LLAMA = "meta.llama3-8b-instruct-v1:0"
TODAY = datetime.combine(timezone.now().date(), time.min, tzinfo=UTC)


@pytest.fixture
def account(aws) -> str:
    """A member account of the organization, reached as the meter reaches it (its organization role)."""
    created = client("organizations").create_account(Email="aws+ai100-student@school.example", AccountName="student")
    return created["CreateAccountStatus"]["AccountId"]


@pytest.fixture
def script(aws) -> AwsScript:
    return AwsScript(aws)


def use_bedrock(account: str, model: str, *, tokens_in: int, tokens_out: int, invocations: int, at: datetime) -> None:
    values = {"InputTokenCount": tokens_in, "OutputTokenCount": tokens_out, "Invocations": invocations}
    client("cloudwatch", account_id=account, region=REGION).put_metric_data(
        Namespace="AWS/Bedrock",
        MetricData=[
            {"MetricName": name, "Dimensions": [{"Name": "ModelId", "Value": model}], "Value": value, "Timestamp": at}
            for name, value in values.items()
        ],
    )


def bedrock_items(reading: meter.Reading) -> dict[str, meter.Running]:
    return {item.id: item for item in reading.items if item.kind == "bedrock:model"}


def quantities(item: meter.Running) -> list[Decimal]:
    """Thousands of input and output tokens in the last hour."""
    return [charge.quantity for charge in item.charges]


def listed_as_cloudwatch_does(*models: str):
    """ListMetrics with RecentlyActive=PT3H as CloudWatch answers it: only the metrics of `models`,
    the ones with data in the last three hours."""
    return {
        "Metrics": [
            {"Namespace": "AWS/Bedrock", "MetricName": name, "Dimensions": [{"Name": "ModelId", "Value": model}]}
            for model in models
            for name in meter.BEDROCK_METRICS.values()
        ]
    }


def test_the_last_hour_and_the_day_are_read_in_one_call(account, script):
    now = TODAY + timedelta(hours=14, minutes=7, seconds=30)
    use_bedrock(account, HAIKU, tokens_in=500_000, tokens_out=1_000, invocations=9, at=TODAY - timedelta(minutes=10))
    use_bedrock(account, HAIKU, tokens_in=40_000, tokens_out=2_000, invocations=4, at=TODAY + timedelta(minutes=10))
    use_bedrock(account, HAIKU, tokens_in=30_000, tokens_out=4_000, invocations=12, at=now - timedelta(minutes=20))
    # Used this morning only: in the day, not in the hour.
    use_bedrock(account, f"us.{LLAMA}", tokens_in=7_000, tokens_out=700, invocations=2, at=TODAY + timedelta(hours=9))

    reading = meter.read(account, [REGION], now=now)

    items = bedrock_items(reading)
    haiku, llama = items[HAIKU], items[f"us.{LLAMA}"]
    # The hour's thousands of tokens are what bills "now"; yesterday's use is in neither window.
    assert quantities(haiku) == [30, 4]
    assert (haiku.today.input_tokens, haiku.today.output_tokens, haiku.today.invocations) == (70_000, 6_000, 16)
    assert [charge.quantity for charge in haiku.today.charges] == [70, 6]
    assert haiku.today.charges[0].rate == haiku.charges[0].rate == f"bedrock-input/{HAIKU}"
    assert quantities(llama) == [0, 0]
    assert (llama.today.input_tokens, llama.today.output_tokens, llama.today.invocations) == (7_000, 700, 2)
    assert llama.charges[0].rate == f"bedrock-input/{LLAMA}"  # the profile priced as the model it runs
    assert "12 invocations, 30,000 input and 4,000 output tokens in the last hour" in haiku.label
    assert "16 invocations, 70,000 input and 6,000 output tokens since midnight UTC" in haiku.label
    # One GetMetricData: three queries a model, five-minute periods from midnight to the last mark.
    assert reading.calls["GetMetricData"] == 1
    [asked] = script.params["GetMetricData"]
    assert len(asked["MetricDataQueries"]) == 2 * len(meter.BEDROCK_METRICS)
    assert {query["MetricStat"]["Period"] for query in asked["MetricDataQueries"]} == {300}
    assert (asked["StartTime"], asked["EndTime"]) == (TODAY, TODAY + timedelta(hours=14, minutes=5))


def test_in_the_first_hour_of_the_day_the_hour_reaches_into_yesterday_and_the_day_does_not(account):
    now = TODAY + timedelta(minutes=20, seconds=10)
    use_bedrock(account, HAIKU, tokens_in=9_000, tokens_out=900, invocations=1, at=TODAY - timedelta(minutes=70))
    use_bedrock(account, HAIKU, tokens_in=2_000, tokens_out=200, invocations=3, at=TODAY - timedelta(minutes=10))
    use_bedrock(account, HAIKU, tokens_in=1_000, tokens_out=100, invocations=5, at=TODAY + timedelta(minutes=5))

    [haiku] = bedrock_items(meter.read(account, [REGION], now=now)).values()

    assert quantities(haiku) == [3, Decimal("0.3")]
    assert (haiku.today.input_tokens, haiku.today.output_tokens, haiku.today.invocations) == (1_000, 100, 5)


def test_cloudwatchs_newest_first_answer_is_summed_the_same(account, script):
    """CloudWatch answers GetMetricData newest first (ScanBy TimestampDescending, its default), a
    period per data point; scripted here, each query's answer built from the request."""
    now = TODAY + timedelta(hours=10, minutes=3)

    def answered(params):
        stamps = [TODAY + timedelta(hours=9, minutes=55), TODAY + timedelta(hours=2), TODAY - timedelta(minutes=5)]
        per_metric = {"in": [1_000.0, 50_000.0, 7.0], "out": [100.0, 5_000.0, 7.0], "calls": [1.0, 10.0, 7.0]}
        return {
            "MetricDataResults": [
                {
                    "Id": query["Id"],
                    "Label": query["Id"],
                    "Timestamps": stamps,
                    "Values": per_metric[query["Id"].split("_", 1)[1]],
                    "StatusCode": "Complete",
                }
                for query in params["MetricDataQueries"]
            ],
            "Messages": [],
        }

    script.answer("cloudwatch", "ListMetrics", listed_as_cloudwatch_does(HAIKU))
    script.answer("cloudwatch", "GetMetricData", answered)

    [haiku] = bedrock_items(meter.read(account, [REGION], now=now)).values()

    assert quantities(haiku) == [1, Decimal("0.1")]
    assert (haiku.today.input_tokens, haiku.today.output_tokens, haiku.today.invocations) == (51_000, 5_100, 11)


def test_a_model_cloudwatch_no_longer_lists_is_read_when_it_was_used_today(account, script):
    """Three hours after a model's last use, CloudWatch stops listing its metrics as recently
    active (scripted: moto lists them all): the day's reading of another model of its family would
    miss it. Named in `bedrock_models` (the models the last reading saw used today), it is read."""
    now = TODAY + timedelta(hours=15)
    use_bedrock(account, HAIKU, tokens_in=900_000, tokens_out=90_000, invocations=40, at=TODAY + timedelta(hours=8))
    sonnet = "anthropic.claude-3-5-sonnet-20240620-v1:0"
    use_bedrock(account, sonnet, tokens_in=1_000, tokens_out=100, invocations=1, at=now - timedelta(minutes=30))
    script.always("cloudwatch", "ListMetrics", listed_as_cloudwatch_does(sonnet))

    forgotten = bedrock_items(meter.read(account, [REGION], now=now))
    remembered = bedrock_items(meter.read(account, [REGION], now=now, bedrock_models={REGION: {HAIKU}}))

    assert set(forgotten) == {sonnet}
    assert set(remembered) == {HAIKU, sonnet}
    assert remembered[HAIKU].today.input_tokens == 900_000 and quantities(remembered[HAIKU]) == [0, 0]


def test_the_most_models_read_at_the_end_of_the_day_stay_within_one_get_metric_data(account, script):
    """CloudWatch takes 500 queries and answers 100,800 data points a call: the request for the most
    models the meter reads, at the last five-minute mark of the day, stays within both (moto would
    answer more)."""
    models = [f"amazon.titan-text-lite-{n:02}" for n in range(meter.BEDROCK_MODELS + 1)]
    script.always("cloudwatch", "ListMetrics", listed_as_cloudwatch_does(*models))
    use_bedrock(account, models[0], tokens_in=10, tokens_out=1, invocations=1, at=TODAY + timedelta(hours=23))

    reading = meter.read(account, [REGION], now=TODAY + timedelta(hours=23, minutes=59, seconds=59))

    [asked] = script.params["GetMetricData"]
    queries = asked["MetricDataQueries"]
    periods = (asked["EndTime"] - asked["StartTime"]) / timedelta(seconds=queries[0]["MetricStat"]["Period"])
    assert len(queries) == meter.BEDROCK_MODELS * 3 <= meter.GET_METRIC_DATA_QUERIES == 500
    assert len(queries) * periods <= meter.GET_METRIC_DATA_POINTS == 100_800
    assert reading.calls["GetMetricData"] == 1
    [unread] = [item for item in reading.items if item.kind == "meter:unread"]
    assert unread.id == models[-1]
