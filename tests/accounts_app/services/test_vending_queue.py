"""Vending when AWS answers as AWS does, not as moto does: the queue and CreateAccount
(accounts_app/services/vending_queue.py).

moto creates every account at once, takes duplicate root emails, never throttles, never loses an
answer and has no handshakes. Here the tests script AWS's real answers on top of it: an
`AwsScript` answers chosen calls at botocore's `before-call` event (moto never sees those
requests), lets others reach moto and then loses the answer, or lets moto do the work and edits
what it says (IN_PROGRESS where moto says SUCCEEDED). Configuring the new account is in
test_account_setup.py, invitations of existing accounts in test_invited_accounts.py, and the
compare-and-swap both rely on in tests/accounts_app/test_lifecycle.py.

Services are called directly (vending_dispatch, reconcile, …): these tests run inside a
transaction that is rolled back, so the Celery tasks the services queue "on commit" never run
unless a test calls them. A run of the queue looks at the creations whose look is due: at once
here (moto makes an account in its first answer, PORTAL_AWS_CREATION_SECONDS is 0 in the tests)
unless a test says otherwise.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber
from django.db import connection
from django.utils import timezone

from accounts_app import tasks
from accounts_app.choices import AccountState as S
from accounts_app.models import AccountEvent, AwsOrganization, MemberAccount
from accounts_app.services import vending_queue
from accounts_app.services.account_requests import (
    course_precreate,
)
from accounts_app.services.account_setup import account_configure
from accounts_app.services.identity import account_tags
from accounts_app.services.reconcile import reconcile
from accounts_app.services.vending_queue import (
    FAILURE_EXPLANATIONS,
    vending_dispatch,
)
from portal.aws import organizations, quotas
from portal.locks import VENDING_QUEUE
from tests.support.accounts import (
    WorkerKilled,
    queued_account,
    record_transitions,
    second_worker_meanwhile,
    transitions,
)
from tests.support.advisory_locks import held_elsewhere, waiting_for
from tests.support.aws_script import (
    LOST_AFTER_AWS,
    NEVER_REACHED,
    Edit,
    Fault,
)

# --- Helpers --------------------------------------------------------------------------------------


def request_id(prefix: str = "car-") -> str:
    return prefix + uuid.uuid4().hex[:16]


def creation_status(state: str, *, request: str, name: str, **fields) -> dict:
    return {
        "CreateAccountStatus": {
            "Id": request,
            "AccountName": name,
            "State": state,
            "RequestedTimestamp": timezone.now(),
            **fields,
        }
    }


def in_progress(params: dict) -> dict:
    """AWS's answer to CreateAccount: accepted, not done (nothing is created in moto)."""
    return creation_status("IN_PROGRESS", request=request_id(), name=params["AccountName"])


def described(state: str, **fields):
    """An answer to DescribeCreateAccountStatus for whichever request is asked about."""
    return lambda params: creation_status(state, request=params["CreateAccountRequestId"], name="any", **fields)


def in_progress_instead_of_succeeded(parsed: dict) -> None:
    """What AWS says right after CreateAccount, while moto has already finished."""
    status = parsed["CreateAccountStatus"]
    status["State"] = "IN_PROGRESS"
    status["RequestedTimestamp"] = timezone.now()
    status.pop("AccountId", None)
    status.pop("CompletedTimestamp", None)


def tags_sent_for(script, account: MemberAccount) -> dict:
    """AWS's answer to ListTagsForResource for the account a scripted creation made: the tags its
    CreateAccount carried (moto never saw that request, so it does not know the account)."""
    sent = [p["Tags"] for p in script.params["CreateAccount"] if p["AccountName"] == account.account_name]
    return {"Tags": sent[-1]}


def creating_account(personas, script) -> MemberAccount:
    """The student's account, CreateAccount sent and IN_PROGRESS at AWS (nothing in moto)."""
    account = queued_account(personas)
    script.answer("organizations", "CreateAccount", in_progress)
    assert vending_dispatch().submitted == 1
    account.refresh_from_db()
    assert account.state == S.CREATING
    assert account.create_request_id.startswith("car-")
    return account


def accounts_in_organization(email: str) -> list[organizations.Account]:
    return [a for a in organizations.list_accounts() if a.email.lower() == email.lower()]


def lost_request_grace(settings) -> timedelta:
    """How long after a CreateAccount with no answer AWS has to list it before it is sent again."""
    return timedelta(seconds=settings.PORTAL_AWS_LOST_REQUEST_SECONDS)


def next_look_in(account: MemberAccount) -> float:
    """Seconds from now until the creation's next look is due (its due time in the database)."""
    due = MemberAccount.objects.values_list("next_attempt_at", flat=True).get(pk=account.pk)
    return (due - timezone.now()).total_seconds()


def look_due_now(account: MemberAccount) -> None:
    MemberAccount.objects.filter(pk=account.pk).update(next_attempt_at=timezone.now())


# --- Creation: IN_PROGRESS, then SUCCEEDED -------------------------------------------------------


@pytest.mark.django_db
def test_a_creation_is_first_looked_at_when_aws_is_likely_done_then_with_growing_delays(
    personas, aws, script, clock, settings, queued
):
    settings.PORTAL_AWS_CREATION_SECONDS = 60
    settings.PORTAL_AWS_POLL_SECONDS = 5
    settings.PORTAL_AWS_POLL_MAX_SECONDS = 60
    account = queued_account(personas)
    script.answer("organizations", "CreateAccount", Edit(in_progress_instead_of_succeeded))
    vending_dispatch()
    account.refresh_from_db()
    created = accounts_in_organization(account.root_email)[0]  # moto finished at once; AWS has not
    assert account.state == S.CREATING
    assert next_look_in(account) == 60.0  # AWS's typical creation time, not sooner

    tags = aws.client("organizations").list_tags_for_resource(ResourceId=created.id)
    safe = Stubber(aws.client("organizations"))
    asked = {"CreateAccountRequestId": account.create_request_id}
    running = creation_status("IN_PROGRESS", request=account.create_request_id, name=account.account_name)
    safe.add_response("describe_create_account_status", running, asked)
    safe.add_response("describe_create_account_status", running, asked)
    done = creation_status(
        "SUCCEEDED",
        request=account.create_request_id,
        name=account.account_name,
        AccountId=created.id,
    )
    safe.add_response("describe_create_account_status", done, asked)
    # Before taking the account, the portal checks that it carries this record's tags.
    tags.pop("ResponseMetadata")
    safe.add_response("list_tags_for_resource", tags, {"ResourceId": created.id})
    with safe:
        vending_dispatch()  # nothing is due: no call
        clock.advance(timedelta(seconds=60))
        vending_dispatch()
        first = next_look_in(account)
        clock.advance(timedelta(seconds=40))
        vending_dispatch()  # 100 s after the request
        second = next_look_in(account)
        state_while_running = MemberAccount.objects.get(pk=account.pk).state
        clock.advance(timedelta(seconds=900))
        vending_dispatch()
    safe.assert_no_pending_responses()

    assert first == 6.0  # a tenth of the 60 s waited so far
    assert second == 10.0  # a tenth of the 100 s
    assert state_while_running == S.CREATING
    account.refresh_from_db()
    assert account.state == S.CONFIGURING
    assert account.aws_account_id == created.id
    assert transitions(account) == [(S.REQUESTED, S.CREATING), (S.CREATING, S.CONFIGURING)]
    assert queued["account_configure_task"] == [account.pk]
    assert script.calls["CreateAccount"] == 1

    account_configure(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.READY


@pytest.mark.django_db
def test_the_look_delay_never_exceeds_the_maximum(personas, aws, script, clock, settings):
    settings.PORTAL_AWS_POLL_MAX_SECONDS = 60
    account = creating_account(personas, script)
    script.answer("organizations", "DescribeCreateAccountStatus", described("IN_PROGRESS"))
    clock.advance(timedelta(hours=2))

    vending_dispatch()

    assert next_look_in(account) == 60.0
    assert script.calls["DescribeCreateAccountStatus"] == 1


@pytest.mark.django_db
def test_creations_due_together_are_read_from_one_list_and_only_the_finished_one_is_described(
    personas, aws, script, clock, settings
):
    """AWS runs a few creations at a time; one ListCreateAccountStatus(IN_PROGRESS) says which of
    those due still run, and only the others are described, for their account id. moto finishes
    every creation at once: the Stubber plays AWS's list."""
    settings.PORTAL_AWS_CREATION_SECONDS = 60
    course_precreate(actor=personas.instructor, course=personas.course, count=3)
    script.always("organizations", "CreateAccount", in_progress)
    vending_dispatch()
    creating = list(MemberAccount.objects.filter(state=S.CREATING).order_by("pk"))
    assert len(creating) == 3
    finished, running = creating[0], creating[1:]
    clock.advance(timedelta(seconds=60))

    safe = Stubber(aws.client("organizations"))
    listed = {
        "CreateAccountStatuses": [
            creation_status("IN_PROGRESS", request=a.create_request_id, name=a.account_name)["CreateAccountStatus"]
            for a in running
        ]
    }
    safe.add_response("list_create_account_status", listed, {"States": ["IN_PROGRESS"]})
    failed = creation_status(
        "FAILED", request=finished.create_request_id, name=finished.account_name, FailureReason="INVALID_EMAIL"
    )
    safe.add_response("describe_create_account_status", failed, {"CreateAccountRequestId": finished.create_request_id})
    with safe:
        vending_dispatch()
    safe.assert_no_pending_responses()

    finished.refresh_from_db()
    assert finished.state == S.FAILED
    assert [MemberAccount.objects.get(pk=a.pk).state for a in running] == [S.CREATING, S.CREATING]
    assert [next_look_in(a) for a in running] == [6.0, 6.0]


# --- Creation: FAILED ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_email_already_exists_adopts_the_account_when_it_is_in_the_organization(personas, aws, script, queued):
    account = creating_account(personas, script)
    # Our own earlier request (whose answer was lost) created it meanwhile, with this record's tags.
    earlier = aws.client("organizations").create_account(
        Email=account.root_email,
        AccountName=account.account_name,
        Tags=[{"Key": k, "Value": v} for k, v in account_tags(account).items()],
    )
    existing_id = earlier["CreateAccountStatus"]["AccountId"]
    script.answer(
        "organizations",
        "DescribeCreateAccountStatus",
        described("FAILED", FailureReason="EMAIL_ALREADY_EXISTS"),
    )

    vending_dispatch()

    account.refresh_from_db()
    assert account.state == S.CONFIGURING
    assert account.aws_account_id == existing_id
    assert account.last_error == ""
    assert transitions(account)[-1] == (S.CREATING, S.CONFIGURING)
    assert queued["account_configure_task"] == [account.pk]
    assert len(accounts_in_organization(account.root_email)) == 1


@pytest.mark.django_db
def test_email_already_exists_outside_the_organization_fails_with_an_explanation(personas, aws, script, queued):
    account = creating_account(personas, script)
    script.answer(
        "organizations",
        "DescribeCreateAccountStatus",
        described("FAILED", FailureReason="EMAIL_ALREADY_EXISTS"),
    )

    vending_dispatch()

    account.refresh_from_db()
    assert account.state == S.FAILED
    assert account.last_error == FAILURE_EXPLANATIONS["EMAIL_ALREADY_EXISTS"]
    assert account.aws_account_id is None
    assert account.create_request_id == ""
    assert transitions(account)[-1] == (S.CREATING, S.FAILED)
    assert queued["account_configure_task"] == []
    assert accounts_in_organization(account.root_email) == []


@pytest.mark.django_db
def test_account_limit_exceeded_waits_for_the_quota_with_an_explanation(personas, aws, script):
    account = creating_account(personas, script)
    script.answer(
        "organizations",
        "DescribeCreateAccountStatus",
        described("FAILED", FailureReason="ACCOUNT_LIMIT_EXCEEDED"),
    )

    vending_dispatch()

    account.refresh_from_db()
    assert account.state == S.WAITING_FOR_QUOTA
    assert account.last_error == FAILURE_EXPLANATIONS["ACCOUNT_LIMIT_EXCEEDED"]
    assert account.create_request_id == ""


@pytest.mark.django_db
@pytest.mark.parametrize("reason", ["CONCURRENT_ACCOUNT_MODIFICATION", "INTERNAL_FAILURE"])
def test_a_failure_aws_asks_to_retry_puts_the_account_back_in_the_queue_and_it_is_sent_again(
    personas, aws, script, reason
):
    account = creating_account(personas, script)
    script.answer("organizations", "DescribeCreateAccountStatus", described("FAILED", FailureReason=reason))

    vending_dispatch()  # the look finds it failed: back in the queue, and sent again in the same run

    account.refresh_from_db()
    assert transitions(account) == [
        (S.REQUESTED, S.CREATING),
        (S.CREATING, S.REQUESTED),
        (S.REQUESTED, S.CREATING),
    ]
    assert AccountEvent.objects.get(account=account, to_state=S.REQUESTED).reason == reason
    assert script.calls["CreateAccount"] == 2  # this time moto creates it
    assert len(accounts_in_organization(account.root_email)) == 1


@pytest.mark.django_db
def test_an_invalid_email_fails_the_account(personas, aws, script):
    account = creating_account(personas, script)
    script.answer(
        "organizations",
        "DescribeCreateAccountStatus",
        described("FAILED", FailureReason="INVALID_EMAIL"),
    )

    vending_dispatch()

    account.refresh_from_db()
    assert account.state == S.FAILED
    assert account.last_error == FAILURE_EXPLANATIONS["INVALID_EMAIL"]
    assert script.calls["CreateAccount"] == 1


@pytest.mark.django_db
def test_a_failure_reason_the_portal_does_not_know_fails_with_the_reason(personas, aws, script):
    account = creating_account(personas, script)
    script.answer(
        "organizations",
        "DescribeCreateAccountStatus",
        described("FAILED", FailureReason="GOVCLOUD_ACCOUNT_ALREADY_EXISTS"),
    )

    vending_dispatch()

    account.refresh_from_db()
    assert account.state == S.FAILED
    assert account.last_error == "AWS could not create the account (GOVCLOUD_ACCOUNT_ALREADY_EXISTS)."


# --- CreateAccount refused ---------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "refusal",
    [
        Fault(
            "TooManyRequestsException",
            "You have sent too many requests in too short a period of time.",
            Type="OrganizationsRateLimit",
        ),
        Fault(
            "ConstraintViolationException",
            "You have exceeded the allowed number of accounts created in one day.",
            Reason="ACCOUNT_CREATION_RATE_LIMIT_EXCEEDED",
        ),
        EndpointConnectionError(endpoint_url="https://organizations.us-east-1.amazonaws.com/"),
    ],
    ids=["throttled", "creation-rate-limit", "no-connection"],
)
def test_a_create_account_refused_for_now_goes_back_to_the_queue_and_creates_nothing(personas, aws, script, refusal):
    account = queued_account(personas)
    script.answer("organizations", "CreateAccount", refusal)

    result = vending_dispatch()

    account.refresh_from_db()
    assert account.state == S.REQUESTED
    assert account.last_error.startswith("AWS asked us to slow down: ")
    assert account.create_request_id == ""
    assert transitions(account) == [(S.REQUESTED, S.CREATING), (S.CREATING, S.REQUESTED)]
    assert result.submitted == 1  # it counts against the rate all the same
    assert result.waiting == 1
    assert result.retry_in is not None and result.retry_in > 0
    assert script.calls["CreateAccount"] == 1
    assert accounts_in_organization(account.root_email) == []

    vending_dispatch()  # later, AWS accepts it

    account.refresh_from_db()
    assert account.state == S.CREATING
    assert script.calls["CreateAccount"] == 2
    assert len(accounts_in_organization(account.root_email)) == 1


@pytest.mark.django_db
def test_the_account_number_limit_on_create_account_waits_for_the_quota(personas, aws, script):
    account = queued_account(personas)
    script.answer(
        "organizations",
        "CreateAccount",
        Fault(
            "ConstraintViolationException",
            "You have reached the maximum number of accounts in the organization.",
            Reason="ACCOUNT_NUMBER_LIMIT_EXCEEDED",
        ),
    )

    result = vending_dispatch()

    account.refresh_from_db()
    assert account.state == S.WAITING_FOR_QUOTA
    assert account.last_error == FAILURE_EXPLANATIONS["ACCOUNT_LIMIT_EXCEEDED"]
    assert result.waiting == 0
    assert accounts_in_organization(account.root_email) == []


@pytest.mark.django_db
def test_access_denied_on_create_account_fails_the_account(personas, aws, script):
    account = queued_account(personas)
    script.answer(
        "organizations",
        "CreateAccount",
        Fault("AccessDeniedException", "You don't have permissions to access this resource."),
    )

    vending_dispatch()

    account.refresh_from_db()
    assert account.state == S.FAILED
    assert (
        account.last_error == "AWS refused to create the account: You don't have permissions to access this resource."
    )


def _waiting_for_quota(personas, script) -> MemberAccount:
    account = queued_account(personas)
    script.answer(
        "organizations",
        "CreateAccount",
        Fault("ConstraintViolationException", "Limit reached.", Reason="ACCOUNT_NUMBER_LIMIT_EXCEEDED"),
    )
    vending_dispatch()
    account.refresh_from_db()
    assert account.state == S.WAITING_FOR_QUOTA
    return account


@pytest.mark.django_db
@pytest.mark.parametrize("limit_from", ["organization", "settings"])
def test_reconcile_puts_accounts_waiting_for_the_quota_back_in_the_queue_when_there_is_room(
    personas, aws, script, settings, queued, limit_from
):
    account = _waiting_for_quota(personas, script)
    in_use = len(list(organizations.list_accounts()))
    if limit_from == "organization":
        AwsOrganization.objects.filter(pk=1).update(account_limit=in_use + 1)
    else:
        AwsOrganization.objects.filter(pk=1).update(account_limit=None)
        settings.PORTAL_AWS_ACCOUNT_LIMIT = in_use + 1

    reconcile()

    account.refresh_from_db()
    assert account.state == S.REQUESTED
    assert AccountEvent.objects.filter(account=account).last().reason == "The organization has room again"
    assert script.calls["CreateAccount"] == 1  # reconcile only queues; the dispatcher sends


@pytest.mark.django_db
@pytest.mark.parametrize("limit_from", ["organization", "settings"])
def test_reconcile_leaves_accounts_waiting_while_the_organization_is_full(personas, aws, script, settings, limit_from):
    account = _waiting_for_quota(personas, script)
    in_use = len(list(organizations.list_accounts()))
    if limit_from == "organization":
        AwsOrganization.objects.filter(pk=1).update(account_limit=in_use)
        settings.PORTAL_AWS_ACCOUNT_LIMIT = in_use + 100  # the organization's own quota wins
    else:
        AwsOrganization.objects.filter(pk=1).update(account_limit=None)
        settings.PORTAL_AWS_ACCOUNT_LIMIT = in_use

    reconcile()

    account.refresh_from_db()
    assert account.state == S.WAITING_FOR_QUOTA
    assert account.last_error == FAILURE_EXPLANATIONS["ACCOUNT_LIMIT_EXCEEDED"]


class AccountQuota:
    """Service Quotas as AWS answers for Organizations' account quota (moto has no value for it):
    the applied value in us-east-1, NoSuchResourceException in every other region."""

    def __init__(self, aws, value: int):
        self.value = value
        self.regions: list[str] = []
        aws.add_hook("before-call.service-quotas.GetServiceQuota", self._answer)

    def _answer(self, params, request_signer, **kwargs):
        self.regions.append(request_signer.region_name)
        if request_signer.region_name != "us-east-1":
            return Fault(
                "NoSuchResourceException",
                "This service is not available in the current Region. "
                "Choose a different Region or a different service.",
            ).response()
        quota = {"ServiceCode": "organizations", "QuotaCode": "L-29A0C5DF", "Value": float(self.value)}
        return AWSResponse(None, 200, {}, None), {"Quota": quota, "ResponseMetadata": {"HTTPStatusCode": 200}}


@pytest.mark.django_db
def test_the_account_quota_is_read_in_us_east_1_whatever_the_portals_region(aws, settings):
    settings.PORTAL_AWS_REGION = "eu-west-1"
    aws.reset()
    quota = AccountQuota(aws, 25)

    assert quotas.account_limit() == 25
    assert quota.regions == ["us-east-1"]


@pytest.mark.django_db
def test_reconcile_reads_the_quota_again_and_releases_the_accounts_when_aws_raises_it(personas, aws, script, queued):
    account = _waiting_for_quota(personas, script)
    in_use = len(list(organizations.list_accounts()))
    AwsOrganization.objects.filter(pk=1).update(account_limit=in_use)
    quota = AccountQuota(aws, in_use)

    reconcile()  # AWS has not raised it yet

    account.refresh_from_db()
    assert account.state == S.WAITING_FOR_QUOTA

    quota.value = in_use + 10  # AWS Support raised the quota
    reconcile()

    account.refresh_from_db()
    assert account.state == S.REQUESTED
    assert AwsOrganization.load().account_limit == in_use + 10
    assert set(quota.regions) == {"us-east-1"}


# --- Lost answers to CreateAccount ----------------------------------------------------------------


@pytest.mark.django_db
def test_a_lost_create_account_answer_is_resolved_by_looking_and_the_account_is_created_once(
    personas, aws, script, clock
):
    account = queued_account(personas)
    script.answer("organizations", "CreateAccount", LOST_AFTER_AWS)

    result = vending_dispatch()

    account.refresh_from_db()
    assert result.submitted == 1
    assert account.state == S.CREATING
    assert account.create_request_id == ""
    assert account.create_submitted_at is not None
    assert account.last_error.startswith("Waiting for AWS to confirm: ")
    assert script.sent["CreateAccount"] == 1  # botocore did not send it again
    assert len(accounts_in_organization(account.root_email)) == 1  # AWS did the work
    assert result.next_run_at == account.next_attempt_at == clock.now  # its look (moto is done at once)

    vending_dispatch()

    account.refresh_from_db()
    assert account.state == S.CONFIGURING
    assert account.aws_account_id == accounts_in_organization(account.root_email)[0].id

    for _ in range(3):  # redelivered messages, the beat's reconciler
        vending_dispatch()
        reconcile()

    assert script.calls["CreateAccount"] == 1
    assert len(accounts_in_organization(account.root_email)) == 1
    assert transitions(account) == [(S.REQUESTED, S.CREATING), (S.CREATING, S.CONFIGURING)]


@pytest.mark.django_db
def test_a_lost_answer_while_aws_is_still_creating_adopts_the_request_and_looks_again_soon(
    personas, aws, script, clock, settings
):
    settings.PORTAL_AWS_POLL_SECONDS = 5
    account = queued_account(personas)
    script.answer("organizations", "CreateAccount", LOST_AFTER_AWS)
    vending_dispatch()

    def still_creating_accounts(parsed):  # AWS lists the account once it is created
        parsed["Accounts"] = [a for a in parsed["Accounts"] if a["Email"] != account.root_email]

    def still_creating_statuses(parsed):
        for status in parsed["CreateAccountStatuses"]:
            if status["AccountName"] == account.account_name:
                in_progress_instead_of_succeeded({"CreateAccountStatus": status})

    script.answer("organizations", "ListAccounts", Edit(still_creating_accounts))
    script.answer("organizations", "ListCreateAccountStatus", Edit(still_creating_statuses))

    vending_dispatch()

    account.refresh_from_db()
    assert account.state == S.CREATING
    assert account.create_request_id.startswith("car-")
    assert next_look_in(account) == 5.0  # the request found started at a time the record does not know

    clock.advance(timedelta(seconds=5))
    vending_dispatch()  # now AWS has finished

    account.refresh_from_db()
    assert account.state == S.CONFIGURING
    assert script.calls["CreateAccount"] == 1
    assert len(accounts_in_organization(account.root_email)) == 1


@pytest.mark.django_db
def test_a_create_account_that_never_reached_aws_is_sent_again_after_the_grace_period(
    personas, aws, script, clock, settings
):
    settings.PORTAL_AWS_POLL_SECONDS = 5
    account = queued_account(personas)
    script.answer("organizations", "CreateAccount", NEVER_REACHED)
    vending_dispatch()
    account.refresh_from_db()
    assert account.state == S.CREATING
    assert account.create_request_id == ""
    assert accounts_in_organization(account.root_email) == []

    vending_dispatch()
    assert next_look_in(account) == 5.0  # AWS may list it any moment: look again
    clock.advance(lost_request_grace(settings) - timedelta(seconds=1))
    vending_dispatch()
    assert next_look_in(account) > 0  # too early to conclude: look again later
    account.refresh_from_db()
    assert account.state == S.CREATING
    assert script.calls["CreateAccount"] == 1

    clock.advance(timedelta(seconds=next_look_in(account)))  # the next look, past the grace period
    vending_dispatch()  # back in the queue, looked up once more, and sent again in the same run

    account.refresh_from_db()
    assert account.state == S.CREATING
    assert AccountEvent.objects.get(account=account, to_state=S.REQUESTED).reason == (
        "The creation request never reached AWS"
    )
    assert script.calls["CreateAccount"] == 2

    vending_dispatch()

    account.refresh_from_db()
    assert account.state == S.CONFIGURING
    assert len(accounts_in_organization(account.root_email)) == 1


@pytest.mark.django_db
def test_a_500_on_create_account_is_looked_up_before_anything_is_sent_again(personas, aws, script, clock, settings):
    account = queued_account(personas)
    script.answer("organizations", "CreateAccount", Fault("ServiceException", "Internal error.", status=500))

    vending_dispatch()

    account.refresh_from_db()
    assert account.state == S.CREATING  # AWS may have done it: look, do not resend
    assert account.create_request_id == ""
    for _ in range(2):
        clock.advance(timedelta(seconds=10))
        vending_dispatch()
    assert script.calls["CreateAccount"] == 1

    clock.advance(lost_request_grace(settings))
    vending_dispatch()

    assert script.calls["CreateAccount"] == 2
    assert len(accounts_in_organization(account.root_email)) == 1


@pytest.mark.django_db
def test_a_worker_killed_right_after_create_account_leaves_one_account(personas, aws, script):
    account = queued_account(personas)
    killed = []

    def kill_once(**kwargs):
        if not killed:
            killed.append(True)
            raise WorkerKilled

    aws.add_hook("after-call.organizations.CreateAccount", kill_once)

    with pytest.raises(WorkerKilled):
        vending_dispatch()

    account.refresh_from_db()
    # Marked as sent before the request left: the record says AWS may have it.
    assert account.state == S.CREATING
    assert account.create_submitted_at is not None
    assert account.create_request_id == ""
    assert len(accounts_in_organization(account.root_email)) == 1

    vending_dispatch()

    account.refresh_from_db()
    assert account.state == S.CONFIGURING  # found in the organization, not created again
    assert script.calls["CreateAccount"] == 1
    assert len(accounts_in_organization(account.root_email)) == 1


# --- Messages delivered twice ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_queue_run_delivered_twice_moves_the_account_once(personas, aws, script, queued):
    account = creating_account(personas, script)
    script.answer(
        "organizations",
        "DescribeCreateAccountStatus",
        described("SUCCEEDED", AccountId="210987654321"),
    )
    script.always("organizations", "ListTagsForResource", tags_sent_for(script, account))

    tasks.vending_dispatch_task()
    tasks.vending_dispatch_task()

    account.refresh_from_db()
    assert account.state == S.CONFIGURING
    assert script.calls["DescribeCreateAccountStatus"] == 1  # the second found nothing due
    assert transitions(account) == [(S.REQUESTED, S.CREATING), (S.CREATING, S.CONFIGURING)]
    assert queued["account_configure_task"] == [account.pk]


@pytest.mark.django_db
def test_two_overlapping_looks_at_a_finished_creation_move_the_account_once(personas, aws, script, queued, monkeypatch):
    """Two workers' runs of the queue wait for each other on its advisory lock; within one
    database session the lock lets the second in, which plays two runs overlapping anyway."""
    account = creating_account(personas, script)
    script.always(
        "organizations",
        "DescribeCreateAccountStatus",
        described("SUCCEEDED", AccountId="210987654321"),
    )
    script.always("organizations", "ListTagsForResource", tags_sent_for(script, account))
    outcomes = record_transitions(monkeypatch, vending_queue)
    second_worker_meanwhile(
        aws,
        "after-call.organizations.DescribeCreateAccountStatus",
        vending_dispatch,
    )

    vending_dispatch()

    assert outcomes == [(S.CONFIGURING, True), (S.CONFIGURING, False)]  # the second worker won
    assert script.calls["DescribeCreateAccountStatus"] == 2
    assert transitions(account)[-1] == (S.CREATING, S.CONFIGURING)
    assert AccountEvent.objects.filter(account=account, to_state=S.CONFIGURING).count() == 1
    assert queued["account_configure_task"] == [account.pk]


# --- The queue's quotas ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_queue_keeps_to_the_create_account_rate_and_to_five_creations_in_flight(
    personas, aws, script, clock, settings
):
    settings.PORTAL_AWS_MAX_CREATIONS_IN_PROGRESS = 5
    settings.PORTAL_AWS_CREATE_ACCOUNT_RATE = 0.1
    settings.PORTAL_AWS_CREATE_ACCOUNT_BURST = 3
    settings.PORTAL_AWS_CREATION_SECONDS = 60  # no creation is looked at before the end
    course_precreate(actor=personas.instructor, course=personas.course, count=8)
    script.always("organizations", "CreateAccount", in_progress)

    def creating() -> int:
        return MemberAccount.objects.filter(state=S.CREATING).count()

    first = vending_dispatch()
    assert (first.submitted, first.waiting) == (3, 5)
    assert script.calls["CreateAccount"] == 3
    assert first.retry_in == 10.5  # a token again 10 s later (0.1/s), + the arrival margin

    second = vending_dispatch()
    assert (second.submitted, second.waiting) == (0, 5)
    assert script.calls["CreateAccount"] == 3
    assert second.retry_in == 10.5

    clock.advance(timedelta(seconds=31))
    third = vending_dispatch()
    assert third.submitted == 2  # the rate allows 3, five in flight allow 2
    assert creating() == 5

    settings.PORTAL_AWS_CREATE_ACCOUNT_RATE = 1000
    settings.PORTAL_AWS_CREATE_ACCOUNT_BURST = 1000
    for _ in range(3):
        assert vending_dispatch().submitted == 0
        assert creating() == 5
    assert script.calls["CreateAccount"] == 5

    finished = MemberAccount.objects.filter(state=S.CREATING).first()
    script.answer(
        "organizations",
        "DescribeCreateAccountStatus",
        described("SUCCEEDED", AccountId="210987654321"),
    )
    script.answer("organizations", "ListTagsForResource", tags_sent_for(script, finished))
    look_due_now(finished)

    fourth = vending_dispatch()  # the look frees a slot, which the same run fills

    finished.refresh_from_db()
    assert finished.state == S.CONFIGURING
    assert fourth.submitted == 1
    assert creating() == 5
    assert fourth.waiting == 2
    assert script.calls["CreateAccount"] == 6
    assert script.calls["DescribeCreateAccountStatus"] == 1


@pytest.mark.django_db(transaction=True)
def test_a_run_of_the_queue_on_another_machine_waits_for_the_one_running(personas, aws, script, monkeypatch):
    """The quotas are counted from the database under the queue's advisory lock: a second run
    (another worker, another machine) waits, then counts what the first one sent."""
    monkeypatch.setattr(tasks.vending_dispatch_task, "delay", lambda: None)  # the request's own run
    queued_account(personas)

    def second_run() -> None:
        try:
            vending_dispatch()
        finally:
            connection.close()

    with held_elsewhere(VENDING_QUEUE):
        thread = threading.Thread(target=second_run)
        thread.start()
        assert waiting_for(VENDING_QUEUE)
        assert script.calls["CreateAccount"] == 0
    thread.join(timeout=60)

    assert script.calls["CreateAccount"] == 1


@pytest.mark.django_db
def test_the_first_look_is_the_typical_creation_time_after_aws_took_the_request(personas, aws, script, clock, settings):
    """By AWS's RequestedTimestamp: AWS starts creating a moment after the record says it sent
    the request, and a look a hair too early would wait a whole poll delay more."""
    settings.PORTAL_AWS_CREATION_SECONDS = 60
    account = queued_account(personas)
    sent = clock.now

    def taken_a_moment_later(params: dict) -> dict:
        clock.advance(timedelta(seconds=1))  # the answer comes back a second after the request left
        answer = in_progress(params)
        answer["CreateAccountStatus"]["RequestedTimestamp"] = sent + timedelta(seconds=0.25)
        return answer

    script.answer("organizations", "CreateAccount", taken_a_moment_later)

    vending_dispatch()

    account.refresh_from_db()
    assert account.next_attempt_at == sent + timedelta(seconds=60.25)


@pytest.mark.django_db
def test_the_requests_a_run_may_send_leave_together_not_one_answer_after_another(personas, aws, script, settings):
    settings.PORTAL_AWS_CREATE_ACCOUNT_BURST = 3
    settings.PORTAL_AWS_CREATE_ACCOUNT_RATE = 0.1
    course_precreate(actor=personas.instructor, course=personas.course, count=3)
    # Each request waits, inside AWS, until all three are in: sent one after another, they never would be.
    all_in = threading.Barrier(3, timeout=30)

    def wait_for_the_others(**kwargs) -> None:
        all_in.wait()

    aws.add_hook("before-call.organizations.CreateAccount", wait_for_the_others)

    result = vending_dispatch()

    assert result.submitted == 3
    assert MemberAccount.objects.filter(state=S.CREATING).exclude(create_request_id="").count() == 3
