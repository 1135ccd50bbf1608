"""The end-of-course cleanup inside a student's member account: list what costs money, and delete
it, reached through the member account's organization role.

`inventory` only reads: it is the instructor's dry run, and the caller's way to see what is left.
`delete` removes one resource, or starts to: many deletions take minutes in AWS, and a resource
that depends on another (a volume attached to an instance still shutting down, an address held by
a NAT gateway still being deleted) cannot go until the other has. The caller therefore runs
passes, list → delete each → list again, until nothing is left or a pass removes nothing; within
a pass, KINDS puts dependents first. Deleting what is already gone succeeds, so a pass can be
repeated after a crash.

IAM comes last, listed once a pass with the region "global" (portal/aws/cleanup_iam.py): every
user, group, role, instance profile and customer managed policy the student made, their identity
providers and the account's alias, each deleted with what IAM wants gone first; the portal's own
role and the roles AWS or the school's tooling keep there are left alone.

Protections a student switched on (EC2 termination protection, RDS, DynamoDB and load balancer
deletion protection, CloudFormation termination protection) are switched off by `delete`: at the
end of the course everything goes. Things AWS is already deleting are left out of the inventory
(they go away without help), except CloudFormation stacks, whose deletion can fail and leave
resources behind: a stack stays listed until it is gone.

Every call goes through the member account's organization role, so an SCP that denies that role
a service or a region makes `inventory` fail there with AccessDenied rather than miss what is
there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass

from botocore.exceptions import ClientError

from portal.aws import cleanup_iam
from portal.aws.errors import AwsError, NotFound, PermanentAwsError, classify
from portal.aws.session import client

# Every kind, in the order a pass deletes them: what holds something else goes before it.
KIND_LABELS: dict[str, str] = {
    # A stack deletes what it made, including what this module does not know about.
    "cloudformation:stack": "CloudFormation stacks",
    "sagemaker:endpoint": "SageMaker endpoints",
    "sagemaker:notebook-instance": "SageMaker notebook instances",
    # Load balancers hold network interfaces in the subnets and send traffic to instances.
    "elbv2:load-balancer": "Application, network and gateway load balancers",
    "elb:load-balancer": "Classic load balancers",
    # Terminating an instance frees its volumes and its addresses.
    "ec2:instance": "EC2 instances",
    # A NAT gateway holds its Elastic IP until it is deleted.
    "ec2:nat-gateway": "NAT gateways",
    "ec2:elastic-ip": "Elastic IPs",
    "ec2:volume": "EBS volumes",
    # An image holds its snapshots.
    "ec2:image": "AMIs",
    "ec2:snapshot": "EBS snapshots",
    "rds:db-instance": "RDS DB instances",
    "rds:db-snapshot": "RDS DB snapshots",
    "lambda:function": "Lambda functions",
    "dynamodb:table": "DynamoDB tables",
    "ecr:repository": "ECR repositories",
    "s3:bucket": "S3 buckets",
}
# IAM last (portal/aws/cleanup_iam.py): instances hold instance profiles, functions hold roles.
KIND_LABELS.update(cleanup_iam.KIND_LABELS)
KINDS: tuple[str, ...] = tuple(KIND_LABELS)

S3_LOCATION_ALIASES = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}


@dataclass(frozen=True)
class Resource:
    """One thing to delete."""

    region: str  # "us-east-1"; S3 buckets: the bucket's region; IAM: "global"
    kind: str  # one of KINDS
    id: str  # what the delete call needs (instance id, bucket name, ARN, …)
    label: str = ""  # for the instructor's dry-run listing

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Resource:
        return cls(data["region"], data["kind"], data["id"], data.get("label", ""))


@dataclass(frozen=True)
class _Place:
    """One region of one member account."""

    account_id: str
    region: str

    def call(self, service: str, operation: str, **params) -> dict:
        api = client(service, account_id=self.account_id, region=self.region)
        try:
            return getattr(api, operation)(**params)
        except Exception as error:
            raise classify(error, operation=operation) from error

    def pages(self, service: str, operation: str, **params) -> Iterator[dict]:
        paginator = client(service, account_id=self.account_id, region=self.region).get_paginator(
            operation
        )
        try:
            yield from paginator.paginate(**params)
        except Exception as error:
            raise classify(error, operation=operation) from error

    def items(self, service: str, operation: str, key: str, **params) -> Iterator[dict]:
        for page in self.pages(service, operation, **params):
            yield from page.get(key, [])

    def resource(self, kind: str, id: str, label: str) -> Resource:
        return Resource(region=self.region, kind=kind, id=id, label=label)


# --- Regions --------------------------------------------------------------------------------------


def enabled_regions(account_id: str) -> list[str]:
    """The regions the member account can use: the default ones and those it opted in to."""
    regions = _Place(account_id, "").call("ec2", "describe_regions", AllRegions=True)["Regions"]
    return sorted(
        r["RegionName"]
        for r in regions
        if r.get("OptInStatus") in ("opt-in-not-required", "opted-in")
    )


# --- Inventory ------------------------------------------------------------------------------------


def inventory(account_id: str, regions: Iterable[str]) -> list[Resource]:
    """Everything to delete in `regions` of the account, in KINDS order. Reads only."""
    regions = list(regions)
    found: list[Resource] = []
    for kind in KINDS:
        if kind == "s3:bucket":
            # Bucket names are global: one listing, each bucket in its own region.
            found += [b for b in _list_buckets(account_id) if b.region in regions]
            continue
        if kind in cleanup_iam.KIND_LABELS:
            # IAM is global: one listing, whatever the regions.
            found += _LISTERS[kind](_Place(account_id, cleanup_iam.REGION))
            continue
        for region in regions:
            found += _LISTERS[kind](_Place(account_id, region))
    return found


def _name_tag(tags: list[dict] | None) -> str:
    return next((t["Value"] for t in tags or [] if t["Key"] == "Name"), "")


def _titled(id: str, name: str, details: str) -> str:
    """'web (i-0abc…): t3.micro, running', or 'i-0abc…: …' when the thing has no name."""
    title = f"{name} ({id})" if name and name != id else id
    return f"{title}: {details}" if details else title


def _list_instances(at: _Place) -> Iterator[Resource]:
    for reservation in at.items("ec2", "describe_instances", "Reservations"):
        for instance in reservation["Instances"]:
            state = instance["State"]["Name"]
            if state in ("shutting-down", "terminated"):
                continue
            details = f"{instance['InstanceType']}, {state}"
            label = _titled(instance["InstanceId"], _name_tag(instance.get("Tags")), details)
            yield at.resource("ec2:instance", instance["InstanceId"], label)


def _list_nat_gateways(at: _Place) -> Iterator[Resource]:
    for gateway in at.items("ec2", "describe_nat_gateways", "NatGateways"):
        if gateway["State"] in ("deleting", "deleted"):
            continue
        details = f"in {gateway.get('VpcId', '?')}, {gateway['State']}"
        label = _titled(gateway["NatGatewayId"], _name_tag(gateway.get("Tags")), details)
        yield at.resource("ec2:nat-gateway", gateway["NatGatewayId"], label)


def _list_elastic_ips(at: _Place) -> Iterator[Resource]:
    # DescribeAddresses has no pagination: it answers with every address at once.
    for address in at.call("ec2", "describe_addresses")["Addresses"]:
        held_by = address.get("InstanceId") or address.get("NetworkInterfaceId")
        where = f"attached to {held_by}" if held_by else "not attached"
        details = f"{address['PublicIp']}, {where}"
        label = _titled(address["AllocationId"], _name_tag(address.get("Tags")), details)
        yield at.resource("ec2:elastic-ip", address["AllocationId"], label)


def _list_volumes(at: _Place) -> Iterator[Resource]:
    for volume in at.items("ec2", "describe_volumes", "Volumes"):
        if volume["State"] in ("deleting", "deleted"):
            continue
        attached = [a["InstanceId"] for a in volume.get("Attachments", [])]
        where = f"attached to {', '.join(attached)}" if attached else volume["State"]
        details = f"{volume['Size']} GiB {volume['VolumeType']}, {where}"
        label = _titled(volume["VolumeId"], _name_tag(volume.get("Tags")), details)
        yield at.resource("ec2:volume", volume["VolumeId"], label)


def _list_images(at: _Place) -> Iterator[Resource]:
    for image in at.items("ec2", "describe_images", "Images", Owners=["self"]):
        if image["State"] == "deregistered":
            continue
        label = _titled(image["ImageId"], image.get("Name", ""), image["State"])
        yield at.resource("ec2:image", image["ImageId"], label)


def _list_snapshots(at: _Place) -> Iterator[Resource]:
    # Without OwnerIds, AWS lists every public snapshot too.
    for snapshot in at.items("ec2", "describe_snapshots", "Snapshots", OwnerIds=["self"]):
        details = f"{snapshot['VolumeSize']} GiB, of {snapshot.get('VolumeId', '?')}"
        if snapshot.get("Description"):
            details += f', "{snapshot["Description"]}"'
        label = _titled(snapshot["SnapshotId"], _name_tag(snapshot.get("Tags")), details)
        yield at.resource("ec2:snapshot", snapshot["SnapshotId"], label)


def _list_load_balancers(at: _Place) -> Iterator[Resource]:
    for balancer in at.items("elbv2", "describe_load_balancers", "LoadBalancers"):
        details = f"{balancer['Type']} load balancer, {balancer['State']['Code']}"
        label = f"{balancer['LoadBalancerName']}: {details}"
        yield at.resource("elbv2:load-balancer", balancer["LoadBalancerArn"], label)


def _list_classic_load_balancers(at: _Place) -> Iterator[Resource]:
    for balancer in at.items("elb", "describe_load_balancers", "LoadBalancerDescriptions"):
        name = balancer["LoadBalancerName"]
        label = f"{name}: classic load balancer, {balancer['DNSName']}"
        yield at.resource("elb:load-balancer", name, label)


def _list_db_instances(at: _Place) -> Iterator[Resource]:
    for db in at.items("rds", "describe_db_instances", "DBInstances"):
        if db["DBInstanceStatus"] == "deleting":
            continue
        name = db["DBInstanceIdentifier"]
        details = f"{db['Engine']} {db['DBInstanceClass']}, {db['DBInstanceStatus']}"
        yield at.resource("rds:db-instance", name, f"{name}: {details}")


def _list_db_snapshots(at: _Place) -> Iterator[Resource]:
    # Automated snapshots go with their instance (DeleteAutomatedBackups); manual ones stay.
    for snapshot in at.items("rds", "describe_db_snapshots", "DBSnapshots", SnapshotType="manual"):
        if snapshot["Status"] == "deleting":
            continue
        name = snapshot["DBSnapshotIdentifier"]
        details = (
            f"{snapshot['Engine']} snapshot of {snapshot['DBInstanceIdentifier']}, "
            f"{snapshot['AllocatedStorage']} GiB"
        )
        yield at.resource("rds:db-snapshot", name, f"{name}: {details}")


def _list_functions(at: _Place) -> Iterator[Resource]:
    for function in at.items("lambda", "list_functions", "Functions"):
        name = function["FunctionName"]
        # Container-image functions have no runtime.
        details = function.get("Runtime") or function.get("PackageType", "")
        yield at.resource("lambda:function", name, _titled(name, "", details))


def _list_tables(at: _Place) -> Iterator[Resource]:
    for name in at.items("dynamodb", "list_tables", "TableNames"):
        table = _describe_table(at, name)
        if table is None or table["TableStatus"] == "DELETING":
            continue
        yield at.resource("dynamodb:table", name, f"{name}: {table['TableStatus']}")


def _list_stacks(at: _Place) -> Iterator[Resource]:
    # DescribeStacks leaves out deleted (DELETE_COMPLETE) stacks.
    for stack in at.items("cloudformation", "describe_stacks", "Stacks"):
        if stack.get("ParentId"):
            # A nested stack belongs to its parent, whose deletion deletes it; deleting it on
            # its own leaves the parent out of step with what it made.
            continue
        label = f"{stack['StackName']}: {stack['StackStatus']}"
        yield at.resource("cloudformation:stack", stack["StackId"], label)


def _list_endpoints(at: _Place) -> Iterator[Resource]:
    for endpoint in at.items("sagemaker", "list_endpoints", "Endpoints"):
        if endpoint["EndpointStatus"] == "Deleting":
            continue
        name = endpoint["EndpointName"]
        yield at.resource("sagemaker:endpoint", name, f"{name}: {endpoint['EndpointStatus']}")


def _list_notebook_instances(at: _Place) -> Iterator[Resource]:
    for notebook in at.items("sagemaker", "list_notebook_instances", "NotebookInstances"):
        status = notebook["NotebookInstanceStatus"]
        if status == "Deleting":
            continue
        name = notebook["NotebookInstanceName"]
        label = f"{name}: {notebook.get('InstanceType', '?')}, {status}"
        yield at.resource("sagemaker:notebook-instance", name, label)


def _list_repositories(at: _Place) -> Iterator[Resource]:
    for repository in at.items("ecr", "describe_repositories", "repositories"):
        name = repository["repositoryName"]
        yield at.resource("ecr:repository", name, f"{name}: {repository['repositoryUri']}")


def _list_buckets(account_id: str) -> Iterator[Resource]:
    anywhere = _Place(account_id, "")
    for bucket in anywhere.items("s3", "list_buckets", "Buckets"):
        name = bucket["Name"]
        location = anywhere.call("s3", "get_bucket_location", Bucket=name).get("LocationConstraint")
        region = S3_LOCATION_ALIASES.get(location, location)
        yield Resource(region=region, kind="s3:bucket", id=name, label=name)


# --- Deletion -------------------------------------------------------------------------------------


def delete(account_id: str, resource: Resource) -> None:
    """Delete `resource`, or start deleting it. Already gone (or going) is success."""
    try:
        _DELETERS[resource.kind](_Place(account_id, resource.region), resource.id)
    except AwsError as error:
        if not _already_gone(resource.kind, error):
            raise


def _already_gone(kind: str, error: AwsError) -> bool:
    if isinstance(error, NotFound):
        return True
    if kind == "s3:bucket":
        return error.code == "NoSuchBucket"
    if kind == "ec2:image":
        return error.code == "InvalidAMIID.Unavailable"  # deregistered
    if kind.startswith("sagemaker:"):
        # SageMaker says a missing endpoint or notebook is a validation error.
        return error.code == "ValidationException" and (
            error.message.startswith("Could not find") or error.message == "RecordNotFound"
        )
    if kind == "cloudformation:stack":
        return error.code == "ValidationError" and error.message.endswith("does not exist")
    return False


def _terminate_instance(at: _Place, instance_id: str) -> None:
    try:
        at.call("ec2", "terminate_instances", InstanceIds=[instance_id])
    except PermanentAwsError as error:
        if error.code != "OperationNotPermitted":
            raise
        # Termination protection is on.
        at.call(
            "ec2",
            "modify_instance_attribute",
            InstanceId=instance_id,
            DisableApiTermination={"Value": False},
        )
        at.call("ec2", "terminate_instances", InstanceIds=[instance_id])


def _delete_nat_gateway(at: _Place, gateway_id: str) -> None:
    at.call("ec2", "delete_nat_gateway", NatGatewayId=gateway_id)


def _release_elastic_ip(at: _Place, allocation_id: str) -> None:
    address = at.call("ec2", "describe_addresses", AllocationIds=[allocation_id])["Addresses"][0]
    if address.get("AssociationId"):
        # AWS refuses to release an address that is still associated.
        at.call("ec2", "disassociate_address", AssociationId=address["AssociationId"])
    at.call("ec2", "release_address", AllocationId=allocation_id)


def _delete_volume(at: _Place, volume_id: str) -> None:
    at.call("ec2", "delete_volume", VolumeId=volume_id)


def _deregister_image(at: _Place, image_id: str) -> None:
    at.call("ec2", "deregister_image", ImageId=image_id)


def _delete_snapshot(at: _Place, snapshot_id: str) -> None:
    at.call("ec2", "delete_snapshot", SnapshotId=snapshot_id)


def _delete_load_balancer(at: _Place, arn: str) -> None:
    at.call(
        "elbv2",
        "modify_load_balancer_attributes",
        LoadBalancerArn=arn,
        Attributes=[{"Key": "deletion_protection.enabled", "Value": "false"}],
    )
    at.call("elbv2", "delete_load_balancer", LoadBalancerArn=arn)


def _delete_classic_load_balancer(at: _Place, name: str) -> None:
    at.call("elb", "delete_load_balancer", LoadBalancerName=name)


def _delete_db_instance(at: _Place, identifier: str) -> None:
    db = at.call("rds", "describe_db_instances", DBInstanceIdentifier=identifier)["DBInstances"][0]
    if db["DBInstanceStatus"] == "deleting":
        return
    if db.get("DeletionProtection"):
        at.call(
            "rds",
            "modify_db_instance",
            DBInstanceIdentifier=identifier,
            DeletionProtection=False,
            ApplyImmediately=True,
        )
    at.call(
        "rds",
        "delete_db_instance",
        DBInstanceIdentifier=identifier,
        SkipFinalSnapshot=True,
        DeleteAutomatedBackups=True,
    )


def _delete_db_snapshot(at: _Place, identifier: str) -> None:
    at.call("rds", "delete_db_snapshot", DBSnapshotIdentifier=identifier)


def _delete_function(at: _Place, name: str) -> None:
    at.call("lambda", "delete_function", FunctionName=name)


def _describe_table(at: _Place, name: str) -> dict | None:
    """The table, or None once it is gone (between ListTables and now, it may have gone)."""
    try:
        return at.call("dynamodb", "describe_table", TableName=name)["Table"]
    except NotFound:
        return None


def _delete_table(at: _Place, name: str) -> None:
    table = _describe_table(at, name)
    if table is None or table["TableStatus"] == "DELETING":
        return
    if table.get("DeletionProtectionEnabled"):
        at.call("dynamodb", "update_table", TableName=name, DeletionProtectionEnabled=False)
    at.call("dynamodb", "delete_table", TableName=name)


def _delete_stack(at: _Place, stack_id: str) -> None:
    # By its id (ARN), a deleted stack is still found, as DELETE_COMPLETE.
    stack = at.call("cloudformation", "describe_stacks", StackName=stack_id)["Stacks"][0]
    if stack["StackStatus"] == "DELETE_COMPLETE":
        return
    if stack.get("EnableTerminationProtection"):
        at.call(
            "cloudformation",
            "update_termination_protection",
            StackName=stack_id,
            EnableTerminationProtection=False,
        )
    at.call("cloudformation", "delete_stack", StackName=stack_id)


def _delete_endpoint(at: _Place, name: str) -> None:
    endpoint = at.call("sagemaker", "describe_endpoint", EndpointName=name)
    if endpoint["EndpointStatus"] != "Deleting":
        at.call("sagemaker", "delete_endpoint", EndpointName=name)


def _delete_notebook_instance(at: _Place, name: str) -> None:
    notebook = at.call("sagemaker", "describe_notebook_instance", NotebookInstanceName=name)
    status = notebook["NotebookInstanceStatus"]
    if status == "InService":
        # Only a stopped (or failed) notebook can be deleted; stopping takes minutes, so a later
        # pass deletes it.
        at.call("sagemaker", "stop_notebook_instance", NotebookInstanceName=name)
    elif status != "Deleting":
        at.call("sagemaker", "delete_notebook_instance", NotebookInstanceName=name)


def _delete_repository(at: _Place, name: str) -> None:
    at.call("ecr", "delete_repository", repositoryName=name, force=True)


def _delete_bucket(at: _Place, name: str) -> None:
    """Empty the bucket, every version and delete marker included, then delete it."""
    for page in at.pages("s3", "list_object_versions", Bucket=name):
        objects = [
            {"Key": o["Key"], "VersionId": o["VersionId"]}
            for o in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        if objects:
            _delete_objects(at, name, objects)
    # Unfinished multipart uploads hold storage that no listing of objects shows.
    for upload in at.items("s3", "list_multipart_uploads", "Uploads", Bucket=name):
        key, upload_id = upload["Key"], upload["UploadId"]
        at.call("s3", "abort_multipart_upload", Bucket=name, Key=key, UploadId=upload_id)
    at.call("s3", "delete_bucket", Bucket=name)


def _delete_objects(at: _Place, bucket: str, objects: list[dict]) -> None:
    # A page holds at most 1,000 entries: the most one DeleteObjects takes.
    delete = {"Objects": objects, "Quiet": True}
    answer = at.call("s3", "delete_objects", Bucket=bucket, Delete=delete)
    if errors := answer.get("Errors"):
        # DeleteObjects answers 200 and lists what it could not delete.
        first = errors[0]
        message = f"{len(errors)} not deleted, {first['Key']} first: {first.get('Message', '')}"
        refused = ClientError({"Error": {"Code": first.get("Code", ""), "Message": message}}, "")
        raise classify(refused, operation="delete_objects")


_LISTERS: dict[str, Callable[[_Place], Iterable[Resource]]] = {
    "cloudformation:stack": _list_stacks,
    "sagemaker:endpoint": _list_endpoints,
    "sagemaker:notebook-instance": _list_notebook_instances,
    "elbv2:load-balancer": _list_load_balancers,
    "elb:load-balancer": _list_classic_load_balancers,
    "ec2:instance": _list_instances,
    "ec2:nat-gateway": _list_nat_gateways,
    "ec2:elastic-ip": _list_elastic_ips,
    "ec2:volume": _list_volumes,
    "ec2:image": _list_images,
    "ec2:snapshot": _list_snapshots,
    "rds:db-instance": _list_db_instances,
    "rds:db-snapshot": _list_db_snapshots,
    "lambda:function": _list_functions,
    "dynamodb:table": _list_tables,
    "ecr:repository": _list_repositories,
}
_DELETERS: dict[str, Callable[[_Place, str], None]] = {
    "cloudformation:stack": _delete_stack,
    "sagemaker:endpoint": _delete_endpoint,
    "sagemaker:notebook-instance": _delete_notebook_instance,
    "elbv2:load-balancer": _delete_load_balancer,
    "elb:load-balancer": _delete_classic_load_balancer,
    "ec2:instance": _terminate_instance,
    "ec2:nat-gateway": _delete_nat_gateway,
    "ec2:elastic-ip": _release_elastic_ip,
    "ec2:volume": _delete_volume,
    "ec2:image": _deregister_image,
    "ec2:snapshot": _delete_snapshot,
    "rds:db-instance": _delete_db_instance,
    "rds:db-snapshot": _delete_db_snapshot,
    "lambda:function": _delete_function,
    "dynamodb:table": _delete_table,
    "ecr:repository": _delete_repository,
    "s3:bucket": _delete_bucket,
}


def _iam_lister(kind: str) -> Callable[[_Place], Iterator[Resource]]:
    def listed(at: _Place) -> Iterator[Resource]:
        for id, label in cleanup_iam.LISTERS[kind](at.account_id):
            yield at.resource(kind, id, label)

    return listed


def _iam_deleter(kind: str) -> Callable[[_Place, str], None]:
    return lambda at, id: cleanup_iam.DELETERS[kind](at.account_id, id)


_LISTERS.update({kind: _iam_lister(kind) for kind in cleanup_iam.KIND_LABELS})
_DELETERS.update({kind: _iam_deleter(kind) for kind in cleanup_iam.KIND_LABELS})
