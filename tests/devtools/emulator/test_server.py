"""The local emulator's server (devtools/emulator/server.py): moto, with AWS's pace for new
accounts, Account Management's primary-email API, and AWS Budgets' UpdateBudget and subscriber
APIs."""

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

from devtools.emulator.server import (
    PACE_PATH,
    AccountCreationPace,
    BudgetUpdates,
    PrimaryEmailUpdates,
)
from portal.aws import budgets as portal_budgets
from portal.aws import session

CREATION_SECONDS = 300


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def emails() -> list[str]:
    """What AWS would have emailed, as the emulator prints it."""
    return []


@dataclass(frozen=True)
class RunningEmulator:
    endpoint: str
    pace: AccountCreationPace


@pytest.fixture
def emulator(clock, emails) -> Iterator[RunningEmulator]:
    """The emulator server on a free loopback port, with a fresh moto behind it."""
    pace = AccountCreationPace(DomainDispatcherApplication(create_backend_app), clock=clock)
    server = make_server(
        "127.0.0.1",
        0,
        BudgetUpdates(PrimaryEmailUpdates(pace, announce=emails.append)),
        threaded=True,
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    running = RunningEmulator(endpoint=f"http://127.0.0.1:{server.server_port}", pace=pace)
    requests.post(f"{running.endpoint}/moto-api/reset", timeout=10).raise_for_status()
    try:
        yield running
    finally:
        server.shutdown()


def aws_client(emulator: RunningEmulator, service: str):
    return boto3.client(
        service,
        endpoint_url=emulator.endpoint,
        region_name="us-east-1",
        aws_access_key_id="emulator",
        aws_secret_access_key="emulator",
    )


@pytest.fixture
def organizations(emulator):
    client = aws_client(emulator, "organizations")
    client.create_organization(FeatureSet="ALL")
    return client


def set_pace(emulator: RunningEmulator, seconds) -> requests.Response:
    return requests.post(f"{emulator.endpoint}{PACE_PATH}", json={"creation_seconds": seconds}, timeout=10)


def create(organizations, name: str) -> dict:
    return organizations.create_account(Email=f"{name}@school.example", AccountName=name)["CreateAccountStatus"]


def listed_names(organizations) -> set[str]:
    return {account["Name"] for account in organizations.list_accounts()["Accounts"]}


def test_without_a_pace_accounts_are_created_at_once_as_moto_does(organizations):
    status = create(organizations, "ada")

    assert status["State"] == "SUCCEEDED"
    assert status["AccountId"]
    assert "ada" in listed_names(organizations)


def test_a_paced_account_stays_in_progress_and_unlisted_until_its_time(emulator, clock, organizations):
    set_pace(emulator, CREATION_SECONDS).raise_for_status()

    status = create(organizations, "ada")
    clock.now += CREATION_SECONDS - 1
    described = organizations.describe_create_account_status(CreateAccountRequestId=status["Id"])

    assert status["State"] == "IN_PROGRESS" and "AccountId" not in status
    assert described["CreateAccountStatus"]["State"] == "IN_PROGRESS"
    assert "AccountId" not in described["CreateAccountStatus"]
    assert "ada" not in listed_names(organizations)
    running = organizations.list_create_account_status(States=["IN_PROGRESS"])["CreateAccountStatuses"]
    assert [s["AccountName"] for s in running] == ["ada"]
    succeeded = organizations.list_create_account_status(States=["SUCCEEDED"])["CreateAccountStatuses"]
    assert "ada" not in [s["AccountName"] for s in succeeded]


def test_a_paced_account_is_there_once_its_time_has_come(emulator, clock, organizations):
    set_pace(emulator, CREATION_SECONDS).raise_for_status()

    status = create(organizations, "ada")
    clock.now += CREATION_SECONDS
    described = organizations.describe_create_account_status(CreateAccountRequestId=status["Id"])

    assert described["CreateAccountStatus"]["State"] == "SUCCEEDED"
    account_id = described["CreateAccountStatus"]["AccountId"]
    assert organizations.describe_account(AccountId=account_id)["Account"]["Name"] == "ada"
    assert "ada" in listed_names(organizations)


def test_an_unfinished_account_is_not_found_by_its_id(emulator, clock, organizations):
    set_pace(emulator, CREATION_SECONDS).raise_for_status()
    started = clock.now
    status = create(organizations, "ada")
    clock.now += CREATION_SECONDS
    account_id = organizations.describe_create_account_status(CreateAccountRequestId=status["Id"])[
        "CreateAccountStatus"
    ]["AccountId"]

    clock.now = started  # back to while AWS was still making it

    with pytest.raises(ClientError) as refused:
        organizations.describe_account(AccountId=account_id)
    assert refused.value.response["Error"]["Code"] == "AccountNotFoundException"


def test_the_pace_applies_to_creations_that_follow_it(emulator, organizations):
    set_pace(emulator, CREATION_SECONDS).raise_for_status()
    slow = create(organizations, "ada")

    set_pace(emulator, 0).raise_for_status()
    quick = create(organizations, "alan")

    assert (slow["State"], quick["State"]) == ("IN_PROGRESS", "SUCCEEDED")
    assert requests.get(f"{emulator.endpoint}{PACE_PATH}", timeout=10).json() == {"creation_seconds": 0.0}


@pytest.mark.parametrize("payload", [{"creation_seconds": "soon"}, {"seconds": 60}, ["60"]])
def test_a_pace_that_is_not_a_number_is_refused_and_changes_nothing(emulator, payload):
    set_pace(emulator, CREATION_SECONDS).raise_for_status()

    answer = requests.post(f"{emulator.endpoint}{PACE_PATH}", json=payload, timeout=10)

    assert answer.status_code == 400
    assert "creation_seconds" in answer.text
    assert emulator.pace.creation_seconds == CREATION_SECONDS


def test_other_services_pass_through_untouched(emulator, organizations):
    set_pace(emulator, CREATION_SECONDS).raise_for_status()
    account = aws_client(emulator, "account")

    account.put_alternate_contact(
        AlternateContactType="BILLING",
        EmailAddress="billing@school.example",
        Name="Billing",
        PhoneNumber="+1 555 0100",
        Title="Billing office",
    )

    assert aws_client(emulator, "sts").get_caller_identity()["Account"].isdigit()
    contact = account.get_alternate_contact(AlternateContactType="BILLING")["AlternateContact"]
    assert contact["EmailAddress"] == "billing@school.example"


# --- Primary email ------------------------------------------------------------------------------


def code_in(email: str) -> str:
    return re.search(r"is (\d{6})$", email).group(1)


def test_a_root_email_moves_to_the_address_that_received_the_code(organizations, emulator, emails):
    account = aws_client(emulator, "account")
    account_id = create(organizations, "ada")["AccountId"]

    status = account.start_primary_email_update(AccountId=account_id, PrimaryEmail="ada@home.example")["Status"]
    accepted = account.accept_primary_email_update(
        AccountId=account_id, PrimaryEmail="ada@home.example", Otp=code_in(emails[-1])
    )["Status"]

    assert (status, accepted) == ("PENDING", "ACCEPTED")
    assert emails[-1].startswith(
        f"AWS emails ada@home.example: the code to make it the root email of account {account_id}"
    )
    assert account.get_primary_email(AccountId=account_id)["PrimaryEmail"] == "ada@home.example"
    assert organizations.describe_account(AccountId=account_id)["Account"]["Email"] == "ada@home.example"


def test_a_wrong_code_is_refused_and_the_root_email_stays(organizations, emulator, emails):
    account = aws_client(emulator, "account")
    account_id = create(organizations, "ada")["AccountId"]
    account.start_primary_email_update(AccountId=account_id, PrimaryEmail="ada@home.example")
    wrong = f"{(int(code_in(emails[-1])) + 1) % 1_000_000:06d}"

    with pytest.raises(ClientError) as refused:
        account.accept_primary_email_update(AccountId=account_id, PrimaryEmail="ada@home.example", Otp=wrong)

    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert account.get_primary_email(AccountId=account_id)["PrimaryEmail"] == "ada@school.example"


def test_accepting_without_a_pending_update_or_for_an_unknown_account_is_not_found(organizations, emulator):
    account = aws_client(emulator, "account")
    account_id = create(organizations, "ada")["AccountId"]

    for unknown in (
        lambda: account.accept_primary_email_update(
            AccountId=account_id, PrimaryEmail="ada@home.example", Otp="123456"
        ),
        lambda: account.get_primary_email(AccountId="999999999999"),
    ):
        with pytest.raises(ClientError) as refused:
            unknown()
        assert refused.value.response["Error"]["Code"] == "ResourceNotFoundException"


# --- AWS Budgets ---------------------------------------------------------------------------------

ACTUAL_80 = {
    "NotificationType": "ACTUAL",
    "ComparisonOperator": "GREATER_THAN",
    "Threshold": 80,
    "ThresholdType": "PERCENTAGE",
}
BUDGET_NAME = "cs101-ada"


def email(address: str) -> dict:
    return {"SubscriptionType": "EMAIL", "Address": address}


def a_budget(amount: str = "50", **more) -> dict:
    return {
        "BudgetName": BUDGET_NAME,
        "BudgetLimit": {"Amount": amount, "Unit": "USD"},
        "TimeUnit": "MONTHLY",
        "BudgetType": "COST",
        **more,
    }


@dataclass(frozen=True)
class Budgets:
    client: object
    account_id: str

    def where(self, notification: dict = ACTUAL_80) -> dict:
        return {
            "AccountId": self.account_id,
            "BudgetName": BUDGET_NAME,
            "Notification": notification,
        }

    def subscribers(self, notification: dict = ACTUAL_80) -> list[dict]:
        return self.client.describe_subscribers_for_notification(**self.where(notification))["Subscribers"]

    def notifications(self) -> list[dict]:
        return self.client.describe_notifications_for_budget(AccountId=self.account_id, BudgetName=BUDGET_NAME)[
            "Notifications"
        ]


@pytest.fixture
def budgets(emulator) -> Budgets:
    """A budget whose 80% notification emails Ada, as the portal makes one."""
    client = aws_client(emulator, "budgets")
    account_id = aws_client(emulator, "sts").get_caller_identity()["Account"]
    client.create_budget(
        AccountId=account_id,
        Budget=a_budget(),
        NotificationsWithSubscribers=[{"Notification": ACTUAL_80, "Subscribers": [email("ada@school.example")]}],
    )
    return Budgets(client, account_id)


def error_code(refused) -> str:
    return refused.value.response["Error"]["Code"]


def test_an_updated_budget_has_its_new_amount_period_and_costs_and_keeps_its_notifications(budgets):
    course_term = {"Start": datetime(2026, 1, 12, tzinfo=UTC), "End": datetime(2026, 5, 8, tzinfo=UTC)}
    no_credits = {"IncludeCredit": False, "IncludeRefund": False}

    budgets.client.update_budget(
        AccountId=budgets.account_id,
        NewBudget=a_budget("80", TimeUnit="ANNUALLY", TimePeriod=course_term, CostTypes=no_credits),
    )

    budget = budgets.client.describe_budget(AccountId=budgets.account_id, BudgetName=BUDGET_NAME)["Budget"]
    assert Decimal(budget["BudgetLimit"]["Amount"]) == 80
    assert budget["TimeUnit"] == "ANNUALLY"
    period = budget["TimePeriod"]
    assert (period["Start"].date(), period["End"].date()) == (date(2026, 1, 12), date(2026, 5, 8))
    assert budget["CostTypes"]["IncludeCredit"] is False
    assert budgets.notifications() == [ACTUAL_80]
    assert budgets.subscribers() == [email("ada@school.example")]


def test_a_budget_updated_without_a_period_keeps_its_own(budgets):
    before = budgets.client.describe_budget(AccountId=budgets.account_id, BudgetName=BUDGET_NAME)
    budgets.client.update_budget(AccountId=budgets.account_id, NewBudget=a_budget("80"))
    after = budgets.client.describe_budget(AccountId=budgets.account_id, BudgetName=BUDGET_NAME)

    assert after["Budget"]["TimePeriod"] == before["Budget"]["TimePeriod"]


def test_updating_or_asking_about_a_budget_that_does_not_exist_is_not_found(budgets):
    for unknown in (
        lambda: budgets.client.update_budget(
            AccountId=budgets.account_id, NewBudget={**a_budget(), "BudgetName": "cs101-alan"}
        ),
        lambda: budgets.client.describe_subscribers_for_notification(**{**budgets.where(), "BudgetName": "cs101-alan"}),
        lambda: budgets.subscribers({**ACTUAL_80, "Threshold": 90}),  # no such notification
    ):
        with pytest.raises(ClientError) as refused:
            unknown()
        assert error_code(refused) == "NotFoundException"


def test_subscribers_are_added_and_removed(budgets):
    budgets.client.create_subscriber(**budgets.where(), Subscriber=email("ines@school.example"))
    with_both = budgets.subscribers()
    budgets.client.delete_subscriber(**budgets.where(), Subscriber=email("ada@school.example"))

    assert with_both == [email("ada@school.example"), email("ines@school.example")]
    assert budgets.subscribers() == [email("ines@school.example")]


def test_a_subscriber_already_there_is_a_duplicate_and_one_not_there_is_not_found(budgets):
    with pytest.raises(ClientError) as duplicate:
        budgets.client.create_subscriber(**budgets.where(), Subscriber=email("ada@school.example"))
    with pytest.raises(ClientError) as missing:
        budgets.client.delete_subscriber(**budgets.where(), Subscriber=email("theo@school.example"))

    assert error_code(duplicate) == "DuplicateRecordException"
    assert error_code(missing) == "NotFoundException"
    assert budgets.subscribers() == [email("ada@school.example")]


def test_deleting_the_last_subscriber_deletes_its_notification(budgets):
    budgets.client.delete_subscriber(**budgets.where(), Subscriber=email("ada@school.example"))

    assert budgets.notifications() == []


def test_a_notification_has_at_most_ten_email_subscribers(budgets):
    for n in range(9):
        budgets.client.create_subscriber(**budgets.where(), Subscriber=email(f"ta{n}@school.edu"))

    with pytest.raises(ClientError) as refused:
        budgets.client.create_subscriber(**budgets.where(), Subscriber=email("ta9@school.edu"))

    assert error_code(refused) == "CreationLimitExceededException"
    assert len(budgets.subscribers()) == 10


def test_the_portals_course_edit_reaches_a_budget_on_the_emulator(emulator, monkeypatch):
    """portal/aws/budgets.py as `budget_ensure` calls it when an instructor edits a course, against
    the emulator as `make run` starts it: the new amount and usage contact reach the budget."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.endpoint)
    session.reset()
    try:
        management = session.client("sts").get_caller_identity()["Account"]
        spec = portal_budgets.BudgetSpec(
            name=BUDGET_NAME,
            account_id="111111111111",
            amount=Decimal("50"),
            time_unit="MONTHLY",
            subscribers=["ada@school.example", "ines@school.example"],
        )
        new_contact = ["ada@school.example", "theo@school.example"]
        edited = replace(spec, amount=Decimal("80"), subscribers=new_contact)

        created = portal_budgets.ensure_budget(management, spec)
        updated = portal_budgets.ensure_budget(management, edited)
        portal_budgets.ensure_subscribers(management, BUDGET_NAME, edited.subscribers)

        assert (created, updated) == (portal_budgets.CREATED, portal_budgets.UPDATED)
        budget = portal_budgets.describe(management, BUDGET_NAME)
        assert Decimal(budget["BudgetLimit"]["Amount"]) == 80
        api = aws_client(emulator, "budgets")
        for notification in portal_budgets.NOTIFICATIONS:
            subscribers = api.describe_subscribers_for_notification(
                AccountId=management, BudgetName=BUDGET_NAME, Notification=notification
            )["Subscribers"]
            assert {s["Address"] for s in subscribers} == set(new_contact)
    finally:
        session.reset()
