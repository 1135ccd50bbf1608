"""What keeps billing in a frozen member account: stopped at the freeze, brought back at the unfreeze,
through the member account's organization role.

The freeze SCP denies new requests; what already runs keeps billing, and that role is exempt from
the SCP, so it is the one to stop it. `running` lists, reading only, what bills while it runs in one
region, in the order it must be stopped: Auto Scaling groups first (an instance stopped inside a
group is replaced; a group scaled to zero terminates its own instances, which are therefore not
listed), then EC2 instances, SageMaker notebook instances and endpoints, Aurora clusters (their
member DB instances stop with them) and RDS DB instances. Each item carries what it takes to bring
it back (`memory`: a group's sizes, an endpoint's config and tags).

`stop` stops one item, or starts to: an instance is stopped, never terminated; a SageMaker endpoint,
which cannot be stopped, is deleted and its endpoint config kept. Already stopped (or gone) is
success, a resource that is still starting or changing is a transient error (try later), and AWS's
refusal (a spot or instance-store instance, a DB with read replicas) is a PermanentAwsError with
AWS's reason. `restore` brings one item back only if it is still as the portal left it, and returns
why not otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from portal.aws.display import SPENDING_KIND_LABELS
from portal.aws.errors import AwsError, NotFound, PermanentAwsError, TransientAwsError
from portal.aws.member import Place

# Every kind, in the order a freeze stops them; an unfreeze brings them back in reverse.
KINDS: tuple[str, ...] = tuple(SPENDING_KIND_LABELS)

# States in which the resource bills and will accept a stop once it has settled.
INSTANCE_SETTLING = frozenset({"pending"})
NOTEBOOK_SETTLING = frozenset({"Pending", "Updating"})
ENDPOINT_SETTLING = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})
DB_SETTLING = frozenset(
    {"creating", "starting", "backing-up", "modifying", "rebooting", "upgrading", "maintenance", "renaming"}
)
# States in which the resource no longer bills for compute, or is about to stop doing so.
INSTANCE_AT_REST = frozenset({"stopping", "stopped", "shutting-down", "terminated"})
NOTEBOOK_AT_REST = frozenset({"Stopping", "Stopped", "Failed", "Deleting"})
ENDPOINT_AT_REST = frozenset({"Deleting", "Failed"})
DB_AT_REST = frozenset({"stopping", "stopped", "deleting"})
# The tag keys AWS reserves for itself: an endpoint is re-created without them.
AWS_TAG_PREFIX = "aws:"
GONE = "it no longer exists"


@dataclass(frozen=True)
class Billing:
    """One thing that bills while it runs, and what it takes to bring it back."""

    region: str
    kind: str  # one of KINDS
    id: str  # group, instance, notebook, endpoint, cluster or DB instance name or id
    label: str = ""
    memory: dict = field(default_factory=dict, compare=False)

    @property
    def key(self) -> str:
        return f"{self.region}/{self.kind}/{self.id}"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Billing:
        return cls(data["region"], data["kind"], data["id"], data.get("label", ""), data.get("memory") or {})


def _settling(what: str, status: str, operation: str) -> TransientAwsError:
    return TransientAwsError(f"{what} is {status}: it is stopped once that is over.", code=status, operation=operation)


def _gone(error: AwsError) -> bool:
    """Whether AWS's error says the resource does not exist (each service says it its own way)."""
    if isinstance(error, NotFound) or error.code == "DBClusterNotFoundFault":
        return True
    # SageMaker answers a missing endpoint, config or notebook with a validation error.
    return error.code == "ValidationException" and (
        error.message.startswith("Could not find") or error.message == "RecordNotFound"
    )


# --- Listing --------------------------------------------------------------------------------------


def running(account_id: str, region: str) -> list[Billing]:
    """What bills while it runs in one region of the account, in KINDS order. Reads only."""
    at = Place(account_id, region)
    groups = list(at.items("autoscaling", "describe_auto_scaling_groups", "AutoScalingGroups"))
    in_groups = {instance["InstanceId"] for group in groups for instance in group.get("Instances", [])}
    return [
        *_groups(at, groups),
        *_instances(at, in_groups),
        *_notebooks(at),
        *_endpoints(at),
        *_clusters(at),
        *_db_instances(at),
    ]


def _billing(at: Place, kind: str, id: str, label: str, **memory: Any) -> Billing:
    return Billing(region=at.region, kind=kind, id=id, label=label, memory=memory)


def _groups(at: Place, groups: list[dict]) -> Iterator[Billing]:
    for group in groups:
        sizes = {"min": group["MinSize"], "max": group["MaxSize"], "desired": group["DesiredCapacity"]}
        if not any(sizes.values()):
            continue
        name = group["AutoScalingGroupName"]
        label = f"{name}: {sizes['desired']} instance(s), min {sizes['min']}, max {sizes['max']}"
        yield _billing(at, "autoscaling:group", name, label, **sizes)


def _instances(at: Place, in_groups: set[str]) -> Iterator[Billing]:
    for reservation in at.items("ec2", "describe_instances", "Reservations"):
        for instance in reservation["Instances"]:
            state = instance["State"]["Name"]
            if state in INSTANCE_AT_REST or instance["InstanceId"] in in_groups:
                continue
            name = next((t["Value"] for t in instance.get("Tags") or [] if t["Key"] == "Name"), "")
            title = f"{name} ({instance['InstanceId']})" if name else instance["InstanceId"]
            spot = ", spot" if instance.get("InstanceLifecycle") == "spot" else ""
            label = f"{title}: {instance['InstanceType']}{spot}, {state}"
            yield _billing(at, "ec2:instance", instance["InstanceId"], label)


def _notebooks(at: Place) -> Iterator[Billing]:
    for notebook in at.items("sagemaker", "list_notebook_instances", "NotebookInstances"):
        status = notebook["NotebookInstanceStatus"]
        if status in NOTEBOOK_AT_REST:
            continue
        name = notebook["NotebookInstanceName"]
        label = f"{name}: {notebook.get('InstanceType', '?')}, {status}"
        yield _billing(at, "sagemaker:notebook-instance", name, label)


def _endpoints(at: Place) -> Iterator[Billing]:
    for listed in at.items("sagemaker", "list_endpoints", "Endpoints"):
        if listed["EndpointStatus"] in ENDPOINT_AT_REST:
            continue
        name = listed["EndpointName"]
        endpoint = at.call("sagemaker", "describe_endpoint", EndpointName=name)
        tags = at.call("sagemaker", "list_tags", ResourceArn=endpoint["EndpointArn"]).get("Tags", [])
        config = endpoint["EndpointConfigName"]
        label = f"{name}: endpoint config {config}, {endpoint['EndpointStatus']}"
        yield _billing(at, "sagemaker:endpoint", name, label, config=config, tags=tags)


def _clusters(at: Place) -> Iterator[Billing]:
    for cluster in at.items("rds", "describe_db_clusters", "DBClusters"):
        if cluster["Status"] in DB_AT_REST:
            continue
        name = cluster["DBClusterIdentifier"]
        yield _billing(at, "rds:db-cluster", name, f"{name}: {cluster['Engine']}, {cluster['Status']}")


def _db_instances(at: Place) -> Iterator[Billing]:
    for db in at.items("rds", "describe_db_instances", "DBInstances"):
        # A cluster's members stop and start with their cluster: StopDBInstance refuses them.
        if db["DBInstanceStatus"] in DB_AT_REST or db.get("DBClusterIdentifier"):
            continue
        name = db["DBInstanceIdentifier"]
        label = f"{name}: {db['Engine']} {db['DBInstanceClass']}, {db['DBInstanceStatus']}"
        yield _billing(at, "rds:db-instance", name, label)


# --- Stopping -------------------------------------------------------------------------------------


def stop(account_id: str, item: Billing, *, lift_stop_protection: bool = True) -> dict:
    """Stop `item`, or start to. Returns what the stop changed beyond that and must be undone with
    it (an instance's stop protection turned off), to be added to the item's memory. Without
    `lift_stop_protection`, an instance with stop protection on is refused as AWS refuses it
    (OperationNotPermitted): a schedule leaves it running, a freeze does not."""
    at = Place(account_id, item.region)
    try:
        if item.kind == "ec2:instance":
            return _stop_instance(at, item, lift_stop_protection=lift_stop_protection) or {}
        return _STOPPERS[item.kind](at, item) or {}
    except AwsError as error:
        if _gone(error):
            return {}
        raise


def _stop_group(at: Place, item: Billing) -> None:
    group = _group(at, item.id)
    if group is None or not (group["MinSize"] or group["MaxSize"] or group["DesiredCapacity"]):
        return
    # Max too: a scaling policy or a scheduled action cannot scale it out again.
    at.call(
        "autoscaling",
        "update_auto_scaling_group",
        AutoScalingGroupName=item.id,
        MinSize=0,
        MaxSize=0,
        DesiredCapacity=0,
    )


def _stop_instance(at: Place, item: Billing, *, lift_stop_protection: bool = True) -> dict | None:
    state = _instance_state(at, item.id)
    if state is None or state in INSTANCE_AT_REST:
        return None
    if state in INSTANCE_SETTLING:
        raise _settling(item.id, state, "StopInstances")
    try:
        at.call("ec2", "stop_instances", InstanceIds=[item.id])
    except PermanentAwsError as error:
        if error.code != "OperationNotPermitted" or not lift_stop_protection:
            raise  # e.g. UnsupportedOperation: a spot or instance-store instance cannot stop
        # Stop protection is on: off for the freeze, on again when the instance is brought back.
        at.call("ec2", "modify_instance_attribute", InstanceId=item.id, DisableApiStop={"Value": False})
        at.call("ec2", "stop_instances", InstanceIds=[item.id])
        return {"stop_protection": True}
    return None


def _stop_notebook(at: Place, item: Billing) -> None:
    status = at.call("sagemaker", "describe_notebook_instance", NotebookInstanceName=item.id)["NotebookInstanceStatus"]
    if status in NOTEBOOK_SETTLING:
        raise _settling(item.id, status, "StopNotebookInstance")
    if status not in NOTEBOOK_AT_REST:
        at.call("sagemaker", "stop_notebook_instance", NotebookInstanceName=item.id)


def _stop_endpoint(at: Place, item: Billing) -> None:
    status = at.call("sagemaker", "describe_endpoint", EndpointName=item.id)["EndpointStatus"]
    if status in ENDPOINT_SETTLING:
        raise _settling(item.id, status, "DeleteEndpoint")
    if status not in ENDPOINT_AT_REST:
        # An endpoint cannot be stopped. Its endpoint config (and the model) stay, to re-create it.
        at.call("sagemaker", "delete_endpoint", EndpointName=item.id)


def _stop_cluster(at: Place, item: Billing) -> None:
    status = _cluster(at, item.id)["Status"]
    if status in DB_SETTLING:
        raise _settling(item.id, status, "StopDBCluster")
    if status not in DB_AT_REST:
        at.call("rds", "stop_db_cluster", DBClusterIdentifier=item.id)


def _stop_db_instance(at: Place, item: Billing) -> None:
    status = _db_instance(at, item.id)["DBInstanceStatus"]
    if status in DB_SETTLING:
        raise _settling(item.id, status, "StopDBInstance")
    if status not in DB_AT_REST:
        at.call("rds", "stop_db_instance", DBInstanceIdentifier=item.id)


# --- Bringing back --------------------------------------------------------------------------------


def restore(account_id: str, item: Billing) -> str:
    """Bring `item` back as it was before the freeze, if it is still as the freeze left it.
    Returns "" when it is back (or already running again), otherwise why it was left alone."""
    at = Place(account_id, item.region)
    try:
        return _RESTORERS[item.kind](at, item)
    except AwsError as error:
        if _gone(error):
            return GONE
        raise


def _restore_group(at: Place, item: Billing) -> str:
    group = _group(at, item.id)
    if group is None:
        return GONE
    now = (group["MinSize"], group["MaxSize"], group["DesiredCapacity"])
    if now != (0, 0, 0):
        return f"its sizes were changed since the freeze (min {now[0]}, max {now[1]}, desired {now[2]})"
    sizes = item.memory
    at.call(
        "autoscaling",
        "update_auto_scaling_group",
        AutoScalingGroupName=item.id,
        MinSize=sizes["min"],
        MaxSize=sizes["max"],
        DesiredCapacity=sizes["desired"],
    )
    return ""


def _restore_instance(at: Place, item: Billing) -> str:
    state = _instance_state(at, item.id)
    if state is None or state in ("shutting-down", "terminated"):
        return GONE
    if state == "stopping":
        raise _settling(item.id, state, "StartInstances")
    if state == "stopped":
        at.call("ec2", "start_instances", InstanceIds=[item.id])
    if item.memory.get("stop_protection"):
        at.call("ec2", "modify_instance_attribute", InstanceId=item.id, DisableApiStop={"Value": True})
    return ""


def _restore_notebook(at: Place, item: Billing) -> str:
    status = at.call("sagemaker", "describe_notebook_instance", NotebookInstanceName=item.id)["NotebookInstanceStatus"]
    if status == "Stopping":
        raise _settling(item.id, status, "StartNotebookInstance")
    if status == "Stopped":
        at.call("sagemaker", "start_notebook_instance", NotebookInstanceName=item.id)
    elif status in ("Failed", "Deleting"):
        return f"it is {status.lower()}"
    return ""


def _restore_endpoint(at: Place, item: Billing) -> str:
    try:
        status = at.call("sagemaker", "describe_endpoint", EndpointName=item.id)["EndpointStatus"]
    except AwsError as error:
        if not _gone(error):
            raise
    else:
        if status == "Deleting":
            raise _settling(item.id, status, "CreateEndpoint")
        return ""  # there again (re-created already, or by someone else)
    config = item.memory.get("config", "")
    try:
        at.call("sagemaker", "describe_endpoint_config", EndpointConfigName=config)
    except AwsError as error:
        if _gone(error):
            return f"its endpoint config {config} no longer exists"
        raise
    tags = [tag for tag in item.memory.get("tags", []) if not tag["Key"].startswith(AWS_TAG_PREFIX)]
    at.call("sagemaker", "create_endpoint", EndpointName=item.id, EndpointConfigName=config, Tags=tags)
    return ""


def _restore_cluster(at: Place, item: Billing) -> str:
    status = _cluster(at, item.id)["Status"]
    if status == "stopping":
        raise _settling(item.id, status, "StartDBCluster")
    if status == "stopped":
        at.call("rds", "start_db_cluster", DBClusterIdentifier=item.id)
    return ""


def _restore_db_instance(at: Place, item: Billing) -> str:
    status = _db_instance(at, item.id)["DBInstanceStatus"]
    if status == "stopping":
        raise _settling(item.id, status, "StartDBInstance")
    if status == "stopped":
        at.call("rds", "start_db_instance", DBInstanceIdentifier=item.id)
    return ""


# --- Looking one up -------------------------------------------------------------------------------


def _group(at: Place, name: str) -> dict | None:
    groups = at.call("autoscaling", "describe_auto_scaling_groups", AutoScalingGroupNames=[name])
    return next(iter(groups["AutoScalingGroups"]), None)


def _instance_state(at: Place, instance_id: str) -> str | None:
    """The instance's state, or None once AWS no longer knows it."""
    try:
        reservations = at.call("ec2", "describe_instances", InstanceIds=[instance_id])["Reservations"]
    except NotFound:
        return None
    instances = [i for r in reservations for i in r["Instances"]]
    return instances[0]["State"]["Name"] if instances else None


def _cluster(at: Place, name: str) -> dict:
    return at.call("rds", "describe_db_clusters", DBClusterIdentifier=name)["DBClusters"][0]


def _db_instance(at: Place, name: str) -> dict:
    return at.call("rds", "describe_db_instances", DBInstanceIdentifier=name)["DBInstances"][0]


# An instance's stopper takes how to meet stop protection: `stop` calls it apart.
_STOPPERS = {
    "autoscaling:group": _stop_group,
    "sagemaker:notebook-instance": _stop_notebook,
    "sagemaker:endpoint": _stop_endpoint,
    "rds:db-cluster": _stop_cluster,
    "rds:db-instance": _stop_db_instance,
}
_RESTORERS = {
    "autoscaling:group": _restore_group,
    "ec2:instance": _restore_instance,
    "sagemaker:notebook-instance": _restore_notebook,
    "sagemaker:endpoint": _restore_endpoint,
    "rds:db-cluster": _restore_cluster,
    "rds:db-instance": _restore_db_instance,
}
