"""The end-of-course cleanup of a member account, against moto.

Resources are made inside a member account (through its organization role, as the portal reaches
it), then listed and deleted by portal.aws.cleanup. Where AWS answers differently from moto (moto
terminates an instance at once, never refuses to delete a protected load balancer or stack, and
has no UpdateTerminationProtection), a `before-call` hook gives AWS's real answer.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable

import pytest
from botocore.awsrequest import AWSResponse

from portal.aws import cleanup, cleanup_iam
from portal.aws.cleanup import KIND_LABELS, KINDS, Resource
from portal.aws.errors import AwsError, PermanentAwsError

pytestmark = pytest.mark.django_db

REGION = "us-east-1"
OTHER_REGION = "eu-west-1"
IMAGE_ID = "ami-12c6146b"  # any id does: moto does not check images


@pytest.fixture
def member(aws) -> str:
    """A new member account of the organization: its id."""
    status = aws.client("organizations").create_account(
        Email="student@school.example", AccountName="student"
    )["CreateAccountStatus"]
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
    removes nothing. Returns each pass's outcome, resource by resource (None: deleted)."""
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
        if set(left) == set(remaining):
            break
        remaining = left
    return passes


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
    return _in(aws, member, "iam").create_role(
        RoleName="lab-function", AssumeRolePolicyDocument=json.dumps(trust)
    )["Role"]["Arn"]


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
    location = (
        {}
        if region == "us-east-1"
        else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    )
    s3.create_bucket(Bucket=name, **location)
    return s3


# --- One resource of each kind --------------------------------------------------------------------
# Each maker creates one resource in the member account and returns its id and expected label.


def _make_stack(aws, member):
    template = json.dumps({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}})
    stack_id = _in(aws, member, "cloudformation").create_stack(
        StackName="course-lab", TemplateBody=template
    )["StackId"]
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
    balancer = _in(aws, member, "elbv2").create_load_balancer(Name="web", Subnets=subnets)[
        "LoadBalancers"
    ][0]
    return balancer["LoadBalancerArn"], "web: application load balancer, active"


def _make_classic_load_balancer(aws, member):
    elb = _in(aws, member, "elb")
    listener = {"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}
    dns = elb.create_load_balancer(
        LoadBalancerName="legacy", Listeners=[listener], AvailabilityZones=["us-east-1a"]
    )["DNSName"]
    return "legacy", f"legacy: classic load balancer, {dns}"


def _make_instance(aws, member):
    instance_id = _run_instance(aws, member)["InstanceId"]
    return instance_id, f"web ({instance_id}): t3.micro, running"


def _make_nat_gateway(aws, member):
    ec2 = _in(aws, member, "ec2")
    subnet = ec2.describe_subnets()["Subnets"][0]
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    gateway = ec2.create_nat_gateway(SubnetId=subnet["SubnetId"], AllocationId=allocation)[
        "NatGateway"
    ]
    return gateway["NatGatewayId"], f"{gateway['NatGatewayId']}: in {subnet['VpcId']}, available"


def _make_elastic_ip(aws, member):
    address = _in(aws, member, "ec2").allocate_address(Domain="vpc")
    return address[
        "AllocationId"
    ], f"{address['AllocationId']}: {address['PublicIp']}, not attached"


def _make_volume(aws, member):
    volume_id = _in(aws, member, "ec2").create_volume(
        AvailabilityZone="us-east-1a", Size=8, VolumeType="gp3"
    )["VolumeId"]
    return volume_id, f"{volume_id}: 8 GiB gp3, available"


def _make_image(aws, member):
    image_id = _in(aws, member, "ec2").register_image(Name="lab-image")["ImageId"]
    return image_id, f"lab-image ({image_id}): available"


def _make_snapshot(aws, member):
    ec2 = _in(aws, member, "ec2")
    volume_id = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
    snapshot_id = ec2.create_snapshot(VolumeId=volume_id, Description="before the exam")[
        "SnapshotId"
    ]
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
    ecr.put_image(
        repositoryName="lab-images", imageManifest=json.dumps(manifest), imageTag="latest"
    )
    return "lab-images", f"lab-images: {uri}"


def _make_bucket(aws, member):
    _bucket(aws, member, "student-notes").put_object(
        Bucket="student-notes", Key="notes.txt", Body=b"hi"
    )
    return "student-notes", "student-notes"


MAKERS: dict[str, Callable] = {
    "cloudformation:stack": _make_stack,
    "sagemaker:endpoint": _make_endpoint,
    "sagemaker:notebook-instance": _make_stopped_notebook,
    "elbv2:load-balancer": _make_load_balancer,
    "elb:load-balancer": _make_classic_load_balancer,
    "ec2:instance": _make_instance,
    "ec2:nat-gateway": _make_nat_gateway,
    "ec2:elastic-ip": _make_elastic_ip,
    "ec2:volume": _make_volume,
    "ec2:image": _make_image,
    "ec2:snapshot": _make_snapshot,
    "rds:db-instance": _make_db_instance,
    "rds:db-snapshot": _make_db_snapshot,
    "lambda:function": _make_function,
    "dynamodb:table": _make_table,
    "ecr:repository": _make_repository,
    "s3:bucket": _make_bucket,
}


def test_every_kind_has_a_maker_here_and_a_plain_english_name():
    # IAM's kinds have theirs in tests/test_aws_cleanup_iam.py.
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


# --- What a kind needs beyond a plain delete ------------------------------------------------------


def test_a_versioned_bucket_is_emptied_of_every_version_and_delete_marker_then_deleted(aws, member):
    s3 = _bucket(aws, member, "versioned-notes")
    s3.put_bucket_versioning(
        Bucket="versioned-notes", VersioningConfiguration={"Status": "Enabled"}
    )
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
        return _aws_error(
            "VolumeInUse", f"Volume {data_volume} is currently attached to {instance_id}"
        )

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
    order = [
        c for c in calls if c in ("TerminateInstances", "DisassociateAddress", "ReleaseAddress")
    ]
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
    assert _listed(member, notebook.kind) == {
        "lab-notebook": "lab-notebook: ml.t3.medium, InService"
    }

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
        protected[params["body"]["StackName"]] = (
            params["body"]["EnableTerminationProtection"] == "true"
        )
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
