"""The course cost dashboard (billing_app/views.py): the same queries whatever the number of
students, and the page of the students' table the request asks for."""

from datetime import timedelta
from decimal import Decimal
from typing import cast

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts_app.models import Course
from billing_app.models import AccountDailyCost, Alert, AlertKind, MeterReading
from billing_app.services.cost_totals import account_cost_totals_rebuild
from tests.factories import CourseFactory, MembershipFactory
from tests.support.cost_explorer import student_accounts


def course_with_students(personas, code: str, students: int) -> Course:
    """A course the persona "instructor" teaches, whose students spent $1 to $students each, with
    an alert and a reading each."""
    course = cast(Course, CourseFactory(code=code, budget_per_student=Decimal(100)))
    MembershipFactory(course=course, user=personas.instructor, role="instructor")
    accounts = student_accounts(course, [f"{code[-1]}{i:011d}" for i in range(students)])
    today, now = timezone.localdate(), timezone.now()
    AccountDailyCost.objects.bulk_create(
        AccountDailyCost(account=a, course=course, day=today - timedelta(days=1), usage=Decimal(i + 1))
        for i, a in enumerate(accounts)
    )
    Alert.objects.bulk_create(
        Alert(account=a, course=course, kind=AlertKind.ACTUAL_50, period="course", message="Half", spend=1, budget=2)
        for a in accounts
    )
    MeterReading.objects.bulk_create(
        MeterReading(account=a, course=course, taken_at=now, checked_at=now, usd_per_hour=Decimal("0.25"))
        for a in accounts
    )
    account_cost_totals_rebuild()
    return course


def test_the_costs_page_takes_the_same_queries_for_10_and_50_students(personas):
    client = personas.client("instructor")
    counts = []
    for code, students in (("small1", 10), ("large2", 50)):
        course = course_with_students(personas, code, students)
        client.get(reverse("billing:costs", args=[course.pk]))  # the session's first reads
        with CaptureQueriesContext(connection) as queries:
            page = client.get(reverse("billing:costs", args=[course.pk]))
        assert page.status_code == 200
        assert f"{students} students" in page.content.decode()
        counts.append(len(queries))

    assert counts[0] == counts[1]


@pytest.mark.parametrize(
    ("asked", "shown", "caption"),
    [
        ("", ["$120.00", "$119.00"], "120 students, 1–100 shown"),  # most spent first
        ("?sort=spend&page=2", ["$101.00", "$102.00"], "120 students, 101–120 shown"),
        ("?q=STUDENT-20000000001&sort=spend", ["$11.00", "$12.00"], "10 students"),  # by email, any case
    ],
)
def test_the_costs_page_shows_the_page_of_students_asked_for(personas, asked, shown, caption):
    course = course_with_students(personas, "cs222", 120)

    page = personas.client("instructor").get(reverse("billing:costs", args=[course.pk]) + asked)

    text = page.content.decode()
    table = text[text.index('<div id="student-table">') :]
    spends = [cell.split("<", 1)[0] for cell in table.split('<td class="num">')[1::4]]
    assert spends[: len(shown)] == shown
    assert caption in table
