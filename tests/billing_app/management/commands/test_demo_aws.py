"""The demo's spend limits (billing_app/management/commands/demo_aws.py): the course gets limits,
three students start instances, and the usage meter freezes the one whose GPU instance the limits
do not allow, and stops it, while the others run on.

moto plays the local emulator here (the `aws` fixture): the demo's commands check that
AWS_ENDPOINT_URL is on this machine before they do anything (tests/test_deployment_defaults.py),
which this test tells them it is, while moto answers in process. The demo accounts are made in
moto and placed as vending places them, as `make run`'s worker would have done.
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from accounts_app.choices import AccountState
from accounts_app.management.commands.seed_demo import DEMO_COURSE_CODE, OVER_THE_LIMIT, SMALL_RUNNERS, demo_email
from accounts_app.models import Course, MemberAccount, Membership, User
from accounts_app.services.guardrails import freeze_policy_id
from billing_app.management.commands.demo_aws import GPU_INSTANCE, SMALL_INSTANCE, WORKLOAD_REGION, Command
from billing_app.models import MeterReading
from billing_app.services.meter import meter_cycle
from portal.aws import emulator, organizations
from portal.aws.session import client
from tests.support.aws_calls import place_as_configured

pytestmark = pytest.mark.django_db

LOCAL_EMULATOR = "http://127.0.0.1:5055"
MAKEFILE = Path(__file__).resolve().parents[4] / "Makefile"


@pytest.fixture(autouse=True)
def demo_settings(settings):
    settings.PORTAL_REQUIRE_MFA_FOR_STAFF = False
    cache.clear()  # the meter's locks and ownership checks outlive each test's database
    yield
    cache.clear()


@pytest.fixture
def demo_course(monkeypatch) -> Course:
    monkeypatch.setenv("AWS_ENDPOINT_URL", LOCAL_EMULATOR)
    call_command("seed_demo", stdout=StringIO())
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # from here on, moto answers in process
    return Course.objects.get(code=DEMO_COURSE_CODE)


def ready_account(course: Course, name: str) -> MemberAccount:
    """The demo student's account, ready, as the demo's vending leaves it."""
    member = Membership.objects.get(course=course, email=demo_email(name))
    created = client("organizations").create_account(Email=f"aws+{member.pk}@demo.example.edu", AccountName=name)
    record = MemberAccount.objects.create(
        course=course,
        membership=member,
        state=AccountState.READY,
        root_email=f"aws+{member.pk}@demo.example.edu",
        account_name=f"demo-{member.pk}",
        aws_account_id=created["CreateAccountStatus"]["AccountId"],
    )
    return place_as_configured(record)


def instance_states(account: MemberAccount) -> dict[str, str]:
    ec2 = client("ec2", account_id=account.aws_account_id, region=WORKLOAD_REGION)
    found = ec2.describe_instances()["Reservations"]
    return {i["InstanceType"]: i["State"]["Name"] for reservation in found for i in reservation["Instances"]}


def test_the_demo_freezes_the_gpu_instance_its_limits_do_not_allow_within_one_meter_cycle(
    aws, demo_course, monkeypatch, django_capture_on_commit_callbacks
):
    accounts = {name: ready_account(demo_course, name) for name in [*SMALL_RUNNERS, OVER_THE_LIMIT]}
    monkeypatch.setattr(emulator, "endpoint", lambda: LOCAL_EMULATOR)  # the guard: moto is the emulator here
    output = StringIO()

    Command(stdout=output).run_workloads(demo_course)

    assert f"{OVER_THE_LIMIT} started a {GPU_INSTANCE}" in output.getvalue()
    assert instance_states(accounts[OVER_THE_LIMIT]) == {GPU_INSTANCE: "running"}

    with django_capture_on_commit_callbacks(execute=True):  # beat's cycle, and the tasks it queues
        assert meter_cycle() == 3

    gpu_account = MemberAccount.objects.get(pk=accounts[OVER_THE_LIMIT].pk)
    assert gpu_account.state == AccountState.FROZEN
    assert gpu_account.aws_account_id in organizations.policy_targets(freeze_policy_id())
    assert instance_states(gpu_account) == {GPU_INSTANCE: "stopped"}
    for name in SMALL_RUNNERS:
        assert MemberAccount.objects.get(pk=accounts[name].pk).state == AccountState.READY
        assert instance_states(accounts[name]) == {SMALL_INSTANCE: "running"}

    # The course's costs show the burn rate the meter read, the limits, and why the account froze.
    ta = Client()
    ta.force_login(User.objects.get(email="ta@demo.example.edu"))
    page = ta.get(reverse("billing:costs", args=[demo_course.pk])).content.decode()
    burn = sum(reading.usd_per_hour for reading in MeterReading.objects.filter(course=demo_course))
    assert f"${burn:.2f}/h" in page
    assert "No GPU or accelerator instances." in page and "At most $2.00 an hour per student account." in page
    assert "by the limit on GPU and accelerator instances" in page


def test_make_run_reads_the_meter_every_minute_on_the_emulator():
    emulator_block = MAKEFILE.read_text().split("ifeq ($(strip $(AWS_ACCESS_KEY_ID)", 1)[1].split("endif", 1)[0]

    assert "run demo: export PORTAL_METER_INTERVAL_MINUTES := 1" in emulator_block
