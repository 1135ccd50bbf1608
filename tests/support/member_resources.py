"""Resources a student makes in their member account, made through the account's organization
role as the portal reaches it (the `aws` fixture's moto), for the cleanup tests.

moto lacks SageMaker Studio apps, spaces and user profiles and ElastiCache serverless caches
altogether: `Studio` and `ServerlessCaches` answer for them as AWS does.
"""

from __future__ import annotations

import json

from tests.support.aws_script import PASS, AwsScript, Fault

REGION = "us-east-1"
OTHER_REGION = "eu-west-1"
IMAGE_ID = "ami-12c6146b"  # any id does: moto does not check images


def in_member(aws, member: str, service: str, region: str = REGION):
    """A client inside the member account."""
    return aws.client(service, account_id=member, region=region)


def run_instance(aws, member: str, name: str = "web", region: str = REGION, **options) -> dict:
    return in_member(aws, member, "ec2", region).run_instances(
        ImageId=IMAGE_ID,
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.micro",
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}],
        **options,
    )["Instances"][0]


def create_lambda_role(aws, member: str) -> str:
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
    return in_member(aws, member, "iam").create_role(
        RoleName="lab-function", AssumeRolePolicyDocument=json.dumps(trust)
    )["Role"]["Arn"]


def create_db_instance(aws, member: str, name: str = "lab-db", **options) -> dict:
    return in_member(aws, member, "rds").create_db_instance(
        DBInstanceIdentifier=name,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="student",
        MasterUserPassword="not-a-secret-1",
        AllocatedStorage=20,
        **options,
    )["DBInstance"]


def create_table(aws, member: str, name: str = "scores", region: str = REGION, **options) -> None:
    in_member(aws, member, "dynamodb", region).create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "student", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "student", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        **options,
    )


def create_bucket(aws, member: str, name: str, region: str = REGION):
    s3 = in_member(aws, member, "s3", region)
    location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=name, **location)
    return s3


def default_subnets(aws, member: str, region: str = REGION) -> list[str]:
    """Two subnets of the member account's default VPC."""
    subnets = in_member(aws, member, "ec2", region).describe_subnets()["Subnets"]
    return [subnet["SubnetId"] for subnet in subnets[:2]]


def create_launch_template(aws, member: str, name: str = "web", **options) -> str:
    return in_member(aws, member, "ec2").create_launch_template(
        LaunchTemplateName=name,
        LaunchTemplateData={"ImageId": IMAGE_ID, "InstanceType": "t3.micro"},
        **options,
    )["LaunchTemplate"]["LaunchTemplateId"]


def create_auto_scaling_group(aws, member: str, name: str = "web-fleet", **options) -> None:
    """A group of two instances, launched from a template of its own."""
    in_member(aws, member, "autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateId": create_launch_template(aws, member, name)},
        MinSize=1,
        MaxSize=3,
        DesiredCapacity=2,
        VPCZoneIdentifier=default_subnets(aws, member)[0],
        **options,
    )


def create_eks_cluster(aws, member: str, name: str = "lab"):
    eks = in_member(aws, member, "eks")
    eks.create_cluster(
        name=name,
        version="1.31",
        roleArn=f"arn:aws:iam::{member}:role/eks",
        resourcesVpcConfig={"subnetIds": default_subnets(aws, member)},
    )
    return eks


def create_nodegroup(aws, member: str, cluster: str = "lab", name: str = "workers") -> None:
    in_member(aws, member, "eks").create_nodegroup(
        clusterName=cluster,
        nodegroupName=name,
        nodeRole=f"arn:aws:iam::{member}:role/eks-node",
        subnets=default_subnets(aws, member),
        scalingConfig={"minSize": 1, "maxSize": 3, "desiredSize": 2},
        instanceTypes=["t3.medium"],
    )


def create_fargate_profile(aws, member: str, cluster: str = "lab", name: str = "pods") -> None:
    in_member(aws, member, "eks").create_fargate_profile(
        clusterName=cluster,
        fargateProfileName=name,
        podExecutionRoleArn=f"arn:aws:iam::{member}:role/eks-pods",
        selectors=[{"namespace": "default"}],
    )


def fargate_network(aws, member: str) -> dict:
    return {"awsvpcConfiguration": {"subnets": default_subnets(aws, member), "securityGroups": []}}


def create_ecs_service(aws, member: str, cluster: str = "lab", name: str = "web"):
    """An ECS cluster with a Fargate service of two tasks."""
    ecs = in_member(aws, member, "ecs")
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
        networkConfiguration=fargate_network(aws, member),
    )
    return ecs


def create_sagemaker_domain(aws, member: str) -> str:
    domain_arn = in_member(aws, member, "sagemaker").create_domain(
        DomainName="studio",
        AuthMode="IAM",
        DefaultUserSettings={"ExecutionRole": f"arn:aws:iam::{member}:role/sagemaker"},
        SubnetIds=default_subnets(aws, member),
        VpcId=in_member(aws, member, "ec2").describe_vpcs()["Vpcs"][0]["VpcId"],
    )["DomainArn"]
    return domain_arn.rsplit("/", 1)[-1]


def create_db_cluster(aws, member: str, name: str = "lab-aurora", **options):
    rds = in_member(aws, member, "rds")
    rds.create_db_cluster(
        DBClusterIdentifier=name,
        Engine="aurora-postgresql",
        MasterUsername="student",
        MasterUserPassword="not-a-secret-1",
        **options,
    )
    return rds


def create_hosted_zone(aws, member: str, name: str = "lab.example.com", records: int = 1) -> str:
    """A public zone with `records` A records besides its own NS and SOA; its id."""
    route53 = in_member(aws, member, "route53")
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
