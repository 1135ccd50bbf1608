"""AWS Account Management's primary-email API and the refusals of RemoveAccountFromOrganization,
played at botocore's `before-call` event on top of moto (which lacks the first and never refuses
the second), as AWS really answers them."""

from __future__ import annotations

import json
from collections import Counter, deque

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

from tests.support.aws_script import Fault


def _answer(body: dict):
    return AWSResponse(None, 200, {}, None), {**body, "ResponseMetadata": {"HTTPStatusCode": 200}}


class AccountApi:
    """AWS Account Management's primary-email API, and AWS's refusals of
    RemoveAccountFromOrganization, on top of moto.

    Each StartPrimaryEmailUpdate sends a new one-time code (`code()`); AcceptPrimaryEmailUpdate
    with it makes the address the account's root email, which GetPrimaryEmail then returns. Queue
    reasons in `refusals` for the next RemoveAccountFromOrganization calls; once they are used up
    moto really removes the account. `calls` counts every API call by operation.
    """

    def __init__(self, aws):
        self._aws = aws
        self.calls: Counter = Counter()
        self.params: dict[str, list[dict]] = {}
        self.root_email: dict[str, str] = {}  # account id → the root email AWS has
        self.pending: dict[str, tuple[str, str]] = {}  # account id → (address, code)
        self.refusals: deque[str] = deque()
        self.lose_accept_answer = ""  # "timeout" or "refused on the retry", for the next Accept
        self.throttled: set[str] = set()  # operations AWS answers with ThrottlingException
        self.start_refusal: Fault | None = None  # AWS's answer to the next StartPrimaryEmailUpdate
        self._codes = iter(range(310_001, 999_999))
        # AWS's API reference gives the code as six letters and digits ([a-zA-Z0-9]{6}); set to
        # send codes with letters in them, as AWS may.
        self.codes_with_letters = False
        aws.add_hook("before-parameter-build", self._record)
        aws.add_hook("before-call.account.GetPrimaryEmail", self._get_primary_email)
        aws.add_hook("before-call.account.StartPrimaryEmailUpdate", self._start_update)
        aws.add_hook("before-call.account.AcceptPrimaryEmailUpdate", self._accept_update)
        aws.add_hook("before-call.organizations.RemoveAccountFromOrganization", self._remove)

    def code(self, account_id: str) -> str:
        """The code in the latest email AWS sent for the account."""
        return self.pending[account_id][1]

    def primary_email(self, account_id: str) -> str:
        if account_id not in self.root_email:
            described = self._aws.client("organizations").describe_account(AccountId=account_id)
            self.root_email[account_id] = described["Account"]["Email"]
        return self.root_email[account_id]

    def _throttled(self, operation: str):
        if operation in self.throttled:
            return Fault("ThrottlingException", "Rate exceeded").response()
        return None

    def _record(self, params, model, **kwargs):
        self.calls[model.name] += 1
        self.params.setdefault(model.name, []).append(dict(params))

    def _get_primary_email(self, params, **kwargs):
        body = json.loads(params["body"])
        return _answer({"PrimaryEmail": self.primary_email(body["AccountId"])})

    def _start_update(self, params, **kwargs):
        if throttled := self._throttled("StartPrimaryEmailUpdate"):
            return throttled
        if self.start_refusal is not None:
            refusal, self.start_refusal = self.start_refusal, None
            return refusal.response()
        body = json.loads(params["body"])
        code = str(next(self._codes))
        if self.codes_with_letters:
            code = f"K{code[1:3]}Q{code[3:5]}"
        self.pending[body["AccountId"]] = (body["PrimaryEmail"], code)
        return _answer({"Status": "PENDING"})

    def _accept_update(self, params, **kwargs):
        if throttled := self._throttled("AcceptPrimaryEmailUpdate"):
            return throttled
        body = json.loads(params["body"])
        account_id = body["AccountId"]
        if account_id not in self.pending:
            return Fault(
                "ResourceNotFoundException",
                "There is no pending primary email update for this account.",
            ).response()
        email, code = self.pending[account_id]
        if body["PrimaryEmail"] != email or body["Otp"] != code:
            return Fault("ValidationException", "The one-time password is not valid.").response()
        self.root_email[account_id] = email
        del self.pending[account_id]
        lost, self.lose_accept_answer = self.lose_accept_answer, ""
        if lost == "timeout":
            raise ReadTimeoutError(endpoint_url="https://account.us-east-1.amazonaws.com/")
        if lost == "refused on the retry":
            return Fault(
                "ResourceNotFoundException",
                "There is no pending primary email update for this account.",
            ).response()
        return _answer({"Status": "ACCEPTED"})

    def _remove(self, **kwargs):
        if not self.refusals:
            return None  # moto removes the account
        reason = self.refusals.popleft()
        # AWS puts the reason at the top level of the error answer, beside "Error".
        message = "You cannot remove this account from the organization."
        return Fault("ConstraintViolationException", message, Reason=reason, Message=message).response()
