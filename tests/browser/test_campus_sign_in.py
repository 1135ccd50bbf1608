"""A student's way in through the university's identity provider: no password of the portal's.
On the roster by their campus address, they press "Sign in with <university>", sign in at the
provider (django-oauth-toolkit, a real OpenID Connect provider served beside the portal by the
live server: tests/support/oidc_provider.py), consent, and land in the portal signed in and joined
to their course, where they ask for their AWS account and watch it being made.

Only the portal's pages get the journey's checks (accessibility, screenshots): the provider's
sign-in and consent pages stand for the university's."""

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from accounts_app.choices import AccountState, CourseRole, MembershipSource
from accounts_app.models import MemberAccount, Membership
from tests.browser.journey import VENDING_TIMEOUT_MS
from tests.browser.people import course_around, enrol, person
from tests.factories import PASSWORD
from tests.support.oidc_provider import directory, provider_installed, university_provider

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

UNIVERSITY = "Example University"
CAMPUS_DOMAIN = "uni.example.edu"
STUDENT = f"sam@{CAMPUS_DOMAIN}"


@pytest.fixture(scope="module")
def installed_provider(django_db_setup, django_db_blocker) -> Iterator[None]:
    with provider_installed(django_db_blocker):
        yield


def test_a_rostered_student_signs_in_with_the_campus_provider_and_gets_an_account(
    installed_provider, open_journey, portal, aws_stack, term, settings
):
    settings.PORTAL_STUDENT_PASSWORDS = False  # the university's way in only
    university_provider(
        portal, university=UNIVERSITY, provider_id="campus", settings={"trusted_domains": [CAMPUS_DOMAIN]}
    )
    course = course_around(*term, code="cs101", name="Cloud Computing")
    enrol(course, person("prof@school.example", "Prof Ada Byron", is_instructor=True), CourseRole.INSTRUCTOR)
    member = Membership.objects.create(
        course=course, email=STUDENT, name="Sam Student", role=CourseRole.STUDENT, source=MembershipSource.IMPORT
    )
    # The provider's own account for Sam, and the campus address it vouches for.
    idp_login = person("sam@directory.idp.invalid", "Sam Student")
    directory[idp_login.pk] = {"email": STUDENT, "name": "Sam Student"}

    journey = open_journey("campus-student")
    page = journey.page
    journey.goto("/accounts/login/")
    sign_in_with = page.get_by_role("button", name=f"Sign in with {UNIVERSITY}")
    expect(sign_in_with).to_be_visible()
    journey.check("sign-in-page")
    journey.press(sign_in_with)

    # At the university's provider: its own sign-in form, then its consent page.
    page.wait_for_url("**/idp/sign-in/**")
    page.locator("input[name=email]").fill(idp_login.email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    journey.press(page.get_by_role("button", name="Authorize"))

    # Back at the portal, signed in as the rostered address and joined to the course.
    expect(page.get_by_role("link", name="Cloud Computing")).to_be_visible()
    journey.check("signed-in")
    member.refresh_from_db()
    assert member.user is not None and member.user.email == STUDENT
    assert not member.user.has_usable_password()

    journey.press(page.get_by_role("link", name="Cloud Computing"))
    panel = page.locator("#account-panel")
    journey.press(panel.get_by_role("button", name="Request my AWS account"))
    expect(panel.get_by_text("Account id")).to_be_visible(timeout=VENDING_TIMEOUT_MS)
    journey.check("account-ready")
    assert MemberAccount.objects.get(membership=member).state == AccountState.READY
