"""The sync_costs command (billing_app/management/commands/sync_costs.py), against moto's Cost
Explorer, seeded with the answers AWS would give (tests/support/cost_explorer.py).
"""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from botocore.stub import Stubber
from django.core.management import CommandError, call_command
from django.utils import timezone

from billing_app.models import AccountDailyCost, CostRecord, CostSync
from tests.support.cost_explorer import ALICE, page, period, seed, student_accounts


@pytest.mark.django_db
def test_sync_costs_reports_the_window_rows_requests_and_their_price(course, cost_explorer):
    student_accounts(course, [ALICE])
    today = timezone.localdate()
    ec2 = "Amazon Elastic Compute Cloud - Compute"
    seed(
        page(
            period(today - timedelta(days=2), [(ALICE, ec2, "1.00")]),
            period(today - timedelta(days=1), [(ALICE, ec2, "1.50")]),
        ),
        page(period(today - timedelta(days=1), [(ALICE, "Credit", "-0.25")])),
    )
    out = StringIO()

    call_command("sync_costs", "--days", "3", stdout=out)

    # Before the 14th AWS has not settled the previous month yet: the sync re-reads it whole.
    previous_month = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    start = previous_month if today.day < 14 else today - timedelta(days=3)
    end = today + timedelta(days=1)
    assert out.getvalue() == (f"Synced {start} to {end}: 3 rows from 2 Cost Explorer request(s) ($0.02).\n")
    assert CostRecord.objects.count() == 3
    assert AccountDailyCost.objects.get(day=today - timedelta(days=1)).credits == Decimal("-0.25")


@pytest.mark.django_db
def test_sync_costs_prints_the_warnings_of_a_refused_optional_query(course, cost_explorer):
    """Stubber: AWS refuses the tag query (moto never does)."""
    course.cost_tag_key = "project"
    course.save()
    student_accounts(course, [ALICE])
    out = StringIO()
    with Stubber(cost_explorer.client("ce")) as stubber:
        stubber.add_response("get_cost_and_usage", page())
        stubber.add_response("get_cost_and_usage", page())
        stubber.add_client_error(
            "get_cost_and_usage", service_error_code="DataUnavailableException", service_message="tag not active"
        )
        call_command("sync_costs", "--days", "3", stdout=out)

    assert out.getvalue().splitlines()[1:] == [
        "Warning: Tag costs of cs101 not read: GetCostAndUsage: DataUnavailableException: tag not active"
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("days", ["0", "366"])
def test_sync_costs_refuses_a_window_out_of_range(days):
    with pytest.raises(CommandError, match=r"--days must be between 1 and 365\."):
        call_command("sync_costs", "--days", days)
    assert CostSync.objects.count() == 0


@pytest.mark.django_db
def test_sync_costs_turns_a_cost_explorer_refusal_into_a_command_error(cost_explorer):
    with Stubber(cost_explorer.client("ce")) as stubber:
        stubber.add_client_error(
            "get_cost_and_usage",
            service_error_code="AccessDeniedException",
            service_message="denied",
        )
        with pytest.raises(CommandError) as raised:
            call_command("sync_costs")
    assert str(raised.value) == "Cost Explorer refused: GetCostAndUsage: AccessDeniedException: denied"
