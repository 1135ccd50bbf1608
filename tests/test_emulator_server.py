"""The local emulator's server (portal/aws/emulator_server.py): moto, with AWS's pace for new
accounts and Account Management's primary-email API."""

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

from portal.aws.emulator_server import PACE_PATH, AccountCreationPace, PrimaryEmailUpdates

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
        "127.0.0.1", 0, PrimaryEmailUpdates(pace, announce=emails.append), threaded=True
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
    return requests.post(
        f"{emulator.endpoint}{PACE_PATH}", json={"creation_seconds": seconds}, timeout=10
    )


def create(organizations, name: str) -> dict:
    return organizations.create_account(Email=f"{name}@school.example", AccountName=name)[
        "CreateAccountStatus"
    ]


def listed_names(organizations) -> set[str]:
    return {account["Name"] for account in organizations.list_accounts()["Accounts"]}


def test_without_a_pace_accounts_are_created_at_once_as_moto_does(organizations):
    status = create(organizations, "ada")

    assert status["State"] == "SUCCEEDED"
    assert status["AccountId"]
    assert "ada" in listed_names(organizations)


def test_a_paced_account_stays_in_progress_and_unlisted_until_its_time(
    emulator, clock, organizations
):
    set_pace(emulator, CREATION_SECONDS).raise_for_status()

    status = create(organizations, "ada")
    clock.now += CREATION_SECONDS - 1
    described = organizations.describe_create_account_status(CreateAccountRequestId=status["Id"])

    assert status["State"] == "IN_PROGRESS" and "AccountId" not in status
    assert described["CreateAccountStatus"]["State"] == "IN_PROGRESS"
    assert "AccountId" not in described["CreateAccountStatus"]
    assert "ada" not in listed_names(organizations)
    running = organizations.list_create_account_status(States=["IN_PROGRESS"])[
        "CreateAccountStatuses"
    ]
    assert [s["AccountName"] for s in running] == ["ada"]
    succeeded = organizations.list_create_account_status(States=["SUCCEEDED"])[
        "CreateAccountStatuses"
    ]
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
    assert requests.get(f"{emulator.endpoint}{PACE_PATH}", timeout=10).json() == {
        "creation_seconds": 0.0
    }


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

    status = account.start_primary_email_update(
        AccountId=account_id, PrimaryEmail="ada@home.example"
    )["Status"]
    accepted = account.accept_primary_email_update(
        AccountId=account_id, PrimaryEmail="ada@home.example", Otp=code_in(emails[-1])
    )["Status"]

    assert (status, accepted) == ("PENDING", "ACCEPTED")
    assert emails[-1].startswith(
        f"AWS emails ada@home.example: the code to make it the root email of account {account_id}"
    )
    assert account.get_primary_email(AccountId=account_id)["PrimaryEmail"] == "ada@home.example"
    assert (
        organizations.describe_account(AccountId=account_id)["Account"]["Email"]
        == "ada@home.example"
    )


def test_a_wrong_code_is_refused_and_the_root_email_stays(organizations, emulator, emails):
    account = aws_client(emulator, "account")
    account_id = create(organizations, "ada")["AccountId"]
    account.start_primary_email_update(AccountId=account_id, PrimaryEmail="ada@home.example")
    wrong = f"{(int(code_in(emails[-1])) + 1) % 1_000_000:06d}"

    with pytest.raises(ClientError) as refused:
        account.accept_primary_email_update(
            AccountId=account_id, PrimaryEmail="ada@home.example", Otp=wrong
        )

    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert account.get_primary_email(AccountId=account_id)["PrimaryEmail"] == "ada@school.example"


def test_accepting_without_a_pending_update_or_for_an_unknown_account_is_not_found(
    organizations, emulator
):
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
