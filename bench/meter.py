"""The usage meter: AWS calls and seconds per cycle for 10, 100 and 1,000 student accounts.

Each cycle reads every account in use (billing_app/services/meter.py): `meter_cycle` queues one
reading per account and the tasks run in this process, one after another (Celery eager), against
moto in process. Every account runs an instance (and its disk); every fifth a SageMaker notebook,
every tenth Bedrock invocations. The course lets students use one region. A first cycle starts
cold (the member role assumed, each account's OU and tag checked, the prices looked up); the
second runs as every cycle does within the hour (the readings are dated five minutes back first,
as if the interval had passed). Every botocore request is counted (AssumeRole included), by
operation. Run with `make bench`; `--accounts` changes the sizes.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections import Counter
from datetime import timedelta

from common import machine, record, setup_django, test_database

IMAGE_ID = "ami-12c6146b"
REGION = "us-east-1"
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


class Calls:
    """Every botocore API request made, by operation, through any client."""

    def __init__(self):
        from botocore.client import BaseClient

        self.counts: Counter = Counter()
        self.seconds = 0.0
        original = BaseClient._make_api_call
        calls = self

        def counted(client, operation_name, api_params):
            calls.counts[operation_name] += 1
            started = time.perf_counter()
            try:
                return original(client, operation_name, api_params)
            finally:
                calls.seconds += time.perf_counter() - started

        BaseClient._make_api_call = counted

    def reset(self) -> None:
        self.counts.clear()
        self.seconds = 0.0


def seed(course, count: int, offset: int) -> list:
    """`count` ready student accounts of `course` in moto, each running what the docstring says."""
    from django.utils import timezone

    from accounts_app.choices import AccountState
    from accounts_app.models import MemberAccount
    from portal.aws.session import client
    from tests.factories import MembershipFactory
    from tests.support.aws_calls import place_as_configured

    accounts = []
    for n in range(offset, offset + count):
        email = f"aws+bench-{n}@school.example.edu"
        created = client("organizations").create_account(Email=email, AccountName=f"bench-{n}")
        record = MemberAccount.objects.create(
            course=course,
            membership=MembershipFactory(course=course, user=None, email=f"student{n}@school.example"),
            state=AccountState.READY,
            root_email=email,
            account_name=f"bench-{n}",
            aws_account_id=created["CreateAccountStatus"]["AccountId"],
        )
        place_as_configured(record)
        inside = record.aws_account_id
        client("ec2", account_id=inside, region=REGION).run_instances(
            ImageId=IMAGE_ID, MinCount=1, MaxCount=1, InstanceType="t3.micro"
        )
        if n % 5 == 0:
            client("sagemaker", account_id=inside, region=REGION).create_notebook_instance(
                NotebookInstanceName="lab",
                InstanceType="ml.t3.medium",
                RoleArn=f"arn:aws:iam::{inside}:role/sagemaker",
            )
        if n % 10 == 0:
            client("cloudwatch", account_id=inside, region=REGION).put_metric_data(
                Namespace="AWS/Bedrock",
                MetricData=[
                    {
                        "MetricName": metric,
                        "Dimensions": [{"Name": "ModelId", "Value": MODEL}],
                        "Value": value,
                        "Timestamp": timezone.now() - timedelta(minutes=10),
                    }
                    for metric, value in (("InputTokenCount", 20_000), ("OutputTokenCount", 3_000), ("Invocations", 9))
                ],
            )
        accounts.append(record)
    return accounts


def cycle(calls: Calls) -> tuple[float, Counter, float, int]:
    from billing_app.services.meter import meter_cycle

    calls.reset()
    started = time.perf_counter()
    read = meter_cycle()
    return time.perf_counter() - started, Counter(calls.counts), calls.seconds, read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[10, 100, 1000])
    options = parser.parse_args()

    # moto in process, with what the tests give it (tests/conftest.py): no request leaves.
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "PORTAL_AWS_MANAGEMENT_ROLE_ARN"):
        os.environ.pop(name, None)
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        MOTO_EC2_LOAD_DEFAULT_AMIS="false",
    )
    setup_django()
    with test_database():
        from django.core.cache import cache
        from django.db.models import F, Sum
        from moto import mock_aws

        from accounts_app.services.bootstrap import aws_bootstrap
        from billing_app.models import MeterReading
        from devtools.emulator.server import honour_managed_policy_paths
        from portal.aws import meter as aws_meter
        from portal.aws import session
        from portal.celery import app as celery_app
        from tests.factories import CourseFactory

        honour_managed_policy_paths()  # the TAs' permission set attaches job-function/ViewOnlyAccess
        celery_app.conf.task_always_eager = True
        cache.clear()
        runs = []
        with mock_aws():
            session.reset()
            session.client("organizations").create_organization(FeatureSet="ALL")
            aws_bootstrap(actor=None)
            course = CourseFactory(
                code="bench", allowed_regions=[REGION], allowed_services=["ec2", "sagemaker", "bedrock"]
            )
            calls = Calls()
            seeded = 0
            for size in sorted(options.accounts):
                seeding = time.perf_counter()
                seed(course, size - seeded, seeded)
                seeded = size
                seeding = time.perf_counter() - seeding
                # Each size starts cold: the first cycle of a portal that just started.
                MeterReading.objects.all().delete()
                session.reset()
                cache.clear()
                first = cycle(calls)
                MeterReading.objects.update(taken_at=F("taken_at") - timedelta(minutes=5))
                steady = cycle(calls)
                totals = MeterReading.objects.aggregate(
                    usd=Sum("usd_per_hour"), unknown=Sum("unknown"), calls=Sum("calls")
                )
                runs.append((size, seeding, first, steady, totals))
                print(f"{size} accounts: first cycle {first[0]:.1f} s, steady {steady[0]:.1f} s", flush=True)
            session.reset()
        measured_on = machine()

    from portal.aws import session as session_module

    bound = aws_meter.CALLS_PER_REGION
    rows, tables = [], []
    for size, _seeding, first, steady, _totals in runs:
        for label, (seconds, counts, in_aws, read) in (("first (cold)", first), ("steady", steady)):
            total = sum(counts.values())
            rows.append(
                f"| {size:,} | {label} | {read:,} | {total:,} | {total / size:.1f} | {seconds:.1f} s "
                f"| {seconds / size * 1000:.0f} ms | {in_aws:.1f} s |"
            )
        if size == max(options.accounts):
            tables.append(per_operation(first[1], steady[1], size))
    largest = runs[-1]
    steady_seconds = largest[3][0]
    needed = largest[0] / (0.8 * 5 * 60)
    capacity = largest[0] / steady_seconds
    processes = max(1, math.ceil(needed / capacity))
    max_clients = session_module.MAX_CACHED_CLIENTS
    record(
        "meter",
        "Usage meter",
        f"""One course, one region (us-east-1). Every account runs an instance and its disk; every fifth a SageMaker notebook; every tenth Bedrock invocations in the last hour. moto in process; the readings run one after another in this one process (Celery eager): *per account* is what one worker process spends on a reading. A first cycle starts cold (AssumeRole, each account's OU and tag checked, prices looked up); a steady cycle is every other cycle of the hour.

| accounts | cycle | read | AWS calls | per account | seconds | per account | in botocore and moto |
|---:|---|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

Calls per account in a steady cycle: the region's 10 listings, and GetMetricData where Bedrock was used ({aws_meter.LISTINGS_PER_REGION}); the bound is {bound} per region, with 3 endpoints and 3 training jobs described. The first cycle adds AssumeRole and the ownership check (ListParents, ListTagsForResource), once an hour per account, and the Price List's GetProducts once a day per price (moto has no Price List: the table's prices, asked again the next hour). At {largest[0]:,} accounts the readings found ${largest[4]["usd"] or 0:.2f} an hour, {largest[4]["unknown"] or 0} item(s) of unknown price.

{tables[0] if tables else ""}

A cycle is spread over 80% of the interval by its countdowns: with the default five minutes, {largest[0]:,} accounts ask for {needed:.1f} readings a second. One process read {capacity:.1f} a second in the steady cycle here (moto's answers included), so {processes} worker process(es) keep up. Past about 80 accounts a process no longer keeps every account's clients (it caches {max_clients} clients, six per account and region): a reading then also creates its clients, which is most of its time outside botocore and moto; member sessions share one loader of service models (portal/aws/session.py), or each new session would parse the models again (about 300 ms a reading).
""",
        measured_on=measured_on,
    )


def per_operation(first: Counter, steady: Counter, size: int) -> str:
    operations = sorted(set(first) | set(steady), key=lambda op: (-steady.get(op, 0), -first.get(op, 0), op))
    lines = [
        f"| {op} | {first.get(op, 0):,} | {steady.get(op, 0):,} | {steady.get(op, 0) / size:.2f} |" for op in operations
    ]
    return (
        f"Calls by operation at {size:,} accounts:\n\n| operation | first cycle | steady cycle | steady, per account |\n"
        "|---|---:|---:|---:|\n" + "\n".join(lines)
    )


if __name__ == "__main__":
    main()
