"""Each account's spend to date (AccountCostTotal), summed from the daily rollups by the cost
sync's rollups_rebuild, so that the cost pages read a row per account instead of one per day."""

from __future__ import annotations

from django.db import connection, transaction
from django.db.models import Sum

from billing_app.models import AccountCostTotal, AccountDailyCost


def account_cost_totals_rebuild() -> None:
    """Sum every account's daily rollups again, in two statements whatever the number of accounts:
    a sync's window moves a day's figures between records (a recycled account's days) and AWS
    revises figures away, so the totals are recomputed whole rather than adjusted, and are right
    after any run, however the previous one ended."""
    sums = AccountDailyCost.objects.values("account_id", "course_id").annotate(
        usage_sum=Sum("usage"), credits_sum=Sum("credits")
    )
    select, params = sums.query.sql_with_params()
    quote = connection.ops.quote_name
    columns = ", ".join(quote(name) for name in ("account_id", "course_id", "usage", "credits"))
    insert = f"INSERT INTO {quote(AccountCostTotal._meta.db_table)} ({columns}) {select}"
    with transaction.atomic(), connection.cursor() as cursor:
        AccountCostTotal.objects.all().delete()
        cursor.execute(insert, params)
