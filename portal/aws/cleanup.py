"""The end-of-course cleanup inside a student's member account: list what costs money or
launches what does, and delete it, reached through the member account's organization role.

`inventory` only reads: it is the instructor's dry run, and the caller's way to see what is left.
`delete` removes one resource, or starts to: many deletions take minutes in AWS, and a resource
that depends on another (a volume attached to an instance still shutting down, an address held by
a NAT gateway still being deleted, a cluster whose node groups are still going) cannot go until
the other has. The caller therefore runs passes, list → delete each → list again, until nothing
is left or a pass removes nothing; within a pass, KINDS puts dependents first, and what relaunches
things (Auto Scaling groups, ECS services, EKS node groups) before anything. Deleting what is
already gone succeeds, so a pass can be repeated after a crash.

IAM comes last, listed once a pass with the region "global" (portal/aws/cleanup_iam.py): every
user, group, role, instance profile and customer managed policy the student made, their identity
providers and the account's alias, each deleted with what IAM wants gone first; the portal's own
role and the roles AWS or the school's tooling keep there are left alone.

Protections a student switched on (EC2 termination protection; RDS, Aurora, DynamoDB, load
balancer, Auto Scaling, EKS and CloudWatch Logs deletion protection; CloudFormation termination
protection) are switched off by `delete`: at the end of the course everything goes. Things AWS is
already deleting are left out of the inventory (they go away without help), except CloudFormation
stacks, whose deletion can fail and leave resources behind: a stack stays listed until it is gone.
So are things another AWS service made and deletes with its own (a nested stack, the Auto Scaling
group of an EKS node group, a secret RDS manages, AWS managed KMS keys).

Most kinds are regional and listed region by region; S3 buckets and Route 53 hosted zones are
global and listed once.

Every call goes through the member account's organization role, so an SCP that denies that role
a service or a region makes `inventory` fail there with AccessDenied rather than miss what is
there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from itertools import batched

from botocore.exceptions import ClientError

from portal.aws import cleanup_iam
from portal.aws.errors import AwsError, NotFound, PermanentAwsError, classify
from portal.aws.member import Place

# Every kind, in the order a pass deletes them: what holds or relaunches something else goes
# before it.
KIND_LABELS: dict[str, str] = {
    # A group relaunches the instances a pass terminates, until the group itself is gone.
    "autoscaling:group": "Auto Scaling groups",
    # A node group is an Auto Scaling group of EKS's; a Fargate profile runs pods on Fargate.
    "eks:nodegroup": "EKS managed node groups",
    "eks:fargate-profile": "EKS Fargate profiles",
    # A service starts tasks again as they stop.
    "ecs:service": "ECS services",
    # What new groups and instances are launched from; AWS keeps those in use until their group
    # is gone.
    "autoscaling:launch-configuration": "Auto Scaling launch configurations",
    "ec2:launch-template": "EC2 launch templates",
    # A stack deletes what it made, including what this module does not know about.
    "cloudformation:stack": "CloudFormation stacks",
    "sagemaker:endpoint": "SageMaker endpoints",
    "sagemaker:notebook-instance": "SageMaker notebook instances",
    # A Studio domain holds user profiles and spaces, which hold apps (each on its own instance).
    "sagemaker:app": "SageMaker Studio apps",
    "sagemaker:space": "SageMaker Studio spaces",
    "sagemaker:user-profile": "SageMaker Studio user profiles",
    "sagemaker:domain": "SageMaker domains",
    # Load balancers hold network interfaces in the subnets and send traffic to instances.
    "elbv2:load-balancer": "Application, network and gateway load balancers",
    "elb:load-balancer": "Classic load balancers",
    # Terminating an instance frees its volumes and its addresses, and leaves the ECS cluster it
    # was registered with.
    "ec2:instance": "EC2 instances",
    "ecs:cluster": "ECS clusters",
    "eks:cluster": "EKS clusters",
    "opensearch:domain": "OpenSearch domains",
    # A replication group deletes its cache clusters.
    "elasticache:replication-group": "ElastiCache replication groups",
    "elasticache:cache-cluster": "ElastiCache cache clusters",
    "elasticache:serverless-cache": "ElastiCache serverless caches",
    # After SageMaker domains, which delete their home file system themselves.
    "efs:file-system": "EFS file systems",
    "ec2:vpc-endpoint": "VPC endpoints",
    # A NAT gateway holds its Elastic IP until it is deleted.
    "ec2:nat-gateway": "NAT gateways",
    "ec2:elastic-ip": "Elastic IPs",
    "ec2:volume": "EBS volumes",
    # An image holds its snapshots.
    "ec2:image": "AMIs",
    "ec2:snapshot": "EBS snapshots",
    # A DB cluster goes once its instances are going.
    "rds:db-instance": "RDS DB instances",
    "rds:db-cluster": "Aurora and RDS DB clusters",
    "rds:db-snapshot": "RDS DB snapshots",
    "rds:db-cluster-snapshot": "Aurora and RDS DB cluster snapshots",
    "lambda:function": "Lambda functions",
    "dynamodb:table": "DynamoDB tables",
    "secretsmanager:secret": "Secrets Manager secrets",
    # After what writes to them: a Lambda function that runs again makes its log group again.
    "logs:log-group": "CloudWatch Logs log groups",
    # After what is encrypted with them.
    "kms:key": "KMS customer managed keys",
    "route53:hosted-zone": "Route 53 hosted zones",
    "ecr:repository": "ECR repositories",
    "s3:bucket": "S3 buckets",
}
# IAM last (portal/aws/cleanup_iam.py): instances hold instance profiles, functions hold roles.
KIND_LABELS.update(cleanup_iam.KIND_LABELS)
KINDS: tuple[str, ...] = tuple(KIND_LABELS)

S3_LOCATION_ALIASES = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}
# Route 53 is global; its API is in us-east-1, where its hosted zones are shown.
ROUTE53_REGION = "us-east-1"
# The shortest wait AWS allows before it deletes a KMS key (7 to 30 days).
KMS_MINIMUM_PENDING_DAYS = 7
KEYS_PENDING_DELETION = ("PendingDeletion", "PendingReplicaDeletion")
# The tag EKS puts on the Auto Scaling group and launch template it makes for a managed node
# group.
EKS_NODEGROUP_TAG = "eks:nodegroup-name"


@dataclass(frozen=True)
class Resource:
    """One thing to delete."""

    region: str  # "us-east-1"; S3 buckets: the bucket's region; Route 53: ROUTE53_REGION; IAM: "global"
    kind: str  # one of KINDS
    # What the delete call needs (instance id, bucket name, ARN, …); for what lives inside
    # another thing, both names: "cluster/nodegroup" (AWS's names never hold a slash).
    id: str
    label: str = ""  # for the instructor's dry-run listing

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Resource:
        return cls(data["region"], data["kind"], data["id"], data.get("label", ""))


@dataclass(frozen=True)
class _Place(Place):
    """One region of one member account, where cleanup lists and deletes."""

    def resource(self, kind: str, id: str, label: str) -> Resource:
        return Resource(region=self.region, kind=kind, id=id, label=label)


# --- Regions --------------------------------------------------------------------------------------


def enabled_regions(account_id: str) -> list[str]:
    """The regions the member account can use: the default ones and those it opted in to."""
    regions = _Place(account_id, "").call("ec2", "describe_regions", AllRegions=True)["Regions"]
    return sorted(r["RegionName"] for r in regions if r.get("OptInStatus") in ("opt-in-not-required", "opted-in"))


# --- Inventory ------------------------------------------------------------------------------------


def inventory(account_id: str, regions: Iterable[str]) -> list[Resource]:
    """Everything to delete in `regions` of the account, in KINDS order. Reads only."""
    regions = list(regions)
    found: list[Resource] = []
    for kind in KINDS:
        if kind in _GLOBAL_LISTERS:
            # One listing for the whole account, not one per region.
            found += _GLOBAL_LISTERS[kind](account_id, regions)
            continue
        for region in regions:
            found += _LISTERS[kind](_Place(account_id, region))
    return found


def _name_tag(tags: list[dict] | None) -> str:
    return next((t["Value"] for t in tags or [] if t["Key"] == "Name"), "")


def _has_tag(tags: list[dict] | None, key: str) -> bool:
    return any(t["Key"] == key for t in tags or [])


def _titled(id: str, name: str, details: str) -> str:
    """'web (i-0abc…): t3.micro, running', or 'i-0abc…: …' when the thing has no name."""
    title = f"{name} ({id})" if name and name != id else id
    return f"{title}: {details}" if details else title


def _size(count: int) -> str:
    """A number of bytes as people read it: '512 bytes', '3.2 MiB'."""
    size, unit = float(count), "bytes"
    for larger in ("KiB", "MiB", "GiB", "TiB"):
        if size < 1024:
            break
        size, unit = size / 1024, larger
    return f"{count} bytes" if unit == "bytes" else f"{size:.1f} {unit}"


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
            f"{snapshot['Engine']} snapshot of {snapshot['DBInstanceIdentifier']}, {snapshot['AllocatedStorage']} GiB"
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


def _made_by_another_service(resource: dict) -> bool:
    """Whether another AWS service made the thing and deletes it with its own: the Auto Scaling
    group and launch template of an EKS managed node group (EKS marks a node group whose group
    was deleted under it degraded), or what AWS marks managed by an operator (it refuses to
    delete those)."""
    managed = resource.get("Operator", {}).get("Managed", False)
    return managed or _has_tag(resource.get("Tags"), EKS_NODEGROUP_TAG)


def _list_auto_scaling_groups(at: _Place) -> Iterator[Resource]:
    for group in at.items("autoscaling", "describe_auto_scaling_groups", "AutoScalingGroups"):
        if group.get("Status") == "Delete in progress" or _made_by_another_service(group):
            continue
        name = group["AutoScalingGroupName"]
        details = f"{len(group['Instances'])} instances, {group['MinSize']} to {group['MaxSize']}"
        yield at.resource("autoscaling:group", name, f"{name}: {details}")


def _list_launch_configurations(at: _Place) -> Iterator[Resource]:
    configurations = at.items("autoscaling", "describe_launch_configurations", "LaunchConfigurations")
    for configuration in configurations:
        name = configuration["LaunchConfigurationName"]
        details = f"{configuration['InstanceType']} from {configuration['ImageId']}"
        yield at.resource("autoscaling:launch-configuration", name, f"{name}: {details}")


def _list_launch_templates(at: _Place) -> Iterator[Resource]:
    for template in at.items("ec2", "describe_launch_templates", "LaunchTemplates"):
        if _made_by_another_service(template):
            continue
        template_id = template["LaunchTemplateId"]
        details = f"latest version {template['LatestVersionNumber']}"
        label = _titled(template_id, template["LaunchTemplateName"], details)
        yield at.resource("ec2:launch-template", template_id, label)


def _list_nodegroups(at: _Place) -> Iterator[Resource]:
    for cluster in at.items("eks", "list_clusters", "clusters"):
        for name in at.items("eks", "list_nodegroups", "nodegroups", clusterName=cluster):
            described = at.found("eks", "describe_nodegroup", clusterName=cluster, nodegroupName=name)
            if described is None or described["nodegroup"]["status"] == "DELETING":
                continue
            group = described["nodegroup"]
            types = ", ".join(group.get("instanceTypes") or []) or "instances"
            size = group.get("scalingConfig", {}).get("desiredSize", "?")
            label = f"{name} in {cluster}: {size} × {types}, {group['status']}"
            yield at.resource("eks:nodegroup", f"{cluster}/{name}", label)


def _list_fargate_profiles(at: _Place) -> Iterator[Resource]:
    for cluster in at.items("eks", "list_clusters", "clusters"):
        names = at.items("eks", "list_fargate_profiles", "fargateProfileNames", clusterName=cluster)
        for name in names:
            described = at.found("eks", "describe_fargate_profile", clusterName=cluster, fargateProfileName=name)
            if described is None or described["fargateProfile"]["status"] == "DELETING":
                continue
            label = f"{name} in {cluster}: {described['fargateProfile']['status']}"
            yield at.resource("eks:fargate-profile", f"{cluster}/{name}", label)


def _list_eks_clusters(at: _Place) -> Iterator[Resource]:
    for name in at.items("eks", "list_clusters", "clusters"):
        described = at.found("eks", "describe_cluster", name=name)
        if described is None or described["cluster"]["status"] == "DELETING":
            continue
        cluster = described["cluster"]
        label = f"{name}: Kubernetes {cluster.get('version', '?')}, {cluster['status']}"
        yield at.resource("eks:cluster", name, label)


def _ecs_clusters(at: _Place) -> Iterator[dict]:
    """The account's ECS clusters, described, but those deleted or being deleted."""
    arns = list(at.items("ecs", "list_clusters", "clusterArns"))
    for batch in batched(arns, 100):  # the most DescribeClusters takes
        for cluster in at.call("ecs", "describe_clusters", clusters=list(batch))["clusters"]:
            if cluster["status"] not in ("INACTIVE", "DEPROVISIONING"):
                yield cluster


def _list_ecs_services(at: _Place) -> Iterator[Resource]:
    for cluster in _ecs_clusters(at):
        cluster_name = cluster["clusterName"]
        arns = list(at.items("ecs", "list_services", "serviceArns", cluster=cluster_name))
        for batch in batched(arns, 10):  # the most DescribeServices takes
            described = at.call("ecs", "describe_services", cluster=cluster_name, services=list(batch))
            for service in described["services"]:
                if service["status"] != "ACTIVE":  # DRAINING: being deleted
                    continue
                name = service["serviceName"]
                details = f"{service['runningCount']} of {service['desiredCount']} tasks running"
                label = f"{name} in {cluster_name}: {details}"
                yield at.resource("ecs:service", f"{cluster_name}/{name}", label)


def _list_ecs_clusters(at: _Place) -> Iterator[Resource]:
    for cluster in _ecs_clusters(at):
        name = cluster["clusterName"]
        details = (
            f"{cluster['activeServicesCount']} services, {cluster['runningTasksCount']} tasks "
            f"running, {cluster['registeredContainerInstancesCount']} container instances"
        )
        yield at.resource("ecs:cluster", name, f"{name}: {details}")


def _list_studio_apps(at: _Place) -> Iterator[Resource]:
    for app in at.items("sagemaker", "list_apps", "Apps"):
        if app["Status"] in ("Deleted", "Deleting"):
            continue
        if app.get("SpaceName"):
            owner_kind, owner = "space", app["SpaceName"]
        else:
            owner_kind, owner = "user", app["UserProfileName"]
        domain, app_type, name = app["DomainId"], app["AppType"], app["AppName"]
        app_id = f"{domain}/{owner_kind}/{owner}/{app_type}/{name}"
        label = f"{app_type} {name} of {owner_kind} {owner} in {domain}: {app['Status']}"
        yield at.resource("sagemaker:app", app_id, label)


def _list_studio_spaces(at: _Place) -> Iterator[Resource]:
    for space in at.items("sagemaker", "list_spaces", "Spaces"):
        if space["Status"] == "Deleting":
            continue
        domain, name = space["DomainId"], space["SpaceName"]
        label = f"{name} in {domain}: {space['Status']}"
        yield at.resource("sagemaker:space", f"{domain}/{name}", label)


def _list_studio_user_profiles(at: _Place) -> Iterator[Resource]:
    for profile in at.items("sagemaker", "list_user_profiles", "UserProfiles"):
        if profile["Status"] == "Deleting":
            continue
        domain, name = profile["DomainId"], profile["UserProfileName"]
        label = f"{name} in {domain}: {profile['Status']}"
        yield at.resource("sagemaker:user-profile", f"{domain}/{name}", label)


def _list_sagemaker_domains(at: _Place) -> Iterator[Resource]:
    for domain in at.items("sagemaker", "list_domains", "Domains"):
        if domain["Status"] == "Deleting":
            continue
        label = _titled(domain["DomainId"], domain["DomainName"], domain["Status"])
        yield at.resource("sagemaker:domain", domain["DomainId"], label)


def _list_search_domains(at: _Place) -> Iterator[Resource]:
    names = [d["DomainName"] for d in at.call("opensearch", "list_domain_names")["DomainNames"]]
    for batch in batched(names, 5):  # the most DescribeDomains takes
        described = at.call("opensearch", "describe_domains", DomainNames=list(batch))
        for domain in described["DomainStatusList"]:
            if domain.get("Deleted"):  # being deleted
                continue
            nodes = domain.get("ClusterConfig", {})
            details = (
                f"{domain.get('EngineVersion', '?')}, "
                f"{nodes.get('InstanceCount', '?')} × {nodes.get('InstanceType', '?')}"
            )
            name = domain["DomainName"]
            yield at.resource("opensearch:domain", name, f"{name}: {details}")


def _list_replication_groups(at: _Place) -> Iterator[Resource]:
    for group in at.items("elasticache", "describe_replication_groups", "ReplicationGroups"):
        if group["Status"] == "deleting":
            continue
        name = group["ReplicationGroupId"]
        details = f"{len(group.get('MemberClusters', []))} × {group.get('CacheNodeType', '?')}, {group['Status']}"
        yield at.resource("elasticache:replication-group", name, f"{name}: {details}")


def _list_cache_clusters(at: _Place) -> Iterator[Resource]:
    for cluster in at.items("elasticache", "describe_cache_clusters", "CacheClusters"):
        if cluster.get("ReplicationGroupId") or cluster["CacheClusterStatus"] == "deleting":
            continue  # a replication group's clusters go with it
        name = cluster["CacheClusterId"]
        details = (
            f"{cluster['Engine']}, {cluster['NumCacheNodes']} × {cluster['CacheNodeType']}, "
            f"{cluster['CacheClusterStatus']}"
        )
        yield at.resource("elasticache:cache-cluster", name, f"{name}: {details}")


def _list_serverless_caches(at: _Place) -> Iterator[Resource]:
    for cache in at.items("elasticache", "describe_serverless_caches", "ServerlessCaches"):
        if cache["Status"] == "deleting":
            continue
        name = cache["ServerlessCacheName"]
        label = f"{name}: serverless {cache.get('Engine', '?')}, {cache['Status']}"
        yield at.resource("elasticache:serverless-cache", name, label)


def _list_file_systems(at: _Place) -> Iterator[Resource]:
    for system in at.items("efs", "describe_file_systems", "FileSystems"):
        if system["LifeCycleState"] in ("deleting", "deleted"):
            continue
        system_id = system["FileSystemId"]
        details = f"{_size(system['SizeInBytes']['Value'])}, {system['NumberOfMountTargets']} mount targets"
        label = _titled(system_id, system.get("Name", ""), details)
        yield at.resource("efs:file-system", system_id, label)


def _list_vpc_endpoints(at: _Place) -> Iterator[Resource]:
    for endpoint in at.items("ec2", "describe_vpc_endpoints", "VpcEndpoints"):
        if endpoint["State"].lower() in ("deleting", "deleted") or endpoint.get("RequesterManaged"):
            continue  # a requester-managed endpoint is the service's that made it
        endpoint_id = endpoint["VpcEndpointId"]
        details = f"{endpoint['VpcEndpointType']} endpoint of {endpoint['ServiceName']} in {endpoint['VpcId']}"
        label = _titled(endpoint_id, _name_tag(endpoint.get("Tags")), details)
        yield at.resource("ec2:vpc-endpoint", endpoint_id, label)


def _list_db_clusters(at: _Place) -> Iterator[Resource]:
    for cluster in at.items("rds", "describe_db_clusters", "DBClusters"):
        if cluster["Status"] == "deleting":
            continue
        name = cluster["DBClusterIdentifier"]
        members = len(cluster.get("DBClusterMembers", []))
        details = f"{cluster['Engine']}, {members} instances, {cluster['Status']}"
        yield at.resource("rds:db-cluster", name, f"{name}: {details}")


def _list_db_cluster_snapshots(at: _Place) -> Iterator[Resource]:
    # Automated snapshots go with their cluster; manual ones stay.
    snapshots = at.items("rds", "describe_db_cluster_snapshots", "DBClusterSnapshots", SnapshotType="manual")
    for snapshot in snapshots:
        if snapshot["Status"] == "deleting":
            continue
        name = snapshot["DBClusterSnapshotIdentifier"]
        details = (
            f"{snapshot['Engine']} snapshot of {snapshot['DBClusterIdentifier']}, {snapshot['AllocatedStorage']} GiB"
        )
        yield at.resource("rds:db-cluster-snapshot", name, f"{name}: {details}")


def _list_secrets(at: _Place) -> Iterator[Resource]:
    # ListSecrets leaves out the secrets already scheduled for deletion.
    for secret in at.items("secretsmanager", "list_secrets", "SecretList"):
        if secret.get("OwningService") or secret.get("PrimaryRegion", at.region) != at.region:
            # A secret RDS (or another service) manages goes with what it is for; a replica
            # goes with its primary secret.
            continue
        label = _titled(secret["Name"], "", secret.get("Description", ""))
        yield at.resource("secretsmanager:secret", secret["ARN"], label)


def _list_log_groups(at: _Place) -> Iterator[Resource]:
    for group in at.items("logs", "describe_log_groups", "logGroups"):
        name = group["logGroupName"]
        label = f"{name}: {_size(group.get('storedBytes', 0))} stored"
        yield at.resource("logs:log-group", name, label)


def _list_keys(at: _Place) -> Iterator[Resource]:
    aliases: dict[str, list[str]] = defaultdict(list)
    for alias in at.items("kms", "list_aliases", "Aliases"):
        if alias.get("TargetKeyId"):
            aliases[alias["TargetKeyId"]].append(alias["AliasName"])
    for key in at.items("kms", "list_keys", "Keys"):
        names = aliases[key["KeyId"]]
        if any(name.startswith("alias/aws/") for name in names):
            continue  # an AWS managed key: AWS's own, free, and not deletable
        label = _titled(key["KeyId"], ", ".join(names), "")
        try:
            described = at.found("kms", "describe_key", KeyId=key["KeyId"])
        except PermanentAwsError as error:
            if error.code != "AccessDeniedException":
                raise
            # A key policy that shuts out the account's administrators: listed, so that the
            # refusal to delete it is reported.
            yield at.resource("kms:key", key["KeyId"], f"{label}: its key policy refuses access")
            continue
        if described is None:
            continue
        metadata = described["KeyMetadata"]
        if metadata["KeyManager"] != "CUSTOMER" or metadata["KeyState"] in KEYS_PENDING_DELETION:
            continue  # KMS deletes it at the end of its waiting period
        details = f"{metadata.get('KeySpec', '?')}, {metadata['KeyState']}"
        yield at.resource("kms:key", key["KeyId"], f"{label}: {details}")


def _list_buckets(account_id: str, regions: list[str]) -> Iterator[Resource]:
    """The account's buckets in `regions`: bucket names are global, each bucket is in a region."""
    anywhere = _Place(account_id, "")
    for bucket in anywhere.items("s3", "list_buckets", "Buckets"):
        name = bucket["Name"]
        location = anywhere.call("s3", "get_bucket_location", Bucket=name).get("LocationConstraint")
        region = S3_LOCATION_ALIASES.get(location, location)
        if region in regions:
            yield Resource(region=region, kind="s3:bucket", id=name, label=name)


def _list_hosted_zones(account_id: str, regions: list[str]) -> Iterator[Resource]:
    """The account's hosted zones, whatever the regions: a zone is in none."""
    route53 = _Place(account_id, ROUTE53_REGION)
    for zone in route53.items("route53", "list_hosted_zones", "HostedZones"):
        if zone.get("LinkedService"):
            continue  # made by another service (Cloud Map), which deletes it with its own
        zone_id = zone["Id"].removeprefix("/hostedzone/")
        visibility = "private" if zone.get("Config", {}).get("PrivateZone") else "public"
        details = f"{visibility}, {zone['ResourceRecordSetCount']} record sets"
        label = f"{zone['Name'].rstrip('.')}: {details}"
        yield route53.resource("route53:hosted-zone", zone_id, label)


# --- Deletion -------------------------------------------------------------------------------------


def delete(account_id: str, resource: Resource) -> None:
    """Delete `resource`, or start deleting it. Already gone (or going) is success."""
    try:
        _DELETERS[resource.kind](_Place(account_id, resource.region), resource.id)
    except AwsError as error:
        if not _already_gone(resource.kind, error):
            raise


def _already_gone(kind: str, error: AwsError) -> bool:
    if isinstance(error, NotFound) or error.code.endswith("NotFoundFault"):
        # RDS and ElastiCache name their missing things …NotFoundFault.
        return True
    if kind == "s3:bucket":
        return error.code == "NoSuchBucket"
    if kind == "route53:hosted-zone":
        return error.code == "NoSuchHostedZone"
    if kind == "ec2:image":
        return error.code == "InvalidAMIID.Unavailable"  # deregistered
    if kind.startswith("autoscaling:"):
        # "AutoScalingGroup name not found", "Launch configuration name not found".
        return error.code == "ValidationError" and "not found" in error.message
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
    if db.get("DeletionProtection") and not db.get("DBClusterIdentifier"):
        # An Aurora instance shows its cluster's protection, which AWS refuses to change on the
        # instance and does not apply to it: the cluster's goes with the cluster.
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
        raise _refused("delete_objects", first.get("Code", ""), message)


def _refused(operation: str, code: str, message: str) -> AwsError:
    """AWS's refusal given inside a successful answer, as if it had been an error answer."""
    error = ClientError({"Error": {"Code": code, "Message": message}}, operation)
    return classify(error, operation=operation)


def _delete_auto_scaling_group(at: _Place, name: str) -> None:
    groups = at.call("autoscaling", "describe_auto_scaling_groups", AutoScalingGroupNames=[name])["AutoScalingGroups"]
    if not groups or groups[0].get("Status") == "Delete in progress":
        return
    if groups[0].get("DeletionProtection", "none") != "none":
        at.call(
            "autoscaling",
            "update_auto_scaling_group",
            AutoScalingGroupName=name,
            DeletionProtection="none",
        )
    # Without ForceDelete AWS refuses to delete a group that has instances (ResourceInUse), and
    # a group left behind launches new instances for those a pass terminates.
    at.call("autoscaling", "delete_auto_scaling_group", AutoScalingGroupName=name, ForceDelete=True)


def _delete_launch_configuration(at: _Place, name: str) -> None:
    # AWS refuses while a group uses it (ResourceInUse): a later pass, once the group is gone.
    at.call("autoscaling", "delete_launch_configuration", LaunchConfigurationName=name)


def _delete_launch_template(at: _Place, template_id: str) -> None:
    at.call("ec2", "delete_launch_template", LaunchTemplateId=template_id)


def _delete_nodegroup(at: _Place, id: str) -> None:
    cluster, name = id.split("/")
    group = at.call("eks", "describe_nodegroup", clusterName=cluster, nodegroupName=name)
    if group["nodegroup"]["status"] != "DELETING":
        at.call("eks", "delete_nodegroup", clusterName=cluster, nodegroupName=name)


def _delete_fargate_profile(at: _Place, id: str) -> None:
    cluster, name = id.split("/")
    profile = at.call("eks", "describe_fargate_profile", clusterName=cluster, fargateProfileName=name)
    # AWS deletes one profile of a cluster at a time (ResourceInUseException meanwhile): the
    # others go in later passes.
    if profile["fargateProfile"]["status"] != "DELETING":
        at.call("eks", "delete_fargate_profile", clusterName=cluster, fargateProfileName=name)


def _delete_eks_cluster(at: _Place, name: str) -> None:
    cluster = at.call("eks", "describe_cluster", name=name)["cluster"]
    if cluster["status"] == "DELETING":
        return
    if cluster.get("deletionProtection"):
        # An update AWS makes in the background, during which it refuses to delete the cluster:
        # a later pass deletes it.
        at.call("eks", "update_cluster_config", name=name, deletionProtection=False)
        return
    # AWS refuses while the cluster has node groups or Fargate profiles (ResourceInUseException),
    # which go first and take minutes: a later pass, then.
    at.call("eks", "delete_cluster", name=name)


def _delete_ecs_service(at: _Place, id: str) -> None:
    cluster, name = id.split("/")
    found = at.call("ecs", "describe_services", cluster=cluster, services=[name])["services"]
    if not any(service["status"] == "ACTIVE" for service in found):
        return  # deleted, or being deleted (DRAINING)
    # Forced: AWS otherwise deletes a service only once scaled down to no tasks. Its tasks stop.
    at.call("ecs", "delete_service", cluster=cluster, service=name, force=True)


def _delete_ecs_cluster(at: _Place, name: str) -> None:
    found = at.call("ecs", "describe_clusters", clusters=[name])["clusters"]
    if not found or found[0]["status"] in ("INACTIVE", "DEPROVISIONING"):
        return
    # Tasks run on their own (RunTask, not a service's) keep running, on Fargate billed, until
    # stopped, and AWS refuses to delete a cluster with tasks: they stop first, and a later pass
    # deletes the cluster once they have.
    running = list(at.items("ecs", "list_tasks", "taskArns", cluster=name, desiredStatus="RUNNING"))
    for task in running:
        at.call("ecs", "stop_task", cluster=name, task=task, reason="End of course")
    if not running:
        at.call("ecs", "delete_cluster", cluster=name)


def _studio_app(id: str) -> dict:
    domain, owner_kind, owner, app_type, name = id.split("/")
    owner_field = "SpaceName" if owner_kind == "space" else "UserProfileName"
    return {"DomainId": domain, owner_field: owner, "AppType": app_type, "AppName": name}


def _delete_studio_app(at: _Place, id: str) -> None:
    app = _studio_app(id)
    if at.call("sagemaker", "describe_app", **app)["Status"] not in ("Deleted", "Deleting"):
        at.call("sagemaker", "delete_app", **app)


def _delete_studio_space(at: _Place, id: str) -> None:
    domain, name = id.split("/")
    space = at.call("sagemaker", "describe_space", DomainId=domain, SpaceName=name)
    # AWS refuses while the space has apps that are not deleted yet: a later pass.
    if space["Status"] != "Deleting":
        at.call("sagemaker", "delete_space", DomainId=domain, SpaceName=name)


def _delete_studio_user_profile(at: _Place, id: str) -> None:
    domain, name = id.split("/")
    profile = at.call("sagemaker", "describe_user_profile", DomainId=domain, UserProfileName=name)
    # AWS refuses while the profile has apps or private spaces: a later pass.
    if profile["Status"] != "Deleting":
        at.call("sagemaker", "delete_user_profile", DomainId=domain, UserProfileName=name)


def _delete_sagemaker_domain(at: _Place, domain_id: str) -> None:
    domain = at.call("sagemaker", "describe_domain", DomainId=domain_id)
    if domain["Status"] == "Deleting":
        return
    # AWS refuses while the domain has user profiles or spaces: a later pass. By default AWS
    # keeps the domain's home EFS file system (and its bill): not at the end of a course.
    at.call(
        "sagemaker",
        "delete_domain",
        DomainId=domain_id,
        RetentionPolicy={"HomeEfsFileSystem": "Delete"},
    )


def _delete_search_domain(at: _Place, name: str) -> None:
    domain = at.call("opensearch", "describe_domain", DomainName=name)["DomainStatus"]
    if not domain.get("Deleted"):
        at.call("opensearch", "delete_domain", DomainName=name)


def _delete_replication_group(at: _Place, name: str) -> None:
    groups = at.call("elasticache", "describe_replication_groups", ReplicationGroupId=name)
    if groups["ReplicationGroups"][0]["Status"] != "deleting":
        # Without a final snapshot, and its primary cluster with it.
        at.call(
            "elasticache",
            "delete_replication_group",
            ReplicationGroupId=name,
            RetainPrimaryCluster=False,
        )


def _delete_cache_cluster(at: _Place, name: str) -> None:
    clusters = at.call("elasticache", "describe_cache_clusters", CacheClusterId=name)
    if clusters["CacheClusters"][0]["CacheClusterStatus"] != "deleting":
        at.call("elasticache", "delete_cache_cluster", CacheClusterId=name)


def _delete_serverless_cache(at: _Place, name: str) -> None:
    caches = at.call("elasticache", "describe_serverless_caches", ServerlessCacheName=name)
    if caches["ServerlessCaches"][0]["Status"] != "deleting":
        at.call("elasticache", "delete_serverless_cache", ServerlessCacheName=name)


def _delete_file_system(at: _Place, system_id: str) -> None:
    targets = list(at.items("efs", "describe_mount_targets", "MountTargets", FileSystemId=system_id))
    for target in targets:
        if target["LifeCycleState"] not in ("deleting", "deleted"):
            _delete_mount_target(at, target["MountTargetId"])
    if not targets:
        # AWS refuses to delete a file system until its mount targets are gone, minutes after
        # they are deleted (FileSystemInUse): a later pass deletes it.
        at.call("efs", "delete_file_system", FileSystemId=system_id)


def _delete_mount_target(at: _Place, target_id: str) -> None:
    try:
        at.call("efs", "delete_mount_target", MountTargetId=target_id)
    except NotFound:
        pass  # gone since it was listed


def _delete_vpc_endpoint(at: _Place, endpoint_id: str) -> None:
    answer = at.call("ec2", "delete_vpc_endpoints", VpcEndpointIds=[endpoint_id])
    # DeleteVpcEndpoints answers 200 and lists the endpoints it did not delete, and why.
    for failure in answer.get("Unsuccessful", []):
        error = failure["Error"]
        raise _refused("delete_vpc_endpoints", error["Code"], error["Message"])


def _delete_db_cluster(at: _Place, identifier: str) -> None:
    clusters = at.call("rds", "describe_db_clusters", DBClusterIdentifier=identifier)
    cluster = clusters["DBClusters"][0]
    if cluster["Status"] == "deleting":
        return
    if cluster.get("DeletionProtection"):
        at.call(
            "rds",
            "modify_db_cluster",
            DBClusterIdentifier=identifier,
            DeletionProtection=False,
            ApplyImmediately=True,
        )
    # AWS refuses while the cluster has instances that are not being deleted
    # (InvalidDBClusterStateFault): rds:db-instance comes first.
    at.call("rds", "delete_db_cluster", DBClusterIdentifier=identifier, SkipFinalSnapshot=True)


def _delete_db_cluster_snapshot(at: _Place, identifier: str) -> None:
    at.call("rds", "delete_db_cluster_snapshot", DBClusterSnapshotIdentifier=identifier)


def _delete_secret(at: _Place, arn: str) -> None:
    secret = at.call("secretsmanager", "describe_secret", SecretId=arn)
    if secret.get("DeletedDate"):
        return  # scheduled for deletion already
    if replicas := [replica["Region"] for replica in secret.get("ReplicationStatus", [])]:
        # AWS refuses to delete a secret that still has replicas in other regions.
        at.call(
            "secretsmanager",
            "remove_regions_from_replication",
            SecretId=arn,
            RemoveReplicaRegions=replicas,
        )
    # At once: by default AWS keeps a deleted secret 7 to 30 days, for it to be restored.
    at.call("secretsmanager", "delete_secret", SecretId=arn, ForceDeleteWithoutRecovery=True)


def _delete_log_group(at: _Place, name: str) -> None:
    groups = at.items("logs", "describe_log_groups", "logGroups", logGroupNamePrefix=name)
    group = next((g for g in groups if g["logGroupName"] == name), None)
    if group is None:
        return
    if group.get("deletionProtectionEnabled"):
        at.call(
            "logs",
            "put_log_group_deletion_protection",
            logGroupIdentifier=name,
            deletionProtectionEnabled=False,
        )
    at.call("logs", "delete_log_group", logGroupName=name)


def _schedule_key_deletion(at: _Place, key_id: str) -> None:
    metadata = at.call("kms", "describe_key", KeyId=key_id)["KeyMetadata"]
    if metadata["KeyState"] in KEYS_PENDING_DELETION:
        return
    # KMS never deletes a key at once: after a waiting period, of at least seven days.
    at.call("kms", "schedule_key_deletion", KeyId=key_id, PendingWindowInDays=KMS_MINIMUM_PENDING_DAYS)


def _delete_hosted_zone(at: _Place, zone_id: str) -> None:
    """Delete every record set but the zone's own NS and SOA (AWS refuses to delete a zone with
    others, HostedZoneNotEmpty, and deletes those two with the zone), then the zone."""
    apex = at.call("route53", "get_hosted_zone", Id=zone_id)["HostedZone"]["Name"]
    listed = at.items("route53", "list_resource_record_sets", "ResourceRecordSets", HostedZoneId=zone_id)
    records = [r for r in listed if not (r["Name"] == apex and r["Type"] in ("NS", "SOA"))]
    # A change batch holds at most 1,000 values: 100 record sets of a few values each keep below.
    for batch in batched(records, 100):
        changes = [{"Action": "DELETE", "ResourceRecordSet": record} for record in batch]
        at.call(
            "route53",
            "change_resource_record_sets",
            HostedZoneId=zone_id,
            ChangeBatch={"Changes": changes},
        )
    at.call("route53", "delete_hosted_zone", Id=zone_id)


_GLOBAL_LISTERS: dict[str, Callable[[str, list[str]], Iterable[Resource]]] = {
    "route53:hosted-zone": _list_hosted_zones,
    "s3:bucket": _list_buckets,
}
_LISTERS: dict[str, Callable[[_Place], Iterable[Resource]]] = {
    "autoscaling:group": _list_auto_scaling_groups,
    "eks:nodegroup": _list_nodegroups,
    "eks:fargate-profile": _list_fargate_profiles,
    "ecs:service": _list_ecs_services,
    "autoscaling:launch-configuration": _list_launch_configurations,
    "ec2:launch-template": _list_launch_templates,
    "cloudformation:stack": _list_stacks,
    "sagemaker:endpoint": _list_endpoints,
    "sagemaker:notebook-instance": _list_notebook_instances,
    "sagemaker:app": _list_studio_apps,
    "sagemaker:space": _list_studio_spaces,
    "sagemaker:user-profile": _list_studio_user_profiles,
    "sagemaker:domain": _list_sagemaker_domains,
    "elbv2:load-balancer": _list_load_balancers,
    "elb:load-balancer": _list_classic_load_balancers,
    "ec2:instance": _list_instances,
    "ecs:cluster": _list_ecs_clusters,
    "eks:cluster": _list_eks_clusters,
    "opensearch:domain": _list_search_domains,
    "elasticache:replication-group": _list_replication_groups,
    "elasticache:cache-cluster": _list_cache_clusters,
    "elasticache:serverless-cache": _list_serverless_caches,
    "efs:file-system": _list_file_systems,
    "ec2:vpc-endpoint": _list_vpc_endpoints,
    "ec2:nat-gateway": _list_nat_gateways,
    "ec2:elastic-ip": _list_elastic_ips,
    "ec2:volume": _list_volumes,
    "ec2:image": _list_images,
    "ec2:snapshot": _list_snapshots,
    "rds:db-instance": _list_db_instances,
    "rds:db-cluster": _list_db_clusters,
    "rds:db-snapshot": _list_db_snapshots,
    "rds:db-cluster-snapshot": _list_db_cluster_snapshots,
    "lambda:function": _list_functions,
    "dynamodb:table": _list_tables,
    "secretsmanager:secret": _list_secrets,
    "logs:log-group": _list_log_groups,
    "kms:key": _list_keys,
    "ecr:repository": _list_repositories,
}
_DELETERS: dict[str, Callable[[_Place, str], None]] = {
    "autoscaling:group": _delete_auto_scaling_group,
    "eks:nodegroup": _delete_nodegroup,
    "eks:fargate-profile": _delete_fargate_profile,
    "ecs:service": _delete_ecs_service,
    "autoscaling:launch-configuration": _delete_launch_configuration,
    "ec2:launch-template": _delete_launch_template,
    "cloudformation:stack": _delete_stack,
    "sagemaker:endpoint": _delete_endpoint,
    "sagemaker:notebook-instance": _delete_notebook_instance,
    "sagemaker:app": _delete_studio_app,
    "sagemaker:space": _delete_studio_space,
    "sagemaker:user-profile": _delete_studio_user_profile,
    "sagemaker:domain": _delete_sagemaker_domain,
    "elbv2:load-balancer": _delete_load_balancer,
    "elb:load-balancer": _delete_classic_load_balancer,
    "ec2:instance": _terminate_instance,
    "ecs:cluster": _delete_ecs_cluster,
    "eks:cluster": _delete_eks_cluster,
    "opensearch:domain": _delete_search_domain,
    "elasticache:replication-group": _delete_replication_group,
    "elasticache:cache-cluster": _delete_cache_cluster,
    "elasticache:serverless-cache": _delete_serverless_cache,
    "efs:file-system": _delete_file_system,
    "ec2:vpc-endpoint": _delete_vpc_endpoint,
    "ec2:nat-gateway": _delete_nat_gateway,
    "ec2:elastic-ip": _release_elastic_ip,
    "ec2:volume": _delete_volume,
    "ec2:image": _deregister_image,
    "ec2:snapshot": _delete_snapshot,
    "rds:db-instance": _delete_db_instance,
    "rds:db-cluster": _delete_db_cluster,
    "rds:db-snapshot": _delete_db_snapshot,
    "rds:db-cluster-snapshot": _delete_db_cluster_snapshot,
    "lambda:function": _delete_function,
    "dynamodb:table": _delete_table,
    "secretsmanager:secret": _delete_secret,
    "logs:log-group": _delete_log_group,
    "kms:key": _schedule_key_deletion,
    "route53:hosted-zone": _delete_hosted_zone,
    "ecr:repository": _delete_repository,
    "s3:bucket": _delete_bucket,
}


def _iam_lister(kind: str) -> Callable[[str, list[str]], Iterator[Resource]]:
    """IAM is global: one listing, whatever the regions."""

    def listed(account_id: str, regions: list[str]) -> Iterator[Resource]:
        for id, label in cleanup_iam.LISTERS[kind](account_id):
            yield Resource(region=cleanup_iam.REGION, kind=kind, id=id, label=label)

    return listed


def _iam_deleter(kind: str) -> Callable[[_Place, str], None]:
    return lambda at, id: cleanup_iam.DELETERS[kind](at.account_id, id)


_GLOBAL_LISTERS.update({kind: _iam_lister(kind) for kind in cleanup_iam.KIND_LABELS})
_DELETERS.update({kind: _iam_deleter(kind) for kind in cleanup_iam.KIND_LABELS})
