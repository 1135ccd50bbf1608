"""The usage meter: what a student account runs now, what it costs an hour, the estimated spend and
when the budget runs out at this rate (portal/aws/meter.py, billing_app/services/meter.py,
billing_app/services/prices.py, billing_app/meter_selectors.py).

AWS is moto (the `aws` fixture): resources are made inside the member account through its
organization role, as the meter reaches it, and Bedrock's metrics are put into that account's
CloudWatch as Bedrock publishes them (AWS/Bedrock, per ModelId). Where moto answers otherwise than
AWS, each test says how AWS's answer is given:

- moto has no Price List API (GetProducts answers 404 "Not yet implemented", as the local emulator
  does): botocore's `Stubber` answers GetProducts with AWS's real answer shape (PriceList, a list of
  JSON documents, each a product with its OnDemand and Reserved terms) or AWS's throttling;
- moto finishes a SageMaker training job the moment it is created: `AwsScript` answers
  ListTrainingJobs and DescribeTrainingJob with a job still in progress, as AWS does for hours.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from botocore.stub import Stubber
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from accounts_app.choices import AccountState as S
from accounts_app.models import MemberAccount, Membership
from billing_app.meter_selectors import burn_down, estimates, running_now, settled_through
from billing_app.models import AccountDailyCost, MeteredDailyCost, MeterReading, Price, PriceSource
from billing_app.services.meter import MAX_INTEGRATED_GAP, account_meter_read, meter_cycle
from billing_app.services.prices import NO_SINGLE_PRICE, UNREACHABLE, prices_for
from billing_app.signals import meter_read
from portal.aws import meter as aws_meter
from portal.aws import organizations
from portal.aws.prices import price_list_price
from portal.aws.session import client
from tests.factories import MemberAccountFactory
from tests.support.aws_calls import students_ready_account

pytestmark = pytest.mark.django_db

REGION, OTHER_REGION = "us-east-1", "eu-west-1"
IMAGE_ID = "ami-12c6146b"  # any id does: moto does not check images
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
HOURS_PER_MONTH = Decimal(730)
# What the meter asks in a member account: never a change.
MEMBER_READS = {
    "DescribeInstances",
    "DescribeVolumes",
    "DescribeNatGateways",
    "DescribeLoadBalancers",
    "DescribeDBInstances",
    "ListNotebookInstances",
    "ListEndpoints",
    "DescribeEndpoint",
    "DescribeEndpointConfig",
    "ListTrainingJobs",
    "DescribeTrainingJob",
    "ListMetrics",
    "GetMetricData",
}


@pytest.fixture(autouse=True)
def forget_cached_checks():
    """The meter keeps its ownership checks in the cache (Redis), which outlives each test's
    database: a record id reused by the next test must not find this one's."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def account(personas, aws) -> MemberAccount:
    """The persona student's ready account, made in moto and placed where vending puts it; the
    course lets students use two regions."""
    personas.course.allowed_regions = [REGION, OTHER_REGION]
    personas.course.save()
    return students_ready_account(personas)


def inside(account, service: str, region: str = REGION):
    """A client inside the member account, as the portal reaches it."""
    return client(service, account_id=account.aws_account_id, region=region)


def run_instance(account, name: str, region: str = REGION, kind: str = "t3.micro", **options) -> str:
    return inside(account, "ec2", region).run_instances(
        ImageId=IMAGE_ID,
        MinCount=1,
        MaxCount=1,
        InstanceType=kind,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}],
        **options,
    )["Instances"][0]["InstanceId"]


def make_endpoint(account, name: str, count: int = 1) -> None:
    sagemaker = inside(account, "sagemaker")
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn=f"arn:aws:iam::{account.aws_account_id}:role/sagemaker",
        PrimaryContainer={"Image": f"{name}:latest"},
    )
    variant = {"VariantName": "all", "ModelName": name, "InitialInstanceCount": count, "InstanceType": "ml.t2.medium"}
    sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)


def use_bedrock(account, model: str, *, tokens_in: int, tokens_out: int, invocations: int, at: datetime) -> None:
    """What Bedrock publishes in the account's CloudWatch for on-demand invocations of `model`."""
    values = {"InputTokenCount": tokens_in, "OutputTokenCount": tokens_out, "Invocations": invocations}
    inside(account, "cloudwatch").put_metric_data(
        Namespace="AWS/Bedrock",
        MetricData=[
            {"MetricName": name, "Dimensions": [{"Name": "ModelId", "Value": model}], "Value": value, "Timestamp": at}
            for name, value in values.items()
        ],
    )


def by_kind(reading: MeterReading) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for item in reading.items:
        found.setdefault(item["kind"], []).append(item)
    return found


def item(reading: MeterReading, kind: str, id: str) -> dict:
    return next(i for i in reading.items if i["kind"] == kind and i["id"] == id)


def hourly(usd_per_month: str) -> Decimal:
    return Decimal(usd_per_month) / HOURS_PER_MONTH


def usd(value) -> str:
    return str(Decimal(value).quantize(Decimal("0.000001")))


# --- The Price List's answers, as AWS gives them ----------------------------------------------------


def product(service_code: str, attributes: dict, unit: str, price: str, *, reserved: str = "") -> str:
    """One Price List product as GetProducts answers it: a JSON document, in a string."""
    sku = "JRTCKXETXF4Q8S2Y"
    document: dict[str, Any] = {
        "product": {
            "productFamily": "Compute Instance",
            "attributes": {"servicecode": service_code, **attributes},
            "sku": sku,
        },
        "serviceCode": service_code,
        "terms": {
            "OnDemand": {
                f"{sku}.JRTCKXETXF": {
                    "priceDimensions": {
                        f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                            "unit": unit,
                            "endRange": "Inf",
                            "description": f"${price} per On Demand {unit}",
                            "appliesTo": [],
                            "rateCode": f"{sku}.JRTCKXETXF.6YS6EN2CT7",
                            "beginRange": "0",
                            "pricePerUnit": {"USD": price},
                        }
                    },
                    "sku": sku,
                    "effectiveDate": "2026-11-01T00:00:00Z",
                    "offerTermCode": "JRTCKXETXF",
                    "termAttributes": {},
                }
            },
        },
        "version": "20261101000000",
        "publicationDate": "2026-11-01T00:00:00Z",
    }
    if reserved:
        # A reserved term prices the same unit lower: the meter must not take it.
        document["terms"]["Reserved"] = {
            f"{sku}.4NA7Y494T4": {
                "priceDimensions": {
                    f"{sku}.4NA7Y494T4.6YS6EN2CT7": {
                        "unit": unit,
                        "beginRange": "0",
                        "endRange": "Inf",
                        "pricePerUnit": {"USD": reserved},
                    },
                    f"{sku}.4NA7Y494T4.2TG2D8R56U": {"unit": "Quantity", "pricePerUnit": {"USD": "53"}},
                },
                "termAttributes": {"LeaseContractLength": "1yr", "PurchaseOption": "Partial Upfront"},
            }
        }
    return json.dumps(document)


def price_list_answer(*products: str) -> dict:
    return {"FormatVersion": "aws_v1", "PriceList": list(products)}


def ec2_filters(instance_type: str, region: str = REGION) -> list[dict]:
    attributes = {
        "regionCode": region,
        "instanceType": instance_type,
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
        "licenseModel": "No License required",
    }
    return [{"Type": "TERM_MATCH", "Field": name, "Value": value} for name, value in attributes.items()]


def t3_micro(price: str) -> str:
    return product("AmazonEC2", {"instanceType": "t3.micro", "regionCode": REGION}, "Hrs", price, reserved="0.0065")


def gp2(price: str) -> str:
    return product("AmazonEC2", {"volumeApiName": "gp2", "regionCode": REGION}, "GB-Mo", price)


@pytest.fixture
def price_list(aws):
    """The portal's Price List client, its answers scripted with botocore's Stubber."""
    with Stubber(client("pricing", region="us-east-1")) as stubber:
        yield stubber


# --- What runs, and its price ----------------------------------------------------------------------


def test_the_meter_lists_what_bills_now_in_the_courses_regions_and_prices_it(account, script):
    """moto has no Price List: every price here is the vendored table's (us-east-1's, eu-west-1's
    with its factor), as in the local emulator."""
    now = timezone.now()
    web = run_instance(account, "web")
    idle = run_instance(account, "idle")
    inside(account, "ec2").stop_instances(InstanceIds=[idle])
    far = run_instance(account, "far", OTHER_REGION)
    ec2 = inside(account, "ec2")
    data = ec2.create_volume(Size=100, VolumeType="gp3", AvailabilityZone="us-east-1a", Iops=4000, Throughput=250)
    subnets = [subnet["SubnetId"] for subnet in ec2.describe_subnets()["Subnets"]]
    nat = ec2.create_nat_gateway(SubnetId=subnets[0], AllocationId=ec2.allocate_address(Domain="vpc")["AllocationId"])
    balancer = inside(account, "elbv2").create_load_balancer(Name="web", Subnets=subnets[:2], Type="application")
    inside(account, "elb").create_load_balancer(
        LoadBalancerName="legacy",
        AvailabilityZones=["us-east-1a"],
        Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}],
    )
    inside(account, "rds").create_db_instance(
        DBInstanceIdentifier="lab-db",
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="student",
        MasterUserPassword="not-a-secret-1",
        AllocatedStorage=20,
    )
    inside(account, "sagemaker").create_notebook_instance(
        NotebookInstanceName="lab-notebook",
        InstanceType="ml.t3.medium",
        RoleArn=f"arn:aws:iam::{account.aws_account_id}:role/sagemaker",
    )
    make_endpoint(account, "digits", count=2)
    # Through a cross-region inference profile: priced as the model it runs.
    use_bedrock(
        account, f"us.{HAIKU}", tokens_in=30_000, tokens_out=4_000, invocations=12, at=now - timedelta(minutes=20)
    )
    # Yesterday's: neither this hour's use nor today's.
    use_bedrock(account, HAIKU, tokens_in=900_000, tokens_out=0, invocations=1, at=now - timedelta(hours=25))
    script.log.clear()

    reading = account_meter_read(account_id=account.pk, now=now)

    assert reading.error == "" and reading.regions == [OTHER_REGION, REGION]
    kinds = by_kind(reading)
    assert {i["id"] for i in kinds["ec2:instance"]} == {web, far}  # the stopped one computes nothing…
    volumes = {i["id"]: i for i in kinds["ec2:volume"]}
    assert len(volumes) == 4  # …but its disk bills, as do the others and the one attached to nothing
    assert item(reading, "ec2:instance", web)["usd_per_hour"] == usd("0.0104")
    assert item(reading, "ec2:instance", far)["usd_per_hour"] == usd(Decimal("0.0104") * Decimal("1.10"))
    # gp3: 100 GiB, 1,000 IOPS and 125 MiB/s above what it includes, each priced by the month.
    assert volumes[data["VolumeId"]]["usd_per_hour"] == usd(hourly("8") + hourly("5") + hourly("5"))
    assert item(reading, "ec2:nat-gateway", nat["NatGateway"]["NatGatewayId"])["usd_per_hour"] == usd("0.045")
    assert item(reading, "elbv2:load-balancer", balancer["LoadBalancers"][0]["LoadBalancerArn"])["usd_per_hour"] == usd(
        "0.0225"
    )
    assert item(reading, "elb:load-balancer", "legacy")["usd_per_hour"] == usd("0.025")
    assert item(reading, "rds:db-instance", "lab-db")["usd_per_hour"] == usd(Decimal("0.018") + hourly("2.3"))
    assert item(reading, "sagemaker:notebook-instance", "lab-notebook")["usd_per_hour"] == usd("0.05")
    endpoint = item(reading, "sagemaker:endpoint", "digits")
    assert endpoint["usd_per_hour"] == usd("0.112") and "2 × ml.t2.medium" in endpoint["label"]
    bedrock = item(reading, "bedrock:model", f"us.{HAIKU}")
    # 30 thousand input tokens at $0.00025, 4 thousand output tokens at $0.00125, in the last hour.
    assert bedrock["usd_per_hour"] == usd("0.0125")
    assert "12 invocations" in bedrock["label"]

    assert reading.unknown == 0
    assert {i["source"] for i in reading.items} == {PriceSource.TABLE}
    assert reading.usd_per_hour == sum(Decimal(i["usd_per_hour"]) for i in reading.items)
    assert reading.running == len(reading.items) == 13
    # Reads only, and as many calls as it says: 11 listings in us-east-1 (and 2 for the endpoint),
    # 10 in eu-west-1 (no Bedrock metrics there: no GetMetricData).
    member_calls = [call for call in script.log if call in MEMBER_READS]
    # Besides: the ownership check in the management account, and the Price List (moto has none).
    assert set(script.log) - MEMBER_READS == {"ListParents", "ListTagsForResource", "GetProducts"}
    assert reading.calls == len(member_calls) == 23 <= 2 * aws_meter.CALLS_PER_REGION


def test_a_price_list_answer_is_used_over_the_table_and_kept_a_day(account, price_list):
    """GetProducts answers as AWS does (Stubber): one product, its on-demand hourly price next to a
    cheaper reserved one that the meter must not take."""
    web = run_instance(account, "web")
    now = timezone.now()
    price_list.add_response("get_products", price_list_answer(gp2("0.1000000000")))
    price_list.add_response(
        "get_products",
        price_list_answer(t3_micro("0.0111000000")),
        {"ServiceCode": "AmazonEC2", "Filters": ec2_filters("t3.micro"), "MaxResults": 100},
    )
    # eu-west-1 runs nothing: no price is asked for it.

    reading = account_meter_read(account_id=account.pk, now=now)

    instance = item(reading, "ec2:instance", web)
    assert instance["usd_per_hour"] == usd("0.0111") and instance["source"] == PriceSource.PRICE_LIST
    price_list.assert_no_pending_responses()
    stored = Price.objects.get(rate="ec2-instance/t3.micro/Linux", region=REGION)
    assert (stored.usd, stored.source, stored.unit) == (Decimal("0.0111"), PriceSource.PRICE_LIST, "hour")

    # Within the day the stored price serves (an unscripted GetProducts would fail the Stubber)…
    account_meter_read(account_id=account.pk, now=now + timedelta(hours=23))
    # …after it, the Price List is asked again, and its new price used.
    price_list.add_response("get_products", price_list_answer(gp2("0.1000000000")))
    price_list.add_response("get_products", price_list_answer(t3_micro("0.0120000000")))
    later = account_meter_read(account_id=account.pk, now=now + timedelta(hours=25))
    assert item(later, "ec2:instance", web)["usd_per_hour"] == usd("0.012")
    price_list.assert_no_pending_responses()


def test_no_single_price_in_the_answer_falls_back_to_the_table(aws, price_list):
    """AWS answers two products with different on-demand prices for the filters (or none): the
    meter takes neither, and the table's price serves."""
    price_list.add_response("get_products", price_list_answer(t3_micro("0.0104000000"), t3_micro("0.0208000000")))
    assert price_list_price("ec2-instance/t3.micro/Linux", REGION) is None
    price_list.add_response("get_products", price_list_answer())
    quotes = prices_for({("ec2-instance/t3.micro/Linux", REGION)}, now=timezone.now())
    assert quotes[("ec2-instance/t3.micro/Linux", REGION)].usd == Decimal("0.0104")
    assert Price.objects.get().note == NO_SINGLE_PRICE


def test_the_table_serves_when_the_price_list_cannot_be_asked_and_it_is_asked_again_within_the_hour(aws, script):
    """moto, like the local emulator, has no Price List API (404): the table's price is used, and
    kept an hour only."""
    wanted = {("nat-gateway", OTHER_REGION)}
    now = timezone.now()

    quote = prices_for(wanted, now=now)[("nat-gateway", OTHER_REGION)]

    assert quote.usd == Decimal("0.045") * Decimal("1.10") and quote.source == PriceSource.TABLE
    assert Price.objects.get().note.startswith(UNREACHABLE)
    assert script.calls["GetProducts"] == 1
    prices_for(wanted, now=now + timedelta(minutes=50))
    assert script.calls["GetProducts"] == 1
    prices_for(wanted, now=now + timedelta(minutes=70))
    assert script.calls["GetProducts"] == 2


def test_a_throttled_price_list_falls_back_to_the_table(aws, price_list):
    """AWS throttles GetProducts (Stubber): the reading does not wait for it."""
    price_list.add_client_error("get_products", service_error_code="ThrottlingException", http_status_code=400)
    quote = prices_for({("load-balancer/network", REGION)}, now=timezone.now())[("load-balancer/network", REGION)]
    assert quote.usd == Decimal("0.0225") and quote.source == PriceSource.TABLE


def test_an_unknown_price_is_shown_as_unknown_never_as_zero(personas, account):
    """An instance type neither the Price List (moto has none) nor the table prices, and a spot
    instance, whose price follows the market."""
    big = run_instance(account, "big", kind="c5.24xlarge")
    spot = run_instance(account, "cheap", InstanceMarketOptions={"MarketType": "spot"})
    web = run_instance(account, "web")

    reading = account_meter_read(account_id=account.pk)

    unknown = item(reading, "ec2:instance", big)
    assert unknown["usd_per_hour"] is None
    assert unknown["why_unknown"] == "no price for ec2-instance/c5.24xlarge/Linux"
    assert item(reading, "ec2:instance", spot)["usd_per_hour"] is None
    assert "spot" in item(reading, "ec2:instance", spot)["why_unknown"]
    assert reading.unknown == 2
    # Unknown items come first, and add nothing to the known rate.
    assert [i["usd_per_hour"] for i in reading.items[:2]] == [None, None]
    assert reading.usd_per_hour == sum(Decimal(i["usd_per_hour"]) for i in reading.items[2:])
    assert item(reading, "ec2:instance", web)["usd_per_hour"] == usd("0.0104")

    page = personas.client("student").get(reverse("billing:my_costs", args=[personas.course.pk])).content.decode()
    assert page.count("unknown <span") == 2
    assert "no price for ec2-instance/c5.24xlarge/Linux" in page
    assert "plus 2 of unknown price" in page


def test_training_jobs_in_progress_are_priced_and_the_describes_are_bounded(account, script):
    """moto finishes a training job at once; AwsScript answers as AWS does while five jobs run.
    The meter describes three of them a region and counts the others as unknown."""

    def listed(params):
        return {
            "TrainingJobSummaries": [
                {
                    "TrainingJobName": f"digits-{n}",
                    "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{account.aws_account_id}:training-job/digits-{n}",
                    "CreationTime": timezone.now(),
                    "TrainingJobStatus": "InProgress",
                }
                for n in range(5)
            ]
        }

    def described(params):
        return {
            "TrainingJobName": params["TrainingJobName"],
            "TrainingJobArn": (
                f"arn:aws:sagemaker:{REGION}:{account.aws_account_id}:training-job/{params['TrainingJobName']}"
            ),
            "ModelArtifacts": {"S3ModelArtifacts": ""},
            "TrainingJobStatus": "InProgress",
            "SecondaryStatus": "Training",
            "AlgorithmSpecification": {"TrainingImage": "digits:latest", "TrainingInputMode": "File"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 2, "VolumeSizeInGB": 10},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
            "CreationTime": timezone.now(),
        }

    # The regions are read in order: eu-west-1 runs no job, us-east-1 five.
    script.answer("sagemaker", "ListTrainingJobs", {"TrainingJobSummaries": []}, listed)
    script.always("sagemaker", "DescribeTrainingJob", described)
    for name in ("a", "b", "c", "d"):
        make_endpoint(account, name)

    reading = account_meter_read(account_id=account.pk)

    jobs = {i["id"]: i for i in by_kind(reading)["sagemaker:training-job"]}
    assert [jobs[f"digits-{n}"]["usd_per_hour"] for n in range(3)] == [usd("0.23")] * 3  # 2 × ml.m5.large
    assert "2 × ml.m5.large" in jobs["digits-0"]["label"]
    assert [jobs[f"digits-{n}"]["usd_per_hour"] for n in (3, 4)] == [None, None]
    endpoints = by_kind(reading)["sagemaker:endpoint"]
    assert sorted(e["usd_per_hour"] is None for e in endpoints) == [False, False, False, True]
    assert script.calls["DescribeTrainingJob"] == 3 and script.calls["DescribeEndpoint"] == 3
    assert reading.unknown == 3
    assert reading.calls <= 2 * aws_meter.CALLS_PER_REGION


# --- Readings over time ----------------------------------------------------------------------------


def reading_at(account, when: datetime) -> MeterReading:
    return account_meter_read(account_id=account.pk, now=when)


def metered(account) -> dict[date, Decimal]:
    return dict(MeteredDailyCost.objects.filter(account=account).values_list("day", "amount"))


def test_the_dollars_an_hour_between_readings_are_added_to_the_day(account):
    """The rate is taken to change linearly between two readings (the trapezoid rule)."""
    run_instance(account, "web")
    start = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    first = reading_at(account, start).usd_per_hour  # an instance and its disk
    run_instance(account, "second")
    second = reading_at(account, start + timedelta(minutes=30)).usd_per_hour
    assert second == 2 * first

    assert metered(account) == {date(2026, 11, 20): ((first + second) / 2 / 2).quantize(Decimal("0.000001"))}


def test_spend_across_midnight_goes_to_each_day_and_a_long_gap_counts_nothing(account):
    run_instance(account, "web")
    before_midnight = datetime(2026, 11, 20, 23, 50, tzinfo=UTC)
    rate = reading_at(account, before_midnight).usd_per_hour
    reading_at(account, before_midnight + timedelta(minutes=20))
    sixth = (rate / 6).quantize(Decimal("0.000001"))
    assert metered(account) == {date(2026, 11, 20): sixth, date(2026, 11, 21): sixth}

    # The meter was down for longer than MAX_INTEGRATED_GAP: no guess over those hours.
    reading_at(account, before_midnight + timedelta(minutes=20) + MAX_INTEGRATED_GAP + timedelta(minutes=1))
    assert metered(account) == {date(2026, 11, 20): sixth, date(2026, 11, 21): sixth}


def test_a_repeated_task_reads_nothing_again(account, script):
    run_instance(account, "web")
    now = timezone.now()
    reading_at(account, now)
    calls = len(script.log)
    assert account_meter_read(account_id=account.pk, now=now + timedelta(minutes=1)) is None
    assert len(script.log) == calls


# --- Estimated spend and burn-down -----------------------------------------------------------------


def test_the_estimate_adds_what_the_meter_saw_beyond_the_bill_on_days_cost_explorer_has_not_settled():
    account = MemberAccountFactory()
    newest = date(2026, 11, 20)
    for day, usage in ((newest - timedelta(days=2), "5"), (newest - timedelta(days=1), "4"), (newest, "1")):
        AccountDailyCost.objects.create(account=account, course=account.course, day=day, usage=Decimal(usage))
    for day, amount in (
        (newest - timedelta(days=1), "7"),  # settled: the bill's figure stands
        (newest, "3"),  # still filling in: the meter saw $2 more than the bill so far
        (newest + timedelta(days=1), "2.5"),  # Cost Explorer has nothing of it yet
    ):
        MeteredDailyCost.objects.create(account=account, course=account.course, day=day, amount=Decimal(amount))
    # A day where the bill already shows more than the meter saw adds nothing.
    other = MemberAccountFactory(course=account.course)
    AccountDailyCost.objects.create(account=other, course=other.course, day=newest, usage=Decimal("9"))
    MeteredDailyCost.objects.create(account=other, course=other.course, day=newest, amount=Decimal("4"))

    assert settled_through() == newest - timedelta(days=1)
    found = estimates(accounts=[account, other], start=newest - timedelta(days=10), end=newest + timedelta(days=10))
    assert (found[account.pk].billed, found[account.pk].metered, found[account.pk].total) == (
        10,
        Decimal("4.5"),
        Decimal("14.5"),
    )
    assert (found[other.pk].billed, found[other.pk].metered) == (9, 0)


NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_the_budget_runs_out_when_what_is_left_is_spent_at_this_rate():
    forecast = burn_down(
        budget=Decimal(50),
        spent=Decimal(26),
        usd_per_hour=Decimal("0.5"),
        unknown=0,
        now=NOW,
        period_end=date(2026, 12, 15),
    )
    assert forecast.runs_out_at == NOW + timedelta(hours=48)
    assert forecast.left == 24 and not forecast.already_spent and not forecast.lasts_the_period


@pytest.mark.parametrize(
    ("spent", "usd_per_hour", "period_end", "expected"),
    [
        (Decimal(50), Decimal(1), date(2026, 12, 15), "already spent"),
        (Decimal(60), Decimal(0), date(2026, 12, 15), "already spent"),
        (Decimal(26), Decimal(0), date(2026, 12, 15), "lasts"),  # nothing runs
        (Decimal(26), Decimal("0.5"), date(2026, 11, 21), "lasts"),  # 48 hours: past the period's end
        (Decimal(26), Decimal("0.5"), date(2026, 11, 22), "runs out"),  # its last day is included
    ],
)
def test_burn_down_cases(spent, usd_per_hour, period_end, expected):
    forecast = burn_down(
        budget=Decimal(50), spent=spent, usd_per_hour=usd_per_hour, unknown=0, now=NOW, period_end=period_end
    )
    found = "already spent" if forecast.already_spent else "runs out" if forecast.runs_out_at else "lasts"
    assert found == expected


def test_a_tiny_rate_does_not_overflow():
    forecast = burn_down(
        budget=Decimal(50),
        spent=Decimal(0),
        usd_per_hour=Decimal("0.000001"),
        unknown=0,
        now=NOW,
        period_end=date(2026, 12, 15),
    )
    assert forecast.lasts_the_period


# --- The cycle, the gate and the hook --------------------------------------------------------------


def test_a_cycle_reads_every_account_in_use_once_and_tells_the_hook(
    personas, account, script, django_capture_on_commit_callbacks
):
    run_instance(account, "web")
    ended = MemberAccountFactory(course=personas.course, state=S.ENDED)
    heard = []

    def receiver(sender, reading, previous_usd_per_hour, **kwargs):
        heard.append((reading.account_id, reading.usd_per_hour, previous_usd_per_hour))

    meter_read.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            assert meter_cycle() == 1
    finally:
        meter_read.disconnect(receiver)

    reading = MeterReading.objects.get()
    assert reading.account_id == account.pk and not MeterReading.objects.filter(account=ended).exists()
    assert heard == [(account.pk, reading.usd_per_hour, None)]
    now = running_now(accounts=[account, ended])
    assert list(now) == [account.pk]
    assert (now[account.pk].running, now[account.pk].usd_per_hour) == (2, reading.usd_per_hour)


def test_an_account_not_in_its_courses_ou_is_not_read(account, aws, script):
    root = aws.client("organizations").list_roots()["Roots"][0]["Id"]
    organizations.move_account(account.aws_account_id, root)

    reading = account_meter_read(account_id=account.pk)

    assert reading.taken_at is None and reading.error.startswith("Not read: ")
    assert not set(script.log) & MEMBER_READS


def test_a_frozen_account_is_read_and_a_closed_one_is_not(account, script):
    MemberAccount.objects.filter(pk=account.pk).update(state=S.FROZEN)
    assert account_meter_read(account_id=account.pk).taken_at is not None
    MeterReading.objects.all().delete()
    MemberAccount.objects.filter(pk=account.pk).update(state=S.CLOSED)
    script.log.clear()
    assert account_meter_read(account_id=account.pk) is None
    assert not set(script.log) & MEMBER_READS


# --- Pages -----------------------------------------------------------------------------------------


def test_the_dashboard_and_the_students_panel_show_what_runs_now_and_when_the_budget_runs_out(personas, account):
    course = personas.course
    course.budget_per_student, course.end_date = Decimal("1.00"), timezone.localdate() + timedelta(days=60)
    course.save()
    run_instance(account, "web")
    reading = account_meter_read(account_id=account.pk)
    # Nothing billed yet: the whole dollar is left, spent at this rate in about three and a half days.
    runs_out = timezone.localtime(reading.taken_at + timedelta(hours=float(1 / reading.usd_per_hour)))

    dashboard = personas.client("ta").get(reverse("billing:costs", args=[course.pk]) + "?sort=-rate")
    assert dashboard.status_code == 200
    text = dashboard.content.decode()
    assert f"${reading.usd_per_hour:.2f}/h" in text and "2 items in 1 account" in text
    assert f"{runs_out:%b} {runs_out.day}, {runs_out:%H:%M}" in text  # the first budget to run out, and its row

    panel = personas.client("student").get(reverse("billing:my_meter", args=[course.pk])).content.decode()
    assert f"2 items, ${reading.usd_per_hour:.4f} an hour" in panel
    assert f"the budget runs out on <strong>{runs_out:%b} {runs_out.day}, {runs_out:%H:%M}</strong>" in panel
    # The account panel loads it.
    detail = personas.client("student").get(reverse("courses:detail", args=[course.pk])).content.decode()
    assert reverse("billing:my_meter", args=[course.pk]) in detail


def test_a_student_sees_only_their_own_meter(personas, account):
    run_instance(account, "web")
    account_meter_read(account_id=account.pk)
    other = MemberAccountFactory(
        course=personas.other_course, membership=Membership.objects.get(user=personas.other_student)
    )
    MeterReading.objects.create(
        account=other,
        course=other.course,
        taken_at=timezone.now(),
        checked_at=timezone.now(),
        running=7,
        usd_per_hour=Decimal("9.99"),
        items=[],
    )
    mine = personas.client("other_student").get(reverse("billing:my_meter", args=[personas.other_course.pk]))
    assert "7 items, $9.9900 an hour" in mine.content.decode()
    theirs = personas.client("other_student").get(reverse("billing:my_meter", args=[personas.course.pk]))
    assert theirs.status_code == 404
