"""What keeps a resource, against moto: another AWS service that made it and deletes it itself,
and the protections a student switched on, which the cleanup switches off. AWS refuses to delete
a protected resource where moto does not: a `before-call` hook gives AWS's refusal.
"""

from __future__ import annotations

import json

import pytest
from botocore.awsrequest import AWSResponse

from portal.aws import cleanup
from portal.aws.cleanup import Resource
from tests.support.aws_script import PASS, AwsScript, Fault
from tests.support.cleanup_passes import listed
from tests.support.member_resources import REGION, create_db_instance, create_table, in_member, run_instance
from tests.support.resource_kinds import MAKERS

pytestmark = pytest.mark.django_db


# --- What another AWS service made, and deletes ---------------------------------------------------


def test_a_secret_another_service_manages_is_left_to_it(aws, member):
    """AWS marks the secret RDS keeps a master password in with OwningService and refuses to
    delete it; it goes with its database. moto does not mark it: scripted."""
    MAKERS["secretsmanager:secret"](aws, member)

    def owned_by_rds(parsed, **kwargs):
        for secret in parsed["SecretList"]:
            secret["OwningService"] = "rds"

    aws.add_hook("after-call.secrets-manager.ListSecrets", owned_by_rds)

    assert listed(member, "secretsmanager:secret") == {}


def test_aws_managed_keys_are_not_the_students_and_are_not_described(aws, member):
    """moto names AWS managed keys (alias/aws/…) in ListAliases without the keys; AWS lists
    them in ListKeys too: scripted."""
    script = AwsScript(aws)
    key_id, label = MAKERS["kms:key"](aws, member)
    kms = in_member(aws, member, "kms")
    aliases = kms.list_aliases()["Aliases"]
    managed = {a["TargetKeyId"] for a in aliases if a["AliasName"].startswith("alias/aws/")}
    assert managed

    def list_managed_keys(parsed, **kwargs):
        parsed["Keys"] += [{"KeyId": key, "KeyArn": f"arn:aws:kms:{REGION}:{member}:key/{key}"} for key in managed]

    aws.add_hook("after-call.kms.ListKeys", list_managed_keys)

    assert listed(member, "kms:key") == {key_id: label}
    assert [params["KeyId"] for params in script.params["DescribeKey"]] == [key_id]


# --- Protections the student switched on ----------------------------------------------------------


def test_termination_protection_does_not_keep_an_instance(aws, member):
    instance_id = run_instance(aws, member, DisableApiTermination=True)["InstanceId"]

    cleanup.delete(member, Resource(REGION, "ec2:instance", instance_id))

    assert listed(member, "ec2:instance") == {}


def test_deletion_protection_does_not_keep_a_db_instance(aws, member):
    create_db_instance(aws, member, DeletionProtection=True)

    cleanup.delete(member, Resource(REGION, "rds:db-instance", "lab-db"))

    assert listed(member, "rds:db-instance") == {}


def test_deletion_protection_does_not_keep_a_table(aws, member):
    create_table(aws, member, DeletionProtectionEnabled=True)

    cleanup.delete(member, Resource(REGION, "dynamodb:table", "scores"))

    assert listed(member, "dynamodb:table") == {}


def test_deletion_protection_does_not_keep_a_load_balancer(aws, member):
    arn, _ = MAKERS["elbv2:load-balancer"](aws, member)
    elbv2 = in_member(aws, member, "elbv2")
    protection = {"Key": "deletion_protection.enabled", "Value": "true"}
    elbv2.modify_load_balancer_attributes(LoadBalancerArn=arn, Attributes=[protection])

    def refuse_while_protected(**kwargs):
        # AWS refuses to delete a protected load balancer; moto does not.
        if protection in elbv2.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]:
            return Fault(
                "OperationNotPermitted",
                f"Load balancer '{arn}' cannot be deleted because deletion protection is enabled",
            ).response()
        return None

    aws.add_hook("before-call.elastic-load-balancing-v2.DeleteLoadBalancer", refuse_while_protected)

    cleanup.delete(member, Resource(REGION, "elbv2:load-balancer", arn))

    assert listed(member, "elbv2:load-balancer") == {}


def test_termination_protection_does_not_keep_a_stack(aws, member):
    template = json.dumps({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}})
    stack_id = in_member(aws, member, "cloudformation").create_stack(
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
            return Fault(
                "ValidationError",
                "Stack [course-lab] cannot be deleted while TerminationProtection is enabled",
            ).response()
        return None

    aws.add_hook("before-call.cloudformation.UpdateTerminationProtection", update_protection)
    aws.add_hook("before-call.cloudformation.DeleteStack", refuse_while_protected)

    cleanup.delete(member, Resource(REGION, "cloudformation:stack", stack_id))

    assert protected == {stack_id: False}
    assert listed(member, "cloudformation:stack") == {}


def test_a_nested_stack_is_left_to_its_parent(aws, member):
    template = json.dumps({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}})
    cfn = in_member(aws, member, "cloudformation")
    parent = cfn.create_stack(StackName="course-lab", TemplateBody=template)["StackId"]
    cfn.create_stack(StackName="course-lab-Network-1ABC", TemplateBody=template)

    def mark_nested(parsed, **kwargs):
        # moto does not say which stacks are nested; AWS gives them their parent's id.
        for stack in parsed.get("Stacks", []):
            if stack["StackName"] == "course-lab-Network-1ABC":
                stack["ParentId"] = stack["RootId"] = parent

    aws.add_hook("after-call.cloudformation.DescribeStacks", mark_nested)

    assert list(listed(member, "cloudformation:stack")) == [parent]


def test_deletion_protection_does_not_keep_a_log_group(aws, member):
    """moto has no log group deletion protection (nor PutLogGroupDeletionProtection): AWS's,
    scripted."""
    script = AwsScript(aws)
    name, _ = MAKERS["logs:log-group"](aws, member)
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
    assert listed(member, "logs:log-group") == {}
