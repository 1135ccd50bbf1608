"""An instructor's first day: sign in with a second factor, create a course with its budget and
guardrails, fill the roster from a CSV (after fixing the line the preview points at), invite
everyone, pre-create a pool and provision every student, watching the roster until each
account is ready."""

import json
import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from accounts_app.choices import AccountState, CourseRole
from accounts_app.models import Course, MemberAccount
from portal.aws import session
from tests.browser.journey import VENDING_TIMEOUT_MS, wait_for_mail
from tests.browser.people import give_totp, person, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROSTER_WITH_A_BAD_LINE = (
    "email,name,role\n"
    "ada@school.example,Ada Lovelace,student\n"
    "grace@school.example,Grace Hopper,professor\n"
    "alan@school.example,Alan Turing,student\n"
    "tim@school.example,Tim Assistant,ta\n"
)
STUDENTS = ["ada@school.example", "grace@school.example", "alan@school.example"]
EVERYONE = [*STUDENTS, "tim@school.example"]


def csv_file(text: str) -> dict:
    return {"name": "roster.csv", "mimeType": "text/csv", "buffer": text.encode()}


def test_an_instructor_sets_up_a_course_and_provisions_every_student(open_journey, aws_stack, settings, term):
    settings.PORTAL_REQUIRE_MFA_FOR_STAFF = True
    instructor = person("prof@school.example", "Prof Ada Byron", is_instructor=True)
    secret = give_totp(instructor)
    start, end = term

    journey = open_journey("instructor")
    page = journey.page
    sign_in(journey, "prof@school.example", totp_secret=secret)
    journey.check("my-courses")

    # --- A course, with a budget and guardrails ---------------------------------------------------
    journey.press(page.get_by_role("link", name="New course"))
    expect(page.get_by_role("heading", name="New course")).to_be_visible()
    journey.check("new-course-form")
    page.get_by_label("Name", exact=True).fill("Cloud Computing")
    page.get_by_label("Code", exact=True).fill("cs101-f26")
    page.get_by_label("Term", exact=True).fill("Fall 2026")
    page.get_by_label("Start date").fill(start.isoformat())
    page.get_by_label("End date").fill(end.isoformat())
    page.get_by_label("Budget per student (USD)").fill("75")
    page.get_by_label("Freeze at (% of budget)").fill("90")
    page.get_by_label("Allowed AWS services").fill("ec2, s3, lambda, dynamodb")
    page.get_by_label("Allowed EC2 instance families").fill("t3, t4g")
    journey.press(page.get_by_text(re.compile(r"Allowed regions \(1 selected\)")))
    page.get_by_role("checkbox", name=re.compile(r"us-west-2")).check()
    page.get_by_label("Billing contact email").fill("billing@school.example")
    page.get_by_label("Usage-alert contact email").fill("alerts@school.example")
    journey.press(page.get_by_role("button", name="Create course"))

    expect(page.get_by_role("heading", level=1)).to_contain_text("Cloud Computing")
    journey.check("course-created")
    course = Course.objects.get(code="cs101-f26")
    assert (course.budget_per_student, course.freeze_at_percent) == (Decimal("75.00"), 90)
    assert course.allowed_services == ["dynamodb", "ec2", "lambda", "s3"]
    assert course.allowed_instance_families == ["t3", "t4g"]
    assert course.allowed_regions == ["us-east-1", "us-west-2"]

    # --- The roster: a bad line first, read, fixed -----------------------------------------------
    journey.press(page.get_by_role("navigation", name="Course").get_by_role("link", name="Roster"))
    journey.press(page.get_by_role("link", name="Import a CSV"))
    journey.check("roster-import")
    page.get_by_label("Roster CSV").set_input_files(csv_file(ROSTER_WITH_A_BAD_LINE))
    journey.press(page.get_by_role("button", name="Preview the import"))

    problems = page.get_by_role("alert")
    expect(problems).to_contain_text("Nothing was imported")
    expect(problems.get_by_role("listitem")).to_have_text(
        ["Line 3: Unknown role “professor”. Use instructor, ta or student."]
    )
    journey.check("roster-preview-with-error")
    assert not course.memberships.exclude(role=CourseRole.INSTRUCTOR).exists()

    journey.press(page.get_by_role("link", name="Upload a corrected file"))
    fixed = ROSTER_WITH_A_BAD_LINE.replace("Grace Hopper,professor", "Grace Hopper,student")
    page.get_by_label("Roster CSV").set_input_files(csv_file(fixed))
    journey.press(page.get_by_role("button", name="Preview the import"))
    expect(page.get_by_text("4 people: 4 to add, 0 to update, 0 unchanged.")).to_be_visible()
    journey.check("roster-preview")
    page.get_by_label("Email invitations to the people added").uncheck()
    journey.press(page.get_by_role("button", name="Import 4 people"))

    expect(page.get_by_text("Imported roster.csv: 4 added, 0 updated.")).to_be_visible()
    table = page.locator("#roster-table")
    expect(table.get_by_role("caption")).to_have_text("5 people")
    journey.check("roster-imported")

    # --- Invitations ------------------------------------------------------------------------------
    journey.press(page.get_by_role("button", name="Send pending invitations"))
    expect(page.get_by_text("Sending 4 invitation(s).")).to_be_visible()
    for email in EVERYONE:
        message = wait_for_mail(email, "Cloud Computing")
        assert f"{settings.PORTAL_BASE_URL}/invite/" in message.body
    journey.reload_until(lambda p: p.locator("#roster-table").get_by_text("Invited").nth(3))
    journey.check("invitations-sent")

    # --- A pool, then every student ---------------------------------------------------------------
    page.get_by_label("Pre-create").fill("2")
    journey.press(page.get_by_role("button", name="accounts for the pool"))
    expect(page.get_by_text("Pre-creating 2 account(s) for the pool.")).to_be_visible()
    journey.reload_until(lambda p: p.get_by_text("2 account(s) ready in the pool."), timeout_ms=VENDING_TIMEOUT_MS)
    journey.check("pool-ready")

    journey.press(page.get_by_role("button", name="Provision all"))
    expect(page.get_by_text("Queued 3 account(s).")).to_be_visible()
    ready = table.locator(".state-ready")
    # Two students take an account from the pool; the third waits for AWS to create one.
    expect(table.locator(".state").filter(has_not_text="Ready")).not_to_have_count(0)
    journey.check("provisioning")
    # The roster refreshes itself (htmx) while accounts are being made: no reload here.
    expect(ready).to_have_count(3, timeout=VENDING_TIMEOUT_MS)
    expect(table.locator(".state").filter(has_not_text="Ready")).to_have_count(0)
    journey.check("all-ready")

    accounts = MemberAccount.objects.filter(course=course, membership__isnull=False)
    assert sorted(a.membership.email for a in accounts) == sorted(STUDENTS)
    assert {a.state for a in accounts} == {AccountState.READY}
    for account in accounts:
        expect(table.get_by_text(account.aws_account_id)).to_be_visible()

    # The course's guardrails are in AWS, as the form set them.
    course.refresh_from_db()
    policy = session.client("organizations").describe_policy(PolicyId=course.aws_scp_id)["Policy"]
    document = json.loads(policy["Content"])
    statements = {statement["Sid"]: statement for statement in document["Statement"]}
    assert {"ec2:*", "s3:*", "lambda:*", "dynamodb:*"} <= set(statements["OnlyAllowedServices"]["NotAction"])
    assert statements["OnlyAllowedInstanceTypes"]["Condition"]["StringNotLike"]["ec2:InstanceType"] == [
        "t3.*",
        "t4g.*",
    ]

    # --- Looking ahead to the end of term -----------------------------------------------------------
    journey.press(page.get_by_role("navigation", name="Course").get_by_role("link", name="End of course"))
    expect(page.get_by_role("heading", name="Schedule")).to_be_visible()
    journey.press(page.get_by_role("button", name="List what cleanup would delete"))
    # The dry run lists every region of every account in the worker; the empty accounts say so.
    journey.reload_until(lambda page: page.get_by_text("Nothing to delete").nth(2), timeout_ms=VENDING_TIMEOUT_MS)
    journey.check("end-of-course")
    assert {a.state for a in MemberAccount.objects.filter(course=course, membership__isnull=False)} == {
        AccountState.READY
    }
