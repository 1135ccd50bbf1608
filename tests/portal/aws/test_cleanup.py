"""The end-of-course cleanup of a member account, against moto.

Resources are made inside a member account (through its organization role, as the portal reaches
it), then listed and deleted by portal.aws.cleanup. Where AWS answers differently from moto (moto
terminates an instance at once, never refuses to delete a protected load balancer or stack, and
has no UpdateTerminationProtection), a `before-call` hook or an `AwsScript` gives AWS's real
answer; each test that does says which. moto lacks SageMaker Studio apps, spaces and user
profiles and ElastiCache serverless caches altogether: `Studio` and `ServerlessCaches` answer
for them as AWS does.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable

import pytest
from botocore.awsrequest import AWSResponse

from accounts_app.services.cleanup import cleanup_regions
from portal.aws import cleanup, cleanup_iam
from portal.aws.cleanup import KIND_LABELS, KINDS, Resource
from portal.aws.errors import AwsError, PermanentAwsError
from tests.support.aws_script import PASS, AwsScript, Fault

pytestmark = pytest.mark.django_db

REGION = "us-east-1"
OTHER_REGION = "eu-west-1"
IMAGE_ID = "ami-12c6146b"  # any id does: moto does not check images


@pytest.fixture
def member(aws) -> str:
    """A new member account of the organization: its id."""
    status = aws.client("organizations").create_account(Email="student@school.example", AccountName="student")[
        "CreateAccountStatus"
    ]
    return status["AccountId"]


def _in(aws, member: str, service: str, region: str = REGION):
    """A client inside the member account."""
    return aws.client(service, account_id=member, region=region)


def _aws_error(code: str, message: str, status: int = 400):
    """An answer for a before-call hook: AWS's error, as botocore parses it."""
    parsed = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return AWSResponse(None, status, {}, None), parsed


def _listed(member: str, kind: str, regions=(REGION,)) -> dict[str, str]:
    """The inventory's resources of one kind: id → label."""
    return {r.id: r.label for r in cleanup.inventory(member, regions) if r.kind == kind}


def _clean(member: str, regions, *, max_passes: int = 5) -> list[dict[Resource, AwsError | None]]:
    """What the caller does: list, delete each, list again, until nothing is left or a pass
    deletes nothing of what stays listed. Returns each pass's outcome, resource by resource
    (None: deleted, or its deletion started)."""
    passes: list[dict[Resource, AwsError | None]] = []
    remaining = cleanup.inventory(member, regions)
    while remaining and len(passes) < max_passes:
        outcome: dict[Resource, AwsError | None] = {}
        for resource in remaining:
            try:
                cleanup.delete(member, resource)
                outcome[resource] = None
            except AwsError as error:
                outcome[resource] = error
        passes.append(outcome)
        left = cleanup.inventory(member, regions)
        if _places(left) == _places(remaining) and None not in outcome.values():
            break
        remaining = left
    return passes


def _places(resources: list[Resource]) -> set[tuple[str, str, str]]:
    return {(r.region, r.kind, r.id) for r in resources}


def _run_instance(aws, member: str, name: str = "web", region: str = REGION, **options) -> dict:
    return _in(aws, member, "ec2", region).run_instances(
        ImageId=IMAGE_ID,
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.micro",
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}],
        **options,
    )["Instances"][0]


def _lambda_role(aws, member: str) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    return _in(aws, member, "iam").create_role(RoleName="lab-function", AssumeRolePolicyDocument=json.dumps(trust))[
        "Role"
    ]["Arn"]


def _db_instance(aws, member: str, name: str = "lab-db", **options) -> dict:
    return _in(aws, member, "rds").create_db_instance(
        DBInstanceIdentifier=name,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="student",
        MasterUserPassword="not-a-secret-1",
        AllocatedStorage=20,
        **options,
    )["DBInstance"]


def _table(aws, member: str, name: str = "scores", region: str = REGION, **options) -> None:
    _in(aws, member, "dynamodb", region).create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "student", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "student", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        **options,
    )


def _bucket(aws, member: str, name: str, region: str = REGION):
    s3 = _in(aws, member, "s3", region)
    location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=name, **location)
    return s3


def _subnets(aws, member: str, region: str = REGION) -> list[str]:
    """Two subnets of the member account's default VPC."""
    subnets = _in(aws, member, "ec2", region).describe_subnets()["Subnets"]
    return [subnet["SubnetId"] for subnet in subnets[:2]]


def _launch_template(aws, member: str, name: str = "web", **options) -> str:
    return _in(aws, member, "ec2").create_launch_template(
        LaunchTemplateName=name,
        LaunchTemplateData={"ImageId": IMAGE_ID, "InstanceType": "t3.micro"},
        **options,
    )["LaunchTemplate"]["LaunchTemplateId"]


def _auto_scaling_group(aws, member: str, name: str = "web-fleet", **options) -> None:
    """A group of two instances, launched from a template of its own."""
    _in(aws, member, "autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateId": _launch_template(aws, member, name)},
        MinSize=1,
        MaxSize=3,
        DesiredCapacity=2,
        VPCZoneIdentifier=_subnets(aws, member)[0],
        **options,
    )


def _eks_cluster(aws, member: str, name: str = "lab"):
    eks = _in(aws, member, "eks")
    eks.create_cluster(
        name=name,
        version="1.31",
        roleArn=f"arn:aws:iam::{member}:role/eks",
        resourcesVpcConfig={"subnetIds": _subnets(aws, member)},
    )
    return eks


def _nodegroup(aws, member: str, cluster: str = "lab", name: str = "workers") -> None:
    _in(aws, member, "eks").create_nodegroup(
        clusterName=cluster,
        nodegroupName=name,
        nodeRole=f"arn:aws:iam::{member}:role/eks-node",
        subnets=_subnets(aws, member),
        scalingConfig={"minSize": 1, "maxSize": 3, "desiredSize": 2},
        instanceTypes=["t3.medium"],
    )


def _fargate_profile(aws, member: str, cluster: str = "lab", name: str = "pods") -> None:
    _in(aws, member, "eks").create_fargate_profile(
        clusterName=cluster,
        fargateProfileName=name,
        podExecutionRoleArn=f"arn:aws:iam::{member}:role/eks-pods",
        selectors=[{"namespace": "default"}],
    )


def _fargate_network(aws, member: str) -> dict:
    return {"awsvpcConfiguration": {"subnets": _subnets(aws, member), "securityGroups": []}}


def _ecs_service(aws, member: str, cluster: str = "lab", name: str = "web"):
    """An ECS cluster with a Fargate service of two tasks."""
    ecs = _in(aws, member, "ecs")
    ecs.create_cluster(clusterName=cluster)
    ecs.register_task_definition(
        family=name,
        containerDefinitions=[{"name": name, "image": "nginx", "memory": 128}],
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
    )
    ecs.create_service(
        cluster=cluster,
        serviceName=name,
        taskDefinition=name,
        desiredCount=2,
        launchType="FARGATE",
        networkConfiguration=_fargate_network(aws, member),
    )
    return ecs


def _sagemaker_domain(aws, member: str) -> str:
    domain_arn = _in(aws, member, "sagemaker").create_domain(
        DomainName="studio",
        AuthMode="IAM",
        DefaultUserSettings={"ExecutionRole": f"arn:aws:iam::{member}:role/sagemaker"},
        SubnetIds=_subnets(aws, member),
        VpcId=_in(aws, member, "ec2").describe_vpcs()["Vpcs"][0]["VpcId"],
    )["DomainArn"]
    return domain_arn.rsplit("/", 1)[-1]


def _db_cluster(aws, member: str, name: str = "lab-aurora", **options):
    rds = _in(aws, member, "rds")
    rds.create_db_cluster(
        DBClusterIdentifier=name,
        Engine="aurora-postgresql",
        MasterUsername="student",
        MasterUserPassword="not-a-secret-1",
        **options,
    )
    return rds


def _hosted_zone(aws, member: str, name: str = "lab.example.com", records: int = 1) -> str:
    """A public zone with `records` A records besides its own NS and SOA; its id."""
    route53 = _in(aws, member, "route53")
    zone_id = route53.create_hosted_zone(Name=name, CallerReference=name)["HostedZone"]["Id"]
    changes = [
        {
            "Action": "CREATE",
            "ResourceRecordSet": {
                "Name": f"host-{number}.{name}",
                "Type": "A",
                "TTL": 60,
                "ResourceRecords": [{"Value": f"10.0.{number // 250}.{number % 250 + 1}"}],
            },
        }
        for number in range(records)
    ]
    route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})
    return zone_id.removeprefix("/hostedzone/")


class Studio:
    """SageMaker Studio's apps, spaces and user profiles, which moto lacks, answered as AWS does
    (moto keeps the domains): a deletion is under way ("Deleting") until the next listing, a
    later pass; a space or user profile whose apps are not deleted yet, and a domain that still
    has user profiles or spaces, are refused (ResourceInUse)."""

    def __init__(self, script: AwsScript, domain_id: str):
        self.domain_id = domain_id
        self.apps: dict[tuple[str, str, str, str], str] = {}  # (owner field, owner, type, name)
        self.spaces: dict[str, str] = {}  # name → status
        self.profiles: dict[str, str] = {}
        for operation, answer in {
            "ListApps": self._list_apps,
            "DescribeApp": self._describe_app,
            "DeleteApp": self._delete_app,
            "ListSpaces": self._list_spaces,
            "DescribeSpace": lambda p: self._describe(self.spaces, "SpaceName", p),
            "DeleteSpace": self._delete_space,
            "ListUserProfiles": self._list_profiles,
            "DescribeUserProfile": lambda p: self._describe(self.profiles, "UserProfileName", p),
            "DeleteUserProfile": self._delete_profile,
            "DeleteDomain": self._delete_domain,
        }.items():
            script.always("sagemaker", operation, answer)

    def add_app(self, owner_field: str, owner: str, app_type: str, name: str = "default"):
        self.apps[(owner_field, owner, app_type, name)] = "InService"

    def _settle(self) -> None:
        """What AWS finished deleting since the last listing."""
        for key, status in self.apps.items():
            if status == "Deleting":
                self.apps[key] = "Deleted"
        for things in (self.spaces, self.profiles):
            for name in [name for name, status in things.items() if status == "Deleting"]:
                del things[name]

    def _app(self, key, status: str) -> dict:
        owner_field, owner, app_type, name = key
        return {
            "DomainId": self.domain_id,
            owner_field: owner,
            "AppType": app_type,
            "AppName": name,
            "Status": status,
        }

    def _list_apps(self, params) -> dict:
        self._settle()
        return {"Apps": [self._app(key, status) for key, status in self.apps.items()]}

    def _app_key(self, params) -> tuple[str, str, str, str]:
        owner_field = "SpaceName" if params.get("SpaceName") else "UserProfileName"
        return owner_field, params[owner_field], params["AppType"], params["AppName"]

    def _describe_app(self, params):
        key = self._app_key(params)
        if key not in self.apps:
            return Fault("ResourceNotFound", f"App {params['AppName']} does not exist")
        return self._app(key, self.apps[key])

    def _delete_app(self, params):
        self.apps[self._app_key(params)] = "Deleting"
        return {}

    def _describe(self, things: dict, field: str, params):
        if params[field] not in things:
            return Fault("ResourceNotFound", f"{params[field]} does not exist")
        return {"DomainId": self.domain_id, field: params[field], "Status": things[params[field]]}

    def _list_spaces(self, params) -> dict:
        self._settle()
        spaces = [self._describe(self.spaces, "SpaceName", {"SpaceName": name}) for name in self.spaces]
        return {"Spaces": spaces}

    def _list_profiles(self, params) -> dict:
        self._settle()
        profiles = [
            self._describe(self.profiles, "UserProfileName", {"UserProfileName": name}) for name in self.profiles
        ]
        return {"UserProfiles": profiles}

    def _apps_left(self, owner_field: str, owner: str) -> bool:
        return any(key[:2] == (owner_field, owner) and status != "Deleted" for key, status in self.apps.items())

    def _delete_space(self, params):
        if self._apps_left("SpaceName", params["SpaceName"]):
            return Fault("ResourceInUse", "Space has apps that are not deleted")
        self.spaces[params["SpaceName"]] = "Deleting"
        return {}

    def _delete_profile(self, params):
        if self._apps_left("UserProfileName", params["UserProfileName"]):
            return Fault("ResourceInUse", "User profile has apps that are not deleted")
        self.profiles[params["UserProfileName"]] = "Deleting"
        return {}

    def _delete_domain(self, params):
        if self.spaces or self.profiles:
            return Fault("ResourceInUse", "Domain has user profiles or spaces")
        return PASS  # moto deletes the domain


class ServerlessCaches:
    """ElastiCache serverless caches, which moto lacks, answered as AWS does: a cache being
    deleted stays listed, "deleting", for minutes."""

    def __init__(self, script: AwsScript, *names: str):
        self.status = dict.fromkeys(names, "available")
        script.always("elasticache", "DescribeServerlessCaches", self._describe)
        script.always("elasticache", "DeleteServerlessCache", self._delete)

    def _cache(self, name: str) -> dict:
        return {"ServerlessCacheName": name, "Engine": "valkey", "Status": self.status[name]}

    def _describe(self, params):
        name = params.get("ServerlessCacheName")
        if name is None:
            return {"ServerlessCaches": [self._cache(n) for n in self.status]}
        if name not in self.status:
            return Fault("ServerlessCacheNotFoundFault", f"Serverless cache {name} not found")
        return {"ServerlessCaches": [self._cache(name)]}

    def _delete(self, params):
        self.status[params["ServerlessCacheName"]] = "deleting"
        return {"ServerlessCache": self._cache(params["ServerlessCacheName"])}


# --- One resource of each kind --------------------------------------------------------------------
# Each maker creates one resource in the member account and returns its id and expected label.


def _make_stack(aws, member):
    template = json.dumps({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}})
    stack_id = _in(aws, member, "cloudformation").create_stack(StackName="course-lab", TemplateBody=template)["StackId"]
    return stack_id, "course-lab: CREATE_COMPLETE"


def _make_endpoint(aws, member):
    sagemaker = _in(aws, member, "sagemaker")
    sagemaker.create_model(
        ModelName="digits",
        ExecutionRoleArn=f"arn:aws:iam::{member}:role/sagemaker",
        PrimaryContainer={"Image": "digits:latest"},
    )
    variant = {
        "VariantName": "all",
        "ModelName": "digits",
        "InitialInstanceCount": 1,
        "InstanceType": "ml.t2.medium",
    }
    sagemaker.create_endpoint_config(EndpointConfigName="digits", ProductionVariants=[variant])
    sagemaker.create_endpoint(EndpointName="digits", EndpointConfigName="digits")
    return "digits", "digits: InService"


def _make_stopped_notebook(aws, member):
    sagemaker = _in(aws, member, "sagemaker")
    sagemaker.create_notebook_instance(
        NotebookInstanceName="lab-notebook",
        InstanceType="ml.t3.medium",
        RoleArn=f"arn:aws:iam::{member}:role/sagemaker",
    )
    sagemaker.stop_notebook_instance(NotebookInstanceName="lab-notebook")
    return "lab-notebook", "lab-notebook: ml.t3.medium, Stopped"


def _make_load_balancer(aws, member):
    subnets = [s["SubnetId"] for s in _in(aws, member, "ec2").describe_subnets()["Subnets"][:2]]
    balancer = _in(aws, member, "elbv2").create_load_balancer(Name="web", Subnets=subnets)["LoadBalancers"][0]
    return balancer["LoadBalancerArn"], "web: application load balancer, active"


def _make_classic_load_balancer(aws, member):
    elb = _in(aws, member, "elb")
    listener = {"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}
    dns = elb.create_load_balancer(LoadBalancerName="legacy", Listeners=[listener], AvailabilityZones=["us-east-1a"])[
        "DNSName"
    ]
    return "legacy", f"legacy: classic load balancer, {dns}"


def _make_instance(aws, member):
    instance_id = _run_instance(aws, member)["InstanceId"]
    return instance_id, f"web ({instance_id}): t3.micro, running"


def _make_nat_gateway(aws, member):
    ec2 = _in(aws, member, "ec2")
    subnet = ec2.describe_subnets()["Subnets"][0]
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    gateway = ec2.create_nat_gateway(SubnetId=subnet["SubnetId"], AllocationId=allocation)["NatGateway"]
    return gateway["NatGatewayId"], f"{gateway['NatGatewayId']}: in {subnet['VpcId']}, available"


def _make_elastic_ip(aws, member):
    address = _in(aws, member, "ec2").allocate_address(Domain="vpc")
    return address["AllocationId"], f"{address['AllocationId']}: {address['PublicIp']}, not attached"


def _make_volume(aws, member):
    volume_id = _in(aws, member, "ec2").create_volume(AvailabilityZone="us-east-1a", Size=8, VolumeType="gp3")[
        "VolumeId"
    ]
    return volume_id, f"{volume_id}: 8 GiB gp3, available"


def _make_image(aws, member):
    image_id = _in(aws, member, "ec2").register_image(Name="lab-image")["ImageId"]
    return image_id, f"lab-image ({image_id}): available"


def _make_snapshot(aws, member):
    ec2 = _in(aws, member, "ec2")
    volume_id = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
    snapshot_id = ec2.create_snapshot(VolumeId=volume_id, Description="before the exam")["SnapshotId"]
    ec2.delete_volume(VolumeId=volume_id)
    return snapshot_id, f'{snapshot_id}: 8 GiB, of {volume_id}, "before the exam"'


def _make_db_instance(aws, member):
    _db_instance(aws, member)
    return "lab-db", "lab-db: postgres db.t3.micro, available"


def _make_db_snapshot(aws, member):
    _db_instance(aws, member)
    rds = _in(aws, member, "rds")
    rds.create_db_snapshot(DBInstanceIdentifier="lab-db", DBSnapshotIdentifier="lab-db-final")
    rds.delete_db_instance(DBInstanceIdentifier="lab-db", SkipFinalSnapshot=True)
    return "lab-db-final", "lab-db-final: postgres snapshot of lab-db, 20 GiB"


def _make_function(aws, member):
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handle(event, context):\n    return event\n")
    _in(aws, member, "lambda").create_function(
        FunctionName="grader",
        Runtime="python3.12",
        Role=_lambda_role(aws, member),
        Handler="handler.handle",
        Code={"ZipFile": code.getvalue()},
    )
    return "grader", "grader: python3.12"


def _make_table(aws, member):
    _table(aws, member)
    return "scores", "scores: ACTIVE"


def _make_repository(aws, member):
    ecr = _in(aws, member, "ecr")
    uri = ecr.create_repository(repositoryName="lab-images")["repository"]["repositoryUri"]
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    }
    ecr.put_image(repositoryName="lab-images", imageManifest=json.dumps(manifest), imageTag="latest")
    return "lab-images", f"lab-images: {uri}"


def _make_bucket(aws, member):
    _bucket(aws, member, "student-notes").put_object(Bucket="student-notes", Key="notes.txt", Body=b"hi")
    return "student-notes", "student-notes"


def _make_auto_scaling_group(aws, member):
    _auto_scaling_group(aws, member)
    return "web-fleet", "web-fleet: 2 instances, 1 to 3"


def _make_nodegroup(aws, member):
    _eks_cluster(aws, member)
    _nodegroup(aws, member)
    return "lab/workers", "workers in lab: 2 × t3.medium, ACTIVE"


def _make_fargate_profile(aws, member):
    _eks_cluster(aws, member)
    _fargate_profile(aws, member)
    return "lab/pods", "pods in lab: ACTIVE"


def _make_ecs_service(aws, member):
    _ecs_service(aws, member)
    return "lab/web", "web in lab: 0 of 2 tasks running"


def _make_launch_configuration(aws, member):
    _in(aws, member, "autoscaling").create_launch_configuration(
        LaunchConfigurationName="web-2019", ImageId=IMAGE_ID, InstanceType="t2.micro"
    )
    return "web-2019", f"web-2019: t2.micro from {IMAGE_ID}"


def _make_launch_template(aws, member):
    template_id = _launch_template(aws, member)
    return template_id, f"web ({template_id}): latest version 1"


def _make_studio_app(aws, member):
    Studio(AwsScript(aws), "d-lab").add_app("SpaceName", "lab-space", "JupyterLab")
    return (
        "d-lab/space/lab-space/JupyterLab/default",
        "JupyterLab default of space lab-space in d-lab: InService",
    )


def _make_studio_space(aws, member):
    Studio(AwsScript(aws), "d-lab").spaces["lab-space"] = "InService"
    return "d-lab/lab-space", "lab-space in d-lab: InService"


def _make_studio_user_profile(aws, member):
    Studio(AwsScript(aws), "d-lab").profiles["ada"] = "InService"
    return "d-lab/ada", "ada in d-lab: InService"


def _make_sagemaker_domain(aws, member):
    domain_id = _sagemaker_domain(aws, member)
    return domain_id, f"studio ({domain_id}): InService"


def _make_ecs_cluster(aws, member):
    _in(aws, member, "ecs").create_cluster(clusterName="lab")
    return "lab", "lab: 0 services, 0 tasks running, 0 container instances"


def _make_eks_cluster(aws, member):
    _eks_cluster(aws, member)
    return "lab", "lab: Kubernetes 1.31, ACTIVE"


def _make_search_domain(aws, member):
    _in(aws, member, "opensearch").create_domain(
        DomainName="search",
        EngineVersion="OpenSearch_2.11",
        ClusterConfig={"InstanceType": "t3.small.search", "InstanceCount": 1},
    )
    return "search", "search: OpenSearch_2.11, 1 × t3.small.search"


def _make_replication_group(aws, member):
    _in(aws, member, "elasticache").create_replication_group(
        ReplicationGroupId="sessions",
        ReplicationGroupDescription="web sessions",
        Engine="redis",
        CacheNodeType="cache.t3.micro",
        NumCacheClusters=1,
    )
    return "sessions", "sessions: 1 × cache.t3.micro, available"


def _make_cache_cluster(aws, member):
    _in(aws, member, "elasticache").create_cache_cluster(
        CacheClusterId="memo", Engine="memcached", CacheNodeType="cache.t3.micro", NumCacheNodes=1
    )
    return "memo", "memo: memcached, 1 × cache.t3.micro, available"


def _make_serverless_cache(aws, member):
    ServerlessCaches(AwsScript(aws), "sessions")
    return "sessions", "sessions: serverless valkey, available"


def _make_file_system(aws, member):
    system_id = _in(aws, member, "efs").create_file_system(
        CreationToken="home", Tags=[{"Key": "Name", "Value": "home"}]
    )["FileSystemId"]
    return system_id, f"home ({system_id}): 0 bytes, 0 mount targets"


def _make_vpc_endpoint(aws, member):
    ec2 = _in(aws, member, "ec2")
    vpc_id = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    endpoint_id = ec2.create_vpc_endpoint(
        VpcId=vpc_id,
        ServiceName="com.amazonaws.us-east-1.s3",
        VpcEndpointType="Interface",
        SubnetIds=_subnets(aws, member)[:1],
    )["VpcEndpoint"]["VpcEndpointId"]
    details = f"Interface endpoint of com.amazonaws.us-east-1.s3 in {vpc_id}"
    return endpoint_id, f"{endpoint_id}: {details}"


def _make_db_cluster(aws, member):
    _db_cluster(aws, member)
    return "lab-aurora", "lab-aurora: aurora-postgresql, 0 instances, available"


def _make_db_cluster_snapshot(aws, member):
    rds = _db_cluster(aws, member)
    rds.create_db_cluster_snapshot(DBClusterIdentifier="lab-aurora", DBClusterSnapshotIdentifier="lab-aurora-final")
    rds.delete_db_cluster(DBClusterIdentifier="lab-aurora", SkipFinalSnapshot=True)
    return "lab-aurora-final", "lab-aurora-final: aurora-postgresql snapshot of lab-aurora, 1 GiB"


def _make_secret(aws, member):
    arn = _in(aws, member, "secretsmanager").create_secret(
        Name="lab/db-password",
        SecretString="not-a-secret-1",
        Description="password of the lab database",
    )["ARN"]
    return arn, "lab/db-password: password of the lab database"


def _make_log_group(aws, member):
    _in(aws, member, "logs").create_log_group(logGroupName="/aws/lambda/grader")
    return "/aws/lambda/grader", "/aws/lambda/grader: 0 bytes stored"


def _make_key(aws, member):
    kms = _in(aws, member, "kms")
    key_id = kms.create_key(Description="lab data")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/lab", TargetKeyId=key_id)
    return key_id, f"alias/lab ({key_id}): SYMMETRIC_DEFAULT, Enabled"


def _make_hosted_zone(aws, member):
    zone_id = _hosted_zone(aws, member)
    return zone_id, "lab.example.com: public, 3 record sets"


MAKERS: dict[str, Callable] = {
    "autoscaling:group": _make_auto_scaling_group,
    "eks:nodegroup": _make_nodegroup,
    "eks:fargate-profile": _make_fargate_profile,
    "ecs:service": _make_ecs_service,
    "autoscaling:launch-configuration": _make_launch_configuration,
    "ec2:launch-template": _make_launch_template,
    "cloudformation:stack": _make_stack,
    "sagemaker:endpoint": _make_endpoint,
    "sagemaker:notebook-instance": _make_stopped_notebook,
    "sagemaker:app": _make_studio_app,
    "sagemaker:space": _make_studio_space,
    "sagemaker:user-profile": _make_studio_user_profile,
    "sagemaker:domain": _make_sagemaker_domain,
    "elbv2:load-balancer": _make_load_balancer,
    "elb:load-balancer": _make_classic_load_balancer,
    "ec2:instance": _make_instance,
    "ecs:cluster": _make_ecs_cluster,
    "eks:cluster": _make_eks_cluster,
    "opensearch:domain": _make_search_domain,
    "elasticache:replication-group": _make_replication_group,
    "elasticache:cache-cluster": _make_cache_cluster,
    "elasticache:serverless-cache": _make_serverless_cache,
    "efs:file-system": _make_file_system,
    "ec2:vpc-endpoint": _make_vpc_endpoint,
    "ec2:nat-gateway": _make_nat_gateway,
    "ec2:elastic-ip": _make_elastic_ip,
    "ec2:volume": _make_volume,
    "ec2:image": _make_image,
    "ec2:snapshot": _make_snapshot,
    "rds:db-instance": _make_db_instance,
    "rds:db-cluster": _make_db_cluster,
    "rds:db-snapshot": _make_db_snapshot,
    "rds:db-cluster-snapshot": _make_db_cluster_snapshot,
    "lambda:function": _make_function,
    "dynamodb:table": _make_table,
    "secretsmanager:secret": _make_secret,
    "logs:log-group": _make_log_group,
    "kms:key": _make_key,
    "route53:hosted-zone": _make_hosted_zone,
    "ecr:repository": _make_repository,
    "s3:bucket": _make_bucket,
}


def test_every_kind_has_a_maker_here_and_a_plain_english_name():
    # IAM's kinds have theirs in tests/portal/aws/test_cleanup_iam.py.
    assert set(MAKERS) | set(cleanup_iam.KIND_LABELS) == set(KINDS) == set(KIND_LABELS)
    assert all(KIND_LABELS[kind][0].isupper() and KIND_LABELS[kind].endswith("s") for kind in KINDS)


@pytest.mark.parametrize("kind", MAKERS)
def test_each_kind_is_listed_deleted_and_deleting_it_again_is_harmless(aws, member, kind):
    resource_id, label = MAKERS[kind](aws, member)

    assert _listed(member, kind) == {resource_id: label}

    cleanup.delete(member, Resource(REGION, kind, resource_id, label))

    assert _listed(member, kind) == {}
    cleanup.delete(member, Resource(REGION, kind, resource_id, label))  # already gone: no error


def test_dependents_come_before_what_they_hold():
    def before(first: str, then: str) -> bool:
        return KINDS.index(first) < KINDS.index(then)

    assert before("ec2:instance", "ec2:volume")
    assert before("ec2:instance", "ec2:elastic-ip")
    assert before("ec2:nat-gateway", "ec2:elastic-ip")
    assert before("ec2:image", "ec2:snapshot")
    assert before("elbv2:load-balancer", "ec2:instance")
    assert before("rds:db-instance", "rds:db-snapshot")
    # What launches instances again goes before them, and before what it launches from.
    assert KINDS[0] == "autoscaling:group"
    for relauncher in ("eks:nodegroup", "ecs:service"):
        assert before(relauncher, "ec2:instance")
    assert before("autoscaling:group", "autoscaling:launch-configuration")
    assert before("autoscaling:group", "ec2:launch-template")
    assert before("ecs:service", "ecs:cluster")
    assert before("eks:nodegroup", "eks:cluster")
    assert before("eks:fargate-profile", "eks:cluster")
    for held in ("sagemaker:app", "sagemaker:space", "sagemaker:user-profile"):
        assert before(held, "sagemaker:domain")
    assert before("sagemaker:app", "sagemaker:space")
    assert before("sagemaker:domain", "efs:file-system")  # it deletes its own
    assert before("rds:db-instance", "rds:db-cluster")
    assert before("rds:db-cluster", "rds:db-cluster-snapshot")
    assert before("elasticache:replication-group", "elasticache:cache-cluster")
    assert before("lambda:function", "logs:log-group")  # which it would make again


def test_a_resource_goes_to_the_database_and_back():
    resource = Resource("eu-west-1", "s3:bucket", "student-notes", "student-notes")

    stored = json.loads(json.dumps(resource.as_dict()))

    assert stored == {
        "region": "eu-west-1",
        "kind": "s3:bucket",
        "id": "student-notes",
        "label": "student-notes",
    }
    assert Resource.from_dict(stored) == resource


# --- Regions and accounts -------------------------------------------------------------------------


def test_enabled_regions_are_those_that_need_no_opt_in_or_were_opted_in(aws, member):
    everything = _in(aws, member, "ec2").describe_regions(AllRegions=True)["Regions"]
    not_opted_in = {r["RegionName"] for r in everything if r["OptInStatus"] == "not-opted-in"}

    regions = cleanup.enabled_regions(member)

    assert {"us-east-1", "eu-west-1"} <= set(regions)
    assert not_opted_in and not set(regions) & not_opted_in
    assert regions == sorted(regions)


def test_by_default_cleanup_looks_in_every_region_the_account_has_enabled(aws, member, settings):
    settings.PORTAL_CLEANUP_REGIONS = []
    everything = _in(aws, member, "ec2").describe_regions(AllRegions=True)["Regions"]
    enabled = {r["RegionName"] for r in everything if r["OptInStatus"] != "not-opted-in"}

    assert set(cleanup_regions(member)) == enabled
    assert len(enabled) > 10


def test_buckets_and_hosted_zones_are_listed_once_however_many_regions(aws, member):
    """Both are global: one listing for the account, each bucket placed in its region, a hosted
    zone in Route 53's whatever the regions looked in."""
    script = AwsScript(aws)
    _bucket(aws, member, "notes-away", region=OTHER_REGION)
    zone_id, label = _make_hosted_zone(aws, member)
    zone = Resource(cleanup.ROUTE53_REGION, "route53:hosted-zone", zone_id, label)
    bucket = Resource(OTHER_REGION, "s3:bucket", "notes-away", "notes-away")

    assert cleanup.inventory(member, [REGION, OTHER_REGION]) == [zone, bucket]
    assert cleanup.inventory(member, [OTHER_REGION]) == [zone, bucket]
    assert (script.calls["ListHostedZones"], script.calls["ListBuckets"]) == (2, 2)


def test_a_member_account_with_nothing_in_it_has_an_empty_inventory(aws, member):
    # The management account's own things are not the student's.
    aws.client("s3").create_bucket(Bucket="portal-exports")
    aws.client("ec2").run_instances(ImageId=IMAGE_ID, MinCount=1, MaxCount=1)

    assert cleanup.inventory(member, cleanup.enabled_regions(member)) == []


def test_resources_in_two_regions_are_listed_where_they_are_and_all_deleted(aws, member):
    home = _run_instance(aws, member, "home")["InstanceId"]
    away = _run_instance(aws, member, "away", region=OTHER_REGION)["InstanceId"]
    _bucket(aws, member, "notes-home")
    _bucket(aws, member, "notes-away", region=OTHER_REGION)
    _table(aws, member, "scores-away", region=OTHER_REGION)
    both = [REGION, OTHER_REGION]

    found = cleanup.inventory(member, both)

    placed = {(r.region, r.kind, r.id) for r in found if r.kind != "ec2:volume"}
    assert placed == {
        (REGION, "ec2:instance", home),
        (OTHER_REGION, "ec2:instance", away),
        (REGION, "s3:bucket", "notes-home"),
        (OTHER_REGION, "s3:bucket", "notes-away"),
        (OTHER_REGION, "dynamodb:table", "scores-away"),
    }
    assert {r.region for r in found if r.kind == "ec2:volume"} == {
        REGION,
        OTHER_REGION,
    }  # root volumes
    assert [KINDS.index(r.kind) for r in found] == sorted(KINDS.index(r.kind) for r in found)
    assert {r.id for r in cleanup.inventory(member, [REGION])} & {
        away,
        "notes-away",
        "scores-away",
    } == set()

    passes = _clean(member, both)

    assert all(error is None for outcome in passes for error in outcome.values())
    assert cleanup.inventory(member, both) == []


def _errors(passes: list[dict[Resource, AwsError | None]]) -> list[dict[str, str | None]]:
    """Each pass's outcome as kind/id → AWS's error code (None: deleted)."""
    return [{f"{r.kind} {r.id}": error.code if error else None for r, error in outcome.items()} for outcome in passes]


# --- What relaunches things -----------------------------------------------------------------------


def test_an_auto_scaling_group_goes_first_with_its_instances_and_launches_no_more(aws, member):
    """AWS refuses to delete a group that still has instances unless forced (moto deletes it
    anyway): scripted. A group left behind would launch new instances for those terminated."""
    script = AwsScript(aws)
    _auto_scaling_group(aws, member)
    autoscaling = _in(aws, member, "autoscaling")

    def refuse_unless_forced(params):
        (group,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[params["AutoScalingGroupName"]])[
            "AutoScalingGroups"
        ]
        if group["Instances"] and not params.get("ForceDelete"):
            return Fault(
                "ResourceInUse",
                "You cannot delete an AutoScalingGroup while there are instances or pending Spot "
                "instance request(s) still in the group.",
            )
        return PASS

    script.always("auto-scaling", "DeleteAutoScalingGroup", refuse_unless_forced)
    instances = {r.id for r in cleanup.inventory(member, [REGION]) if r.kind == "ec2:instance"}
    assert len(instances) == 2

    passes = _clean(member, [REGION])

    assert [set(outcome.values()) for outcome in passes] == [{None}]
    assert cleanup.inventory(member, [REGION]) == []
    deletions = [c for c in script.log if c in ("DeleteAutoScalingGroup", "TerminateInstances")]
    assert deletions[0] == "DeleteAutoScalingGroup"
    assert script.params["DeleteAutoScalingGroup"][0]["ForceDelete"] is True
    reservations = _in(aws, member, "ec2").describe_instances()["Reservations"]
    states = {i["InstanceId"]: i["State"]["Name"] for r in reservations for i in r["Instances"]}
    assert states == dict.fromkeys(instances, "terminated")


def test_deletion_protection_does_not_keep_an_auto_scaling_group(aws, member):
    """moto has no Auto Scaling deletion protection: AWS's, scripted. A protected group is
    shown so, and refused until its protection is "none"."""
    script = AwsScript(aws)
    _auto_scaling_group(aws, member)
    protection = {"web-fleet": "prevent-all-deletion"}

    def show_protection(parsed, **kwargs):
        for group in parsed.get("AutoScalingGroups", []):
            group["DeletionProtection"] = protection[group["AutoScalingGroupName"]]

    def update(params):
        protection[params["AutoScalingGroupName"]] = params["DeletionProtection"]
        return {}

    def refuse_while_protected(params):
        if protection[params["AutoScalingGroupName"]] != "none":
            return Fault("ValidationError", "Deletion protection is enabled for this group.")
        return PASS

    aws.add_hook("after-call.auto-scaling.DescribeAutoScalingGroups", show_protection)
    script.always("auto-scaling", "UpdateAutoScalingGroup", update)
    script.always("auto-scaling", "DeleteAutoScalingGroup", refuse_while_protected)

    cleanup.delete(member, Resource(REGION, "autoscaling:group", "web-fleet"))

    assert protection == {"web-fleet": "none"}
    assert _listed(member, "autoscaling:group") == {}


def test_what_an_eks_node_group_launches_from_is_left_to_the_node_group(aws, member):
    """EKS makes an Auto Scaling group and a launch template for each managed node group,
    tagged with its name (moto makes neither: made here as EKS does); deleting them under the
    node group would leave it degraded. Deleting the node group deletes them."""
    nodegroup_tag = {"Key": "eks:nodegroup-name", "Value": "workers"}
    template_tags = [{"ResourceType": "launch-template", "Tags": [nodegroup_tag]}]
    template_id = _launch_template(aws, member, "eks-1a2b", TagSpecifications=template_tags)
    _in(aws, member, "autoscaling").create_auto_scaling_group(
        AutoScalingGroupName="eks-workers-1a2b",
        LaunchTemplate={"LaunchTemplateId": template_id},
        MinSize=1,
        MaxSize=1,
        VPCZoneIdentifier=_subnets(aws, member)[0],
        Tags=[{**nodegroup_tag, "PropagateAtLaunch": True}],
    )
    own_template = _launch_template(aws, member, "mine")

    assert _listed(member, "autoscaling:group") == {}
    assert list(_listed(member, "ec2:launch-template")) == [own_template]


def test_an_ecs_cluster_goes_after_its_service_and_the_tasks_run_on_their_own(aws, member):
    """AWS refuses to delete a cluster while tasks run in it (moto does not): scripted. A task
    started on its own (RunTask) is stopped in one pass, the cluster deleted in the next."""
    script = AwsScript(aws)
    ecs = _ecs_service(aws, member)
    ecs.run_task(
        cluster="lab",
        taskDefinition="web",
        launchType="FARGATE",
        networkConfiguration=_fargate_network(aws, member),
    )

    def refuse_while_tasks_run(params):
        if ecs.list_tasks(cluster=params["cluster"], desiredStatus="RUNNING")["taskArns"]:
            return Fault(
                "ClusterContainsTasksException",
                "The Cluster cannot be deleted while Tasks are active.",
            )
        return PASS

    script.always("ecs", "DeleteCluster", refuse_while_tasks_run)

    passes = _clean(member, [REGION])

    assert _errors(passes) == [
        {"ecs:service lab/web": None, "ecs:cluster lab": None},
        {"ecs:cluster lab": None},
    ]
    assert script.params["DeleteService"] == [{"cluster": "lab", "service": "web", "force": True}]
    assert script.calls["StopTask"] == 1
    assert script.calls["DeleteCluster"] == 1
    assert cleanup.inventory(member, [REGION]) == []


def test_an_eks_cluster_goes_once_its_node_groups_and_fargate_profiles_have(aws, member):
    """AWS takes minutes to delete a node group and refuses to delete its cluster meanwhile
    (moto deletes the node group at once): the first refusal is scripted."""
    script = AwsScript(aws)
    _eks_cluster(aws, member)
    _nodegroup(aws, member)
    _fargate_profile(aws, member)
    script.answer(
        "eks",
        "DeleteCluster",
        Fault("ResourceInUseException", "Cluster has nodegroups attached"),
    )

    passes = _clean(member, [REGION])

    assert _errors(passes) == [
        {
            "eks:nodegroup lab/workers": None,
            "eks:fargate-profile lab/pods": None,
            "eks:cluster lab": "ResourceInUseException",
        },
        {"eks:cluster lab": None},
    ]
    assert cleanup.inventory(member, [REGION]) == []


def test_deletion_protection_does_not_keep_an_eks_cluster(aws, member):
    """moto has no EKS deletion protection: AWS's, scripted. Switching it off is an update AWS
    makes in the background, so the cluster is deleted by the next pass."""
    script = AwsScript(aws)
    _eks_cluster(aws, member)
    protected = {"lab": True}

    def show_protection(parsed, **kwargs):
        if "cluster" in parsed:
            parsed["cluster"]["deletionProtection"] = protected[parsed["cluster"]["name"]]

    def update(params):
        protected[params["name"]] = params["deletionProtection"]
        return {"update": {"id": "1", "status": "InProgress", "type": "DeletionProtectionUpdate"}}

    def refuse_while_protected(params):
        if protected[params["name"]]:
            return Fault("InvalidRequestException", "Cluster has deletion protection enabled.")
        return PASS

    aws.add_hook("after-call.eks.DescribeCluster", show_protection)
    script.always("eks", "UpdateClusterConfig", update)
    script.always("eks", "DeleteCluster", refuse_while_protected)

    passes = _clean(member, [REGION])

    assert _errors(passes) == [{"eks:cluster lab": None}, {"eks:cluster lab": None}]
    assert protected == {"lab": False}
    assert script.calls["DeleteCluster"] == 1
    assert _listed(member, "eks:cluster") == {}


def test_a_studio_domain_goes_after_its_apps_then_its_spaces_and_user_profiles(aws, member):
    """moto lacks Studio apps, spaces and user profiles: `Studio` answers as AWS (deletions
    take until a later pass; what still holds something is refused)."""
    script = AwsScript(aws)
    domain_id = _sagemaker_domain(aws, member)
    studio = Studio(script, domain_id)
    studio.spaces["lab-space"] = studio.profiles["ada"] = "InService"
    studio.add_app("SpaceName", "lab-space", "JupyterLab")
    studio.add_app("UserProfileName", "ada", "JupyterServer")
    studio.add_app("UserProfileName", "ada", "KernelGateway", "datascience-ml-t3-medium")
    assert len(_listed(member, "sagemaker:app")) == 3

    passes = _clean(member, [REGION])

    assert [set(outcome.values()) for outcome in _errors(passes)] == [
        {None, "ResourceInUse"},  # apps going; spaces, profiles and the domain refused
        {None, "ResourceInUse"},  # spaces and profiles going; the domain refused
        {None},  # the domain
    ]
    assert cleanup.inventory(member, [REGION]) == []
    deleted = script.params["DeleteDomain"][-1]
    assert deleted == {"DomainId": domain_id, "RetentionPolicy": {"HomeEfsFileSystem": "Delete"}}


def test_a_file_system_goes_a_pass_after_its_mount_targets(aws, member):
    """moto refuses, as AWS does, to delete a file system with mount targets
    (FileSystemInUse): it is deleted by the pass after the one that deletes them."""
    script = AwsScript(aws)
    efs = _in(aws, member, "efs")
    system_id, _ = _make_file_system(aws, member)
    for subnet in _subnets(aws, member):
        efs.create_mount_target(FileSystemId=system_id, SubnetId=subnet)

    passes = _clean(member, [REGION])

    assert _errors(passes) == [{f"efs:file-system {system_id}": None}] * 2
    assert script.calls["DeleteMountTarget"] == 2
    assert script.calls["DeleteFileSystem"] == 1
    assert efs.describe_file_systems()["FileSystems"] == []


def test_an_aurora_cluster_goes_after_its_instances_without_a_snapshot(aws, member):
    """AWS shows an Aurora instance with its cluster's deletion protection, refuses to change it
    on the instance, and deletes the instance anyway (moto does neither): scripted. The cluster's
    protection is switched off, and it goes after its instances."""
    script = AwsScript(aws)
    rds = _db_cluster(aws, member, DeletionProtection=True)
    rds.create_db_instance(
        DBInstanceIdentifier="lab-aurora-1",
        DBClusterIdentifier="lab-aurora",
        Engine="aurora-postgresql",
        DBInstanceClass="db.t4g.medium",
    )

    def show_cluster_protection(parsed, **kwargs):
        for db in parsed.get("DBInstances", []):
            if db.get("DBClusterIdentifier"):
                db["DeletionProtection"] = True

    def refuse_on_cluster_instances(params):
        if "DeletionProtection" in params:
            return Fault(
                "InvalidParameterCombination",
                "Deletion Protection can only be applied on the Cluster level, not for individual instances",
            )
        return PASS

    aws.add_hook("after-call.rds.DescribeDBInstances", show_cluster_protection)
    script.always("rds", "ModifyDBInstance", refuse_on_cluster_instances)

    passes = _clean(member, [REGION])

    assert _errors(passes) == [{"rds:db-instance lab-aurora-1": None, "rds:db-cluster lab-aurora": None}]
    deletions = [c for c in script.log if c in ("DeleteDBInstance", "DeleteDBCluster")]
    assert deletions == ["DeleteDBInstance", "DeleteDBCluster"]
    assert script.calls["ModifyDBInstance"] == 0
    assert script.params["ModifyDBCluster"][0]["DeletionProtection"] is False
    assert script.params["DeleteDBCluster"][0]["SkipFinalSnapshot"] is True
    assert rds.describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"] == []


def test_a_replicated_secret_loses_its_replicas_then_goes_without_a_recovery_window(aws, member):
    """moto refuses, as AWS does, to delete a secret that still has replicas."""
    script = AwsScript(aws)
    arn = _in(aws, member, "secretsmanager").create_secret(
        Name="lab/api-key",
        SecretString="not-a-secret-1",
        AddReplicaRegions=[{"Region": OTHER_REGION}],
    )["ARN"]
    both = [REGION, OTHER_REGION]
    assert [r.id for r in cleanup.inventory(member, both)] == [arn]  # the replica goes with it

    cleanup.delete(member, Resource(REGION, "secretsmanager:secret", arn))

    (replicas_removed,) = script.params["RemoveRegionsFromReplication"]
    assert replicas_removed["RemoveReplicaRegions"] == [OTHER_REGION]
    assert script.params["DeleteSecret"][0]["ForceDeleteWithoutRecovery"] is True
    for region in both:
        assert _in(aws, member, "secretsmanager", region).list_secrets(IncludePlannedDeletion=True)["SecretList"] == []


def test_a_key_is_scheduled_for_deletion_after_the_shortest_wait_and_then_not_listed(aws, member):
    script = AwsScript(aws)
    key_id, label = _make_key(aws, member)

    cleanup.delete(member, Resource(REGION, "kms:key", key_id, label))

    assert script.params["ScheduleKeyDeletion"] == [{"KeyId": key_id, "PendingWindowInDays": 7}]
    metadata = _in(aws, member, "kms").describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["KeyState"] == "PendingDeletion"
    assert _listed(member, "kms:key") == {}


def test_a_key_whose_policy_shuts_out_the_account_is_listed_and_its_refusal_reported(aws, member):
    """A key policy can refuse the account's administrators everything (moto does not apply key
    policies): AWS's refusal, scripted."""
    script = AwsScript(aws)
    key_id, _ = _make_key(aws, member)
    refusal = Fault("AccessDeniedException", "User is not authorized to perform kms:DescribeKey")
    script.always("kms", "DescribeKey", refusal)

    assert _listed(member, "kms:key") == {key_id: f"alias/lab ({key_id}): its key policy refuses access"}
    with pytest.raises(PermanentAwsError) as refused:
        cleanup.delete(member, Resource(REGION, "kms:key", key_id))
    assert refused.value.code == "AccessDeniedException"


def test_a_hosted_zone_loses_its_record_sets_then_goes(aws, member):
    """moto refuses, as AWS does, to delete a zone with record sets besides its NS and SOA
    (HostedZoneNotEmpty); the record sets go in batches."""
    zone_id = _hosted_zone(aws, member, records=150)
    script = AwsScript(aws)

    cleanup.delete(member, Resource(cleanup.ROUTE53_REGION, "route53:hosted-zone", zone_id))

    batches = [call["ChangeBatch"]["Changes"] for call in script.params["ChangeResourceRecordSets"]]
    assert [len(batch) for batch in batches] == [100, 50]
    assert {change["ResourceRecordSet"]["Type"] for batch in batches for change in batch} == {"A"}
    assert _in(aws, member, "route53").list_hosted_zones()["HostedZones"] == []


def test_an_endpoint_aws_answers_it_no_longer_has_is_already_gone(aws, member):
    """DeleteVpcEndpoints answers 200 and lists what it did not delete: for an endpoint already
    deleted, AWS says so inside (moto says nothing). Scripted."""
    script = AwsScript(aws)
    endpoint_id, _ = _make_vpc_endpoint(aws, member)
    gone = {"Code": "InvalidVpcEndpointId.NotFound", "Message": f"{endpoint_id} does not exist"}
    refused = {"Code": "OperationNotPermitted", "Message": "The endpoint is managed by a service"}
    script.answer(
        "ec2",
        "DeleteVpcEndpoints",
        {"Unsuccessful": [{"ResourceId": endpoint_id, "Error": gone}]},
        {"Unsuccessful": [{"ResourceId": endpoint_id, "Error": refused}]},
    )
    endpoint = Resource(REGION, "ec2:vpc-endpoint", endpoint_id)

    cleanup.delete(member, endpoint)
    with pytest.raises(PermanentAwsError) as refusal:
        cleanup.delete(member, endpoint)

    assert refusal.value.code == "OperationNotPermitted"


def test_the_cache_clusters_of_a_replication_group_are_left_to_it(aws, member):
    """AWS lists a replication group's clusters among the cache clusters (moto does not):
    scripted. Deleting the group deletes them."""
    _make_replication_group(aws, member)
    _make_cache_cluster(aws, member)

    def list_members(parsed, **kwargs):
        parsed["CacheClusters"].append(
            {
                "CacheClusterId": "sessions-001",
                "ReplicationGroupId": "sessions",
                "Engine": "redis",
                "CacheNodeType": "cache.t3.micro",
                "NumCacheNodes": 1,
                "CacheClusterStatus": "available",
            }
        )

    aws.add_hook("after-call.elasticache.DescribeCacheClusters", list_members)

    assert list(_listed(member, "elasticache:cache-cluster")) == ["memo"]
    assert list(_listed(member, "elasticache:replication-group")) == ["sessions"]


# --- What another AWS service made, and deletes ---------------------------------------------------


def test_a_secret_another_service_manages_is_left_to_it(aws, member):
    """AWS marks the secret RDS keeps a master password in with OwningService and refuses to
    delete it; it goes with its database. moto does not mark it: scripted."""
    _make_secret(aws, member)

    def owned_by_rds(parsed, **kwargs):
        for secret in parsed["SecretList"]:
            secret["OwningService"] = "rds"

    aws.add_hook("after-call.secrets-manager.ListSecrets", owned_by_rds)

    assert _listed(member, "secretsmanager:secret") == {}


def test_aws_managed_keys_are_not_the_students_and_are_not_described(aws, member):
    """moto names AWS managed keys (alias/aws/…) in ListAliases without the keys; AWS lists
    them in ListKeys too: scripted."""
    script = AwsScript(aws)
    key_id, label = _make_key(aws, member)
    kms = _in(aws, member, "kms")
    aliases = kms.list_aliases()["Aliases"]
    managed = {a["TargetKeyId"] for a in aliases if a["AliasName"].startswith("alias/aws/")}
    assert managed

    def list_managed_keys(parsed, **kwargs):
        parsed["Keys"] += [{"KeyId": key, "KeyArn": f"arn:aws:kms:{REGION}:{member}:key/{key}"} for key in managed]

    aws.add_hook("after-call.kms.ListKeys", list_managed_keys)

    assert _listed(member, "kms:key") == {key_id: label}
    assert [params["KeyId"] for params in script.params["DescribeKey"]] == [key_id]


# --- What a kind needs beyond a plain delete ------------------------------------------------------


def test_a_versioned_bucket_is_emptied_of_every_version_and_delete_marker_then_deleted(aws, member):
    s3 = _bucket(aws, member, "versioned-notes")
    s3.put_bucket_versioning(Bucket="versioned-notes", VersioningConfiguration={"Status": "Enabled"})
    for draft in range(3):
        s3.put_object(Bucket="versioned-notes", Key="essay.txt", Body=f"draft {draft}".encode())
        s3.put_object(Bucket="versioned-notes", Key=f"data/{draft}.csv", Body=b"1,2,3")
    s3.delete_object(Bucket="versioned-notes", Key="essay.txt")
    s3.delete_object(Bucket="versioned-notes", Key="data/0.csv")
    upload_id = s3.create_multipart_upload(Bucket="versioned-notes", Key="video.mp4")["UploadId"]
    versions = s3.list_object_versions(Bucket="versioned-notes")
    assert (len(versions["Versions"]), len(versions["DeleteMarkers"])) == (6, 2)
    aborted = []
    aws.add_hook(
        "before-parameter-build.s3.AbortMultipartUpload",
        lambda params, **kwargs: aborted.append(params["UploadId"]),
    )

    cleanup.delete(member, Resource(REGION, "s3:bucket", "versioned-notes"))

    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == []
    assert aborted == [upload_id]


def test_a_bucket_with_versions_aws_will_not_delete_stays_and_says_why(aws, member):
    s3 = _bucket(aws, member, "locked-notes")
    s3.put_bucket_versioning(Bucket="locked-notes", VersioningConfiguration={"Status": "Enabled"})
    version = s3.put_object(Bucket="locked-notes", Key="exam.pdf", Body=b"%PDF")["VersionId"]

    def locked(**kwargs):
        # What DeleteObjects answers for an object under Object Lock: 200, with the refusal inside.
        refusal = {
            "Key": "exam.pdf",
            "VersionId": version,
            "Code": "AccessDenied",
            "Message": "Access Denied",
        }
        return AWSResponse(None, 200, {}, None), {
            "Errors": [refusal],
            "ResponseMetadata": {"HTTPStatusCode": 200},
        }

    aws.add_hook("before-call.s3.DeleteObjects", locked)

    with pytest.raises(PermanentAwsError) as refused:
        cleanup.delete(member, Resource(REGION, "s3:bucket", "locked-notes"))

    assert refused.value.code == "AccessDenied"
    assert "exam.pdf" in refused.value.message
    assert _listed(member, "s3:bucket") == {"locked-notes": "locked-notes"}


def test_an_instance_with_a_volume_and_an_address_is_cleaned_in_repeated_passes(aws, member):
    ec2 = _in(aws, member, "ec2")
    instance = _run_instance(aws, member)
    instance_id = instance["InstanceId"]
    root_volume = instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    data_volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=10, VolumeType="gp3")
    data_volume = data_volume["VolumeId"]
    ec2.attach_volume(VolumeId=data_volume, InstanceId=instance_id, Device="/dev/sdf")
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.associate_address(AllocationId=allocation, InstanceId=instance_id)
    calls = []
    aws.add_hook("before-call.ec2", lambda model, **kwargs: calls.append(model.name))
    attempts = []

    def still_shutting_down(params, **kwargs):
        # AWS takes minutes to terminate an instance, and its volumes stay attached meanwhile;
        # moto terminates at once. The first pass gets AWS's answer.
        if params["body"]["VolumeId"] != data_volume:
            return None
        attempts.append(params)
        if len(attempts) > 1:
            return None
        return _aws_error("VolumeInUse", f"Volume {data_volume} is currently attached to {instance_id}")

    aws.add_hook("before-call.ec2.DeleteVolume", still_shutting_down)

    assert _listed(member, "ec2:volume") == {
        root_volume: f"{root_volume}: 8 GiB gp2, attached to {instance_id}",
        data_volume: f"{data_volume}: 10 GiB gp3, attached to {instance_id}",
    }
    assert _listed(member, "ec2:elastic-ip")[allocation].endswith(f", attached to {instance_id}")

    first, second = _clean(member, [REGION])

    assert {r.id: e.code if e else None for r, e in first.items()} == {
        instance_id: None,
        allocation: None,
        root_volume: None,  # deleted with its instance: already gone
        data_volume: "VolumeInUse",
    }
    assert {r.id: e for r, e in second.items()} == {data_volume: None}
    assert cleanup.inventory(member, [REGION]) == []
    (reservation,) = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    assert reservation["Instances"][0]["State"]["Name"] == "terminated"
    # The address is let go of before it is released, after the instance is told to terminate.
    order = [c for c in calls if c in ("TerminateInstances", "DisassociateAddress", "ReleaseAddress")]
    assert order == ["TerminateInstances", "DisassociateAddress", "ReleaseAddress"]


def test_a_volume_still_attached_is_an_aws_error(aws, member):
    ec2 = _in(aws, member, "ec2")
    instance_id = _run_instance(aws, member)["InstanceId"]
    volume_id = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
    ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")

    with pytest.raises(PermanentAwsError) as refused:
        cleanup.delete(member, Resource(REGION, "ec2:volume", volume_id))

    assert refused.value.code == "VolumeInUse"
    assert volume_id in _listed(member, "ec2:volume")


def test_terminated_instances_are_not_listed(aws, member):
    instance_id = _run_instance(aws, member)["InstanceId"]
    _in(aws, member, "ec2").terminate_instances(InstanceIds=[instance_id])

    assert _listed(member, "ec2:instance") == {}


def test_a_running_notebook_is_stopped_by_one_pass_and_deleted_by_the_next(aws, member):
    sagemaker = _in(aws, member, "sagemaker")
    sagemaker.create_notebook_instance(
        NotebookInstanceName="lab-notebook",
        InstanceType="ml.t3.medium",
        RoleArn=f"arn:aws:iam::{member}:role/sagemaker",
    )
    notebook = Resource(REGION, "sagemaker:notebook-instance", "lab-notebook")
    assert _listed(member, notebook.kind) == {"lab-notebook": "lab-notebook: ml.t3.medium, InService"}

    cleanup.delete(member, notebook)

    assert _listed(member, notebook.kind) == {"lab-notebook": "lab-notebook: ml.t3.medium, Stopped"}

    cleanup.delete(member, notebook)

    assert _listed(member, notebook.kind) == {}


def test_a_db_instance_goes_without_a_final_snapshot_and_with_its_automated_backups(aws, member):
    _db_instance(aws, member, BackupRetentionPeriod=7)
    rds = _in(aws, member, "rds")
    assert rds.describe_db_snapshots(SnapshotType="automated")["DBSnapshots"]
    assert _listed(member, "rds:db-snapshot") == {}  # automated ones go with the instance

    cleanup.delete(member, Resource(REGION, "rds:db-instance", "lab-db"))

    assert rds.describe_db_instances()["DBInstances"] == []
    assert rds.describe_db_snapshots()["DBSnapshots"] == []


# --- Protections the student switched on ----------------------------------------------------------


def test_termination_protection_does_not_keep_an_instance(aws, member):
    instance_id = _run_instance(aws, member, DisableApiTermination=True)["InstanceId"]

    cleanup.delete(member, Resource(REGION, "ec2:instance", instance_id))

    assert _listed(member, "ec2:instance") == {}


def test_deletion_protection_does_not_keep_a_db_instance(aws, member):
    _db_instance(aws, member, DeletionProtection=True)

    cleanup.delete(member, Resource(REGION, "rds:db-instance", "lab-db"))

    assert _listed(member, "rds:db-instance") == {}


def test_deletion_protection_does_not_keep_a_table(aws, member):
    _table(aws, member, DeletionProtectionEnabled=True)

    cleanup.delete(member, Resource(REGION, "dynamodb:table", "scores"))

    assert _listed(member, "dynamodb:table") == {}


def test_deletion_protection_does_not_keep_a_load_balancer(aws, member):
    arn, _ = _make_load_balancer(aws, member)
    elbv2 = _in(aws, member, "elbv2")
    protection = {"Key": "deletion_protection.enabled", "Value": "true"}
    elbv2.modify_load_balancer_attributes(LoadBalancerArn=arn, Attributes=[protection])

    def refuse_while_protected(**kwargs):
        # AWS refuses to delete a protected load balancer; moto does not.
        if protection in elbv2.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]:
            return _aws_error(
                "OperationNotPermitted",
                f"Load balancer '{arn}' cannot be deleted because deletion protection is enabled",
            )
        return None

    aws.add_hook("before-call.elastic-load-balancing-v2.DeleteLoadBalancer", refuse_while_protected)

    cleanup.delete(member, Resource(REGION, "elbv2:load-balancer", arn))

    assert _listed(member, "elbv2:load-balancer") == {}


def test_termination_protection_does_not_keep_a_stack(aws, member):
    template = json.dumps({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}})
    stack_id = _in(aws, member, "cloudformation").create_stack(
        StackName="course-lab", TemplateBody=template, EnableTerminationProtection=True
    )["StackId"]
    protected = {stack_id: True}

    def update_protection(params, **kwargs):
        # moto has no UpdateTerminationProtection: AWS's answer.
        protected[params["body"]["StackName"]] = params["body"]["EnableTerminationProtection"] == "true"
        return AWSResponse(None, 200, {}, None), {
            "StackId": stack_id,
            "ResponseMetadata": {"HTTPStatusCode": 200},
        }

    def refuse_while_protected(params, **kwargs):
        # AWS refuses to delete a protected stack; moto does not.
        if protected[params["body"]["StackName"]]:
            return _aws_error(
                "ValidationError",
                "Stack [course-lab] cannot be deleted while TerminationProtection is enabled",
            )
        return None

    aws.add_hook("before-call.cloudformation.UpdateTerminationProtection", update_protection)
    aws.add_hook("before-call.cloudformation.DeleteStack", refuse_while_protected)

    cleanup.delete(member, Resource(REGION, "cloudformation:stack", stack_id))

    assert protected == {stack_id: False}
    assert _listed(member, "cloudformation:stack") == {}


def test_a_nested_stack_is_left_to_its_parent(aws, member):
    template = json.dumps({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}})
    cfn = _in(aws, member, "cloudformation")
    parent = cfn.create_stack(StackName="course-lab", TemplateBody=template)["StackId"]
    cfn.create_stack(StackName="course-lab-Network-1ABC", TemplateBody=template)

    def mark_nested(parsed, **kwargs):
        # moto does not say which stacks are nested; AWS gives them their parent's id.
        for stack in parsed.get("Stacks", []):
            if stack["StackName"] == "course-lab-Network-1ABC":
                stack["ParentId"] = stack["RootId"] = parent

    aws.add_hook("after-call.cloudformation.DescribeStacks", mark_nested)

    assert list(_listed(member, "cloudformation:stack")) == [parent]


def test_deletion_protection_does_not_keep_a_log_group(aws, member):
    """moto has no log group deletion protection (nor PutLogGroupDeletionProtection): AWS's,
    scripted."""
    script = AwsScript(aws)
    name, _ = _make_log_group(aws, member)
    protected = {name: True}

    def show_protection(parsed, **kwargs):
        for group in parsed.get("logGroups", []):
            group["deletionProtectionEnabled"] = protected[group["logGroupName"]]

    def update(params):
        protected[params["logGroupIdentifier"]] = params["deletionProtectionEnabled"]
        return {}

    def refuse_while_protected(params):
        if protected[params["logGroupName"]]:
            return Fault("InvalidOperationException", "Log group has deletion protection enabled")
        return PASS

    aws.add_hook("after-call.cloudwatch-logs.DescribeLogGroups", show_protection)
    script.always("cloudwatch-logs", "PutLogGroupDeletionProtection", update)
    script.always("cloudwatch-logs", "DeleteLogGroup", refuse_while_protected)

    cleanup.delete(member, Resource(REGION, "logs:log-group", name))

    assert protected == {name: False}
    assert _listed(member, "logs:log-group") == {}
