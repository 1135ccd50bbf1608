"""A freeze stops what the account spends, and an unfreeze brings it back (services/spending.py,
portal/aws/spending.py).

AWS is moto (the `aws` fixture: an organization set up by aws_bootstrap, cleanup regions us-east-1
and eu-west-1). Resources are made inside the member account through its organization role, as
the portal reaches it. moto stops, starts and scales what it has; where it answers otherwise than
AWS, `AwsScript` (tests/support/aws_script.py) gives AWS's answer at botocore's `before-call`
event, and each test says which:

- moto stops any instance; AWS refuses to stop an instance-store or one-time spot instance
  (UnsupportedOperation);
- moto stops an RDS DB instance that has read replicas, and calls the refusal of a replica a
  cluster error; AWS refuses both (InvalidDBInstanceState); AWS also refuses StopDBInstance for an
  Aurora cluster's member, whose cluster is stopped instead (moto leaves the member "available");
- AWS starts a stopped RDS DB instance or Aurora cluster by itself after seven days; moto never
  does, so the test starts them as AWS would.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from botocore.exceptions import ReadTimeoutError
from celery.exceptions import Retry
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from moto.core.models import botocore_stubber

from accounts_app.choices import AccountState as S
from accounts_app.choices import AuditAction, SpendingStatus
from accounts_app.models import AuditEvent, MemberAccount
from accounts_app.services.ending import course_end
from accounts_app.services.freezing import account_freeze_sync
from accounts_app.services.guardrails import freeze_policy_id
from accounts_app.services.ownership import MANAGED_BY_TAG
from accounts_app.services.spending import (
    ERROR_PREFIX,
    RESTORE_ERROR_PREFIX,
    account_spending_sync,
    spending_reconcile,
)
from accounts_app.tasks import account_spending_sync_task
from billing_app.services.budgets import account_freeze, account_unfreeze
from portal.aws import organizations
from portal.aws.errors import TransientAwsError
from portal.aws.session import client
from tests.support.aws_calls import students_ready_account
from tests.support.aws_script import PASS, AwsScript, Fault

pytestmark = pytest.mark.django_db

REGION, OTHER_REGION = "us-east-1", "eu-west-1"
IMAGE_ID = "ami-12c6146b"  # any id does: moto does not check images
# Calls that change something in the member account: none may be made twice, or past the gate.
WRITES = {
    "StopInstances",
    "StartInstances",
    "ModifyInstanceAttribute",
    "UpdateAutoScalingGroup",
    "StopNotebookInstance",
    "StartNotebookInstance",
    "DeleteEndpoint",
    "CreateEndpoint",
    "StopDBInstance",
    "StartDBInstance",
    "StopDBCluster",
    "StartDBCluster",
}


@pytest.fixture
def account(personas, aws) -> MemberAccount:
    """The persona student's ready account, made in moto and placed where vending puts it."""
    return students_ready_account(personas)


def inside(account: MemberAccount, service: str, region: str = REGION):
    """A client inside the member account, as the portal reaches it."""
    return client(service, account_id=account.aws_account_id, region=region)


# --- What a student leaves running -----------------------------------------------------------------


def run_instance(account, name: str, region: str = REGION, **options) -> str:
    return inside(account, "ec2", region).run_instances(
        ImageId=IMAGE_ID,
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.micro",
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}],
        **options,
    )["Instances"][0]["InstanceId"]


def make_group(account, name: str = "workers") -> None:
    ec2 = inside(account, "ec2")
    ec2.create_launch_template(
        LaunchTemplateName=f"{name}-template", LaunchTemplateData={"ImageId": IMAGE_ID, "InstanceType": "t3.micro"}
    )
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    inside(account, "autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": f"{name}-template"},
        MinSize=1,
        MaxSize=3,
        DesiredCapacity=2,
        VPCZoneIdentifier=subnet,
    )


def make_notebook(account, name: str = "lab-notebook") -> None:
    inside(account, "sagemaker").create_notebook_instance(
        NotebookInstanceName=name,
        InstanceType="ml.t3.medium",
        RoleArn=f"arn:aws:iam::{account.aws_account_id}:role/sagemaker",
    )


def make_endpoint(account, name: str) -> None:
    sagemaker = inside(account, "sagemaker")
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn=f"arn:aws:iam::{account.aws_account_id}:role/sagemaker",
        PrimaryContainer={"Image": f"{name}:latest"},
    )
    variant = {"VariantName": "all", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.t2.medium"}
    sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name, Tags=[{"Key": "project", "Value": "lab5"}])


def make_database(account, name: str = "lab-db", **options) -> None:
    inside(account, "rds").create_db_instance(
        DBInstanceIdentifier=name,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="student",
        MasterUserPassword="not-a-secret-1",
        AllocatedStorage=20,
        **options,
    )


def make_aurora(account, name: str = "lab-aurora") -> None:
    rds = inside(account, "rds")
    rds.create_db_cluster(
        DBClusterIdentifier=name,
        Engine="aurora-postgresql",
        MasterUsername="student",
        MasterUserPassword="not-a-secret-1",
    )
    rds.create_db_instance(
        DBInstanceIdentifier=f"{name}-1",
        DBClusterIdentifier=name,
        Engine="aurora-postgresql",
        DBInstanceClass="db.t3.medium",
    )


def a_bit_of_everything(account) -> dict[str, str]:
    """What a student leaves running at the freeze, in both regions; and one instance they stopped
    themselves, which the unfreeze must leave stopped."""
    ids = {"web": run_instance(account, "web"), "far": run_instance(account, "far", OTHER_REGION)}
    ids["idle"] = run_instance(account, "idle")
    inside(account, "ec2").stop_instances(InstanceIds=[ids["idle"]])
    make_group(account)
    make_notebook(account)
    make_endpoint(account, "digits")
    make_endpoint(account, "faces")
    make_database(account)
    make_aurora(account)
    return ids


# --- Reading the world back ------------------------------------------------------------------------


def instance_state(account, instance_id: str, region: str = REGION) -> str:
    reservations = inside(account, "ec2", region).describe_instances(InstanceIds=[instance_id])["Reservations"]
    return reservations[0]["Instances"][0]["State"]["Name"]


def group_sizes(account, name: str = "workers") -> tuple[int, int, int]:
    group = inside(account, "autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
        "AutoScalingGroups"
    ][0]
    return group["MinSize"], group["MaxSize"], group["DesiredCapacity"]


def notebook_status(account) -> str:
    return inside(account, "sagemaker").describe_notebook_instance(NotebookInstanceName="lab-notebook")[
        "NotebookInstanceStatus"
    ]


def endpoints(account) -> dict[str, str]:
    listed = inside(account, "sagemaker").list_endpoints()["Endpoints"]
    return {e["EndpointName"]: e["EndpointStatus"] for e in listed}


def db_status(account, name: str = "lab-db") -> str:
    return inside(account, "rds").describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]["DBInstanceStatus"]


def cluster_status(account, name: str = "lab-aurora") -> str:
    return inside(account, "rds").describe_db_clusters(DBClusterIdentifier=name)["DBClusters"][0]["Status"]


def note(account) -> dict[str, dict]:
    """The note's entries, by "region/kind/id"."""
    report = MemberAccount.objects.get(pk=account.pk).spending_report
    return {f"{e['region']}/{e['kind']}/{e['id']}": e for e in report.get("resources", [])}


def statuses(account) -> dict[str, str]:
    return {key: entry["status"] for key, entry in note(account).items()}


def writes(script: AwsScript) -> list[str]:
    return [operation for operation in script.log if operation in WRITES]


def freeze(personas, account, capture) -> None:
    """An instructor freezes the account; every task queued on commit runs."""
    with capture(execute=True):
        assert account_freeze(actor=personas.instructor, account=account, reason="Paused by the instructor")


def unfreeze(personas, account, capture) -> None:
    with capture(execute=True):
        assert account_unfreeze(actor=personas.instructor, account=MemberAccount.objects.get(pk=account.pk))


# --- The freeze ------------------------------------------------------------------------------------


def test_a_freeze_stops_everything_that_bills_and_writes_it_down(personas, account, django_capture_on_commit_callbacks):
    ids = a_bit_of_everything(account)
    mail.outbox.clear()

    freeze(personas, account, django_capture_on_commit_callbacks)

    assert instance_state(account, ids["web"]) == "stopped"  # stopped, not terminated
    assert instance_state(account, ids["far"], OTHER_REGION) == "stopped"
    assert group_sizes(account) == (0, 0, 0)
    assert notebook_status(account) == "Stopped"
    assert endpoints(account) == {}
    # The endpoints' configs stay, to re-create them.
    configs = inside(account, "sagemaker").list_endpoint_configs()["EndpointConfigs"]
    assert sorted(c["EndpointConfigName"] for c in configs) == ["digits", "faces"]
    assert db_status(account) == "stopped"
    assert cluster_status(account) == "stopped"

    entries = note(account)
    assert statuses(account) == {
        f"{REGION}/autoscaling:group/workers": SpendingStatus.STOPPED,
        f"{REGION}/ec2:instance/{ids['web']}": SpendingStatus.STOPPED,
        f"{REGION}/sagemaker:notebook-instance/lab-notebook": SpendingStatus.STOPPED,
        f"{REGION}/sagemaker:endpoint/digits": SpendingStatus.STOPPED,
        f"{REGION}/sagemaker:endpoint/faces": SpendingStatus.STOPPED,
        f"{REGION}/rds:db-cluster/lab-aurora": SpendingStatus.STOPPED,
        f"{REGION}/rds:db-instance/lab-db": SpendingStatus.STOPPED,
        f"{OTHER_REGION}/ec2:instance/{ids['far']}": SpendingStatus.STOPPED,
    }
    # The student's own stopped instance, and the group's instances (the scale-in's), are not the portal's.
    assert not [key for key in entries if ids["idle"] in key]
    assert entries[f"{REGION}/autoscaling:group/workers"]["memory"] == {"min": 1, "max": 3, "desired": 2}
    assert entries[f"{REGION}/sagemaker:endpoint/digits"]["memory"] == {
        "config": "digits",
        "tags": [{"Key": "project", "Value": "lab5"}],
    }

    audit = AuditEvent.objects.get(action=AuditAction.SPENDING_STOPPED)
    assert audit.actor_label == "system" and audit.object_id == str(account.pk)
    assert f"EC2 instance web ({ids['web']}): t3.micro, running in {REGION}: stopped" in audit.summary
    assert len(audit.data["resources"]) == 8

    [stopped_mail] = [m for m in mail.outbox if "was stopped" in m.subject]
    assert stopped_mail.to == [
        "alerts@school.example",
        "instructor@school.example",
        "student@school.example",
        "ta@school.example",
    ]
    assert "Why: Paused by the instructor." in stopped_mail.body
    assert f"EC2 instance web ({ids['web']}): t3.micro, running in {REGION}: stopped" in stopped_mail.body
    assert "Auto Scaling group workers: 2 instance(s), min 1, max 3" in stopped_mail.body
    assert "Ask your instructor to raise the budget" in stopped_mail.body

    account.refresh_from_db()
    assert (account.state, account.freeze_sync_pending, account.last_error) == (S.FROZEN, False, "")


def test_the_student_and_staff_read_what_was_stopped_and_how_to_ask_for_more(
    personas, account, django_capture_on_commit_callbacks
):
    web = run_instance(account, "web")
    freeze(personas, account, django_capture_on_commit_callbacks)

    panel = personas.client("student").get(reverse("courses:my_account", args=[personas.course.pk]))
    staff_page = personas.client("ta").get(reverse("billing:student_costs", args=[personas.course.pk, account.pk]))

    for page in (panel, staff_page):
        text = page.content.decode()
        assert f"EC2 instance web ({web}): t3.micro, running" in text
        assert "stopped" in text and "Ask your instructor to raise the budget" in text


def test_a_second_run_changes_nothing(personas, account, script, django_capture_on_commit_callbacks):
    a_bit_of_everything(account)
    freeze(personas, account, django_capture_on_commit_callbacks)
    before = note(account)
    mails, audits = len(mail.outbox), AuditEvent.objects.filter(action=AuditAction.SPENDING_STOPPED).count()
    script.log.clear()

    account_spending_sync(account_id=account.pk)  # a redelivered task, or the daily look

    assert writes(script) == []
    assert note(account) == before
    assert (len(mail.outbox), AuditEvent.objects.filter(action=AuditAction.SPENDING_STOPPED).count()) == (mails, audits)


def test_a_lost_answer_is_not_forgotten_and_the_retry_finishes(personas, account, aws, script):
    """AWS stops the instance but every answer is lost (botocore's own retries too): the note already
    holds the instance (written before the call), so the task's retry, which no longer finds it
    running, still counts it the portal's."""
    web = run_instance(account, "web")
    MemberAccount.objects.filter(pk=account.pk).update(state=S.FROZEN)
    answers_lost = True

    def lose_the_answer(request, event_name, **kwargs):
        if answers_lost:
            botocore_stubber(event_name=event_name, request=request)  # AWS does the work…
            raise ReadTimeoutError(endpoint_url=request.url)  # …and its answer never comes back

    aws.add_hook("before-send.ec2.StopInstances", lose_the_answer)

    assert TransientAwsError in account_spending_sync_task.autoretry_for
    with pytest.raises(TransientAwsError):
        account_spending_sync(account_id=account.pk)
    assert instance_state(account, web) == "stopped"
    assert statuses(account) == {f"{REGION}/ec2:instance/{web}": SpendingStatus.STOPPING}

    answers_lost = False
    calls = script.calls["StopInstances"]

    account_spending_sync(account_id=account.pk)  # the task's retry

    assert statuses(account) == {f"{REGION}/ec2:instance/{web}": SpendingStatus.STOPPED}
    assert script.calls["StopInstances"] == calls  # not stopped twice


def test_the_freeze_scp_is_not_held_up_by_the_spending_step(
    personas, account, script, django_capture_on_commit_callbacks
):
    run_instance(account, "web")
    MemberAccount.objects.filter(pk=account.pk).update(state=S.FROZEN, freeze_sync_pending=True)
    script.always("ec2", "DescribeRegions", Fault("RequestLimitExceeded", "Request limit exceeded."))

    with django_capture_on_commit_callbacks() as queued:
        assert account_freeze_sync(account_id=account.pk)  # the SCP is on, whatever the next step meets

    assert account.aws_account_id in organizations.policy_targets(freeze_policy_id())
    assert len(queued) == 1  # the spending step, a task of its own: throttled, it is retried alone
    with pytest.raises(Retry, match="TransientAwsError"):
        queued[0]()
    account.refresh_from_db()
    assert (account.freeze_sync_pending, account.last_error) == (False, "")


def test_stop_protection_is_turned_off_for_the_freeze_and_on_again_after(
    personas, account, django_capture_on_commit_callbacks
):
    web = run_instance(account, "web", DisableApiStop=True)

    freeze(personas, account, django_capture_on_commit_callbacks)

    assert instance_state(account, web) == "stopped"
    assert note(account)[f"{REGION}/ec2:instance/{web}"]["memory"] == {"stop_protection": True}

    unfreeze(personas, account, django_capture_on_commit_callbacks)

    assert instance_state(account, web) == "running"
    attribute = inside(account, "ec2").describe_instance_attribute(InstanceId=web, Attribute="disableApiStop")
    assert attribute["DisableApiStop"]["Value"] is True


# --- What AWS refuses to stop ----------------------------------------------------------------------

REFUSALS = {
    "instance-store": "The instance '{id}' does not have an 'ebs' root device type and cannot be stopped.",
    "one-time spot": "You can't stop the Spot Instance '{id}' because it is associated with a one-time Spot "
    "Instance request. You can only stop Spot Instances associated with a persistent Spot Instance request.",
}


@pytest.mark.parametrize("kind", REFUSALS)
def test_an_instance_aws_cannot_stop_is_reported_not_stopped_with_aws_reason(
    personas, account, script, kind, django_capture_on_commit_callbacks
):
    """moto stops any instance; AWS refuses instance-store and one-time spot instances with
    UnsupportedOperation (scripted for that instance only)."""
    web, scratch = run_instance(account, "web"), run_instance(account, "scratch")
    reason = REFUSALS[kind].format(id=scratch)
    refuse = Fault("UnsupportedOperation", reason)
    script.always("ec2", "StopInstances", lambda params: refuse if params["InstanceIds"] == [scratch] else PASS)
    mail.outbox.clear()

    freeze(personas, account, django_capture_on_commit_callbacks)

    assert (instance_state(account, web), instance_state(account, scratch)) == ("stopped", "running")
    entry = note(account)[f"{REGION}/ec2:instance/{scratch}"]
    assert (entry["status"], entry["reason"]) == (SpendingStatus.NOT_STOPPED, reason)
    account.refresh_from_db()
    assert account.last_error.startswith(ERROR_PREFIX) and reason in account.last_error
    [stopped_mail] = [m for m in mail.outbox if "was stopped" in m.subject]
    assert "AWS refused to stop these" in stopped_mail.body and reason in stopped_mail.body

    # Tried again by the next look, refused again: the same note, no second audit line.
    audits = AuditEvent.objects.filter(action=AuditAction.SPENDING_STOPPED).count()
    account_spending_sync(account_id=account.pk)
    assert note(account)[f"{REGION}/ec2:instance/{scratch}"]["status"] == SpendingStatus.NOT_STOPPED
    assert AuditEvent.objects.filter(action=AuditAction.SPENDING_STOPPED).count() == audits

    # Once it has gone (AWS reclaimed the spot instance, staff terminated it), it bills no more.
    inside(account, "ec2").terminate_instances(InstanceIds=[scratch])
    account_spending_sync(account_id=account.pk)
    assert statuses(account) == {f"{REGION}/ec2:instance/{web}": SpendingStatus.STOPPED}
    account.refresh_from_db()
    assert account.last_error == ""


def test_an_aurora_cluster_is_stopped_whole_and_its_members_never_alone(
    personas, account, script, django_capture_on_commit_callbacks
):
    """AWS refuses StopDBInstance for an Aurora member (scripted: moto would stop it, and leaves it
    "available" once its cluster stops); the cluster is what the portal stops."""
    make_aurora(account)
    not_alone = "aurora-postgresql database instances are not eligible for stopping and starting."
    script.always("rds", "StopDBInstance", Fault("InvalidParameterCombination", not_alone))

    freeze(personas, account, django_capture_on_commit_callbacks)
    account_spending_sync(account_id=account.pk)  # moto's member still says "available": not listed

    assert cluster_status(account) == "stopped"
    assert statuses(account) == {f"{REGION}/rds:db-cluster/lab-aurora": SpendingStatus.STOPPED}
    assert script.calls["StopDBInstance"] == 0


def test_a_database_with_read_replicas_is_reported_not_stopped(
    personas, account, script, django_capture_on_commit_callbacks
):
    """AWS cannot stop a DB instance that has a read replica, nor the replica
    (InvalidDBInstanceState, scripted: moto stops the source, and answers for the replica with a
    cluster error)."""
    make_database(account)
    inside(account, "rds").create_db_instance_read_replica(
        DBInstanceIdentifier="lab-db-replica", SourceDBInstanceIdentifier="lab-db"
    )
    reasons = {
        "lab-db": "Cannot stop DB instance lab-db: it has read replicas.",
        "lab-db-replica": "Cannot stop DB instance lab-db-replica: it is a read replica.",
    }
    script.always(
        "rds",
        "StopDBInstance",
        lambda params: Fault("InvalidDBInstanceState", reasons[params["DBInstanceIdentifier"]]),
    )

    freeze(personas, account, django_capture_on_commit_callbacks)

    entries = note(account)
    assert {key: (e["status"], e["reason"]) for key, e in entries.items()} == {
        f"{REGION}/rds:db-instance/{name}": (SpendingStatus.NOT_STOPPED, reason) for name, reason in reasons.items()
    }
    account.refresh_from_db()
    assert all(reason in account.last_error for reason in reasons.values())


# --- The unfreeze ----------------------------------------------------------------------------------


def test_an_unfreeze_brings_back_only_what_the_portal_stopped(
    personas, account, script, django_capture_on_commit_callbacks
):
    ids = a_bit_of_everything(account)
    freeze(personas, account, django_capture_on_commit_callbacks)
    # While frozen: the school's staff delete an endpoint config and an instance goes away.
    inside(account, "sagemaker").delete_endpoint_config(EndpointConfigName="faces")
    inside(account, "ec2", OTHER_REGION).terminate_instances(InstanceIds=[ids["far"]])
    script.log.clear()

    unfreeze(personas, account, django_capture_on_commit_callbacks)

    assert instance_state(account, ids["web"]) == "running"
    assert instance_state(account, ids["idle"]) == "stopped"  # the student's own stop stands
    assert group_sizes(account) == (1, 3, 2)
    assert notebook_status(account) == "InService"
    assert endpoints(account) == {"digits": "InService"}
    endpoint = inside(account, "sagemaker").describe_endpoint(EndpointName="digits")
    assert endpoint["EndpointConfigName"] == "digits"
    tags = inside(account, "sagemaker").list_tags(ResourceArn=endpoint["EndpointArn"])["Tags"]
    assert tags == [{"Key": "project", "Value": "lab5"}]
    assert db_status(account) == "available"
    assert cluster_status(account) == "available"
    assert ids["idle"] not in str(script.params["StartInstances"])

    entries = note(account)
    not_back = {key: e["reason"] for key, e in entries.items() if e["status"] == SpendingStatus.NOT_RESTORED}
    assert not_back == {
        f"{REGION}/sagemaker:endpoint/faces": "its endpoint config faces no longer exists",
        f"{OTHER_REGION}/ec2:instance/{ids['far']}": "it no longer exists",
    }
    assert sum(e["status"] == SpendingStatus.RESTORED for e in entries.values()) == 6
    audit = AuditEvent.objects.get(action=AuditAction.SPENDING_RESTORED)
    assert "SageMaker endpoint faces" in audit.summary and "its endpoint config faces no longer exists" in audit.summary
    panel = personas.client("student").get(reverse("courses:my_account", args=[personas.course.pk])).content.decode()
    assert "the unfreeze did not start again" in panel and "its endpoint config faces no longer exists" in panel

    # Unfreezing again later, or a redelivered task, brings nothing back twice.
    script.log.clear()
    account_spending_sync(account_id=account.pk)
    assert writes(script) == []


def test_a_group_whose_sizes_changed_while_frozen_is_left_as_it_is(
    personas, account, django_capture_on_commit_callbacks
):
    make_group(account)
    freeze(personas, account, django_capture_on_commit_callbacks)
    inside(account, "autoscaling").update_auto_scaling_group(AutoScalingGroupName="workers", MaxSize=1)

    unfreeze(personas, account, django_capture_on_commit_callbacks)

    assert group_sizes(account) == (0, 1, 0)
    entry = note(account)[f"{REGION}/autoscaling:group/workers"]
    assert (entry["status"], entry["reason"]) == (
        SpendingStatus.NOT_RESTORED,
        "its sizes were changed since the freeze (min 0, max 1, desired 0)",
    )


def test_the_end_of_the_course_after_an_unfreeze_starts_a_new_note(
    personas, account, django_capture_on_commit_callbacks
):
    web = run_instance(account, "web")
    freeze(personas, account, django_capture_on_commit_callbacks)
    unfreeze(personas, account, django_capture_on_commit_callbacks)
    inside(account, "ec2").stop_instances(InstanceIds=[web])  # the student stops it themselves
    make_notebook(account)

    with django_capture_on_commit_callbacks(execute=True):
        course_end(actor=personas.instructor, course=personas.course)

    assert MemberAccount.objects.get(pk=account.pk).state == S.ENDED
    assert statuses(account) == {f"{REGION}/sagemaker:notebook-instance/lab-notebook": SpendingStatus.STOPPED}


# --- The gate --------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["the organization's root", "untagged"])
def test_the_gate_refuses_an_account_that_is_not_in_its_ou(personas, account, aws, script, where):
    web = run_instance(account, "web")
    MemberAccount.objects.filter(pk=account.pk).update(state=S.FROZEN)
    if where == "untagged":
        aws.client("organizations").untag_resource(ResourceId=account.aws_account_id, TagKeys=list(MANAGED_BY_TAG))
    else:
        root = aws.client("organizations").list_roots()["Roots"][0]["Id"]
        aws.client("organizations").move_account(
            AccountId=account.aws_account_id, SourceParentId=personas.course.aws_ou_id, DestinationParentId=root
        )
    script.log.clear()

    account_spending_sync(account_id=account.pk)

    assert writes(script) == [] and "DescribeInstances" not in script.log
    assert instance_state(account, web) == "running"
    account.refresh_from_db()
    assert account.last_error.startswith(ERROR_PREFIX) and account.aws_account_id in account.last_error
    report = account.spending_report
    assert report["resources"] == [] and account.aws_account_id in report["errors"][0] and report["checked_at"]


def test_the_gate_refuses_to_bring_anything_back_in_an_account_that_left_its_ou(
    personas, account, aws, script, django_capture_on_commit_callbacks
):
    web = run_instance(account, "web")
    freeze(personas, account, django_capture_on_commit_callbacks)
    root = aws.client("organizations").list_roots()["Roots"][0]["Id"]
    aws.client("organizations").move_account(
        AccountId=account.aws_account_id, SourceParentId=personas.course.aws_ou_id, DestinationParentId=root
    )
    before = note(account)
    MemberAccount.objects.filter(pk=account.pk).update(state=S.READY)
    script.log.clear()

    account_spending_sync(account_id=account.pk)

    assert writes(script) == [] and instance_state(account, web) == "stopped"
    account.refresh_from_db()
    assert account.last_error.startswith(RESTORE_ERROR_PREFIX) and account.aws_account_id in account.last_error
    assert note(account) == before and "restored_at" not in account.spending_report


# --- The reconciler --------------------------------------------------------------------------------


def test_the_reconciler_stops_again_a_database_aws_restarted_while_frozen(
    personas, account, script, django_capture_on_commit_callbacks
):
    """AWS starts a stopped RDS DB instance or Aurora cluster after seven days; moto never does, so
    the test starts them as AWS would."""
    make_database(account)
    make_aurora(account)
    freeze(personas, account, django_capture_on_commit_callbacks)
    inside(account, "rds").start_db_instance(DBInstanceIdentifier="lab-db")
    inside(account, "rds").start_db_cluster(DBClusterIdentifier="lab-aurora")
    restarts = AuditEvent.objects.filter(action=AuditAction.SPENDING_STOPPED).count()

    # Within a day of the last look: nothing is queued.
    with django_capture_on_commit_callbacks() as queued:
        assert spending_reconcile(now=timezone.now() + timedelta(hours=2)) == []
    assert queued == []

    with django_capture_on_commit_callbacks(execute=True):
        assert spending_reconcile(now=timezone.now() + timedelta(days=7, hours=1)) == []

    assert (db_status(account), cluster_status(account)) == ("stopped", "stopped")
    assert set(statuses(account).values()) == {SpendingStatus.STOPPED}
    audit = AuditEvent.objects.filter(action=AuditAction.SPENDING_STOPPED).order_by("id").last()
    assert AuditEvent.objects.filter(action=AuditAction.SPENDING_STOPPED).count() == restarts + 1
    assert "RDS DB instance lab-db" in audit.summary and "Aurora DB cluster lab-aurora" in audit.summary

    # Unfrozen: both come back once, as the portal stopped them.
    unfreeze(personas, account, django_capture_on_commit_callbacks)
    assert (db_status(account), cluster_status(account)) == ("available", "available")


def test_the_reconciler_queues_a_lost_step_and_a_bounded_number_of_daily_looks(
    personas, account, settings, monkeypatch
):
    settings.PORTAL_SPENDING_CHECKS_PER_RUN = 2
    later = timezone.now() + timedelta(hours=1)
    others = []
    for n in range(3):
        other = MemberAccount.objects.create(
            course=personas.course,
            state=S.FROZEN,
            root_email=f"aws+other{n}@school.example",
            account_name=f"other{n}",
            aws_account_id=f"11111111111{n}",
        )
        others.append(other)
    # One frozen an hour ago whose step never ran (a lost task), two looked at two days ago.
    MemberAccount.objects.filter(pk=account.pk).update(state=S.FROZEN, state_changed_at=timezone.now())
    two_days_ago = (timezone.now() - timedelta(days=2)).isoformat()
    long_ago = timezone.now() - timedelta(days=3)
    for other in others[:2]:
        MemberAccount.objects.filter(pk=other.pk).update(
            state_changed_at=long_ago, spending_report={"resources": [], "checked_at": two_days_ago}
        )
    MemberAccount.objects.filter(pk=others[2].pk).update(
        state_changed_at=long_ago, spending_report={"resources": [], "checked_at": timezone.now().isoformat()}
    )

    queued_for: list[int] = []
    monkeypatch.setattr(account_spending_sync_task, "delay_on_commit", queued_for.append)

    drift = spending_reconcile(now=later)

    assert drift == ["cs101-student is frozen, but what it runs was not stopped yet: stopping it."]
    assert queued_for == [account.pk, others[0].pk]  # never looked at first, then the oldest look
