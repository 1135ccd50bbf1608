"""The loads of one account's row in the queries some code makes.

A load is a SELECT of every column of the account's table (what makes a model instance) for
this account: by its id, or by the id of its handover when the handover is read with its
account (select_related). Reading one field (the gate's look at the state, the
compare-and-swap of `lifecycle.transition`) is not a load: that is how the services see a
change made meanwhile.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts_app.models import Handover, MemberAccount

ACCOUNT_TABLE = MemberAccount._meta.db_table
ACCOUNT_COLUMNS = [f'"{ACCOUNT_TABLE}"."{field.column}"' for field in MemberAccount._meta.concrete_fields]


@contextmanager
def account_row_loads(account: MemberAccount, *, handover: Handover | None = None) -> Iterator[list[str]]:
    """The SQL of each load of `account`'s row (through `handover` too, if given) inside the
    block; the list is filled as the block ends."""
    loads: list[str] = []
    keys = [_by_id(ACCOUNT_TABLE, account.pk)]
    if handover is not None:
        keys.append(_by_id(Handover._meta.db_table, handover.pk))
    with CaptureQueriesContext(connection) as captured:
        yield loads
    loads.extend(query["sql"] for query in captured.captured_queries if _loads_row(query["sql"], keys))


def _by_id(table: str, pk: int) -> re.Pattern:
    return re.compile(rf'"{table}"\."id" = {pk}\b')


def _loads_row(sql: str, keys: list[re.Pattern]) -> bool:
    selected, _, rest = sql.partition(" FROM ")
    if not selected.startswith("SELECT") or not all(column in selected for column in ACCOUNT_COLUMNS):
        return False
    return any(key.search(rest) for key in keys)
