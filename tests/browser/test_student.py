"""A student's way in: the invitation email, signing up, verifying their address, finding the
course, asking for an AWS account and watching it being made, then, once Cost Explorer has
reported on it, reading what they spent and the alert it raised; and at the end, keeping the
account: the request, the one-time code from AWS typed into the portal, the student's own steps,
a first refusal by AWS (no payment method) and the account leaving the organization.

AWS Account Management's primary-email API, which moto lacks, and AWS's refusal to let an account
without a payment method leave are played by tests/support/account_api.py."""

import re
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts_app.choices import AccountState, CourseRole, MembershipSource
from accounts_app.models import AwsOrganization, Handover, MemberAccount, Membership
from accounts_app.services.handover import handover_approve
from accounts_app.services.invitations import invitations_enqueue
from billing_app.models import Alert, AlertKind
from portal.aws import organizations, session
from portal.aws.guardrails import PERMISSION_SETS
from tests.browser.journey import VENDING_TIMEOUT_MS, links_in, wait_for_mail
from tests.browser.people import course_around, daily_usage, enrol, person, seed_costs, sync_costs
from tests.support.account_api import AccountApi

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

STUDENT = "sam@school.example"
NEW_PASSWORD = "violet-lantern-harbour-42"
OWN_EMAIL = "sam@home.example"
EC2 = "Amazon Elastic Compute Cloud - Compute"


def test_an_invited_student_signs_up_gets_an_account_sees_their_spend_and_keeps_it(open_journey, aws_stack, term):
    course = course_around(*term, code="cs101", name="Cloud Computing", budget_per_student=Decimal("100.00"))
    instructor = person("prof@school.example", "Prof Ada Byron", is_instructor=True)
    enrol(course, instructor, CourseRole.INSTRUCTOR)
    member = Membership.objects.create(
        course=course, email=STUDENT, name="Sam Student", role=CourseRole.STUDENT, source=MembershipSource.IMPORT
    )
    # What "Invite" on the roster does: the worker sends the email.
    invitations_enqueue(actor=instructor, course=course, member_ids=[member.pk])
    invitation = wait_for_mail(STUDENT, "You are invited to cs101")
    (invitation_link,) = [link for link in links_in(invitation) if "/invite/" in link]

    journey = open_journey("student")
    page = journey.page

    # --- Invitation, sign-up, email verification -------------------------------------------------
    page.goto(invitation_link)
    expect(page.get_by_role("heading", name="You are invited to Cloud Computing")).to_be_visible()
    journey.check("invitation")
    journey.press(page.get_by_role("main").get_by_role("link", name="Create an account"))
    expect(page.locator("input[name=email]")).to_have_value(STUDENT)
    journey.check("sign-up")
    page.locator("input[name=password1]").fill(NEW_PASSWORD)
    page.locator("input[name=password2]").fill(NEW_PASSWORD)
    journey.press(page.get_by_role("button", name="Sign Up"))
    expect(page.get_by_role("heading", name="Verify Your Email Address")).to_be_visible()
    journey.check("verification-sent")

    confirmation = wait_for_mail(STUDENT, "Please Confirm Your Email Address")
    (confirm_link,) = [link for link in links_in(confirmation) if "/accounts/confirm-email/" in link]
    page.goto(confirm_link)
    expect(page.get_by_role("heading", name="Confirm Email Address")).to_be_visible()
    journey.check("confirm-email")
    journey.press(page.get_by_role("button", name="Confirm"))

    # Signed in by the confirmation, joined to the course the invitation was for, and taken there.
    expect(page.get_by_text("Welcome to Cloud Computing.")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Cloud Computing")
    journey.check("welcome")
    journey.press(page.get_by_role("navigation", name="Main").get_by_role("link", name="My courses"))
    course_link = page.get_by_role("link", name="Cloud Computing")
    expect(course_link).to_be_visible()
    journey.check("my-courses")
    member.refresh_from_db()
    assert member.user is not None and member.user.email == STUDENT

    # --- An AWS account, made while the student watches -------------------------------------------
    journey.press(course_link)
    panel = page.locator("#account-panel")
    expect(panel.get_by_role("heading", name="Your AWS account")).to_be_visible()
    journey.check("course")
    panel_refreshes = []
    page.on("request", lambda r: r.url.endswith("/my-account/") and panel_refreshes.append(r.method))
    journey.press(panel.get_by_role("button", name="Request my AWS account"))

    # Creating an account takes AWS a while (CREATION_SECONDS here): the panel shows the steps.
    expect(panel.locator(".step-current")).to_have_count(1)
    expect(panel.get_by_text("This takes a few minutes.")).to_be_visible()
    journey.check("account-in-progress")
    expect(panel.get_by_text("Account id")).to_be_visible(timeout=VENDING_TIMEOUT_MS)
    assert "GET" in panel_refreshes, "the panel asked for news by itself (htmx)"

    account = MemberAccount.objects.get(membership=member)
    assert account.state == AccountState.READY and re.fullmatch(r"\d{12}", account.aws_account_id)
    expect(panel.locator("dd.code").first).to_have_text(account.aws_account_id)
    console = panel.get_by_role("link", name="Open the AWS console")
    access_portal = AwsOrganization.load().access_portal_url
    expect(console).to_have_attribute(
        "href",
        f"{access_portal.rstrip('/')}/#/console?account_id={account.aws_account_id}&role_name={PERMISSION_SETS['student'].name}",
    )
    expect(panel.get_by_role("link", name=access_portal)).to_be_visible()
    expect(panel.locator(".step-done")).to_have_count(4)
    journey.check("account-ready")
    ready = wait_for_mail(STUDENT, "cs101: your AWS account is ready")
    assert account.aws_account_id in ready.body
    assert console.get_attribute("href") in ready.body

    # --- Later: what they spent -------------------------------------------------------------------
    journey.press(panel.get_by_role("link", name="See what you have spent"))
    expect(page.get_by_role("heading", name="Your spend")).to_be_visible()
    expect(page.locator(".stat").first).to_contain_text("$0.00")
    journey.check("spend-before-costs")

    today = timezone.localdate()
    seed_costs(
        aws_stack.moto_url,
        daily_usage(
            account.aws_account_id, today=today, amounts=["10.00", "12.00", "11.00", "13.00", "14.00"], service=EC2
        ),
    )
    sync_costs()  # what beat runs a few times a day
    alert = Alert.objects.get(account=account, kind=AlertKind.ACTUAL_50)

    page.reload()
    spent = page.locator(".stat").first
    expect(spent).to_contain_text("$60.00")
    expect(spent).to_contain_text("of a $100.00 budget")
    expect(page.get_by_role("row", name=EC2)).to_contain_text("$60.00")
    expect(page.locator(".alerts")).to_contain_text(alert.message)
    assert "passed 50% of the $100.00 budget" in alert.message
    assert journey.chart_series("account-chart") == [EC2]
    journey.check("spend-and-alert")
    wait_for_mail(STUDENT, "cs101: 50% of the budget spent")

    # --- The end of the course: keeping the account -----------------------------------------------
    account_api = AccountApi(session)
    journey.goto(f"/courses/{course.pk}/")
    # The panel's fragments (what runs now, scheduled stops) load after the page and move what
    # is below them: a tap aimed before they land can miss the link.
    page.wait_for_load_state("networkidle")
    journey.press(page.get_by_role("link", name="Keep my account after the course"))
    expect(page.get_by_role("heading", name="Keep your AWS account")).to_be_visible()
    journey.check("keep-my-account")
    page.get_by_label("Your own email address").fill(OWN_EMAIL)
    page.get_by_label("Your full name").fill("Sam Student")
    page.get_by_label("Your phone number").fill("+1 555 0100")
    journey.press(page.get_by_role("button", name="Ask to keep my account"))
    checklist = page.locator("#handover-checklist")
    expect(checklist).to_contain_text("waiting for an instructor")
    journey.check("handover-requested")
    wait_for_mail("prof@school.example", "asks to keep their AWS account")

    handover = Handover.objects.get(account=account)
    assert handover_approve(actor=instructor, handover=handover)  # the instructor's button
    page.reload()
    # The worker asks AWS to send the code; the checklist refreshes itself until it is asked for.
    expect(checklist.get_by_role("heading", name="Type the code from AWS")).to_be_visible(timeout=VENDING_TIMEOUT_MS)
    journey.check("handover-code")
    page.get_by_label("Code from AWS").fill(account_api.code(account.aws_account_id))
    journey.press(page.get_by_role("button", name="Confirm the code"))
    expect(page.get_by_text("AWS accepted the code")).to_be_visible()
    expect(checklist.get_by_role("heading", name="Your turn: make the account stand on its own")).to_be_visible(
        timeout=VENDING_TIMEOUT_MS
    )
    journey.check("handover-your-turn")

    account_api.refusals.append("MEMBER_ACCOUNT_PAYMENT_INSTRUMENT_REQUIRED")
    journey.press(page.get_by_role("button", name="I've done these steps"))
    blocker = checklist.get_by_text("Add a payment method (a credit or debit card)")
    journey.reload_until(lambda page: blocker, timeout_ms=VENDING_TIMEOUT_MS)
    journey.check("handover-blocked")

    journey.press(page.get_by_role("button", name="I've done these steps"))
    journey.reload_until(lambda page: page.get_by_text("The account is yours."), timeout_ms=VENDING_TIMEOUT_MS)
    journey.check("handed-over")
    account.refresh_from_db()
    assert account.state == AccountState.HANDED_OVER
    assert account.aws_account_id not in {a.id for a in organizations.list_accounts()}
    assert account_api.root_email[account.aws_account_id] == OWN_EMAIL
    wait_for_mail(STUDENT, "your AWS account is yours now")
