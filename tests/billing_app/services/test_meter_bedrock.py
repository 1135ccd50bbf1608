"""What a stored reading says of each Bedrock model for the daily limits of a model family
(billing_app/services/meter.py): its family and its use since UTC midnight, priced at the quotes
of the hour's rate. Each stored item of kind "bedrock:model" carries exactly `family` (a key of
portal/aws/bedrock_models.py, or "") and `today` ({input_tokens, output_tokens, invocations,
usd}); what acts on the limits reads them.

AWS is moto, the readings made through account_meter_read as the task makes them. moto lists
every metric ever put, where CloudWatch lists only those with data in the last three hours: where
that matters, ListMetrics is answered as CloudWatch does (tests/support/aws_script.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from accounts_app.models import MemberAccount
from billing_app.models import MeterReading
from billing_app.services.meter import account_meter_read
from portal.aws import meter as aws_meter
from portal.aws.session import client
from tests.support.aws_calls import students_ready_account
from tests.support.aws_script import AwsScript

pytestmark = pytest.mark.django_db

REGION = "us-east-1"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"  # $0.00025 and $0.00125 a thousand tokens in the table
SONNET = "anthropic.claude-3-5-sonnet-20240620-v1:0"
TODAY = datetime.combine(timezone.now().date(), time.min, tzinfo=UTC)
# What every stored item says.
STORED_KEYS = {"region", "kind", "kind_label", "id", "label", "usd_per_hour", "source", "why_unknown", "instances"}


@pytest.fixture(autouse=True)
def forget_cached_checks():
    """The meter keeps its ownership checks in the cache (Redis), which outlives each test's database."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def account(personas, aws) -> MemberAccount:
    """The persona student's ready account, made in moto and placed where vending puts it."""
    return students_ready_account(personas)


@pytest.fixture
def script(aws) -> AwsScript:
    return AwsScript(aws)


def use_bedrock(account, model: str, *, tokens_in: int, tokens_out: int, invocations: int, at: datetime) -> None:
    values = {"InputTokenCount": tokens_in, "OutputTokenCount": tokens_out, "Invocations": invocations}
    client("cloudwatch", account_id=account.aws_account_id, region=REGION).put_metric_data(
        Namespace="AWS/Bedrock",
        MetricData=[
            {"MetricName": name, "Dimensions": [{"Name": "ModelId", "Value": model}], "Value": value, "Timestamp": at}
            for name, value in values.items()
        ],
    )


def listed_as_cloudwatch_does(*models: str) -> dict:
    """ListMetrics with RecentlyActive=PT3H as CloudWatch answers it: the metrics of `models` only."""
    return {
        "Metrics": [
            {"Namespace": "AWS/Bedrock", "MetricName": name, "Dimensions": [{"Name": "ModelId", "Value": model}]}
            for model in models
            for name in aws_meter.BEDROCK_METRICS.values()
        ]
    }


def bedrock(reading: MeterReading) -> dict[str, dict]:
    return {item["id"]: item for item in reading.items if item["kind"] == "bedrock:model"}


def test_each_bedrock_item_carries_its_family_and_its_day(account):
    now = TODAY + timedelta(hours=14, minutes=7)
    use_bedrock(
        account, f"us.{HAIKU}", tokens_in=40_000, tokens_out=2_000, invocations=4, at=TODAY + timedelta(hours=1)
    )
    use_bedrock(
        account, f"us.{HAIKU}", tokens_in=30_000, tokens_out=4_000, invocations=12, at=now - timedelta(minutes=20)
    )
    use_bedrock(
        account, "acme.frontier-v1:0", tokens_in=5_000, tokens_out=500, invocations=1, at=now - timedelta(hours=2)
    )
    client("ec2", account_id=account.aws_account_id, region=REGION).run_instances(
        ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t3.micro"
    )

    reading = account_meter_read(account_id=account.pk, now=now)

    items = bedrock(reading)
    haiku = items[f"us.{HAIKU}"]
    assert haiku["family"] == "anthropic.claude"
    # 70 thousand input tokens at $0.00025 and 6 thousand output tokens at $0.00125.
    assert haiku["today"] == {"input_tokens": 70_000, "output_tokens": 6_000, "invocations": 16, "usd": "0.025000"}
    assert haiku["usd_per_hour"] == "0.012500"  # the last hour's 30 and 4 thousand, as before
    # A model of no family the portal knows, priced by neither the Price List (moto has none) nor
    # the table: its day is counted, its dollars unknown, never $0.
    acme = items["acme.frontier-v1:0"]
    assert acme["family"] == ""
    assert acme["today"] == {"input_tokens": 5_000, "output_tokens": 500, "invocations": 1, "usd": None}
    assert acme["usd_per_hour"] is None
    assert set(haiku) == STORED_KEYS | {"family", "today"}
    others = [item for item in reading.items if item["kind"] != "bedrock:model"]
    assert {item["kind"] for item in others} == {"ec2:instance", "ec2:volume"}
    assert all(set(item) == STORED_KEYS for item in others)


def test_a_family_s_day_counts_a_model_cloudwatch_no_longer_lists(account, script):
    """The morning's model is no longer recently active by the afternoon (ListMetrics scripted as
    CloudWatch answers; moto lists it still): the reading that saw it used today has it read again,
    so the family's day holds both models. The next day starts afresh."""
    morning = TODAY + timedelta(hours=8, minutes=30)
    use_bedrock(
        account, HAIKU, tokens_in=900_000, tokens_out=90_000, invocations=40, at=morning - timedelta(minutes=10)
    )
    script.answer("cloudwatch", "ListMetrics", listed_as_cloudwatch_does(HAIKU))
    assert set(bedrock(account_meter_read(account_id=account.pk, now=morning))) == {HAIKU}

    afternoon = TODAY + timedelta(hours=15)
    use_bedrock(account, SONNET, tokens_in=1_000, tokens_out=100, invocations=1, at=afternoon - timedelta(minutes=30))
    script.answer("cloudwatch", "ListMetrics", listed_as_cloudwatch_does(SONNET))
    items = bedrock(account_meter_read(account_id=account.pk, now=afternoon))

    assert {model: item["family"] for model, item in items.items()} == {
        HAIKU: "anthropic.claude",
        SONNET: "anthropic.claude",
    }
    assert items[HAIKU]["today"]["input_tokens"] == 900_000 and items[HAIKU]["usd_per_hour"] == "0.000000"
    assert items[SONNET]["today"]["input_tokens"] == 1_000

    script.answer("cloudwatch", "ListMetrics", listed_as_cloudwatch_does())
    tomorrow = TODAY + timedelta(days=1, hours=9)
    assert bedrock(account_meter_read(account_id=account.pk, now=tomorrow)) == {}
