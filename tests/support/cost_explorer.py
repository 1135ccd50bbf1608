"""Cost Explorer answers for moto, and student accounts to bill them to.

moto's Cost Explorer returns nothing unless told what to say: each seeded GetCostAndUsage response
is handed out, in order, to the next distinct request body (asking the same body again gets the
same answer), without grouping or filtering it. Seed the pages in the order the sync asks: the
usage query's pages, then the credits query's.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

import requests
from moto.core import DEFAULT_ACCOUNT_ID

from accounts_app.choices import AccountState, CourseRole, MembershipSource
from accounts_app.models import Course, MemberAccount, Membership

SEED_URL = "http://motoapi.amazonaws.com/moto-api/static/ce/cost-and-usage-results"

# (aws account id, service or record type, amount as AWS writes it)
Group = tuple[str, str, str]
# Three students' account ids, to bill Cost Explorer's answers to.
ALICE, BOB, CAROL = "111111111111", "222222222222", "333333333333"


def period(day: date, groups: Iterable[Group], *, estimated: bool = False) -> dict:
    """One day of a DAILY GetCostAndUsage answer grouped by LINKED_ACCOUNT and a second key."""
    return {
        "TimePeriod": {"Start": day.isoformat(), "End": (day + timedelta(days=1)).isoformat()},
        "Total": {},
        "Groups": [
            {
                "Keys": [account_id, key],
                "Metrics": {"UnblendedCost": {"Amount": amount, "Unit": "USD"}},
            }
            for account_id, key, amount in groups
        ],
        "Estimated": estimated,
    }


def page(*periods: dict, next_token: str | None = None) -> dict:
    response = {
        "ResultsByTime": list(periods),
        "DimensionValueAttributes": [],
        "GroupDefinitions": [],
    }
    if next_token:
        response["NextPageToken"] = next_token
    return response


def seed(*responses: dict) -> None:
    """Queue answers in moto (inside mock_aws: the request never leaves the process)."""
    reply = requests.post(SEED_URL, json={"account_id": DEFAULT_ACCOUNT_ID, "results": list(responses)}, timeout=30)
    reply.raise_for_status()


def forget() -> None:
    """Make moto forget the answers it gave, so that the same requests get newly seeded ones."""
    from moto.ce.models import ce_backends

    backend = ce_backends[DEFAULT_ACCOUNT_ID]["global"]
    backend.cost_usage_results.clear()
    backend.cost_usage_results_queue.clear()


def student_accounts(
    course: Course, aws_account_ids: list[str], *, state: str = AccountState.READY
) -> list[MemberAccount]:
    """A student (without a login) and a READY account per AWS account id, made in bulk."""
    memberships = Membership.objects.bulk_create(
        [
            Membership(
                course=course,
                email=f"student-{aws_id}@school.example",
                name=f"Student {aws_id}",
                role=CourseRole.STUDENT,
                source=MembershipSource.IMPORT,
            )
            for aws_id in aws_account_ids
        ]
    )
    return MemberAccount.objects.bulk_create(
        [
            MemberAccount(
                course=course,
                membership=membership,
                state=state,
                root_email=f"aws+{course.code}-{aws_id}@school.example",
                account_name=f"{course.code}-{aws_id}",
                aws_account_id=aws_id,
            )
            for membership, aws_id in zip(memberships, aws_account_ids, strict=True)
        ]
    )
