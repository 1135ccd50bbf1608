"""The cleanup's order, against moto: what relaunches instances goes before them and what it
launches from after; what holds other resources goes once they have, a pass later where AWS
deletes them in the background. Where AWS refuses what moto allows, a `before-call` hook or an
`AwsScript` gives AWS's answer; each test that does says which.
"""

from __future__ import annotations

import pytest

from portal.aws import cleanup
from portal.aws.cleanup import Resource
from portal.aws.errors import PermanentAwsError
from tests.support.aws_script import PASS, AwsScript, Fault
from tests.support.cleanup_passes import clean_in_passes, listed, pass_errors
from tests.support.member_resources import (
    OTHER_REGION,
    REGION,
    Studio,
    create_auto_scaling_group,
    create_db_cluster,
    create_ecs_service,
    create_eks_cluster,
    create_fargate_profile,
    create_hosted_zone,
    create_launch_template,
    create_nodegroup,
    create_sagemaker_domain,
    default_subnets,
    fargate_network,
    in_member,
)
from tests.support.resource_kinds import MAKERS

pytestmark = pytest.mark.django_db


def test_an_auto_scaling_group_goes_first_with_its_instances_and_launches_no_more(aws, member):
    """AWS refuses to delete a group that still has instances unless forced (moto deletes it
    anyway): scripted. A group left behind would launch new instances for those terminated."""
    script = AwsScript(aws)
    create_auto_scaling_group(aws, member)
    autoscaling = in_member(aws, member, "autoscaling")

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

    passes = clean_in_passes(member, [REGION])

    assert [set(outcome.values()) for outcome in passes] == [{None}]
    assert cleanup.inventory(member, [REGION]) == []
    deletions = [c for c in script.log if c in ("DeleteAutoScalingGroup", "TerminateInstances")]
    assert deletions[0] == "DeleteAutoScalingGroup"
    assert script.params["DeleteAutoScalingGroup"][0]["ForceDelete"] is True
    reservations = in_member(aws, member, "ec2").describe_instances()["Reservations"]
    states = {i["InstanceId"]: i["State"]["Name"] for r in reservations for i in r["Instances"]}
    assert states == dict.fromkeys(instances, "terminated")


def test_deletion_protection_does_not_keep_an_auto_scaling_group(aws, member):
    """moto has no Auto Scaling deletion protection: AWS's, scripted. A protected group is
    shown so, and refused until its protection is "none"."""
    script = AwsScript(aws)
    create_auto_scaling_group(aws, member)
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
    assert listed(member, "autoscaling:group") == {}


def test_what_an_eks_node_group_launches_from_is_left_to_the_node_group(aws, member):
    """EKS makes an Auto Scaling group and a launch template for each managed node group,
    tagged with its name (moto makes neither: made here as EKS does); deleting them under the
    node group would leave it degraded. Deleting the node group deletes them."""
    nodegroup_tag = {"Key": "eks:nodegroup-name", "Value": "workers"}
    template_tags = [{"ResourceType": "launch-template", "Tags": [nodegroup_tag]}]
    template_id = create_launch_template(aws, member, "eks-1a2b", TagSpecifications=template_tags)
    in_member(aws, member, "autoscaling").create_auto_scaling_group(
        AutoScalingGroupName="eks-workers-1a2b",
        LaunchTemplate={"LaunchTemplateId": template_id},
        MinSize=1,
        MaxSize=1,
        VPCZoneIdentifier=default_subnets(aws, member)[0],
        Tags=[{**nodegroup_tag, "PropagateAtLaunch": True}],
    )
    own_template = create_launch_template(aws, member, "mine")

    assert listed(member, "autoscaling:group") == {}
    assert list(listed(member, "ec2:launch-template")) == [own_template]


def test_an_ecs_cluster_goes_after_its_service_and_the_tasks_run_on_their_own(aws, member):
    """AWS refuses to delete a cluster while tasks run in it (moto does not): scripted. A task
    started on its own (RunTask) is stopped in one pass, the cluster deleted in the next."""
    script = AwsScript(aws)
    ecs = create_ecs_service(aws, member)
    ecs.run_task(
        cluster="lab",
        taskDefinition="web",
        launchType="FARGATE",
        networkConfiguration=fargate_network(aws, member),
    )

    def refuse_while_tasks_run(params):
        if ecs.list_tasks(cluster=params["cluster"], desiredStatus="RUNNING")["taskArns"]:
            return Fault(
                "ClusterContainsTasksException",
                "The Cluster cannot be deleted while Tasks are active.",
            )
        return PASS

    script.always("ecs", "DeleteCluster", refuse_while_tasks_run)

    passes = clean_in_passes(member, [REGION])

    assert pass_errors(passes) == [
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
    create_eks_cluster(aws, member)
    create_nodegroup(aws, member)
    create_fargate_profile(aws, member)
    script.answer(
        "eks",
        "DeleteCluster",
        Fault("ResourceInUseException", "Cluster has nodegroups attached"),
    )

    passes = clean_in_passes(member, [REGION])

    assert pass_errors(passes) == [
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
    create_eks_cluster(aws, member)
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

    passes = clean_in_passes(member, [REGION])

    assert pass_errors(passes) == [{"eks:cluster lab": None}, {"eks:cluster lab": None}]
    assert protected == {"lab": False}
    assert script.calls["DeleteCluster"] == 1
    assert listed(member, "eks:cluster") == {}


def test_a_studio_domain_goes_after_its_apps_then_its_spaces_and_user_profiles(aws, member):
    """moto lacks Studio apps, spaces and user profiles: `Studio` answers as AWS (deletions
    take until a later pass; what still holds something is refused)."""
    script = AwsScript(aws)
    domain_id = create_sagemaker_domain(aws, member)
    studio = Studio(script, domain_id)
    studio.spaces["lab-space"] = studio.profiles["ada"] = "InService"
    studio.add_app("SpaceName", "lab-space", "JupyterLab")
    studio.add_app("UserProfileName", "ada", "JupyterServer")
    studio.add_app("UserProfileName", "ada", "KernelGateway", "datascience-ml-t3-medium")
    assert len(listed(member, "sagemaker:app")) == 3

    passes = clean_in_passes(member, [REGION])

    assert [set(outcome.values()) for outcome in pass_errors(passes)] == [
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
    efs = in_member(aws, member, "efs")
    system_id, _ = MAKERS["efs:file-system"](aws, member)
    for subnet in default_subnets(aws, member):
        efs.create_mount_target(FileSystemId=system_id, SubnetId=subnet)

    passes = clean_in_passes(member, [REGION])

    assert pass_errors(passes) == [{f"efs:file-system {system_id}": None}] * 2
    assert script.calls["DeleteMountTarget"] == 2
    assert script.calls["DeleteFileSystem"] == 1
    assert efs.describe_file_systems()["FileSystems"] == []


def test_an_aurora_cluster_goes_after_its_instances_without_a_snapshot(aws, member):
    """AWS shows an Aurora instance with its cluster's deletion protection, refuses to change it
    on the instance, and deletes the instance anyway (moto does neither): scripted. The cluster's
    protection is switched off, and it goes after its instances."""
    script = AwsScript(aws)
    rds = create_db_cluster(aws, member, DeletionProtection=True)
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

    passes = clean_in_passes(member, [REGION])

    assert pass_errors(passes) == [{"rds:db-instance lab-aurora-1": None, "rds:db-cluster lab-aurora": None}]
    deletions = [c for c in script.log if c in ("DeleteDBInstance", "DeleteDBCluster")]
    assert deletions == ["DeleteDBInstance", "DeleteDBCluster"]
    assert script.calls["ModifyDBInstance"] == 0
    assert script.params["ModifyDBCluster"][0]["DeletionProtection"] is False
    assert script.params["DeleteDBCluster"][0]["SkipFinalSnapshot"] is True
    assert rds.describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"] == []


def test_a_replicated_secret_loses_its_replicas_then_goes_without_a_recovery_window(aws, member):
    """moto refuses, as AWS does, to delete a secret that still has replicas."""
    script = AwsScript(aws)
    arn = in_member(aws, member, "secretsmanager").create_secret(
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
        assert (
            in_member(aws, member, "secretsmanager", region).list_secrets(IncludePlannedDeletion=True)["SecretList"]
            == []
        )


def test_a_key_is_scheduled_for_deletion_after_the_shortest_wait_and_then_not_listed(aws, member):
    script = AwsScript(aws)
    key_id, label = MAKERS["kms:key"](aws, member)

    cleanup.delete(member, Resource(REGION, "kms:key", key_id, label))

    assert script.params["ScheduleKeyDeletion"] == [{"KeyId": key_id, "PendingWindowInDays": 7}]
    metadata = in_member(aws, member, "kms").describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["KeyState"] == "PendingDeletion"
    assert listed(member, "kms:key") == {}


def test_a_key_whose_policy_shuts_out_the_account_is_listed_and_its_refusal_reported(aws, member):
    """A key policy can refuse the account's administrators everything (moto does not apply key
    policies): AWS's refusal, scripted."""
    script = AwsScript(aws)
    key_id, _ = MAKERS["kms:key"](aws, member)
    refusal = Fault("AccessDeniedException", "User is not authorized to perform kms:DescribeKey")
    script.always("kms", "DescribeKey", refusal)

    assert listed(member, "kms:key") == {key_id: f"alias/lab ({key_id}): its key policy refuses access"}
    with pytest.raises(PermanentAwsError) as refused:
        cleanup.delete(member, Resource(REGION, "kms:key", key_id))
    assert refused.value.code == "AccessDeniedException"


def test_a_hosted_zone_loses_its_record_sets_then_goes(aws, member):
    """moto refuses, as AWS does, to delete a zone with record sets besides its NS and SOA
    (HostedZoneNotEmpty); the record sets go in batches."""
    zone_id = create_hosted_zone(aws, member, records=150)
    script = AwsScript(aws)

    cleanup.delete(member, Resource(cleanup.ROUTE53_REGION, "route53:hosted-zone", zone_id))

    batches = [call["ChangeBatch"]["Changes"] for call in script.params["ChangeResourceRecordSets"]]
    assert [len(batch) for batch in batches] == [100, 50]
    assert {change["ResourceRecordSet"]["Type"] for batch in batches for change in batch} == {"A"}
    assert in_member(aws, member, "route53").list_hosted_zones()["HostedZones"] == []


def test_an_endpoint_aws_answers_it_no_longer_has_is_already_gone(aws, member):
    """DeleteVpcEndpoints answers 200 and lists what it did not delete: for an endpoint already
    deleted, AWS says so inside (moto says nothing). Scripted."""
    script = AwsScript(aws)
    endpoint_id, _ = MAKERS["ec2:vpc-endpoint"](aws, member)
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
    MAKERS["elasticache:replication-group"](aws, member)
    MAKERS["elasticache:cache-cluster"](aws, member)

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

    assert list(listed(member, "elasticache:cache-cluster")) == ["memo"]
    assert list(listed(member, "elasticache:replication-group")) == ["sessions"]
