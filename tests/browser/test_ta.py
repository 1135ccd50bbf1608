"""A TA follows the course's spending: the cost dashboard with its chart and per-student table,
sorted by spend, and one student's detail. They see what instructors see and change nothing:
the buttons are not there, and the instructor actions refuse them when posted to directly."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts_app.choices import AccountState, CourseRole, MembershipSource
from accounts_app.models import MemberAccount, Membership
from billing_app.models import Alert, AlertKind
from tests.browser.people import course_around, enrol, person, seed_costs, sign_in, sync_costs

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EC2 = "Amazon Elastic Compute Cloud - Compute"
S3 = "Amazon Simple Storage Service"
# name, AWS account id, EC2 and S3 spend a day over the last five days (budget $100)
STUDENTS = [
    ("Ada Lovelace", "111111111111", "8.00", "1.00"),  # $45
    ("Alan Turing", "222222222222", "16.00", "0.40"),  # $82
    ("Grace Hopper", "333333333333", "2.00", "0.40"),  # $12
]
NOT_ALLOWED = "Only the course's instructors can do this."


def students_with_costs(course, moto_url: str) -> dict[str, MemberAccount]:
    """Three students with ready accounts, and five days of their costs synced from Cost Explorer."""
    accounts = {}
    for name, aws_id, _, _ in STUDENTS:
        email = f"{name.split()[0].lower()}@school.example"
        member = Membership.objects.create(
            course=course, email=email, name=name, role=CourseRole.STUDENT, source=MembershipSource.IMPORT
        )
        accounts[name] = MemberAccount.objects.create(
            course=course,
            membership=member,
            state=AccountState.READY,
            aws_account_id=aws_id,
            root_email=f"aws+cs101-{aws_id}@school.example",
            account_name=f"cs101-{aws_id}",
        )
    today = timezone.localdate()
    seed_costs(
        moto_url,
        {
            today - timedelta(days=back): [
                row for _, aws_id, ec2, s3 in STUDENTS for row in ((aws_id, EC2, ec2), (aws_id, S3, s3))
            ]
            for back in range(5)
        },
    )
    sync_costs()
    return accounts


def test_a_ta_reads_the_course_costs_and_can_change_nothing(open_journey, aws_stack, term):
    course = course_around(*term, code="cs101", name="Cloud Computing", budget_per_student=Decimal("100.00"))
    enrol(course, person("prof@school.example", "Prof Ada Byron", is_instructor=True), CourseRole.INSTRUCTOR)
    ta = enrol(course, person("theo@school.example", "Theo Assistant"), CourseRole.TA)
    accounts = students_with_costs(course, aws_stack.moto_url)
    alan = accounts["Alan Turing"]
    assert set(Alert.objects.filter(account=alan).values_list("kind", flat=True)) >= {
        AlertKind.ACTUAL_50,
        AlertKind.ACTUAL_80,
    }

    journey = open_journey("ta")
    page = journey.page
    sign_in(journey, "theo@school.example")
    journey.check("my-courses")
    journey.press(page.get_by_role("link", name="Cloud Computing"))
    expect(page.get_by_role("heading", name="People")).to_be_visible()
    journey.check("course")

    # --- The dashboard ----------------------------------------------------------------------------
    journey.press(page.get_by_role("navigation", name="Course").get_by_role("link", name="Costs"))
    expect(page.locator(".stat").first).to_contain_text("$139.00")
    chart = page.locator("#course-chart")
    expect(chart).to_be_visible()
    assert sorted(journey.chart_series("course-chart")) == [EC2, S3]
    table = page.locator("#student-table tbody")
    names = table.locator("tr td:first-child")
    # Most spent first, unless asked otherwise.
    expect(names).to_have_text(["Alan Turing", "Ada Lovelace", "Grace Hopper"])
    expect(table.get_by_role("row", name="Alan Turing")).to_contain_text("$82.00")
    journey.check("costs")

    sort_by_spend = page.get_by_role("link", name="Spend", exact=True)
    journey.press(sort_by_spend)  # on a phone too: the header stays, as a line of sort links
    expect(page).to_have_url(re.compile(r"[?&]sort=spend\b"))
    expect(names).to_have_text(["Grace Hopper", "Ada Lovelace", "Alan Turing"])
    journey.check("costs-by-spend")
    journey.press(sort_by_spend)
    expect(page).to_have_url(re.compile(r"[?&]sort=-spend\b"))
    expect(names).to_have_text(["Alan Turing", "Ada Lovelace", "Grace Hopper"])

    # --- One student ------------------------------------------------------------------------------
    journey.press(table.get_by_role("link", name="Alan Turing"))
    expect(page.get_by_role("heading", name="Alan Turing")).to_be_visible()
    expect(page.locator(".stat").first).to_contain_text("$82.00")
    expect(page.locator(".alerts")).to_contain_text("passed 80% of the $100.00 budget")
    expect(page.get_by_role("button", name="Freeze now")).to_have_count(0)
    expect(page.get_by_role("button", name="Raise the budget and unfreeze")).to_have_count(0)
    expect(page.get_by_role("heading", name="Budget and freeze")).to_have_count(0)
    journey.check("student")

    # --- The roster, read-only --------------------------------------------------------------------
    journey.press(page.get_by_role("navigation", name="Course").get_by_role("link", name="Roster"))
    expect(page.locator("#roster-table").get_by_role("caption")).to_have_text("5 people")
    for button in ("Provision all", "Send pending invitations", "accounts for the pool", "Remove", "Resend", "Invite"):
        expect(page.get_by_role("button", name=button)).to_have_count(0)
    expect(page.get_by_role("link", name="Import a CSV")).to_have_count(0)
    expect(page.locator("#roster-table select")).to_have_count(0)
    expect(page.get_by_role("link", name="Download CSV")).to_be_visible()
    journey.check("roster")
    journey.goto(f"/courses/{course.pk}/settings/", status=403)
    expect(page.get_by_role("alert")).to_have_text(NOT_ALLOWED)
    journey.check("settings-refused")

    # --- The instructor actions, posted to directly -----------------------------------------------
    journey.goto(f"/courses/{course.pk}/roster/")
    (csrf,) = [c["value"] for c in journey.context.cookies() if c["name"] == "csrftoken"]
    student = alan.membership
    attempts = {
        "provision all": (f"/courses/{course.pk}/accounts/provision/", {}),
        "pre-create": (f"/courses/{course.pk}/accounts/precreate/", {"count": "3"}),
        "change a role": (f"/courses/{course.pk}/roster/{student.pk}/role/", {"role": "instructor"}),
        "remove someone": (f"/courses/{course.pk}/roster/{student.pk}/remove/", {}),
        "invite": (f"/courses/{course.pk}/roster/invite/", {}),
        "freeze": (f"/courses/{course.pk}/costs/students/{alan.pk}/freeze/", {}),
        "edit the course": (f"/courses/{course.pk}/settings/", {"name": "Renamed by a TA"}),
    }
    for action, (path, form) in attempts.items():
        response = page.request.post(path, form=form, headers={"X-CSRFToken": csrf}, max_redirects=0)
        assert response.status in (403, 404), f"{action}: {response.status}"
        # Refused for being a TA, not for a missing CSRF token (which would be a 403 too).
        assert "CSRF verification failed" not in response.text(), action
        if response.status == 403:
            assert "instructors can do this" in response.text(), action

    assert MemberAccount.objects.filter(course=course).count() == len(STUDENTS)
    student.refresh_from_db()
    assert student.role == CourseRole.STUDENT
    alan.refresh_from_db()
    assert alan.state == AccountState.READY
    course.refresh_from_db()
    assert course.name == "Cloud Computing"
    ta.refresh_from_db()
    assert ta.role == CourseRole.TA
