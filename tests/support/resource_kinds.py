"""One resource of each kind the cleanup deletes (portal/aws/cleanup.py), made in a member account:
MAKERS maps each kind to a maker that creates one and returns its id and the label the inventory
gives it. IAM's kinds are made in tests/portal/aws/test_cleanup_iam.py."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable

from tests.support.aws_script import AwsScript
from tests.support.member_resources import (
    IMAGE_ID,
    ServerlessCaches,
    Studio,
    create_auto_scaling_group,
    create_bucket,
    create_db_cluster,
    create_db_instance,
    create_ecs_service,
    create_eks_cluster,
    create_fargate_profile,
    create_hosted_zone,
    create_lambda_role,
    create_launch_template,
    create_nodegroup,
    create_sagemaker_domain,
    create_table,
    default_subnets,
    in_member,
    run_instance,
)


def _make_stack(aws, member):
    template = json.dumps({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}})
    stack_id = in_member(aws, member, "cloudformation").create_stack(StackName="course-lab", TemplateBody=template)[
        "StackId"
    ]
    return stack_id, "course-lab: CREATE_COMPLETE"


def _make_endpoint(aws, member):
    sagemaker = in_member(aws, member, "sagemaker")
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
    sagemaker = in_member(aws, member, "sagemaker")
    sagemaker.create_notebook_instance(
        NotebookInstanceName="lab-notebook",
        InstanceType="ml.t3.medium",
        RoleArn=f"arn:aws:iam::{member}:role/sagemaker",
    )
    sagemaker.stop_notebook_instance(NotebookInstanceName="lab-notebook")
    return "lab-notebook", "lab-notebook: ml.t3.medium, Stopped"


def _make_load_balancer(aws, member):
    subnets = [s["SubnetId"] for s in in_member(aws, member, "ec2").describe_subnets()["Subnets"][:2]]
    balancer = in_member(aws, member, "elbv2").create_load_balancer(Name="web", Subnets=subnets)["LoadBalancers"][0]
    return balancer["LoadBalancerArn"], "web: application load balancer, active"


def _make_classic_load_balancer(aws, member):
    elb = in_member(aws, member, "elb")
    listener = {"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}
    dns = elb.create_load_balancer(LoadBalancerName="legacy", Listeners=[listener], AvailabilityZones=["us-east-1a"])[
        "DNSName"
    ]
    return "legacy", f"legacy: classic load balancer, {dns}"


def _make_instance(aws, member):
    instance_id = run_instance(aws, member)["InstanceId"]
    return instance_id, f"web ({instance_id}): t3.micro, running"


def _make_nat_gateway(aws, member):
    ec2 = in_member(aws, member, "ec2")
    subnet = ec2.describe_subnets()["Subnets"][0]
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    gateway = ec2.create_nat_gateway(SubnetId=subnet["SubnetId"], AllocationId=allocation)["NatGateway"]
    return gateway["NatGatewayId"], f"{gateway['NatGatewayId']}: in {subnet['VpcId']}, available"


def _make_elastic_ip(aws, member):
    address = in_member(aws, member, "ec2").allocate_address(Domain="vpc")
    return address["AllocationId"], f"{address['AllocationId']}: {address['PublicIp']}, not attached"


def _make_volume(aws, member):
    volume_id = in_member(aws, member, "ec2").create_volume(AvailabilityZone="us-east-1a", Size=8, VolumeType="gp3")[
        "VolumeId"
    ]
    return volume_id, f"{volume_id}: 8 GiB gp3, available"


def _make_image(aws, member):
    image_id = in_member(aws, member, "ec2").register_image(Name="lab-image")["ImageId"]
    return image_id, f"lab-image ({image_id}): available"


def _make_snapshot(aws, member):
    ec2 = in_member(aws, member, "ec2")
    volume_id = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
    snapshot_id = ec2.create_snapshot(VolumeId=volume_id, Description="before the exam")["SnapshotId"]
    ec2.delete_volume(VolumeId=volume_id)
    return snapshot_id, f'{snapshot_id}: 8 GiB, of {volume_id}, "before the exam"'


def _make_db_instance(aws, member):
    create_db_instance(aws, member)
    return "lab-db", "lab-db: postgres db.t3.micro, available"


def _make_db_snapshot(aws, member):
    create_db_instance(aws, member)
    rds = in_member(aws, member, "rds")
    rds.create_db_snapshot(DBInstanceIdentifier="lab-db", DBSnapshotIdentifier="lab-db-final")
    rds.delete_db_instance(DBInstanceIdentifier="lab-db", SkipFinalSnapshot=True)
    return "lab-db-final", "lab-db-final: postgres snapshot of lab-db, 20 GiB"


def _make_function(aws, member):
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handle(event, context):\n    return event\n")
    in_member(aws, member, "lambda").create_function(
        FunctionName="grader",
        Runtime="python3.12",
        Role=create_lambda_role(aws, member),
        Handler="handler.handle",
        Code={"ZipFile": code.getvalue()},
    )
    return "grader", "grader: python3.12"


def _make_table(aws, member):
    create_table(aws, member)
    return "scores", "scores: ACTIVE"


def _make_repository(aws, member):
    ecr = in_member(aws, member, "ecr")
    uri = ecr.create_repository(repositoryName="lab-images")["repository"]["repositoryUri"]
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    }
    ecr.put_image(repositoryName="lab-images", imageManifest=json.dumps(manifest), imageTag="latest")
    return "lab-images", f"lab-images: {uri}"


def _make_bucket(aws, member):
    create_bucket(aws, member, "student-notes").put_object(Bucket="student-notes", Key="notes.txt", Body=b"hi")
    return "student-notes", "student-notes"


def _make_auto_scaling_group(aws, member):
    create_auto_scaling_group(aws, member)
    return "web-fleet", "web-fleet: 2 instances, 1 to 3"


def _make_nodegroup(aws, member):
    create_eks_cluster(aws, member)
    create_nodegroup(aws, member)
    return "lab/workers", "workers in lab: 2 × t3.medium, ACTIVE"


def _make_fargate_profile(aws, member):
    create_eks_cluster(aws, member)
    create_fargate_profile(aws, member)
    return "lab/pods", "pods in lab: ACTIVE"


def _make_ecs_service(aws, member):
    create_ecs_service(aws, member)
    return "lab/web", "web in lab: 0 of 2 tasks running"


def _make_launch_configuration(aws, member):
    in_member(aws, member, "autoscaling").create_launch_configuration(
        LaunchConfigurationName="web-2019", ImageId=IMAGE_ID, InstanceType="t2.micro"
    )
    return "web-2019", f"web-2019: t2.micro from {IMAGE_ID}"


def _make_launch_template(aws, member):
    template_id = create_launch_template(aws, member)
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
    domain_id = create_sagemaker_domain(aws, member)
    return domain_id, f"studio ({domain_id}): InService"


def _make_ecs_cluster(aws, member):
    in_member(aws, member, "ecs").create_cluster(clusterName="lab")
    return "lab", "lab: 0 services, 0 tasks running, 0 container instances"


def _make_eks_cluster(aws, member):
    create_eks_cluster(aws, member)
    return "lab", "lab: Kubernetes 1.31, ACTIVE"


def _make_search_domain(aws, member):
    in_member(aws, member, "opensearch").create_domain(
        DomainName="search",
        EngineVersion="OpenSearch_2.11",
        ClusterConfig={"InstanceType": "t3.small.search", "InstanceCount": 1},
    )
    return "search", "search: OpenSearch_2.11, 1 × t3.small.search"


def _make_replication_group(aws, member):
    in_member(aws, member, "elasticache").create_replication_group(
        ReplicationGroupId="sessions",
        ReplicationGroupDescription="web sessions",
        Engine="redis",
        CacheNodeType="cache.t3.micro",
        NumCacheClusters=1,
    )
    return "sessions", "sessions: 1 × cache.t3.micro, available"


def _make_cache_cluster(aws, member):
    in_member(aws, member, "elasticache").create_cache_cluster(
        CacheClusterId="memo", Engine="memcached", CacheNodeType="cache.t3.micro", NumCacheNodes=1
    )
    return "memo", "memo: memcached, 1 × cache.t3.micro, available"


def _make_serverless_cache(aws, member):
    ServerlessCaches(AwsScript(aws), "sessions")
    return "sessions", "sessions: serverless valkey, available"


def _make_file_system(aws, member):
    system_id = in_member(aws, member, "efs").create_file_system(
        CreationToken="home", Tags=[{"Key": "Name", "Value": "home"}]
    )["FileSystemId"]
    return system_id, f"home ({system_id}): 0 bytes, 0 mount targets"


def _make_vpc_endpoint(aws, member):
    ec2 = in_member(aws, member, "ec2")
    vpc_id = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    endpoint_id = ec2.create_vpc_endpoint(
        VpcId=vpc_id,
        ServiceName="com.amazonaws.us-east-1.s3",
        VpcEndpointType="Interface",
        SubnetIds=default_subnets(aws, member)[:1],
    )["VpcEndpoint"]["VpcEndpointId"]
    details = f"Interface endpoint of com.amazonaws.us-east-1.s3 in {vpc_id}"
    return endpoint_id, f"{endpoint_id}: {details}"


def _make_db_cluster(aws, member):
    create_db_cluster(aws, member)
    return "lab-aurora", "lab-aurora: aurora-postgresql, 0 instances, available"


def _make_db_cluster_snapshot(aws, member):
    rds = create_db_cluster(aws, member)
    rds.create_db_cluster_snapshot(DBClusterIdentifier="lab-aurora", DBClusterSnapshotIdentifier="lab-aurora-final")
    rds.delete_db_cluster(DBClusterIdentifier="lab-aurora", SkipFinalSnapshot=True)
    return "lab-aurora-final", "lab-aurora-final: aurora-postgresql snapshot of lab-aurora, 1 GiB"


def _make_secret(aws, member):
    arn = in_member(aws, member, "secretsmanager").create_secret(
        Name="lab/db-password",
        SecretString="not-a-secret-1",
        Description="password of the lab database",
    )["ARN"]
    return arn, "lab/db-password: password of the lab database"


def _make_log_group(aws, member):
    in_member(aws, member, "logs").create_log_group(logGroupName="/aws/lambda/grader")
    return "/aws/lambda/grader", "/aws/lambda/grader: 0 bytes stored"


def _make_key(aws, member):
    kms = in_member(aws, member, "kms")
    key_id = kms.create_key(Description="lab data")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/lab", TargetKeyId=key_id)
    return key_id, f"alias/lab ({key_id}): SYMMETRIC_DEFAULT, Enabled"


def _make_hosted_zone(aws, member):
    zone_id = create_hosted_zone(aws, member)
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
