"""What can go wrong when talking to AWS, sorted by what the caller should do about it.

- TransientAwsError: try again later (throttling, 5xx, timeouts, concurrent modification).
- PermanentAwsError: a person must act (access denied, validation, constraint violations);
  `reason` carries AWS's ConstraintViolationException reason where there is one.
- UnknownOutcome: a call that is not safe to repeat was sent, and no answer came back. AWS may
  or may not have done the work; the caller must look before trying again.
"""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ParamValidationError,
    ReadTimeoutError,
)

TRANSIENT_CODES = frozenset(
    {
        "TooManyRequestsException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "ConcurrentModificationException",
        "ServiceException",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalServerException",
        "InternalServerError",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
# Constraint reasons that clear up by themselves when the caller waits.
TRANSIENT_REASONS = frozenset(
    {"ACCOUNT_CREATION_RATE_LIMIT_EXCEEDED", "CLOSE_ACCOUNT_QUOTA_EXCEEDED", "CLOSE_ACCOUNT_REQUESTS_LIMIT_EXCEEDED"}
)


# What an account AWS created minutes ago answers while it is still being set up: its role cannot be
# assumed yet (AccessDenied), STS is not yet enabled in the region (RegionDisabledException), and
# Identity Center refuses or fails assignments to it (ConflictException, AccessDeniedException, a
# FAILED assignment status). From an older account these are a person's to fix.
NEW_ACCOUNT_SETTLING_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "RegionDisabledException", "ConflictException", "AssignmentFailed"}
)


class AwsError(Exception):
    permanent = True

    def __init__(self, message: str, *, code: str = "", reason: str = "", operation: str = ""):
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason
        self.operation = operation

    def __str__(self) -> str:
        detail = f" ({self.reason})" if self.reason else ""
        return f"{self.operation or 'AWS'}: {self.code or 'error'}{detail}: {self.message}"


class TransientAwsError(AwsError):
    permanent = False


class PermanentAwsError(AwsError):
    permanent = True


class UnknownOutcome(TransientAwsError):
    """The request may have been carried out; look it up before repeating it."""


class NotFound(PermanentAwsError):
    """The thing asked about does not exist."""


def classify(error: Exception, *, operation: str = "", safe_to_repeat: bool = True) -> AwsError:
    """Turn a botocore exception into one of ours."""
    if isinstance(error, AwsError):
        return error
    if isinstance(error, ClientError):
        return _classify_client_error(error, operation, safe_to_repeat)
    if isinstance(error, ParamValidationError):
        # Refused by botocore before sending: nothing to look up, and the same request fails again.
        return PermanentAwsError(str(error), code="ParamValidationError", operation=operation)
    if isinstance(error, (ConnectTimeoutError, EndpointConnectionError)):
        # Nothing reached AWS: always safe to try again.
        return TransientAwsError(str(error), code=type(error).__name__, operation=operation)
    if isinstance(error, (ReadTimeoutError, ConnectionClosedError, BotoCoreError)):
        kind = TransientAwsError if safe_to_repeat else UnknownOutcome
        return kind(str(error), code=type(error).__name__, operation=operation)
    raise error


def while_account_is_new(error: AwsError) -> AwsError:
    """`error` as it should be read from an account created within the grace window: the refusals
    of an account AWS is still setting up are waits, not failures."""
    if error.permanent and error.code in NEW_ACCOUNT_SETTLING_CODES:
        return TransientAwsError(
            f"The new account is still being set up by AWS: {error.message}",
            code=error.code,
            reason=error.reason,
            operation=error.operation,
        )
    return error


def _classify_client_error(error: ClientError, operation: str, safe_to_repeat: bool) -> AwsError:
    details = error.response.get("Error", {})
    code = details.get("Code", "")
    message = details.get("Message", str(error))
    reason = error.response.get("Reason", "") or details.get("Reason", "")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    operation = operation or error.operation_name
    if code in TRANSIENT_CODES or reason in TRANSIENT_REASONS or status >= 500:
        # A 5xx may come after the work was done: for a call that is not safe to repeat,
        # the outcome is unknown.
        kind = UnknownOutcome if status >= 500 and not safe_to_repeat else TransientAwsError
        return kind(message, code=code, reason=reason, operation=operation)
    if code.endswith(("NotFoundException", "NotFound")) or code in {"NoSuchEntity", "ResourceNotFoundException"}:
        return NotFound(message, code=code, reason=reason, operation=operation)
    return PermanentAwsError(message, code=code, reason=reason, operation=operation)
