"""A course's spend limits act at each usage meter reading (billing_app/services/limits.py).

The unit tests build the stored reading directly, as billing_app/services/meter.py leaves it (each
item with its dollars an hour or none, and the instance types it runs; each Bedrock item with its
model family and the day's figures), and read what the freeze wrote: the state, the reason, the
limit kept on the alert. The tasks the freeze queues (the SCP, then the stop) are left queued: the
scenario tests at the end run them against moto (the `aws` fixture), from one meter cycle to the
stopped instance.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.core.cache import cache
from django.utils import timezone

from accounts_app.choices import AccountState, AuditAction
from accounts_app.models import AccountEvent, AuditEvent, MemberAccount, Membership
from accounts_app.services.guardrails import freeze_policy_id
from billing_app.models import AccountDailyCost, Alert, AlertKind, CourseSpendLimits, MeterReading, SpendLimit
from billing_app.services.budgets import frozen_for_its_budget
from billing_app.services.limits import account_limits_check, course_spend_limits_set
from billing_app.services.meter import account_meter_read, meter_cycle, meter_interval
from billing_app.signals import meter_read
from portal.aws import organizations
from portal.aws.session import client
from tests.support.aws_calls import students_ready_account

pytestmark = pytest.mark.django_db

REGION = "us-east-1"
IMAGE_ID = "ami-12c6146b"  # any id does: moto does not check images
CLAUDE = "anthropic.claude"


@pytest.fixture(autouse=True)
def forget_cached_checks():
    """The meter keeps its locks and ownership checks in the cache (Redis), which outlives each
    test's database."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def course(personas):
    """The persona course, its term around today so that its budget's period is the current one."""
    course = personas.course
    today = timezone.localdate()
    course.start_date, course.end_date = today - timedelta(days=30), today + timedelta(days=30)
    course.budget_per_student = Decimal("50.00")
    course.save()
    return course


@pytest.fixture
def account(personas, course) -> MemberAccount:
    return MemberAccount.objects.create(
        course=course,
        membership=Membership.objects.get(user=personas.student),
        state=AccountState.READY,
        root_email="aws+cs101-student@school.example",
        account_name="cs101-student",
        aws_account_id="111111111111",
    )


def limits(course, **values) -> CourseSpendLimits:
    return CourseSpendLimits.objects.update_or_create(course=course, defaults=values)[0]


def instance(instance_type: str, usd: str | None = "0.0104", id: str = "i-0a1b") -> dict:
    """An EC2 instance as a stored reading lists it: with no price, it says why."""
    return {
        "region": REGION,
        "kind": "ec2:instance",
        "kind_label": "EC2 instance",
        "id": id,
        "label": f"{id}: {instance_type}, running",
        "usd_per_hour": usd,
        "source": "table" if usd else "",
        "why_unknown": "" if usd else "a spot instance: its price follows the spot market",
        "instances": {instance_type: 1},
    }


def bedrock(model: str, *, tokens_in: int, tokens_out: int, usd: str | None, family: str = CLAUDE) -> dict:
    """A Bedrock model's use as a stored reading lists it, with its family and the day's figures."""
    return {
        "region": REGION,
        "kind": "bedrock:model",
        "kind_label": "Bedrock model use",
        "id": model,
        "label": f"{model}: in the last hour",
        "usd_per_hour": "0.0125",
        "source": "table",
        "why_unknown": "",
        "family": family,
        "today": {"input_tokens": tokens_in, "output_tokens": tokens_out, "invocations": 12, "usd": usd},
    }


def reading(account, items: list[dict], *, usd_per_hour: str | None = None, unknown: int | None = None):
    """The account's reading, taken now; its dollars an hour are its priced items' unless given."""
    priced = [Decimal(i["usd_per_hour"]) for i in items if i["usd_per_hour"] is not None]
    now = timezone.now()
    return MeterReading.objects.update_or_create(
        account=account,
        defaults={
            "course": account.course,
            "taken_at": now,
            "checked_at": now,
            "items": items,
            "running": len(items),
            "usd_per_hour": Decimal(usd_per_hour) if usd_per_hour is not None else sum(priced, Decimal(0)),
            "unknown": unknown if unknown is not None else sum(1 for i in items if i["usd_per_hour"] is None),
        },
    )[0]


def check(account, items: list[dict], **figures) -> bool:
    """One reading checked, as the meter's signal would; the tasks the freeze queues stay queued."""
    return account_limits_check(reading=reading(account, items, **figures))


def freeze_of(account) -> tuple[str, str, str]:
    """The account's state, the freeze's reason, and the limit kept on its alert."""
    account.refresh_from_db()
    event = AccountEvent.objects.filter(account=account, to_state=AccountState.FROZEN).get()
    alert = Alert.objects.get(account=account, kind=AlertKind.FROZEN)
    assert alert.message == f"Stella Student's AWS account was frozen: {event.reason}."
    return account.state, event.reason, alert.limit


# --- Each limit -------------------------------------------------------------------------------------


def test_more_dollars_an_hour_than_allowed_freezes_with_the_figure(account, course):
    limits(course, max_usd_per_hour=Decimal("5.00"))

    assert check(account, [instance("c5.24xlarge", usd="14.20")])

    assert freeze_of(account) == (
        AccountState.FROZEN,
        "running $14.20/h, the course allows $5.00/h",
        SpendLimit.USD_PER_HOUR,
    )
    assert account.freeze_sync_pending  # the SCP's task is queued, and the stop after it


def test_dollars_an_hour_at_the_limit_or_below_freeze_nothing(account, course):
    limits(course, max_usd_per_hour=Decimal("5.00"))

    assert not check(account, [instance("c5.4xlarge", usd="5.00")])

    account.refresh_from_db()
    assert account.state == AccountState.READY and not Alert.objects.exists()


def test_a_gpu_instance_where_the_course_allows_none_freezes(account, course):
    limits(course, max_accelerated_instances=0)

    assert check(account, [instance("t3.micro"), instance("g5.xlarge", usd="1.006", id="i-0gpu")])

    assert freeze_of(account) == (
        AccountState.FROZEN,
        "g5.xlarge is a GPU or accelerator instance; the course allows 0",
        SpendLimit.ACCELERATORS,
    )


def test_gpu_instances_are_counted_across_ec2_and_sagemaker_up_to_the_number_allowed(account, course):
    limits(course, max_accelerated_instances=2)
    endpoint = {
        **instance("ml.g5.xlarge", usd="2.8", id="faces"),
        "kind": "sagemaker:endpoint",
        "instances": {"ml.g5.xlarge": 2},
    }

    assert not check(account, [endpoint])  # two: allowed
    assert check(account, [endpoint, instance("p3.2xlarge", usd="3.06")])

    assert freeze_of(account)[1:] == (
        "3 GPU or accelerator instances run (2 × ml.g5.xlarge, p3.2xlarge); the course allows 2",
        SpendLimit.ACCELERATORS,
    )


def test_bedrock_tokens_are_added_up_per_model_family_across_models_and_regions(account, course):
    limits(course, bedrock_daily_tokens=1_000_000)
    items = [
        bedrock("anthropic.claude-3-haiku-20240307-v1:0", tokens_in=600_000, tokens_out=100_000, usd="0.28"),
        {
            **bedrock("us.anthropic.claude-3-5-sonnet-20240620-v1:0", tokens_in=500_000, tokens_out=4_000, usd="1.56"),
            "region": "us-west-2",
        },
        # Another family: its own cap, not Claude's.
        bedrock("amazon.titan-text-express-v1", tokens_in=900_000, tokens_out=0, usd="0.72", family="amazon.titan"),
    ]

    assert check(account, items)

    assert freeze_of(account)[1:] == (
        "anthropic.claude used 1,204,000 tokens today; the cap is 1,000,000",
        SpendLimit.BEDROCK_TOKENS,
    )


def test_bedrock_dollars_a_day_are_capped_per_family_and_an_unknown_price_makes_it_a_floor(account, course):
    limits(course, bedrock_daily_usd=Decimal("10.00"))
    under = [bedrock("amazon.titan-text-express-v1", tokens_in=1, tokens_out=1, usd="9.99", family="amazon.titan")]
    assert not check(account, under)

    over = [
        bedrock("anthropic.claude-3-opus-20240229-v1:0", tokens_in=400_000, tokens_out=90_000, usd="12.40"),
        bedrock("anthropic.claude-new-v1:0", tokens_in=1_000, tokens_out=1_000, usd=None),  # not in the table
        *under,
    ]
    assert check(account, over)

    assert freeze_of(account)[1:] == (
        "anthropic.claude cost at least $12.40 today; the cap is $10.00",
        SpendLimit.BEDROCK_USD,
    )


def test_bedrock_items_without_the_days_figures_are_not_counted(account, course):
    limits(course, bedrock_daily_tokens=1, bedrock_daily_usd=Decimal("0.01"))
    older = bedrock(CLAUDE, tokens_in=5_000_000, tokens_out=0, usd="99")
    del older["family"], older["today"]

    assert not check(account, [older])
    assert not check(account, [{**older, "family": CLAUDE, "today": None}])


def test_a_budget_running_out_within_the_hours_allowed_freezes(account, course):
    limits(course, freeze_within_hours=12)
    # $50 budget, $31.40 spent: $18.60 left, six hours at $3.10 an hour.
    AccountDailyCost.objects.create(account=account, course=course, day=timezone.localdate(), usage=Decimal("31.40"))

    assert check(account, [instance("p3.2xlarge", usd="3.10")])

    assert freeze_of(account)[1:] == (
        "at $3.10/h the $50.00 budget runs out in 6 hours; the course freezes within 12 hours",
        SpendLimit.PROJECTION,
    )


def test_a_budget_lasting_beyond_the_hours_allowed_or_nothing_running_freezes_nothing(account, course):
    limits(course, freeze_within_hours=12)
    AccountDailyCost.objects.create(account=account, course=course, day=timezone.localdate(), usage=Decimal("10.00"))

    assert not check(account, [instance("p3.2xlarge", usd="3.10")])  # $40 left: about 13 hours
    assert not check(account, [])  # nothing runs: the budget check, not the meter, looks after it


def test_a_budget_already_spent_while_something_runs_freezes(account, course):
    limits(course, freeze_within_hours=1)
    AccountDailyCost.objects.create(account=account, course=course, day=timezone.localdate(), usage=Decimal("52.00"))

    assert check(account, [instance("t3.micro", usd="0.0104")])

    assert freeze_of(account)[1] == (
        "at $0.01/h the $50.00 budget is already spent ($52.00 estimated); the course freezes within 1 hour"
    )


def test_no_limits_freeze_nothing(account, course):
    gpu_at_a_price = [instance("p5.48xlarge", usd="98.32")]
    assert not check(account, gpu_at_a_price)  # no row: the course never set limits

    limits(course)  # a row, every field empty
    assert not check(account, gpu_at_a_price)

    account.refresh_from_db()
    assert account.state == AccountState.READY and not AccountEvent.objects.exists()


# --- Unknown prices -----------------------------------------------------------------------------------


def test_an_unpriced_item_is_not_counted_as_zero_dollars(account, course):
    """The dollars an hour of a reading are what runs with a known price: a floor. Below the limit
    with unknowns, nothing can be said, and nothing is frozen; over it, the reason says "at least"."""
    limits(course, max_usd_per_hour=Decimal("1.00"))
    spot = instance("c5.24xlarge", usd=None, id="i-0spot")

    assert not check(account, [instance("t3.micro", usd="0.50"), spot])
    assert check(account, [instance("c5.2xlarge", usd="1.50"), spot])

    assert freeze_of(account)[1] == (
        "running at least $1.50/h (and 1 item(s) of unknown price), the course allows $1.00/h"
    )


def test_an_unpriced_gpu_instance_still_counts_by_its_type(account, course):
    limits(course, max_usd_per_hour=Decimal("100.00"), max_accelerated_instances=0)

    assert check(account, [instance("g4dn.xlarge", usd=None, id="i-0spot")])

    assert freeze_of(account)[1:] == (
        "g4dn.xlarge is a GPU or accelerator instance; the course allows 0",
        SpendLimit.ACCELERATORS,
    )


def test_a_reading_before_the_meter_counted_instance_types_counts_no_gpu(account, course):
    limits(course, max_accelerated_instances=0)
    older = instance("g5.xlarge", usd="1.006")
    del older["instances"]

    assert not check(account, [older])


# --- Once, and only for a ready account -------------------------------------------------------------


def test_checking_the_same_reading_twice_freezes_once(account, course, django_capture_on_commit_callbacks):
    limits(course, max_accelerated_instances=0)
    taken = reading(account, [instance("g5.xlarge", usd="1.006")])

    with django_capture_on_commit_callbacks() as queued:
        assert account_limits_check(reading=taken)
        assert not account_limits_check(reading=taken)  # a repeated signal, or the next reading
        assert not check(account, [instance("g5.xlarge", usd="1.006")])

    assert AccountEvent.objects.filter(account=account).count() == 1
    assert Alert.objects.filter(account=account, kind=AlertKind.FROZEN).count() == 1
    assert AuditEvent.objects.filter(action=AuditAction.ACCOUNT_FROZEN).count() == 1
    assert len(queued) == 2  # one freeze's SCP task and its alert, once


@pytest.mark.parametrize("state", [AccountState.FROZEN, AccountState.ENDED, AccountState.HANDOVER_REQUESTED])
def test_an_account_not_ready_is_left_as_it_is(account, course, state):
    limits(course, max_accelerated_instances=0)
    MemberAccount.objects.filter(pk=account.pk).update(state=state)

    assert not check(account, [instance("g5.xlarge", usd="1.006")])

    account.refresh_from_db()
    assert account.state == state and not Alert.objects.exists()


def test_the_meter_signal_reaches_the_check(account, course):
    limits(course, max_accelerated_instances=0)
    taken = reading(account, [instance("g5.xlarge", usd="1.006")])

    meter_read.send(sender=MeterReading, reading=taken, previous_usd_per_hour=None)

    account.refresh_from_db()
    assert account.state == AccountState.FROZEN


# --- What a higher budget lifts ---------------------------------------------------------------------


def test_a_higher_budget_lifts_the_projections_freeze_but_not_a_gpu_limits(account, course):
    AccountDailyCost.objects.create(account=account, course=course, day=timezone.localdate(), usage=Decimal("49.00"))
    limits(course, freeze_within_hours=12)
    assert check(account, [instance("p3.2xlarge", usd="3.06")])
    account.refresh_from_db()
    assert frozen_for_its_budget(account)  # about the budget: approving a higher one unfreezes

    AccountEvent.objects.all().delete()
    Alert.objects.all().delete()
    MemberAccount.objects.filter(pk=account.pk).update(state=AccountState.READY)
    limits(course, freeze_within_hours=None, max_accelerated_instances=0)
    assert check(account, [instance("p3.2xlarge", usd="3.06")])
    account.refresh_from_db()
    assert not frozen_for_its_budget(account)  # a GPU holds whatever the budget


# --- Setting the limits ---------------------------------------------------------------------------


def test_setting_the_limits_is_audited_with_what_they_now_say(personas, course):
    values = {
        "max_usd_per_hour": Decimal("5.00"),
        "max_accelerated_instances": 0,
        "bedrock_daily_tokens": 1_000_000,
        "bedrock_daily_usd": None,
        "freeze_within_hours": 12,
    }

    course_spend_limits_set(actor=personas.instructor, course=course, values=values)
    course_spend_limits_set(actor=personas.instructor, course=course, values=values)  # the same again

    saved = CourseSpendLimits.objects.get(course=course)
    assert (saved.max_usd_per_hour, saved.bedrock_daily_usd, saved.updated_by) == (
        Decimal("5.00"),
        None,
        personas.instructor,
    )
    [audit] = AuditEvent.objects.filter(action=AuditAction.COURSE_UPDATED)
    assert audit.summary == (
        "Spend limits: At most $5.00 an hour per student account. No GPU or accelerator instances. "
        "At most 1,000,000 Bedrock tokens a day per model family. "
        "Frozen when, at what runs now, the budget runs out within 12 hours."
    )


# --- One meter cycle, from the running instance to its stop (moto) -----------------------------------


@pytest.fixture
def aws_account(personas, course, aws) -> MemberAccount:
    """The persona student's ready account, made in moto and placed where vending puts it."""
    return students_ready_account(personas, course)


def run_instance(account, instance_type: str, **options) -> str:
    """What the student starts in their account, as the portal reaches it."""
    return client("ec2", account_id=account.aws_account_id, region=REGION).run_instances(
        ImageId=IMAGE_ID,
        MinCount=1,
        MaxCount=1,
        InstanceType=instance_type,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "train"}]}],
        **options,
    )["Instances"][0]["InstanceId"]


def instance_state(account, instance_id: str) -> str:
    ec2 = client("ec2", account_id=account.aws_account_id, region=REGION)
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]


@pytest.mark.parametrize(
    ("course_limits", "reason"),
    [
        ({"max_accelerated_instances": 0}, "g5.xlarge is a GPU or accelerator instance; the course allows 0"),
        # g5.xlarge at the price table's $1.006 an hour, and its 8 GiB root volume.
        ({"max_usd_per_hour": Decimal("0.50")}, "running $1.01/h, the course allows $0.50/h"),
    ],
    ids=["gpu-limit", "dollars-an-hour"],
)
def test_one_meter_cycle_freezes_the_account_and_stops_its_gpu_instance(
    personas, course, aws_account, course_limits, reason, django_capture_on_commit_callbacks
):
    """The issue's bar: a student runs a g5.xlarge in a course that does not allow it; one meter
    cycle, and the tasks it queues, end with the account frozen, the freeze SCP attached and the
    instance stopped, with no one doing anything."""
    limits(course, **course_limits)
    gpu = run_instance(aws_account, "g5.xlarge")
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        assert meter_cycle() == 1

    aws_account.refresh_from_db()
    assert (aws_account.state, aws_account.freeze_sync_pending, aws_account.last_error) == (
        AccountState.FROZEN,
        False,
        "",
    )
    assert aws_account.aws_account_id in organizations.policy_targets(freeze_policy_id())
    assert instance_state(aws_account, gpu) == "stopped"
    assert AccountEvent.objects.get(account=aws_account, to_state=AccountState.FROZEN).reason == reason

    everyone = ["alerts@school.example", "instructor@school.example", "student@school.example", "ta@school.example"]
    [frozen_mail] = [m for m in mail.outbox if "Account frozen by the course's limit" in m.subject]
    assert frozen_mail.to == everyone
    said = " ".join(frozen_mail.body.split())
    assert reason in said and "frozen by the course's limit on" in said
    assert "the portal also stops what runs in it (EC2 instances" in said
    assert f"/courses/{course.pk}/my-costs/#budget-request" in said  # where to ask for more
    [stopped_mail] = [m for m in mail.outbox if "was stopped" in m.subject]
    assert stopped_mail.to == everyone
    assert f"EC2 instance train ({gpu}): g5.xlarge, running in {REGION}: stopped" in stopped_mail.body
    assert f"Why: {reason}." in stopped_mail.body


def test_a_spot_gpu_instance_of_unknown_price_is_frozen_by_its_type(
    personas, course, aws_account, django_capture_on_commit_callbacks
):
    limits(course, max_usd_per_hour=Decimal("50.00"), max_accelerated_instances=0)
    run_instance(aws_account, "p3.2xlarge", InstanceMarketOptions={"MarketType": "spot"})

    with django_capture_on_commit_callbacks(execute=True):
        meter_cycle()

    taken = MeterReading.objects.get(account=aws_account)
    [gpu] = [item for item in taken.items if item["kind"] == "ec2:instance"]
    assert (gpu["usd_per_hour"], gpu["instances"]) == (None, {"p3.2xlarge": 1})
    aws_account.refresh_from_db()
    assert aws_account.state == AccountState.FROZEN
    assert Alert.objects.get(account=aws_account, kind=AlertKind.FROZEN).limit == SpendLimit.ACCELERATORS


def test_a_second_cycle_over_a_frozen_account_freezes_nothing_again(
    personas, course, aws_account, django_capture_on_commit_callbacks
):
    limits(course, max_accelerated_instances=0)
    run_instance(aws_account, "g5.xlarge")
    with django_capture_on_commit_callbacks(execute=True):
        meter_cycle()
    mails = len(mail.outbox)

    with django_capture_on_commit_callbacks(execute=True):  # the next reading: a frozen account is still read
        assert account_meter_read(account_id=aws_account.pk, now=timezone.now() + meter_interval()).taken_at

    assert AccountEvent.objects.filter(account=aws_account, to_state=AccountState.FROZEN).count() == 1
    assert len(mail.outbox) == mails


def test_a_meter_reading_freezes_an_account_over_its_bedrock_token_cap(
    personas, course, aws_account, django_capture_on_commit_callbacks
):
    """From Bedrock's own CloudWatch figures to the freeze: the meter reads the day's tokens per
    model (moto's CloudWatch holds what Bedrock publishes), gives each model its family, and the
    limit adds up each family's models: two Claude models, each under the cap, are over it together."""
    # Readings at yesterday's noon (UTC), whatever the time the test runs: a day's figures start
    # at midnight, and use 20 minutes before a reading just after midnight would be yesterday's.
    noon = datetime.combine(timezone.now().date() - timedelta(days=1), time(12), tzinfo=UTC)
    cloudwatch = client("cloudwatch", account_id=aws_account.aws_account_id, region=REGION)
    used = noon - timedelta(minutes=20)
    for model, tokens_in, tokens_out in [
        ("anthropic.claude-3-haiku-20240307-v1:0", 2_000, 500),
        ("us.anthropic.claude-3-5-sonnet-20240620-v1:0", 2_500, 1_000),
        ("meta.llama3-8b-instruct-v1:0", 40_000, 10_000),
    ]:
        cloudwatch.put_metric_data(
            Namespace="AWS/Bedrock",
            MetricData=[
                {
                    "MetricName": name,
                    "Dimensions": [{"Name": "ModelId", "Value": model}],
                    "Value": value,
                    "Timestamp": used,
                }
                for name, value in [
                    ("InputTokenCount", tokens_in),
                    ("OutputTokenCount", tokens_out),
                    ("Invocations", 3),
                ]
            ],
        )
    limits(course, bedrock_daily_tokens=60_000)

    with django_capture_on_commit_callbacks(execute=True):
        account_meter_read(account_id=aws_account.pk, now=noon)
    aws_account.refresh_from_db()
    assert aws_account.state == AccountState.READY  # 6,000 Claude tokens, 50,000 Llama ones: none over

    CourseSpendLimits.objects.filter(course=course).update(bedrock_daily_tokens=5_000)
    with django_capture_on_commit_callbacks(execute=True):
        account_meter_read(account_id=aws_account.pk, now=noon + meter_interval())

    aws_account.refresh_from_db()
    assert aws_account.state == AccountState.FROZEN
    freeze = AccountEvent.objects.get(account=aws_account, to_state=AccountState.FROZEN)
    assert freeze.reason == "anthropic.claude used 6,000 tokens today; the cap is 5,000"  # the first found
    assert Alert.objects.get(account=aws_account, kind=AlertKind.FROZEN).limit == SpendLimit.BEDROCK_TOKENS
