"""The administrators' overview page (billing_app/organization_views.py): administrators only,
what it shows, and the same queries whatever the number of accounts."""

from decimal import Decimal
from typing import cast

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts_app.choices import AccountState
from accounts_app.models import Course
from billing_app.models import AccountDailyCost, Alert, AlertKind
from billing_app.services.cost_totals import account_cost_totals_rebuild
from tests.factories import CourseFactory
from tests.support.billing import d
from tests.support.cost_explorer import student_accounts

OVERVIEW = reverse("billing:organization")


def course_with_accounts(code: str, accounts: int, *, frozen: int = 0) -> Course:
    """A course whose students each spent $2 and have an open alert; `frozen` of them frozen."""
    course = cast(Course, CourseFactory(code=code))
    made = student_accounts(course, [f"{code[-1]}{i:011d}" for i in range(accounts - frozen)])
    made += student_accounts(
        course, [f"{code[-1]}{i:011d}" for i in range(accounts - frozen, accounts)], state=AccountState.FROZEN
    )
    AccountDailyCost.objects.bulk_create(
        AccountDailyCost(account=a, course=course, day=d(1), usage=Decimal(2)) for a in made
    )
    Alert.objects.bulk_create(
        Alert(account=a, course=course, kind=AlertKind.ACTUAL_50, period="course", message="Half", spend=1, budget=2)
        for a in made
    )
    account_cost_totals_rebuild()
    return course


@pytest.mark.parametrize("persona", ["student", "ta", "instructor", "other_instructor"])
def test_only_administrators_see_the_organization(personas, persona):
    course_with_accounts("cs301", 3)

    page = personas.client(persona).get(OVERVIEW)

    assert page.status_code == 403
    assert "cs301" not in page.content.decode()
    assert OVERVIEW not in personas.client(persona).get(reverse("courses:list")).content.decode()


def test_the_overview_shows_each_course_the_totals_and_the_accounts_asked_for(personas):
    course_with_accounts("cs301", 3, frozen=1)
    course_with_accounts("cs402", 2)
    admin = personas.client("admin")

    text = admin.get(OVERVIEW).content.decode()
    frozen_only = admin.get(OVERVIEW + "?state=frozen", headers={"HX-Request": "true"}).content.decode()

    assert f'href="{OVERVIEW}"' in admin.get(reverse("courses:list")).content.decode()  # in the navigation
    summaries = text[text.index('id="course-summaries"') : text.index("</table>", text.index('id="course-summaries"'))]
    assert "Ready: 2 · Frozen: budget used up: 1" in summaries and "$6.00" in summaries
    assert "Ready: 2" in summaries and "$4.00" in summaries
    assert '<span class="stat-value">$10.00</span>' in text  # the organization's spend
    assert "5 accounts" in text
    # The table alone, for htmx: the frozen account only.
    assert frozen_only.lstrip().startswith('<div id="account-table"') and "1 account<" in frozen_only
    assert "Frozen: budget used up" in frozen_only and "Ready</span>" not in frozen_only


def test_the_overview_takes_the_same_queries_for_10_and_50_accounts(personas):
    admin = personas.client("admin")
    counts = []
    for code, accounts in (("small1", 10), ("large2", 50)):
        course_with_accounts(code, accounts, frozen=2)
        admin.get(OVERVIEW)  # the session's first reads
        with CaptureQueriesContext(connection) as queries:
            assert admin.get(OVERVIEW).status_code == 200
        counts.append(len(queries))

    assert counts[0] == counts[1]
