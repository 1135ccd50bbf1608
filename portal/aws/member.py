"""One region of one member account, reached through the account's organization role: the calls a
module makes there, with AWS's errors turned into the portal's (errors.py).

Cleanup (cleanup.py), the freeze's stop and restore (spending.py) and the usage meter (meter.py)
work through it. `counter`, when given, counts the requests made, one per page of a listing, by
operation: the meter keeps within a number of calls per account and says how many it made
(answered requests; a refused one ends the reading of its region).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from portal.aws.errors import NotFound, classify
from portal.aws.session import client


@dataclass(frozen=True)
class Place:
    """One region of one member account."""

    account_id: str
    region: str
    counter: Counter | None = field(default=None, compare=False)

    def call(self, service: str, operation: str, /, **params: Any) -> dict:
        api = client(service, account_id=self.account_id, region=self.region)
        try:
            answer = getattr(api, operation)(**params)
        except Exception as error:
            raise classify(error, operation=operation) from error
        self._count(api, operation)
        return answer

    def found(self, service: str, operation: str, /, **params: Any) -> dict | None:
        """`call`, or None when AWS says the thing is not there: gone since it was listed."""
        try:
            return self.call(service, operation, **params)
        except NotFound:
            return None

    def pages(self, service: str, operation: str, /, **params: Any) -> Iterator[dict]:
        api = client(service, account_id=self.account_id, region=self.region)
        paginator = api.get_paginator(operation)
        try:
            for page in paginator.paginate(**params):
                self._count(api, operation)
                yield page
        except Exception as error:
            raise classify(error, operation=operation) from error

    def items(self, service: str, operation: str, key: str, /, **params: Any) -> Iterator[Any]:
        """The entries under `key` on every page: dicts, or plain names for some listings (ListTables)."""
        for page in self.pages(service, operation, **params):
            yield from page.get(key, [])

    def _count(self, api: Any, operation: str) -> None:
        if self.counter is not None:
            self.counter[api.meta.method_to_api_mapping.get(operation, operation)] += 1
