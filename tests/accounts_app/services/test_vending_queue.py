"""Vending when AWS answers as AWS does, not as moto does.

moto creates every account at once, takes duplicate root emails, never throttles, never loses an
answer and has no handshakes. Here the tests script AWS's real answers on top of it: an
`AwsScript` answers chosen calls at botocore's `before-call` event (moto never sees those
requests), lets others reach moto and then loses the answer, or lets moto do the work and edits
what it says (IN_PROGRESS where moto says SUCCEEDED). Invitations of existing accounts are in
tests/accounts_app/services/test_invited_accounts.py.

Services are called directly (vending_dispatch, account_poll_creation, account_configure, …):
these tests run inside a transaction that is rolled back, so the Celery tasks the services queue
"on commit" never run unless a test calls them.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber
from django.db import connection
from django.utils import timezone

from accounts_app import tasks
from accounts_app.choices import AccountState as S
from accounts_app.choices import CourseRole
from accounts_app.lifecycle import transition
from accounts_app.models import AccountEvent, AwsOrganization, MemberAccount, Membership
from accounts_app.services import account_setup, vending_queue
from accounts_app.services.account_requests import (
    account_request,
    course_precreate,
)
from accounts_app.services.account_setup import account_configure
from accounts_app.services.identity import account_tags
from accounts_app.services.reconcile import reconcile
from accounts_app.services.vending_queue import (
    FAILURE_EXPLANATIONS,
    LOST_REQUEST_GRACE,
    account_poll_creation,
    vending_dispatch,
)
from portal.aws import identity_center, organizations, quotas
from portal.aws.errors import TransientAwsError, UnknownOutcome
from tests.support.aws_script import (
    LOST_AFTER_AWS,
    NEVER_REACHED,
    Clock,
    Edit,
    Fault,
)
from tests.support.next_steps import record_account_steps

# --- Scripting AWS --------------------------------------------------------------------------------


class WorkerKilled(BaseException):
    """The worker process dies (SIGKILL, OOM): nothing after this point runs."""


@pytest.fixture
def clock(monkeypatch) -> Clock:
    frozen = Clock()
    monkeypatch.setattr(timezone, "now", frozen)
    return frozen


@pytest.fixture
def queued(monkeypatch):
    """The follow-up tasks the services queue for an account, by task name (recorded, not run)."""
    return record_account_steps(monkeypatch)


# --- Helpers --------------------------------------------------------------------------------------


def request_id(prefix: str = "car-") -> str:
    return prefix + uuid.uuid4().hex[:16]


def creation_status(state: str, *, request: str, name: str, **fields) -> dict:
    return {
        "CreateAccountStatus": {
            "Id": request,
            "AccountName": name,
            "State": state,
            "RequestedTimestamp": datetime.now(UTC),
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
    status.pop("AccountId", None)
    status.pop("CompletedTimestamp", None)


def tags_sent_for(script, account: MemberAccount) -> dict:
    """AWS's answer to ListTagsForResource for the account a scripted creation made: the tags its
    CreateAccount carried (moto never saw that request, so it does not know the account)."""
    sent = [p["Tags"] for p in script.params["CreateAccount"] if p["AccountName"] == account.account_name]
    return {"Tags": sent[-1]}


def student_membership(personas) -> Membership:
    return Membership.objects.get(user=personas.student)


def queued_account(personas) -> MemberAccount:
    """The student's account, waiting in the vending queue."""
    account = account_request(actor=personas.student, membership=student_membership(personas))
    assert account.state == S.REQUESTED
    return account


def creating_account(personas, script) -> MemberAccount:
    """The student's account, CreateAccount sent and IN_PROGRESS at AWS (nothing in moto)."""
    account = queued_account(personas)
    script.answer("organizations", "CreateAccount", in_progress)
    assert vending_dispatch().submitted == 1
    account.refresh_from_db()
    assert account.state == S.CREATING
    assert account.create_request_id.startswith("car-")
    return account


def configuring_account(personas) -> MemberAccount:
    """The student's account, created by moto and ready to be configured."""
    account = queued_account(personas)
    vending_dispatch()
    account_poll_creation(account=account)
    account.refresh_from_db()
    assert account.state == S.CONFIGURING
    return account


def accounts_in_organization(email: str) -> list[organizations.Account]:
    return [a for a in organizations.list_accounts() if a.email.lower() == email.lower()]


def transitions(account: MemberAccount) -> list[tuple[str, str]]:
    return [(e.from_state, e.to_state) for e in AccountEvent.objects.filter(account=account).order_by("id")]


def assignments_of(aws, account: MemberAccount, role: str, user_id: str) -> list[dict]:
    organization = AwsOrganization.load()
    listed = aws.client("sso-admin").list_account_assignments(
        InstanceArn=organization.sso_instance_arn,
        AccountId=account.aws_account_id,
        PermissionSetArn=organization.permission_sets[role],
    )["AccountAssignments"]
    return [a for a in listed if a["PrincipalId"] == user_id]


# --- Creation: IN_PROGRESS, then SUCCEEDED -------------------------------------------------------


@pytest.mark.django_db
def test_a_creation_in_progress_is_polled_with_growing_delays_until_it_succeeds(
    personas, aws, script, clock, settings, queued
):
    settings.PORTAL_AWS_POLL_SECONDS = 5
    settings.PORTAL_AWS_POLL_MAX_SECONDS = 60
    account = queued_account(personas)
    script.answer("organizations", "CreateAccount", Edit(in_progress_instead_of_succeeded))
    vending_dispatch()
    account.refresh_from_db()
    created = accounts_in_organization(account.root_email)[0]  # moto finished at once; AWS has not
    assert account.state == S.CREATING
    assert queued["account_poll_task"] == [account.pk]

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
        first = account_poll_creation(account=account)
        clock.advance(timedelta(seconds=100))
        second = account_poll_creation(account=account)
        state_while_running = MemberAccount.objects.get(pk=account.pk).state
        clock.advance(timedelta(seconds=900))
        last = account_poll_creation(account=account)
    safe.assert_no_pending_responses()

    assert first == 5.0  # PORTAL_AWS_POLL_SECONDS at first
    assert second == 10.0  # a tenth of the 100 s waited so far
    assert state_while_running == S.CREATING
    assert last is None
    account.refresh_from_db()
    assert account.state == S.CONFIGURING
    assert account.aws_account_id == created.id
    assert transitions(account) == [(S.REQUESTED, S.CREATING), (S.CREATING, S.CONFIGURING)]
    assert queued["account_configure_task"] == [account.pk]
    assert script.calls["CreateAccount"] == 1

    account_configure(account=account)

    account.refresh_from_db()
    assert account.state == S.READY


@pytest.mark.django_db
def test_the_poll_delay_never_exceeds_the_maximum(personas, aws, script, clock, settings):
    settings.PORTAL_AWS_POLL_MAX_SECONDS = 60
    account = creating_account(personas, script)
    script.answer("organizations", "DescribeCreateAccountStatus", described("IN_PROGRESS"))
    clock.advance(timedelta(hours=2))

    assert account_poll_creation(account=account) == 60.0
    assert script.calls["DescribeCreateAccountStatus"] == 1


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

    assert account_poll_creation(account=account) is None

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

    assert account_poll_creation(account=account) is None

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

    account_poll_creation(account=account)

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

    account_poll_creation(account=account)

    account.refresh_from_db()
    assert account.state == S.REQUESTED
    assert account.create_request_id == ""
    assert AccountEvent.objects.get(account=account, to_state=S.REQUESTED).reason == reason

    vending_dispatch()  # this time moto creates it

    assert script.calls["CreateAccount"] == 2
    assert len(accounts_in_organization(account.root_email)) == 1


@pytest.mark.django_db
def test_an_invalid_email_fails_the_account(personas, aws, script):
    account = creating_account(personas, script)
    script.answer(
        "organizations",
        "DescribeCreateAccountStatus",
        described("FAILED", FailureReason="INVALID_EMAIL"),
    )

    account_poll_creation(account=account)

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

    account_poll_creation(account=account)

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


# --- A brand-new account is not ready at once ----------------------------------------------------
# moto lets every new account be entered and assigned at once; AWS refuses for some minutes after
# CreateAccount succeeds. These tests script AWS's refusals (AssumeRole on the portal's base
# session, whose STS clients inherit its handlers; Identity Center through AwsScript).

ASSUME_ROLE_REFUSALS = {
    "AccessDenied": Fault(
        "AccessDenied",
        "User: arn:aws:sts::123456789012:assumed-role/portal/classroom-cloud-portal is not authorized to "
        "perform: sts:AssumeRole on resource: arn:aws:iam::210987654321:role/OrganizationAccountAccessRole",
        status=403,
    ),
    "RegionDisabledException": Fault(
        "RegionDisabledException",
        "STS is not activated in this region for account:210987654321. Your account administrator can "
        "activate STS in this region using the IAM Console.",
        status=403,
    ),
}


class AssumeRoleRefusals:
    """AssumeRole into member accounts answered with `fault` while `refusing`."""

    def __init__(self, aws, fault: Fault):
        self.fault, self.refusing, self.refused = fault, True, 0
        aws.base_session().events.register("before-call.sts.AssumeRole", self._answer)

    def _answer(self, **kwargs):
        if self.refusing:
            self.refused += 1
            return self.fault.response()
        return None


@pytest.mark.django_db
@pytest.mark.parametrize("code", sorted(ASSUME_ROLE_REFUSALS))
def test_a_new_account_refusing_its_role_is_tried_again_not_failed(personas, aws, clock, code):
    account = configuring_account(personas)
    aws.forget_member_session(account.aws_account_id)
    refusals = AssumeRoleRefusals(aws, ASSUME_ROLE_REFUSALS[code])

    for _ in range(2):
        with pytest.raises(TransientAwsError, match="still being set up"):
            account_configure(account=account)
        clock.advance(timedelta(minutes=6))
    account.refresh_from_db()
    assert account.state == S.CONFIGURING
    assert refusals.refused == 2

    refusals.refusing = False  # AWS has finished setting the account up
    account_configure(account=account)

    account.refresh_from_db()
    assert account.state == S.READY


@pytest.mark.django_db
def test_an_account_still_refusing_its_role_after_the_grace_window_fails(personas, aws, clock, settings):
    settings.PORTAL_AWS_NEW_ACCOUNT_GRACE_MINUTES = 15
    account = configuring_account(personas)
    aws.forget_member_session(account.aws_account_id)
    AssumeRoleRefusals(aws, ASSUME_ROLE_REFUSALS["AccessDenied"])
    clock.advance(timedelta(minutes=16))

    account_configure(account=account)

    account.refresh_from_db()
    assert account.state == S.FAILED
    assert "not allowed to AssumeRole" in account.last_error


ASSIGNMENT_REFUSALS = {
    "AccessDeniedException": Fault("AccessDeniedException", "User is not authorized to perform this action."),
    "FAILED status": lambda params: {
        "AccountAssignmentCreationStatus": {
            "Status": "FAILED",
            "RequestId": str(uuid.uuid4()),
            "FailureReason": "Received a 404 status error: Not supported account.",
            "TargetId": params["TargetId"],
        }
    },
}


@pytest.mark.django_db
@pytest.mark.parametrize("answer", sorted(ASSIGNMENT_REFUSALS))
def test_a_new_account_refused_by_identity_center_is_tried_again_not_failed(personas, aws, script, clock, answer):
    account = configuring_account(personas)
    script.answer("sso-admin", "CreateAccountAssignment", ASSIGNMENT_REFUSALS[answer])

    with pytest.raises(TransientAwsError):
        account_configure(account=account)
    account.refresh_from_db()
    assert account.state == S.CONFIGURING

    clock.advance(timedelta(minutes=3))
    account_configure(account=account)  # AWS assigns this time (moto)

    account.refresh_from_db()
    assert account.state == S.READY


# --- Lost answers to CreateAccount ----------------------------------------------------------------


@pytest.mark.django_db
def test_a_lost_create_account_answer_is_resolved_by_looking_and_the_account_is_created_once(
    personas, aws, script, queued
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
    assert queued["account_poll_task"] == [account.pk]

    assert account_poll_creation(account=account) is None

    account.refresh_from_db()
    assert account.state == S.CONFIGURING
    assert account.aws_account_id == accounts_in_organization(account.root_email)[0].id

    for _ in range(3):  # redelivered messages, the beat's reconciler
        vending_dispatch()
        account_poll_creation(account=account)
        reconcile()

    assert script.calls["CreateAccount"] == 1
    assert len(accounts_in_organization(account.root_email)) == 1
    assert transitions(account) == [(S.REQUESTED, S.CREATING), (S.CREATING, S.CONFIGURING)]


@pytest.mark.django_db
def test_a_lost_answer_while_aws_is_still_creating_adopts_the_request_and_polls_once(
    personas, aws, script, clock, queued
):
    account = queued_account(personas)
    script.answer("organizations", "CreateAccount", LOST_AFTER_AWS)
    vending_dispatch()
    queued.clear()

    def still_creating_accounts(parsed):  # AWS lists the account once it is created
        parsed["Accounts"] = [a for a in parsed["Accounts"] if a["Email"] != account.root_email]

    def still_creating_statuses(parsed):
        for status in parsed["CreateAccountStatuses"]:
            if status["AccountName"] == account.account_name:
                in_progress_instead_of_succeeded({"CreateAccountStatus": status})

    script.answer("organizations", "ListAccounts", Edit(still_creating_accounts))
    script.answer("organizations", "ListCreateAccountStatus", Edit(still_creating_statuses))

    delay = account_poll_creation(account=account)

    account.refresh_from_db()
    assert account.state == S.CREATING
    assert account.create_request_id.startswith("car-")
    # Exactly one follow-up poll: either the returned delay (the task schedules it) or a queued
    # task, not both; two would make two polling loops for one account from then on.
    follow_ups = (delay is not None) + len(queued["account_poll_task"])
    assert follow_ups == 1

    assert account_poll_creation(account=account) is None  # now AWS has finished

    account.refresh_from_db()
    assert account.state == S.CONFIGURING
    assert script.calls["CreateAccount"] == 1
    assert len(accounts_in_organization(account.root_email)) == 1


@pytest.mark.django_db
def test_a_create_account_that_never_reached_aws_is_sent_again_after_the_grace_period(
    personas, aws, script, clock, queued, settings
):
    settings.PORTAL_AWS_POLL_SECONDS = 5
    account = queued_account(personas)
    script.answer("organizations", "CreateAccount", NEVER_REACHED)
    vending_dispatch()
    account.refresh_from_db()
    assert account.state == S.CREATING
    assert account.create_request_id == ""
    assert accounts_in_organization(account.root_email) == []

    assert account_poll_creation(account=account) == 5.0  # AWS may list it any moment: wait
    clock.advance(LOST_REQUEST_GRACE - timedelta(seconds=1))
    assert account_poll_creation(account=account) > 0  # too early to conclude: look again later
    account.refresh_from_db()
    assert account.state == S.CREATING

    clock.advance(timedelta(seconds=2))
    assert account_poll_creation(account=account) is None

    account.refresh_from_db()
    assert account.state == S.REQUESTED
    assert AccountEvent.objects.filter(account=account).last().reason == "The creation request never reached AWS"
    assert script.calls["CreateAccount"] == 1

    vending_dispatch()
    account_poll_creation(account=account)

    account.refresh_from_db()
    assert account.state == S.CONFIGURING
    assert script.calls["CreateAccount"] == 2
    assert len(accounts_in_organization(account.root_email)) == 1


@pytest.mark.django_db
def test_a_500_on_create_account_is_looked_up_before_anything_is_sent_again(personas, aws, script, clock):
    account = queued_account(personas)
    script.answer("organizations", "CreateAccount", Fault("ServiceException", "Internal error.", status=500))

    vending_dispatch()

    account.refresh_from_db()
    assert account.state == S.CREATING  # AWS may have done it: look, do not resend
    assert account.create_request_id == ""
    for _ in range(2):
        vending_dispatch()
    assert script.calls["CreateAccount"] == 1

    clock.advance(LOST_REQUEST_GRACE + timedelta(seconds=1))
    account_poll_creation(account=account)
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
    assert account.state == S.REQUESTED  # the dispatcher's transaction never committed
    assert len(accounts_in_organization(account.root_email)) == 1

    vending_dispatch()

    account.refresh_from_db()
    assert account.state == S.CONFIGURING  # found in the organization, not created again
    assert script.calls["CreateAccount"] == 1
    assert len(accounts_in_organization(account.root_email)) == 1


# --- Messages delivered twice ---------------------------------------------------------------------


@pytest.mark.django_db
def test_transition_is_a_compare_and_swap(personas):
    account = MemberAccount.objects.create(
        course=personas.course, root_email="aws+a@school.example.edu", account_name="a"
    )
    first_worker = MemberAccount.objects.get(pk=account.pk)
    second_worker = MemberAccount.objects.get(pk=account.pk)

    won = transition(first_worker, expected=S.REQUESTED, to=S.CREATING, reason="first")
    lost = transition(second_worker, expected=S.REQUESTED, to=S.CREATING, reason="second")

    assert won is True
    assert lost is False
    assert first_worker.state == S.CREATING
    assert second_worker.state == S.REQUESTED  # the loser's copy is not touched
    assert list(AccountEvent.objects.filter(account=account).values_list("reason", flat=True)) == ["first"]


@pytest.mark.django_db
def test_transition_from_any_of_several_states_still_lets_one_caller_win(personas):
    account = MemberAccount.objects.create(
        course=personas.course,
        root_email="aws+b@school.example.edu",
        account_name="b",
        state=S.CREATING,
    )
    copies = [MemberAccount.objects.get(pk=account.pk) for _ in range(2)]

    results = [
        transition(c, expected={S.REQUESTED, S.CREATING}, to=S.CONFIGURING, aws_account_id="210987654321")
        for c in copies
    ]

    assert results == [True, False]
    account.refresh_from_db()
    assert account.state == S.CONFIGURING
    assert account.aws_account_id == "210987654321"
    assert AccountEvent.objects.filter(account=account).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_past_the_check_still_make_one_transition(personas):
    account = MemberAccount.objects.create(
        course=personas.course, root_email="aws+c@school.example.edu", account_name="c"
    )
    both_checked = threading.Barrier(2, timeout=20)
    results: dict[str, bool] = {}
    errors: list[BaseException] = []

    def hold_updates_until_both_checked(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("UPDATE") and "memberaccount" in sql:
            both_checked.wait()  # each worker has read REQUESTED before either writes
        return execute(sql, params, many, context)

    def worker(name: str) -> None:
        try:
            with connection.execute_wrapper(hold_updates_until_both_checked):
                copy = MemberAccount.objects.get(pk=account.pk)
                results[name] = transition(copy, expected=S.REQUESTED, to=S.CREATING, reason=name)
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(name,)) for name in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(results.values()) == [False, True]
    winner = next(name for name, won in results.items() if won)
    events = list(AccountEvent.objects.filter(account=account))
    assert [(e.from_state, e.to_state, e.reason) for e in events] == [(S.REQUESTED, S.CREATING, winner)]


@pytest.mark.django_db
def test_a_poll_message_delivered_twice_moves_the_account_once(personas, aws, script, queued):
    account = creating_account(personas, script)
    script.answer(
        "organizations",
        "DescribeCreateAccountStatus",
        described("SUCCEEDED", AccountId="210987654321"),
    )
    script.always("organizations", "ListTagsForResource", tags_sent_for(script, account))

    tasks.account_poll_task(account.pk)
    tasks.account_poll_task(account.pk)

    account.refresh_from_db()
    assert account.state == S.CONFIGURING
    assert script.calls["DescribeCreateAccountStatus"] == 1  # the second saw CONFIGURING and left
    assert transitions(account) == [(S.REQUESTED, S.CREATING), (S.CREATING, S.CONFIGURING)]
    assert queued["account_configure_task"] == [account.pk]


@pytest.mark.django_db
def test_two_overlapping_polls_of_a_finished_creation_move_the_account_once(personas, aws, script, queued, monkeypatch):
    account = creating_account(personas, script)
    script.always(
        "organizations",
        "DescribeCreateAccountStatus",
        described("SUCCEEDED", AccountId="210987654321"),
    )
    script.always("organizations", "ListTagsForResource", tags_sent_for(script, account))
    outcomes = []
    real_transition = vending_queue.transition

    def recorded_transition(*args, **kwargs):
        outcomes.append((kwargs["to"], real_transition(*args, **kwargs)))
        return outcomes[-1][1]

    monkeypatch.setattr(vending_queue, "transition", recorded_transition)
    second_delivery = []

    def second_worker_polls_meanwhile(**kwargs):
        if not second_delivery:
            second_delivery.append(True)
            account_poll_creation(account=MemberAccount.objects.get(pk=account.pk))

    aws.add_hook("after-call.organizations.DescribeCreateAccountStatus", second_worker_polls_meanwhile)

    account_poll_creation(account=account)

    assert outcomes == [(S.CONFIGURING, True), (S.CONFIGURING, False)]  # the second worker won
    assert script.calls["DescribeCreateAccountStatus"] == 2
    assert transitions(account)[-1] == (S.CREATING, S.CONFIGURING)
    assert AccountEvent.objects.filter(account=account, to_state=S.CONFIGURING).count() == 1
    assert queued["account_configure_task"] == [account.pk]


@pytest.mark.django_db
def test_a_configure_message_delivered_twice_has_one_set_of_aws_side_effects(personas, aws, script):
    account = configuring_account(personas)

    tasks.account_configure_task(account.pk)
    calls_after_first = Counter(script.calls)
    tasks.account_configure_task(account.pk)

    account.refresh_from_db()
    assert account.state == S.READY
    assert script.calls == calls_after_first  # the second delivery did not call AWS at all
    assert script.calls["MoveAccount"] == 1
    assert script.calls["TagResource"] == 1
    assert script.calls["CreateAccountAssignment"] == 3  # the student, the TA, the instructor
    assert len(assignments_of(aws, account, "student", account.identity_store_user_id)) == 1
    assert AccountEvent.objects.filter(account=account, to_state=S.READY).count() == 1


@pytest.mark.django_db
def test_two_overlapping_configure_workers_assign_once_and_move_the_account_once(personas, aws, script, monkeypatch):
    account = configuring_account(personas)
    outcomes = []
    real_transition = account_setup.transition

    def recorded_transition(*args, **kwargs):
        outcomes.append((kwargs["to"], real_transition(*args, **kwargs)))
        return outcomes[-1][1]

    monkeypatch.setattr(account_setup, "transition", recorded_transition)
    second_delivery = []

    def second_worker_runs_meanwhile(**kwargs):
        if not second_delivery:
            second_delivery.append(True)
            account_configure(account=MemberAccount.objects.get(pk=account.pk))

    aws.add_hook("after-call.organizations.MoveAccount", second_worker_runs_meanwhile)

    account_configure(account=account)

    account.refresh_from_db()
    assert account.state == S.READY
    assert outcomes == [(S.READY, True), (S.READY, False)]
    assert script.calls["MoveAccount"] == 1  # the second worker found it in the course OU already
    assert script.calls["CreateAccountAssignment"] == 3  # the first worker found them all made
    assert len(assignments_of(aws, account, "student", account.identity_store_user_id)) == 1
    assert AccountEvent.objects.filter(account=account, to_state=S.READY).count() == 1


# --- Workers killed mid-step ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("service", "operation"),
    [
        ("organizations", "MoveAccount"),
        ("organizations", "TagResource"),
        ("sso-admin", "CreateAccountAssignment"),
        ("identitystore", "CreateUser"),
    ],
)
def test_configure_resumes_after_a_worker_is_killed_mid_step(personas, aws, script, service, operation):
    account = configuring_account(personas)
    killed = []

    def kill_once(**kwargs):  # after AWS did the work, before the worker could go on
        if not killed:
            killed.append(True)
            raise WorkerKilled

    aws.add_hook(f"after-call.{service}.{operation}", kill_once)

    with pytest.raises(WorkerKilled):
        account_configure(account=account)
    account.refresh_from_db()
    assert account.state == S.CONFIGURING

    account_configure(account=account)  # the message is delivered again

    account.refresh_from_db()
    assert account.state == S.READY
    assert script.calls["MoveAccount"] == 1
    assert script.calls["CreateAccountAssignment"] == 3
    assert script.calls["CreateUser"] == 3  # the student, the TA, the instructor: once each
    assert len(assignments_of(aws, account, "student", account.identity_store_user_id)) == 1
    personas.course.refresh_from_db()
    assert organizations.parent_id(account.aws_account_id) == personas.course.aws_ou_id
    assert transitions(account)[-1] == (S.CONFIGURING, S.READY)
    assert AccountEvent.objects.filter(account=account, to_state=S.READY).count() == 1


# --- The queue's quotas ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_queue_keeps_to_the_create_account_rate_and_to_five_creations_in_flight(
    personas, aws, script, clock, settings
):
    settings.PORTAL_AWS_MAX_CREATIONS_IN_PROGRESS = 5
    settings.PORTAL_AWS_CREATE_ACCOUNT_RATE = 0.1
    settings.PORTAL_AWS_CREATE_ACCOUNT_BURST = 3
    course_precreate(actor=personas.instructor, course=personas.course, count=8)
    script.always("organizations", "CreateAccount", in_progress)
    script.always("organizations", "DescribeCreateAccountStatus", described("IN_PROGRESS"))

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
    account_poll_creation(account=finished)
    assert creating() == 4

    fourth = vending_dispatch()
    assert fourth.submitted == 1
    assert creating() == 5
    assert fourth.waiting == 2
    assert script.calls["CreateAccount"] == 6


# --- Identity Center assignments ------------------------------------------------------------------


def assignment_in_progress(parsed: dict) -> None:
    parsed["AccountAssignmentCreationStatus"]["Status"] = "IN_PROGRESS"


def assignment_status(status: str, **fields) -> dict:
    return {
        "AccountAssignmentCreationStatus": {
            "Status": status,
            "RequestId": str(uuid.uuid4()),
            "TargetId": "210987654321",
            "TargetType": "AWS_ACCOUNT",
            "PrincipalType": "USER",
            "CreatedDate": datetime.now(UTC),
            **fields,
        }
    }


@pytest.mark.django_db
def test_an_assignment_in_progress_is_described_until_it_succeeds(personas, aws, script):
    account = configuring_account(personas)
    script.answer("sso-admin", "CreateAccountAssignment", Edit(assignment_in_progress))

    account_configure(account=account)

    account.refresh_from_db()
    assert account.state == S.READY
    assert script.calls["DescribeAccountAssignmentCreationStatus"] == 1
    created = script.params["CreateAccountAssignment"][0]
    assert created["PrincipalId"] == account.identity_store_user_id
    assert len(assignments_of(aws, account, "student", account.identity_store_user_id)) == 1


@pytest.mark.django_db
def test_an_assignment_still_in_progress_is_retried_and_not_created_twice(personas, aws, script):
    account = configuring_account(personas)
    script.answer("sso-admin", "CreateAccountAssignment", Edit(assignment_in_progress))
    script.answer(
        "sso-admin",
        "DescribeAccountAssignmentCreationStatus",
        Edit(lambda parsed: parsed["AccountAssignmentCreationStatus"].update(Status="IN_PROGRESS")),
    )

    with pytest.raises(TransientAwsError, match="still being created"):
        account_configure(account=account)
    account.refresh_from_db()
    assert account.state == S.CONFIGURING

    account_configure(account=account)  # the task's retry

    account.refresh_from_db()
    assert account.state == S.READY
    assert script.calls["CreateAccountAssignment"] == 3  # the student once, then the TA and the instructor
    assert len(assignments_of(aws, account, "student", account.identity_store_user_id)) == 1


@pytest.mark.django_db
def test_a_failed_assignment_fails_the_account_with_the_reason(personas, aws, script, clock, settings):
    account = configuring_account(personas)
    # Past the window in which a new account's refusals are waited out.
    clock.advance(timedelta(minutes=settings.PORTAL_AWS_NEW_ACCOUNT_GRACE_MINUTES + 1))
    reason = (
        "Received a 404 status error: Not supported account ID. "
        "Please verify that the account exists in your organization."
    )
    script.answer(
        "sso-admin",
        "CreateAccountAssignment",
        lambda params: assignment_status(
            "IN_PROGRESS",
            PermissionSetArn=params["PermissionSetArn"],
            PrincipalId=params["PrincipalId"],
        ),
    )
    script.answer(
        "sso-admin",
        "DescribeAccountAssignmentCreationStatus",
        assignment_status("FAILED", FailureReason=reason),
    )

    account_configure(account=account)

    account.refresh_from_db()
    assert account.state == S.FAILED
    assert account.last_error == f"AWS refused CreateAccountAssignment: {reason}"
    assert transitions(account)[-1] == (S.CONFIGURING, S.FAILED)
    assert script.calls["CreateAccountAssignment"] == 1  # nothing more after the failure


@pytest.mark.django_db
def test_a_lost_assignment_answer_is_found_by_has_assignment_and_not_sent_again(personas, aws, script):
    account = configuring_account(personas)
    script.answer("sso-admin", "CreateAccountAssignment", LOST_AFTER_AWS)

    account_configure(account=account)

    account.refresh_from_db()
    assert account.state == S.READY
    assert script.sent["CreateAccountAssignment"] == 3  # the student once (lost), the TA, the instructor
    assert len(assignments_of(aws, account, "student", account.identity_store_user_id)) == 1


@pytest.mark.django_db
def test_an_assignment_request_that_never_reached_aws_is_sent_on_the_retry(personas, aws, script):
    account = configuring_account(personas)
    script.answer("sso-admin", "CreateAccountAssignment", NEVER_REACHED)

    with pytest.raises(UnknownOutcome):
        account_configure(account=account)
    account.refresh_from_db()
    assert account.state == S.CONFIGURING
    assert assignments_of(aws, account, "student", account.identity_store_user_id) == []

    account_configure(account=account)

    account.refresh_from_db()
    assert account.state == S.READY
    assert len(assignments_of(aws, account, "student", account.identity_store_user_id)) == 1


@pytest.mark.django_db
def test_an_identity_center_conflict_is_retried_not_failed(personas, aws, script):
    # Identity Center's ConflictException: "a previous write did not have time to propagate …
    # a retry (with appropriate backoff logic) is the recommended response".
    account = configuring_account(personas)
    script.answer(
        "sso-admin",
        "CreateAccountAssignment",
        Fault("ConflictException", "A conflicting request is already in progress.", status=409),
    )

    with pytest.raises(TransientAwsError):
        account_configure(account=account)
    account.refresh_from_db()
    assert account.state == S.CONFIGURING
    assert account.last_error == ""

    account_configure(account=account)

    account.refresh_from_db()
    assert account.state == S.READY
    assert len(assignments_of(aws, account, "student", account.identity_store_user_id)) == 1


@pytest.mark.django_db
def test_a_member_of_a_course_with_staff_gets_every_role_assigned_exactly_once(personas, aws, script):
    account = configuring_account(personas)

    account_configure(account=account)
    account_configure(account=account)

    organization = AwsOrganization.load()
    store = organization.identity_store_id
    for role in (CourseRole.TA, CourseRole.INSTRUCTOR):
        member = Membership.objects.get(course=personas.course, role=role)
        user_id = identity_center.find_user(store, member.email)
        assert len(assignments_of(aws, account, role, user_id)) == 1
