"""The end-of-course cleanup of a member account (portal/aws/cleanup.py), against moto: every
kind listed, deleted and deleted again, the order of the kinds, and the regions looked in.

Resources are made inside a member account, through its organization role as the portal reaches
it (tests/support/member_resources.py; one of each kind: tests/support/resource_kinds.py), then
listed and deleted by portal.aws.cleanup. Where AWS answers differently from moto, a
`before-call` hook or an `AwsScript` gives AWS's real answer; each test that does says which.

Beside this file: what holds or relaunches what (test_cleanup_order.py), what takes more than one
plain delete (test_cleanup_passes.py), what the student or another AWS service protects
(test_cleanup_protections.py), and IAM (test_cleanup_iam.py).
"""

from __future__ import annotations

import json

import pytest

from accounts_app.services.cleanup import cleanup_regions
from portal.aws import cleanup, cleanup_iam
from portal.aws.cleanup import KIND_LABELS, KINDS, Resource
from tests.support.aws_script import AwsScript
from tests.support.cleanup_passes import clean_in_passes, listed
from tests.support.member_resources import (
    IMAGE_ID,
    OTHER_REGION,
    REGION,
    create_bucket,
    create_table,
    in_member,
    run_instance,
)
from tests.support.resource_kinds import MAKERS

pytestmark = pytest.mark.django_db


def test_every_kind_has_a_maker_here_and_a_plain_english_name():
    # IAM's kinds have theirs in tests/portal/aws/test_cleanup_iam.py.
    assert set(MAKERS) | set(cleanup_iam.KIND_LABELS) == set(KINDS) == set(KIND_LABELS)
    assert all(KIND_LABELS[kind][0].isupper() and KIND_LABELS[kind].endswith("s") for kind in KINDS)


@pytest.mark.parametrize("kind", MAKERS)
def test_each_kind_is_listed_deleted_and_deleting_it_again_is_harmless(aws, member, kind):
    resource_id, label = MAKERS[kind](aws, member)

    assert listed(member, kind) == {resource_id: label}

    cleanup.delete(member, Resource(REGION, kind, resource_id, label))

    assert listed(member, kind) == {}
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
    everything = in_member(aws, member, "ec2").describe_regions(AllRegions=True)["Regions"]
    not_opted_in = {r["RegionName"] for r in everything if r["OptInStatus"] == "not-opted-in"}

    regions = cleanup.enabled_regions(member)

    assert {"us-east-1", "eu-west-1"} <= set(regions)
    assert not_opted_in and not set(regions) & not_opted_in
    assert regions == sorted(regions)


def test_by_default_cleanup_looks_in_every_region_the_account_has_enabled(aws, member, settings):
    settings.PORTAL_CLEANUP_REGIONS = []
    everything = in_member(aws, member, "ec2").describe_regions(AllRegions=True)["Regions"]
    enabled = {r["RegionName"] for r in everything if r["OptInStatus"] != "not-opted-in"}

    assert set(cleanup_regions(member)) == enabled
    assert len(enabled) > 10


def test_buckets_and_hosted_zones_are_listed_once_however_many_regions(aws, member):
    """Both are global: one listing for the account, each bucket placed in its region, a hosted
    zone in Route 53's whatever the regions looked in."""
    script = AwsScript(aws)
    create_bucket(aws, member, "notes-away", region=OTHER_REGION)
    zone_id, label = MAKERS["route53:hosted-zone"](aws, member)
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
    home = run_instance(aws, member, "home")["InstanceId"]
    away = run_instance(aws, member, "away", region=OTHER_REGION)["InstanceId"]
    create_bucket(aws, member, "notes-home")
    create_bucket(aws, member, "notes-away", region=OTHER_REGION)
    create_table(aws, member, "scores-away", region=OTHER_REGION)
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

    passes = clean_in_passes(member, both)

    assert all(error is None for outcome in passes for error in outcome.values())
    assert cleanup.inventory(member, both) == []
