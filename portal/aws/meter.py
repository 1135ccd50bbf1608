"""The usage meter's look into a member account: what runs now and bills by the hour, reached
through the account's organization role (member.py). Reads only.

`read` lists, region by region, EC2 instances that run, EBS volumes, NAT gateways, load balancers,
RDS DB instances, SageMaker notebook instances, endpoints and training jobs, and the last hour's
Bedrock use from CloudWatch (AWS/Bedrock InputTokenCount, OutputTokenCount and Invocations per
ModelId). Each item carries its charges: the price rates it runs at (prices.py) and how much of
each (one instance, 100 GiB, 34 thousand tokens in the last hour). An item the meter cannot price
(a spot instance, a serverless endpoint) says why; it is shown as unknown, never as $0. A Bedrock
item also carries the model's use since UTC midnight (`today`), charged at the same rates, for the
daily limits of a model family.

The calls are bounded, whatever the account holds: one page of each listing (an account with more
than a page of one kind gets an "unread" item, priced unknown), at most DESCRIBED_PER_KIND
endpoints and training jobs described, at most BEDROCK_MODELS models asked in one GetMetricData.
That is at most CALLS_PER_REGION requests per region (LISTINGS_PER_REGION when the account runs
no endpoint or training job), plus AssumeRole when this process's credentials for the account
have expired (hourly).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from portal.aws.bedrock_models import base_model_id
from portal.aws.errors import AwsError
from portal.aws.member import Place
from portal.aws.prices import rate

KIND_LABELS: dict[str, str] = {
    "ec2:instance": "EC2 instance",
    "ec2:volume": "EBS volume",
    "ec2:nat-gateway": "NAT gateway",
    "elbv2:load-balancer": "Load balancer",
    "elb:load-balancer": "Classic load balancer",
    "rds:db-instance": "RDS DB instance",
    "sagemaker:notebook-instance": "SageMaker notebook instance",
    "sagemaker:endpoint": "SageMaker endpoint",
    "sagemaker:training-job": "SageMaker training job",
    "bedrock:model": "Bedrock model use",
    # What the meter could not read: a region AWS refused, a listing longer than a page.
    "meter:unread": "Not read",
}

# Listings: DescribeInstances, DescribeVolumes, DescribeNatGateways, DescribeLoadBalancers (ELB
# and ELBv2), DescribeDBInstances, ListNotebookInstances, ListEndpoints, ListTrainingJobs,
# ListMetrics, GetMetricData.
LISTINGS_PER_REGION = 11
# DescribeEndpoint and DescribeEndpointConfig for each endpoint, DescribeTrainingJob for each job.
DESCRIBED_PER_KIND = 3
CALLS_PER_REGION = LISTINGS_PER_REGION + 3 * DESCRIBED_PER_KIND
# One GetMetricData reads the last hour's and the day's use of every model: it takes at most
# GET_METRIC_DATA_QUERIES queries and answers at most GET_METRIC_DATA_POINTS data points (more are
# another page, another call), and one StartTime and EndTime serve all its queries. So each model
# has three queries (BEDROCK_METRICS) over the day in five-minute periods, summed twice: the
# periods of the last hour, and those since midnight (or since an hour back, in the day's first
# hour). At most BEDROCK_MODELS × 3 = 150 queries of at most 288 periods each: 43,200 data points.
# Queries of their own for the hour could not help: they would span the day too.
GET_METRIC_DATA_QUERIES, GET_METRIC_DATA_POINTS = 500, 100_800
BEDROCK_MODELS = 50
BEDROCK_WINDOW = timedelta(hours=1)
BEDROCK_PERIOD = timedelta(minutes=5)
BEDROCK_METRICS = {"in": "InputTokenCount", "out": "OutputTokenCount", "calls": "Invocations"}

INSTANCE_BILLING = ["pending", "running"]
NAT_BILLING = ["pending", "available"]
VOLUME_GONE = frozenset({"deleting", "deleted"})
DB_GONE = frozenset({"deleting", "deleted"})
DB_STOPPED = frozenset({"stopped", "stopping"})  # its storage still bills
NOTEBOOK_BILLING = frozenset({"Pending", "InService", "Updating"})
ENDPOINT_GONE = frozenset({"Deleting", "Failed"})
GP3_FREE_IOPS, GP3_FREE_THROUGHPUT = 3000, 125
THOUSAND = Decimal(1000)


@dataclass(frozen=True)
class Charge:
    """`quantity` units of a price rate: instances, GiB, IOPS, thousands of tokens in the last hour."""

    rate: str
    quantity: Decimal

    def as_dict(self) -> dict:
        return {"rate": self.rate, "quantity": str(self.quantity)}


@dataclass(frozen=True)
class TokenUse:
    """A Bedrock model's use over a while, and its charges: thousands of tokens at its rates."""

    input_tokens: int
    output_tokens: int
    invocations: int
    charges: tuple[Charge, ...] = ()

    def as_dict(self) -> dict:
        return {**asdict(self), "charges": [charge.as_dict() for charge in self.charges]}


@dataclass(frozen=True)
class Running:
    """One thing that bills now."""

    region: str
    kind: str  # one of KIND_LABELS
    id: str
    label: str
    charges: tuple[Charge, ...] = ()
    unpriced: str = ""  # why the meter cannot price it: shown as unknown
    today: TokenUse | None = None  # a Bedrock model's use since UTC midnight
    # The instance types it runs and how many of each, priced or not: what a course's limit on
    # GPU instances counts (billing_app/services/limits.py).
    instances: tuple[tuple[str, int], ...] = ()

    def as_dict(self) -> dict:
        data = asdict(self)
        data["charges"] = [charge.as_dict() for charge in self.charges]
        data["today"] = self.today.as_dict() if self.today else None
        return data


@dataclass
class Reading:
    items: list[Running] = field(default_factory=list)
    calls: Counter = field(default_factory=Counter)  # answered requests by operation
    errors: list[str] = field(default_factory=list)  # regions not read, with AWS's reason


def read(
    account_id: str,
    regions: Iterable[str],
    *,
    now: datetime,
    bedrock_models: Mapping[str, Collection[str]] | None = None,
) -> Reading:
    """What runs now in `regions` of the account. `bedrock_models` names, by region, the models
    already seen used today: their day is read even once CloudWatch stops listing them (three hours
    after their last use), so a family's day counts every model of it. A region AWS refuses is an
    unread item and an error; a refused AssumeRole (the whole account) raises."""
    reading = Reading()
    for region in regions:
        at = Place(account_id, region, reading.calls)
        try:
            reading.items += _region(at, now, (bedrock_models or {}).get(region, ()))
        except AwsError as error:
            if error.operation == "AssumeRole":
                raise
            reading.errors.append(f"{region}: {error}")
            reading.items.append(_unread(at, region, f"AWS refused the meter: {error.message}"))
    return reading


def _region(at: Place, now: datetime, bedrock_models: Collection[str]) -> list[Running]:
    return [
        *_instances(at),
        *_volumes(at),
        *_nat_gateways(at),
        *_load_balancers(at),
        *_classic_load_balancers(at),
        *_db_instances(at),
        *_notebooks(at),
        *_endpoints(at),
        *_training_jobs(at),
        *_bedrock(at, now, bedrock_models),
    ]


def _unread(at: Place, id: str, why: str) -> Running:
    return Running(at.region, "meter:unread", id, why, unpriced=why)


def _page(at: Place, listed: str, answer: dict, token: str = "NextToken") -> list[Running]:
    """An unread item when a listing has more than the page the meter reads."""
    if not answer.get(token):
        return []
    return [_unread(at, listed, f"More {listed} than one page: the rest are not counted.")]


def _name_tag(tags: list[dict] | None) -> str:
    return next((t["Value"] for t in tags or [] if t["Key"] == "Name"), "")


def _titled(id: str, name: str, details: str) -> str:
    title = f"{name} ({id})" if name and name != id else id
    return f"{title}: {details}"


def _item(
    at: Place,
    kind: str,
    id: str,
    label: str,
    *charges: Charge,
    unpriced: str = "",
    instances: Counter[str] | None = None,
) -> Running:
    counted = tuple(sorted((instances or {}).items()))
    return Running(at.region, kind, id, label, tuple(charges), unpriced, instances=counted)


# --- EC2 and EBS ----------------------------------------------------------------------------------


def _instances(at: Place) -> list[Running]:
    answer = at.call(
        "ec2",
        "describe_instances",
        Filters=[{"Name": "instance-state-name", "Values": INSTANCE_BILLING}],
        MaxResults=1000,
    )
    found = [_instance(at, instance) for reservation in answer["Reservations"] for instance in reservation["Instances"]]
    return found + _page(at, "EC2 instances", answer)


def _instance(at: Place, instance: dict) -> Running:
    kind, state = instance["InstanceType"], instance["State"]["Name"]
    spot = instance.get("InstanceLifecycle") == "spot"
    details = f"{kind}{', spot' if spot else ''}, {state}"
    label = _titled(instance["InstanceId"], _name_tag(instance.get("Tags")), details)
    platform = instance.get("PlatformDetails") or "Linux/UNIX"
    counted = Counter({kind: 1})
    if spot:
        why = "a spot instance: its price follows the spot market"
    elif instance.get("Placement", {}).get("Tenancy", "default") != "default":
        why = "dedicated tenancy"
    elif platform not in ("Linux/UNIX", "Windows"):
        why = f"{platform}: its price includes a license the meter does not price"
    else:
        operating_system = "Linux" if platform == "Linux/UNIX" else "Windows"
        charge = Charge(rate("ec2-instance", kind, operating_system), Decimal(1))
        return _item(at, "ec2:instance", instance["InstanceId"], label, charge, instances=counted)
    return _item(at, "ec2:instance", instance["InstanceId"], label, unpriced=why, instances=counted)


def _volumes(at: Place) -> list[Running]:
    answer = at.call("ec2", "describe_volumes", MaxResults=500)
    found = [_volume(at, volume) for volume in answer["Volumes"] if volume["State"] not in VOLUME_GONE]
    return found + _page(at, "EBS volumes", answer)


def _volume(at: Place, volume: dict) -> Running:
    kind, size = volume["VolumeType"], volume["Size"]
    charges = [Charge(rate("ebs-storage", kind), Decimal(size))]
    iops, throughput = volume.get("Iops") or 0, volume.get("Throughput") or 0
    if kind in ("io1", "io2") and iops:
        charges.append(Charge(rate("ebs-iops", kind), Decimal(iops)))
    if kind == "gp3" and iops > GP3_FREE_IOPS:
        charges.append(Charge(rate("ebs-iops", kind), Decimal(iops - GP3_FREE_IOPS)))
    if kind == "gp3" and throughput > GP3_FREE_THROUGHPUT:
        charges.append(Charge(rate("ebs-throughput", kind), Decimal(throughput - GP3_FREE_THROUGHPUT)))
    attached = [a["InstanceId"] for a in volume.get("Attachments", [])]
    where = f"attached to {', '.join(attached)}" if attached else volume["State"]
    label = _titled(volume["VolumeId"], _name_tag(volume.get("Tags")), f"{size} GiB {kind}, {where}")
    return _item(at, "ec2:volume", volume["VolumeId"], label, *charges)


def _nat_gateways(at: Place) -> list[Running]:
    answer = at.call("ec2", "describe_nat_gateways", Filter=[{"Name": "state", "Values": NAT_BILLING}], MaxResults=1000)
    found = [_nat_gateway(at, gateway) for gateway in answer["NatGateways"]]
    return found + _page(at, "NAT gateways", answer)


def _nat_gateway(at: Place, gateway: dict) -> Running:
    details = f"in {gateway.get('VpcId', '?')}, {gateway['State']}"
    label = _titled(gateway["NatGatewayId"], _name_tag(gateway.get("Tags")), details)
    return _item(at, "ec2:nat-gateway", gateway["NatGatewayId"], label, Charge(rate("nat-gateway"), Decimal(1)))


def _load_balancers(at: Place) -> list[Running]:
    answer = at.call("elbv2", "describe_load_balancers", PageSize=400)
    found = [
        _item(
            at,
            "elbv2:load-balancer",
            balancer["LoadBalancerArn"],
            f"{balancer['LoadBalancerName']}: {balancer['Type']} load balancer, {balancer['State']['Code']}",
            Charge(rate("load-balancer", balancer["Type"]), Decimal(1)),
        )
        for balancer in answer["LoadBalancers"]
    ]
    return found + _page(at, "load balancers", answer, "NextMarker")


def _classic_load_balancers(at: Place) -> list[Running]:
    answer = at.call("elb", "describe_load_balancers", PageSize=400)
    found = [
        _item(
            at,
            "elb:load-balancer",
            balancer["LoadBalancerName"],
            f"{balancer['LoadBalancerName']}: classic load balancer",
            Charge(rate("load-balancer", "classic"), Decimal(1)),
        )
        for balancer in answer["LoadBalancerDescriptions"]
    ]
    return found + _page(at, "classic load balancers", answer, "NextMarker")


# --- RDS ------------------------------------------------------------------------------------------


def _db_instances(at: Place) -> list[Running]:
    answer = at.call("rds", "describe_db_instances", MaxRecords=100)
    found = [_db_instance(at, db) for db in answer["DBInstances"] if db["DBInstanceStatus"] not in DB_GONE]
    return found + _page(at, "RDS DB instances", answer, "Marker")


def _db_instance(at: Place, db: dict) -> Running:
    name, engine, kind, status = db["DBInstanceIdentifier"], db["Engine"], db["DBInstanceClass"], db["DBInstanceStatus"]
    deployment = "Multi-AZ" if db.get("MultiAZ") else "Single-AZ"
    aurora = engine.startswith("aurora")
    charges = []
    if status not in DB_STOPPED and kind != "db.serverless":
        charges.append(Charge(rate("rds-instance", kind, engine, deployment), Decimal(1)))
    # Aurora bills its cluster's storage by use, which the meter does not see.
    if not aurora and db.get("AllocatedStorage"):
        storage = db.get("StorageType", "gp2")
        charges.append(Charge(rate("rds-storage", storage, deployment), Decimal(db["AllocatedStorage"])))
    if status in DB_STOPPED:
        details = f"{engine} {kind}, {status}: its storage still bills"
    else:
        details = f"{engine} {kind}, {deployment}, {status}"
    unpriced = ""
    if kind == "db.serverless" and status not in DB_STOPPED:
        unpriced = "Aurora Serverless v2: billed by the capacity units it uses"
    elif aurora and status in DB_STOPPED:
        unpriced = "Aurora storage: billed by what it holds, which the meter does not see"
    return _item(at, "rds:db-instance", name, f"{name}: {details}", *charges, unpriced=unpriced)


# --- SageMaker ------------------------------------------------------------------------------------


def _notebooks(at: Place) -> list[Running]:
    answer = at.call("sagemaker", "list_notebook_instances", MaxResults=100)
    found = [
        _notebook(at, notebook)
        for notebook in answer["NotebookInstances"]
        if notebook["NotebookInstanceStatus"] in NOTEBOOK_BILLING and notebook.get("InstanceType")
    ]
    return found + _page(at, "SageMaker notebook instances", answer)


def _notebook(at: Place, notebook: dict) -> Running:
    name, kind = notebook["NotebookInstanceName"], notebook["InstanceType"]
    label = f"{name}: {kind}, {notebook['NotebookInstanceStatus']}"
    charge = Charge(rate("sagemaker", "Notebook", kind), Decimal(1))
    return _item(at, "sagemaker:notebook-instance", name, label, charge, instances=Counter({kind: 1}))


def _endpoints(at: Place) -> list[Running]:
    answer = at.call("sagemaker", "list_endpoints", MaxResults=100)
    billing = [e for e in answer["Endpoints"] if e["EndpointStatus"] not in ENDPOINT_GONE]
    found = [_endpoint(at, e) for e in billing[:DESCRIBED_PER_KIND]]
    found += [
        _item(
            at,
            "sagemaker:endpoint",
            e["EndpointName"],
            f"{e['EndpointName']}: {e['EndpointStatus']}",
            unpriced=f"not described: the meter describes {DESCRIBED_PER_KIND} endpoints a region",
        )
        for e in billing[DESCRIBED_PER_KIND:]
    ]
    return found + _page(at, "SageMaker endpoints", answer)


def _endpoint(at: Place, listed: dict) -> Running:
    name = listed["EndpointName"]
    endpoint = at.call("sagemaker", "describe_endpoint", EndpointName=name)
    config = at.call("sagemaker", "describe_endpoint_config", EndpointConfigName=endpoint["EndpointConfigName"])
    counts = {v["VariantName"]: v.get("CurrentInstanceCount") for v in endpoint.get("ProductionVariants", [])}
    charges, sizes, unpriced = [], [], ""
    instances: Counter[str] = Counter()
    for variant in config["ProductionVariants"]:
        if "InstanceType" not in variant:
            unpriced = "serverless: billed by the requests it serves"
            continue
        count = counts.get(variant["VariantName"])
        count = variant.get("InitialInstanceCount", 1) if count is None else count
        charges.append(Charge(rate("sagemaker", "Hosting", variant["InstanceType"]), Decimal(count)))
        sizes.append(f"{count} × {variant['InstanceType']}")
        instances[variant["InstanceType"]] += count
    label = f"{name}: {', '.join(sizes) or 'serverless'}, {endpoint['EndpointStatus']}"
    return _item(at, "sagemaker:endpoint", name, label, *charges, unpriced=unpriced, instances=instances)


def _training_jobs(at: Place) -> list[Running]:
    answer = at.call("sagemaker", "list_training_jobs", StatusEquals="InProgress", MaxResults=100)
    jobs = answer["TrainingJobSummaries"]
    found = [_training_job(at, job["TrainingJobName"]) for job in jobs[:DESCRIBED_PER_KIND]]
    found += [
        _item(
            at,
            "sagemaker:training-job",
            job["TrainingJobName"],
            f"{job['TrainingJobName']}: InProgress",
            unpriced=f"not described: the meter describes {DESCRIBED_PER_KIND} training jobs a region",
        )
        for job in jobs[DESCRIBED_PER_KIND:]
    ]
    return found + _page(at, "SageMaker training jobs", answer)


def _training_job(at: Place, name: str) -> Running:
    job = at.call("sagemaker", "describe_training_job", TrainingJobName=name)
    resources = job.get("ResourceConfig", {})
    groups = resources.get("InstanceGroups") or [resources]
    charges = [
        Charge(rate("sagemaker", "Training", group["InstanceType"]), Decimal(group.get("InstanceCount", 1)))
        for group in groups
        if group.get("InstanceType")
    ]
    sizes = ", ".join(f"{c.quantity} × {c.rate.rsplit('/', 1)[1]}" for c in charges) or "?"
    # Managed spot training costs at most the on-demand price the meter shows.
    spot = ", managed spot (at most this)" if job.get("EnableManagedSpotTraining") else ""
    label = f"{name}: {sizes}{spot}, {job.get('SecondaryStatus') or job['TrainingJobStatus']}"
    instances: Counter[str] = Counter()
    for group in groups:
        if group.get("InstanceType"):
            instances[group["InstanceType"]] += group.get("InstanceCount", 1)
    unpriced = "" if charges else "no instance type"
    return _item(at, "sagemaker:training-job", name, label, *charges, unpriced=unpriced, instances=instances)


# --- Bedrock --------------------------------------------------------------------------------------


def _bedrock(at: Place, now: datetime, seen_today: Collection[str]) -> list[Running]:
    """Each model used in the last full hour or since UTC midnight: its tokens, priced per thousand."""
    listed = at.call(
        "cloudwatch", "list_metrics", Namespace="AWS/Bedrock", Dimensions=[{"Name": "ModelId"}], RecentlyActive="PT3H"
    )
    recent = {
        metric["Dimensions"][0]["Value"]
        for metric in listed["Metrics"]
        if metric["MetricName"] in BEDROCK_METRICS.values() and [d["Name"] for d in metric["Dimensions"]] == ["ModelId"]
    }
    models = sorted(recent | set(seen_today))
    if not models:
        return _page(at, "Bedrock metrics", listed)
    used = _bedrock_use(at, models[:BEDROCK_MODELS], now)
    found = [
        _bedrock_item(at, model, hour, today)
        for model, (hour, today) in used.items()
        if any(hour.values()) or any(today.values())
    ]
    found += [
        _unread(at, model, f"Bedrock model {model} not read: the meter reads {BEDROCK_MODELS} models a region")
        for model in models[BEDROCK_MODELS:]
    ]
    return found + _page(at, "Bedrock metrics", listed)


# A model's use over a while: the sum of each of BEDROCK_METRICS, by its short name.
Use = dict[str, Decimal]


def _no_use() -> Use:
    return dict.fromkeys(BEDROCK_METRICS, Decimal(0))


def _bedrock_use(at: Place, models: list[str], now: datetime) -> dict[str, tuple[Use, Use]]:
    """Each model's use in the last full hour and since UTC midnight, from one GetMetricData over
    both, in five-minute periods (see GET_METRIC_DATA_POINTS). The periods start at five-minute
    marks, as midnight and the hour's start do: each lies wholly inside a window or outside it."""
    end = now.astimezone(UTC).replace(second=0, microsecond=0)
    end -= timedelta(minutes=end.minute % 5)
    hour_start = end - BEDROCK_WINDOW
    midnight = datetime.combine(end.date(), time.min, tzinfo=UTC)
    queries = [
        {
            "Id": f"m{number}_{short}",
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/Bedrock",
                    "MetricName": metric,
                    "Dimensions": [{"Name": "ModelId", "Value": model}],
                },
                "Period": int(BEDROCK_PERIOD.total_seconds()),
                "Stat": "Sum",
            },
            "ReturnData": True,
        }
        for number, model in enumerate(models)
        for short, metric in BEDROCK_METRICS.items()
    ]
    answer = at.call(
        "cloudwatch", "get_metric_data", MetricDataQueries=queries, StartTime=min(hour_start, midnight), EndTime=end
    )
    use = {model: (_no_use(), _no_use()) for model in models}
    for result in answer["MetricDataResults"]:
        number, short = result["Id"][1:].split("_", 1)
        hour, today = use[models[int(number)]]
        for stamp, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=True):
            if stamp >= hour_start:
                hour[short] += Decimal(str(value))
            if stamp >= midnight:
                today[short] += Decimal(str(value))
    return use


def _bedrock_item(at: Place, model: str, hour: Use, today: Use) -> Running:
    priced_as = base_model_id(model)
    label = f"{model}: {_counted(hour)} in the last hour; {_counted(today)} since midnight UTC"
    day = TokenUse(int(today["in"]), int(today["out"]), int(today["calls"]), _token_charges(priced_as, today))
    return Running(at.region, "bedrock:model", model, label, _token_charges(priced_as, hour), today=day)


def _counted(use: Use) -> str:
    return f"{use['calls']:,.0f} invocations, {use['in']:,.0f} input and {use['out']:,.0f} output tokens"


def _token_charges(priced_as: str, use: Use) -> tuple[Charge, ...]:
    return (
        Charge(rate("bedrock-input", priced_as), use["in"] / THOUSAND),
        Charge(rate("bedrock-output", priced_as), use["out"] / THOUSAND),
    )
