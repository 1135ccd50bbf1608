"""What a kind needs beyond a plain delete, against moto: a versioned bucket emptied first, an
instance whose volume and address go in later passes, a running notebook stopped before it is
deleted, a database deleted without a final snapshot. Where AWS answers differently from moto, a
`before-call` hook gives AWS's answer; each test that does says which.
"""

from __future__ import annotations

import pytest
from botocore.awsrequest import AWSResponse

from portal.aws import cleanup
from portal.aws.cleanup import Resource
from portal.aws.errors import PermanentAwsError
from tests.support.aws_script import Fault
from tests.support.cleanup_passes import clean_in_passes, listed
from tests.support.member_resources import REGION, create_bucket, create_db_instance, in_member, run_instance

pytestmark = pytest.mark.django_db


def test_a_versioned_bucket_is_emptied_of_every_version_and_delete_marker_then_deleted(aws, member):
    s3 = create_bucket(aws, member, "versioned-notes")
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
    s3 = create_bucket(aws, member, "locked-notes")
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
    assert listed(member, "s3:bucket") == {"locked-notes": "locked-notes"}


def test_an_instance_with_a_volume_and_an_address_is_cleaned_in_repeated_passes(aws, member):
    ec2 = in_member(aws, member, "ec2")
    instance = run_instance(aws, member)
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
        return Fault("VolumeInUse", f"Volume {data_volume} is currently attached to {instance_id}").response()

    aws.add_hook("before-call.ec2.DeleteVolume", still_shutting_down)

    assert listed(member, "ec2:volume") == {
        root_volume: f"{root_volume}: 8 GiB gp2, attached to {instance_id}",
        data_volume: f"{data_volume}: 10 GiB gp3, attached to {instance_id}",
    }
    assert listed(member, "ec2:elastic-ip")[allocation].endswith(f", attached to {instance_id}")

    first, second = clean_in_passes(member, [REGION])

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
    ec2 = in_member(aws, member, "ec2")
    instance_id = run_instance(aws, member)["InstanceId"]
    volume_id = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
    ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")

    with pytest.raises(PermanentAwsError) as refused:
        cleanup.delete(member, Resource(REGION, "ec2:volume", volume_id))

    assert refused.value.code == "VolumeInUse"
    assert volume_id in listed(member, "ec2:volume")


def test_terminated_instances_are_not_listed(aws, member):
    instance_id = run_instance(aws, member)["InstanceId"]
    in_member(aws, member, "ec2").terminate_instances(InstanceIds=[instance_id])

    assert listed(member, "ec2:instance") == {}


def test_a_running_notebook_is_stopped_by_one_pass_and_deleted_by_the_next(aws, member):
    sagemaker = in_member(aws, member, "sagemaker")
    sagemaker.create_notebook_instance(
        NotebookInstanceName="lab-notebook",
        InstanceType="ml.t3.medium",
        RoleArn=f"arn:aws:iam::{member}:role/sagemaker",
    )
    notebook = Resource(REGION, "sagemaker:notebook-instance", "lab-notebook")
    assert listed(member, notebook.kind) == {"lab-notebook": "lab-notebook: ml.t3.medium, InService"}

    cleanup.delete(member, notebook)

    assert listed(member, notebook.kind) == {"lab-notebook": "lab-notebook: ml.t3.medium, Stopped"}

    cleanup.delete(member, notebook)

    assert listed(member, notebook.kind) == {}


def test_a_db_instance_goes_without_a_final_snapshot_and_with_its_automated_backups(aws, member):
    create_db_instance(aws, member, BackupRetentionPeriod=7)
    rds = in_member(aws, member, "rds")
    assert rds.describe_db_snapshots(SnapshotType="automated")["DBSnapshots"]
    assert listed(member, "rds:db-snapshot") == {}  # automated ones go with the instance

    cleanup.delete(member, Resource(REGION, "rds:db-instance", "lab-db"))

    assert rds.describe_db_instances()["DBInstances"] == []
    assert rds.describe_db_snapshots()["DBSnapshots"] == []
