"""Scripting AWS's real answers on top of moto, call by call, at botocore's events.

moto answers at once and never refuses, loses an answer or lacks an API the way AWS does; tests
use `AwsScript` to answer chosen calls as AWS really does (see
tests/accounts_app/services/test_vending_queue.py for the patterns), and `Clock` to move time on by
hand.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from datetime import timedelta

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from botocore.validate import validate_parameters
from django.utils import timezone
from moto.core.models import botocore_stubber

# --- Scripting AWS --------------------------------------------------------------------------------

PASS = "moto answers"
LOST_AFTER_AWS = "the request reaches AWS, which does the work; the answer never comes back"
NEVER_REACHED = "the connection breaks before AWS gets the request"


class Fault:
    """An error answer, as botocore parses AWS's: code, message, HTTP status and the error's
    modeled fields (e.g. ConstraintViolationException's Reason) at the top level."""

    def __init__(self, code: str, message: str, *, status: int = 400, **fields):
        self.code, self.message, self.status, self.fields = code, message, status, fields

    def response(self):
        parsed = {
            "Error": {"Code": self.code, "Message": self.message},
            "ResponseMetadata": {"HTTPStatusCode": self.status},
            **self.fields,
        }
        return AWSResponse(None, self.status, {}, None), parsed


class Edit:
    """moto does the work; its answer is changed on the way back."""

    def __init__(self, change):
        self.change = change


class AwsScript:
    """Answers of AWS, call by call, on top of moto.

    `answer(service, operation, *answers)` queues answers for the next calls of an operation; once
    they are used up, `always()`'s answer (default: PASS) is given. An answer is a dict (the parsed
    success answer, checked against the operation's output shape), a Fault, an exception to raise,
    PASS, LOST_AFTER_AWS, NEVER_REACHED, an Edit, or a function of the call's parameters returning
    one of these. `calls` counts the API calls the portal made, by operation (every call, scripted
    or not), and `log` lists them in order; `sent` counts the requests of scripted operations that
    left the client.
    """

    def __init__(self, aws_session):
        self._session = aws_session
        self.calls: Counter = Counter()
        self.log: list[str] = []  # every API call, in order
        self.sent: Counter = Counter()
        self.params: dict[str, list[dict]] = defaultdict(list)
        self._answers: dict[str, deque] = defaultdict(deque)
        self._always: dict[str, object] = {}
        self._pending: dict[str, object] = {}
        self._scripted: set[str] = set()
        aws_session.add_hook("before-parameter-build", self._record)

    def answer(self, service: str, operation: str, *answers) -> None:
        self._script(service, operation)
        self._answers[operation].extend(answers)

    def always(self, service: str, operation: str, answer) -> None:
        self._script(service, operation)
        self._always[operation] = answer

    def _script(self, service: str, operation: str) -> None:
        if operation in self._scripted:
            return
        self._scripted.add(operation)
        self._session.add_hook(f"before-call.{service}.{operation}", self._before_call)
        self._session.add_hook(f"before-send.{service}.{operation}", self._before_send)
        self._session.add_hook(f"after-call.{service}.{operation}", self._after_call)

    def _record(self, params, model, **kwargs):
        self.calls[model.name] += 1
        self.log.append(model.name)
        self.params[model.name].append(dict(params))

    def _before_call(self, model, **kwargs):
        name = model.name
        answer = self._answers[name].popleft() if self._answers[name] else self._always.get(name, PASS)
        if callable(answer) and not isinstance(answer, (Edit, Fault)):
            answer = answer(self.params[name][-1])
        if answer is PASS:
            return None
        if answer is LOST_AFTER_AWS or answer is NEVER_REACHED or isinstance(answer, Edit):
            self._pending[name] = answer
            return None
        if isinstance(answer, Fault):
            return answer.response()
        if isinstance(answer, BaseException):
            raise answer
        if model.output_shape is not None:  # an operation without one answers nothing but {}
            validate_parameters(answer, model.output_shape)  # only what AWS could really answer
        return AWSResponse(None, 200, {}, None), {
            **answer,
            "ResponseMetadata": {"HTTPStatusCode": 200},
        }

    def _before_send(self, request, event_name, **kwargs):
        name = event_name.rsplit(".", 1)[-1]
        self.sent[name] += 1
        pending = self._pending.get(name)
        if pending is LOST_AFTER_AWS:
            del self._pending[name]
            botocore_stubber(event_name=event_name, request=request)  # AWS does the work…
            raise ReadTimeoutError(endpoint_url=request.url)  # …and the answer is lost
        if pending is NEVER_REACHED:
            del self._pending[name]
            raise ReadTimeoutError(endpoint_url=request.url)

    def _after_call(self, model, parsed, **kwargs):
        pending = self._pending.pop(model.name, None)
        if isinstance(pending, Edit):
            pending.change(parsed)


class Clock:
    """timezone.now(), frozen, moved on by hand."""

    def __init__(self):
        self.now = timezone.now().replace(microsecond=0)

    def __call__(self):
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta
