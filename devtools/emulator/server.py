"""The local AWS emulator: moto's server, with what moto lacks put back.

- AWS's pace for new accounts. moto finishes a CreateAccount in its first answer; AWS takes
  minutes: the request stays IN_PROGRESS, without an account id, and the new account is not
  listed until it is done. This server puts that wait back, for as long as `creation_seconds`
  says (0, moto's pace, unless told otherwise), so that the demo shows accounts being created
  and, while AWS's creations in progress are all taken, others waiting in the portal's queue.
  The demo sets the pace through `emulator.set_creation_seconds`.
- Account Management's primary-email API, with which a student takes over their account's root
  email. The one-time code AWS would email to the new address is printed instead, as the
  portal's own emails are printed in development.
- AWS Budgets' UpdateBudget and the subscribers of a budget's notifications, with which a
  course's edit (its budget, dates, usage contact) reaches its students' budgets.
- AWS managed policies under a path, such as `job-function/ViewOnlyAccess` (the TAs'
  permission set): moto's Identity Center refuses them (`honour_managed_policy_paths`).
- IAM's ListServiceSpecificCredentials, which deleting a user calls: moto has no such
  credentials, so no user has any (`list_no_service_specific_credentials`).
- The listings cleanup reads that moto does not serve (`answer_listings_moto_lacks`).

Never used against real AWS, and never installed in production: moto comes with the development
requirements only.

    python -m devtools.emulator.server -H 127.0.0.1 -p 5055
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable

from moto.budgets.exceptions import BudgetMissingLimit, DuplicateRecordException, NotFoundException
from moto.budgets.models import Budget, Notification, budgets_backends
from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.core.utils import unix_time
from moto.elasticache.responses import ElastiCacheResponse
from moto.iam.aws_managed_policies import aws_managed_policies_data
from moto.iam.models import get_account_id_from
from moto.iam.responses import IamResponse
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.organizations.exceptions import AccountNotFoundException
from moto.organizations.models import FakeAccount, organizations_backends
from moto.sagemaker.responses import SageMakerResponse
from moto.ssoadmin.exceptions import ResourceNotFoundException
from moto.ssoadmin.models import ManagedPolicy, SSOAdminBackend
from werkzeug.serving import run_simple

from portal.aws.emulator import PACE_PATH

ORGANIZATIONS_TARGET = "AWSOrganizationsV20161128."
LISTS_OF_ACCOUNTS = frozenset({"ListAccounts", "ListAccountsForParent"})
PRIMARY_EMAIL_PATHS = frozenset({"/getPrimaryEmail", "/startPrimaryEmailUpdate", "/acceptPrimaryEmailUpdate"})
BUDGETS_TARGET = "AWSBudgetServiceGateway."
EMAIL_SUBSCRIBERS_PER_NOTIFICATION = 10  # AWS's limit

type StartResponse = Callable[..., object]


class AccountCreationPace:
    """WSGI middleware in front of moto that keeps each new account "in progress" for
    `creation_seconds` after its CreateAccount."""

    def __init__(self, app, *, creation_seconds: float = 0.0, clock: Callable[[], float] = time.monotonic):
        self.app = app
        self.creation_seconds = creation_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._ready_at: dict[str, float] = {}  # CreateAccount request id → when AWS would be done
        self._account_ready_at: dict[str, float] = {}  # the same, by the new account's id

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == PACE_PATH:
            return self._pace_setting(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(ORGANIZATIONS_TARGET):
            return self.app(environ, start_response)
        operation = target.removeprefix(ORGANIZATIONS_TARGET)
        request = json.loads(_read_body(environ) or b"{}")
        if operation == "DescribeAccount" and request.get("AccountId") in self._unfinished_accounts():
            return _error(
                start_response,
                "400 Bad Request",
                "AccountNotFoundException",
                "You specified an account that doesn't exist.",
            )
        if operation == "ListCreateAccountStatus":
            # moto filters by its own state, SUCCEEDED at once: ask for all and filter here.
            _replace_body(environ, {k: v for k, v in request.items() if k != "States"})
        status, headers, body = _answer(self.app, environ)
        if status.startswith("200 "):
            body = json.dumps(self._at_pace(operation, request, json.loads(body))).encode()
            headers = [(name, value) for name, value in headers if name.lower() != "content-length"]
            headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [body]

    def _at_pace(self, operation: str, request: dict, answer: dict) -> dict:
        """moto's answer to an Organizations call as AWS would give it now."""
        if operation == "CreateAccount":
            self._started(answer["CreateAccountStatus"])
            return {**answer, "CreateAccountStatus": self._as_now(answer["CreateAccountStatus"])}
        if operation == "DescribeCreateAccountStatus":
            return {**answer, "CreateAccountStatus": self._as_now(answer["CreateAccountStatus"])}
        if operation == "ListCreateAccountStatus":
            wanted = request.get("States") or ["IN_PROGRESS", "SUCCEEDED", "FAILED"]
            statuses = [self._as_now(status) for status in answer.get("CreateAccountStatuses", [])]
            return {
                **answer,
                "CreateAccountStatuses": [s for s in statuses if s["State"] in wanted],
            }
        if operation in LISTS_OF_ACCOUNTS:
            unfinished = self._unfinished_accounts()
            return {
                **answer,
                "Accounts": [a for a in answer["Accounts"] if a["Id"] not in unfinished],
            }
        return answer

    def _started(self, status: dict) -> None:
        if self.creation_seconds <= 0:
            return
        ready_at = self.clock() + self.creation_seconds
        with self._lock:
            self._ready_at[status["Id"]] = ready_at
            if status.get("AccountId"):
                self._account_ready_at[status["AccountId"]] = ready_at

    def _as_now(self, status: dict) -> dict:
        with self._lock:
            ready_at = self._ready_at.get(status.get("Id", ""))
        if ready_at is None or self.clock() >= ready_at:
            return status
        return in_progress(status)

    def _unfinished_accounts(self) -> set[str]:
        now = self.clock()
        with self._lock:
            return {account for account, ready_at in self._account_ready_at.items() if now < ready_at}

    def _pace_setting(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        """GET answers the creation time; POST {"creation_seconds": N} sets it for the
        creations that follow."""
        if environ["REQUEST_METHOD"] == "POST":
            try:
                seconds = float(json.loads(_read_body(environ))["creation_seconds"])
            except (ValueError, KeyError, TypeError):
                start_response("400 Bad Request", [("Content-Type", "text/plain")])
                return [b'Send {"creation_seconds": <a number>}.']
            self.creation_seconds = max(seconds, 0.0)
        body = json.dumps({"creation_seconds": self.creation_seconds}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def in_progress(status: dict) -> dict:
    """A CreateAccountStatus as AWS shows it before the account exists."""
    unfinished = {k: v for k, v in status.items() if k not in {"AccountId", "CompletedTimestamp"}}
    return {**unfinished, "State": "IN_PROGRESS"}


class PrimaryEmailUpdates:
    """WSGI middleware in front of moto that answers AWS Account Management's primary-email API
    for the organization's member accounts, as AWS does: StartPrimaryEmailUpdate sends a new
    one-time code to the address (printed here), AcceptPrimaryEmailUpdate with that code makes
    the address the account's root email, which Organizations then shows too."""

    def __init__(self, app, *, announce: Callable[[str], None] = lambda line: print(line, flush=True)):
        self.app = app
        self.announce = announce
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[str, str]] = {}  # account id → (new address, its code)

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path not in PRIMARY_EMAIL_PATHS or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        request = json.loads(_read_body(environ) or b"{}")
        try:
            account = _member_account(request.get("AccountId", ""))
        except (KeyError, AccountNotFoundException):
            return _error(
                start_response,
                "404 Not Found",
                "ResourceNotFoundException",
                "The account was not found.",
            )
        if path == "/getPrimaryEmail":
            return _reply(start_response, "200 OK", {"PrimaryEmail": account.email})
        if path == "/startPrimaryEmailUpdate":
            return self._start(start_response, account, request.get("PrimaryEmail", ""))
        return self._accept(start_response, account, request.get("PrimaryEmail", ""), request.get("Otp", ""))

    def _start(self, start_response: StartResponse, account: FakeAccount, email: str) -> Iterable[bytes]:
        if "@" not in email:
            return _error(
                start_response,
                "400 Bad Request",
                "ValidationException",
                "PrimaryEmail is not a valid email address.",
            )
        code = f"{secrets.randbelow(1_000_000):06d}"
        with self._lock:
            self._pending[account.id] = (email, code)
        self.announce(f"AWS emails {email}: the code to make it the root email of account {account.id} is {code}")
        return _reply(start_response, "200 OK", {"Status": "PENDING"})

    def _accept(self, start_response: StartResponse, account: FakeAccount, email: str, code: str) -> Iterable[bytes]:
        with self._lock:
            pending = self._pending.get(account.id)
            if pending is None:
                return _error(
                    start_response,
                    "404 Not Found",
                    "ResourceNotFoundException",
                    "There is no pending primary email update for this account.",
                )
            if pending != (email, code):
                return _error(
                    start_response,
                    "400 Bad Request",
                    "ValidationException",
                    "The one-time password is not valid.",
                )
            del self._pending[account.id]
        account.email = email
        return _reply(start_response, "200 OK", {"Status": "ACCEPTED"})


class BudgetUpdates:
    """WSGI middleware in front of moto that answers the AWS Budgets calls moto lacks and the
    portal makes when a course changes: UpdateBudget, and DescribeSubscribersForNotification,
    CreateSubscriber and DeleteSubscriber. They act on moto's own budgets, by AWS's rules: an
    updated budget keeps its notifications, a notification has at most ten email subscribers,
    and deleting its last subscriber deletes the notification."""

    def __init__(self, app):
        self.app = app
        self._lock = threading.Lock()
        self._operations: dict[str, Callable[[Budget, dict], dict]] = {
            "UpdateBudget": self._update_budget,
            "DescribeSubscribersForNotification": self._describe_subscribers,
            "CreateSubscriber": self._create_subscriber,
            "DeleteSubscriber": self._delete_subscriber,
        }

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        operation = self._operations.get(target.removeprefix(BUDGETS_TARGET))
        if not target.startswith(BUDGETS_TARGET) or operation is None:
            return self.app(environ, start_response)
        request = json.loads(_read_body(environ) or b"{}")
        try:
            with self._lock:
                answer = operation(_budget_of(_caller_account(environ), request), request)
        except JsonRESTError as error:
            return _error(start_response, "400 Bad Request", error.error_type, error.message)
        return _reply(start_response, "200 OK", answer)

    def _update_budget(self, budget: Budget, request: dict) -> dict:
        """All but the name is the new budget's; without a period, the budget keeps its own."""
        new = dict(request["NewBudget"])
        if "BudgetLimit" not in new and "PlannedBudgetLimits" not in new:
            raise BudgetMissingLimit()
        new.setdefault("TimePeriod", budget.budget["TimePeriod"])
        budget.budget = {**new, "LastUpdatedTime": unix_time()}
        return {}

    def _describe_subscribers(self, budget: Budget, request: dict) -> dict:
        return {"Subscribers": list(_notification_of(budget, request["Notification"]).subscribers)}

    def _create_subscriber(self, budget: Budget, request: dict) -> dict:
        notification = _notification_of(budget, request["Notification"])
        subscriber = request["Subscriber"]
        if any(_same_subscriber(s, subscriber) for s in notification.subscribers):
            raise DuplicateRecordException("subscriber", subscriber["Address"])
        emails = [s for s in notification.subscribers if s["SubscriptionType"] == "EMAIL"]
        limit = EMAIL_SUBSCRIBERS_PER_NOTIFICATION
        if subscriber["SubscriptionType"] == "EMAIL" and len(emails) >= limit:
            raise JsonRESTError(
                "CreationLimitExceededException",
                f"A notification can have at most {limit} email subscribers.",
            )
        notification.subscribers = [*notification.subscribers, subscriber]
        return {}

    def _delete_subscriber(self, budget: Budget, request: dict) -> dict:
        notification = _notification_of(budget, request["Notification"])
        gone = request["Subscriber"]
        remaining = [s for s in notification.subscribers if not _same_subscriber(s, gone)]
        if len(remaining) == len(notification.subscribers):
            raise NotFoundException("Unable to delete subscriber - the subscriber doesn't exist.")
        notification.subscribers = remaining
        if not remaining:
            budget.notifications.remove(notification)
        return {}


def _caller_account(environ: dict) -> str:
    """The account moto answers a request as, by moto's own rule: MOTO_ACCOUNT_ID, else the
    x-moto-account-id header, else the account of the access key that signed the request."""
    if "MOTO_ACCOUNT_ID" in os.environ:
        return os.environ["MOTO_ACCOUNT_ID"]
    if "HTTP_X_MOTO_ACCOUNT_ID" in environ:
        return environ["HTTP_X_MOTO_ACCOUNT_ID"]
    signed_by = re.search(r"Credential=([^/,\s]+)/", environ.get("HTTP_AUTHORIZATION", ""))
    return get_account_id_from(signed_by[1] if signed_by else "AKIAEXAMPLE")


def _budget_of(caller: str, request: dict) -> Budget:
    """moto's budget the request names; NotFoundException as AWS answers if there is none."""
    name = request.get("BudgetName") or request.get("NewBudget", {}).get("BudgetName", "")
    budgets = budgets_backends[caller]["aws"].budgets[request.get("AccountId", "")]
    if name not in budgets:
        raise NotFoundException(f"Unable to get budget: {name} - the budget doesn't exist.")
    return budgets[name]


def _notification_of(budget: Budget, wanted: dict) -> Notification:
    """The budget's notification AWS would take `wanted` to name (a threshold of 80 is 80.0)."""
    for notification in budget.notifications:
        if _notification_key(notification.details) == _notification_key(wanted):
            return notification
    raise NotFoundException("Unable to find notification - the notification doesn't exist.")


def _notification_key(notification: dict) -> tuple[str, str, float, str]:
    return (
        notification.get("NotificationType", ""),
        notification.get("ComparisonOperator", ""),
        float(notification.get("Threshold", 0)),
        notification.get("ThresholdType", "PERCENTAGE"),  # AWS's default
    )


def _same_subscriber(one: dict, other: dict) -> bool:
    return (one["SubscriptionType"], one["Address"]) == (
        other["SubscriptionType"],
        other["Address"],
    )


def _member_account(account_id: str) -> FakeAccount:
    """moto's record of a member account of an organization; KeyError or AccountNotFoundException."""
    management_account, partition = organizations_backends.master_accounts[account_id]
    return organizations_backends[management_account][partition].get_account_by_id(account_id)


def _read_body(environ: dict) -> bytes:
    """The request body, read once and put back for the application behind."""
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _replace_body(environ: dict, payload: dict) -> None:
    body = json.dumps(payload).encode()
    environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))


def _answer(app, environ: dict) -> tuple[str, list[tuple[str, str]], bytes]:
    started: list = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info=None) -> None:
        started[:] = [status, headers]

    chunks = app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        getattr(chunks, "close", lambda: None)()
    return started[0], list(started[1]), body


def _reply(start_response: StartResponse, status: str, payload: dict, *, error_type: str = "") -> Iterable[bytes]:
    body = json.dumps(payload).encode()
    headers = [
        ("Content-Type", "application/x-amz-json-1.1"),
        ("x-amzn-RequestId", str(uuid.uuid4())),
        ("Content-Length", str(len(body))),
    ]
    if error_type:
        headers.append(("x-amzn-ErrorType", error_type))
    start_response(status, headers)
    return [body]


def _error(start_response: StartResponse, status: str, code: str, message: str) -> Iterable[bytes]:
    return _reply(start_response, status, {"__type": code, "message": message}, error_type=code)


def honour_managed_policy_paths() -> None:
    """Let moto's Identity Center attach AWS managed policies that live under a path.

    moto checks a managed policy ARN against the policy's path read from a "path" key, which its
    own copy of AWS's policies spells "Path": every policy under a path, such as
    arn:aws:iam::aws:policy/job-function/ViewOnlyAccess, is refused as missing, where AWS attaches
    it. Called by main() and by the tests, which run moto in process."""

    def find_managed_policy(backend: SSOAdminBackend, managed_policy_arn: str) -> ManagedPolicy:
        if backend.aws_managed_policies is None:
            backend.aws_managed_policies = json.loads(aws_managed_policies_data)
        policy_name = managed_policy_arn.rsplit("/", 1)[-1]
        policy = backend.aws_managed_policies.get(policy_name)
        if policy is not None:
            path = policy.get("Path", "/")
            if managed_policy_arn == f"arn:{backend.partition}:iam::aws:policy{path}{policy_name}":
                return ManagedPolicy(managed_policy_arn, policy_name)
        raise ResourceNotFoundException(f"Policy does not exist with ARN: {managed_policy_arn}")

    SSOAdminBackend._find_managed_policy = find_managed_policy


def list_no_service_specific_credentials() -> None:
    """Answer IAM's ListServiceSpecificCredentials as AWS does for a user who has none (moto does
    not implement it, nor any way to make one). Called by main() and by the tests."""

    def list_service_specific_credentials(response: IamResponse) -> ActionResult:
        response.backend.get_user(response._get_param("UserName"))  # NoSuchEntity, as AWS says
        return ActionResult({"ServiceSpecificCredentials": []})

    IamResponse.list_service_specific_credentials = list_service_specific_credentials


# Listings cleanup reads (portal/aws/cleanup.py) and moto does not serve, with the key of their
# answer. Nothing can make these things in moto, so there are none: AWS's answer in an account
# without any.
LISTINGS_MOTO_LACKS = {
    SageMakerResponse: {
        "list_apps": "Apps",
        "list_spaces": "Spaces",
        "list_user_profiles": "UserProfiles",
    },
    ElastiCacheResponse: {"describe_serverless_caches": "ServerlessCaches"},
}


def answer_listings_moto_lacks() -> None:
    """Answer the listings of LISTINGS_MOTO_LACKS with nothing, where moto would fail the call
    (NotImplementedError, a 500 from its server). A moto that serves one keeps its own answer.
    Called by main() and by the tests, which script these services on top where they need them."""
    for response_class, listings in LISTINGS_MOTO_LACKS.items():
        for operation, key in listings.items():
            if not hasattr(response_class, operation):
                setattr(response_class, operation, _empty_listing(key))


def _empty_listing(key: str) -> Callable[[object], ActionResult]:
    def listing(response: object) -> ActionResult:
        return ActionResult({key: []})

    return listing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5055)
    arguments = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(arguments.port))  # moto writes it into the URLs it returns
    honour_managed_policy_paths()
    list_no_service_specific_credentials()
    answer_listings_moto_lacks()
    moto = DomainDispatcherApplication(create_backend_app)
    run_simple(
        arguments.host,
        arguments.port,
        BudgetUpdates(PrimaryEmailUpdates(AccountCreationPace(moto))),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
