"""The course comes from the LMS: an instructor opens the portal from their LMS course (an LTI 1.3
launch from the test LMS, tests/support/lti_platform.py), sets the course up in the portal with
what the LMS says of it, and the LMS's names and roles fill its roster; a student who joins the
LMS course later is added by "Sync now", opens the portal from the LMS and lands on their own
account panel, where their AWS account is made while they watch.

The LMS runs on 127.0.0.1 and the journey reaches the portal as 127.0.0.1 too: two ports of one
site, so that the browser sends the portal the cookies of the launch's state over plain http (in
production, over https, they are SameSite=None and cross-site launches keep them)."""

from urllib.parse import urlencode

import pytest
from lti_tool.models import Key, LtiDeployment, LtiRegistration
from playwright.sync_api import expect

from accounts_app.choices import AccountState, CourseRole, MembershipSource
from accounts_app.models import Course, MemberAccount, Membership
from lms_app.models import LmsCourseLink, PlatformTrust
from lms_app.services.keys import lti_key_ensure
from tests.browser.journey import PAGE_TIMEOUT_MS, VENDING_TIMEOUT_MS, Journey
from tests.support.lti_platform import LmsCourse, LmsPerson, TestPlatform, serve

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CAMPUS = "uni.example.edu"


@pytest.fixture
def lms(portal):
    """The test LMS, registered with the portal as an administrator does (docs/LMS.md)."""
    for platform in serve():
        lti_key_ensure(actor=None)
        platform.trust_tool(Key.objects.as_jwks())
        registration = LtiRegistration.objects.create(
            name="Test LMS",
            issuer=platform.issuer,
            client_id=platform.client_id,
            auth_url=platform.auth_url,
            token_url=platform.token_url,
            keyset_url=platform.jwks_url,
        )
        LtiDeployment.objects.create(registration=registration, deployment_id=platform.deployment_id, is_active=True)
        PlatformTrust.objects.create(registration=registration, email_domains=[CAMPUS])
        yield platform


def launch_from_lms(journey: Journey, lms: TestPlatform, portal_url: str, person: LmsPerson, course: LmsCourse, **kw):
    """What a click on the portal's link in the LMS course does: the LMS starts a launch at the
    portal's login initiation, which sends the browser to the LMS's authorization endpoint, whose
    page posts the signed launch back to the portal."""
    launch_url = f"{portal_url}/lti/launch/"
    initiation = lms.launch_request(person, course, target_link_uri=launch_url, **kw)
    journey.page.goto(f"{portal_url}/lti/init/?{urlencode(initiation)}")


def test_an_instructor_sets_the_course_up_from_the_lms_and_a_student_launches_into_their_account(
    open_journey, portal, lms, aws_stack, settings
):
    settings.PORTAL_LMS_SYNC_ON_LAUNCH_MINUTES = 0  # every launch brings the roster up to date
    portal_url = portal.replace("localhost", "127.0.0.1")
    lms_course = lms.add_course(LmsCourse(title="Cloud Computing", label="CS 101"))
    ines = lms_course.enrol(LmsPerson(f"ines@{CAMPUS}", "Ines Instructor"), "Instructor")
    theo = lms_course.enrol(LmsPerson(f"theo@{CAMPUS}", "Theo Assistant"), "Instructor", "TeachingAssistant")
    stella = lms_course.enrol(LmsPerson(f"stella@{CAMPUS}", "Stella Student"), "Learner")

    # --- The instructor's first launch: the course is set up in the portal ------------------------
    instructor = open_journey("lms-instructor")
    page = instructor.page
    launch_from_lms(
        instructor,
        lms,
        portal_url,
        ines,
        lms_course,
        custom={"course_start": "2026-09-01T00:00:00Z", "course_end": "2026-12-20T00:00:00Z", "term_name": "Fall 2026"},
    )
    expect(page.get_by_role("heading", name="Set up this course in the portal")).to_be_visible()
    expect(page.locator("input[name=name]")).to_have_value("Cloud Computing")
    expect(page.locator("input[name=code]")).to_have_value("cs-101")
    expect(page.locator("input[name=start_date]")).to_have_value("2026-09-01")
    instructor.check("setup")
    page.locator("input[name=budget_per_student]").fill("100")
    instructor.press(page.get_by_role("button", name="Create the course"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Cloud Computing")
    instructor.check("course-created")
    course = Course.objects.get(code="cs-101")
    assert LmsCourseLink.objects.get(course=course).context.id_on_platform == lms_course.id

    # The launch brought the roster: the LMS's TA and student are on it, with their roles.
    roster = {m.email: (m.role, m.source) for m in Membership.objects.filter(course=course)}
    assert roster == {
        ines.email: (CourseRole.INSTRUCTOR, MembershipSource.LMS),
        theo.email: (CourseRole.TA, MembershipSource.LMS),
        stella.email: (CourseRole.STUDENT, MembershipSource.LMS),
    }

    # --- A student joins the LMS course; Sync now brings them in ---------------------------------
    sam = lms_course.enrol(LmsPerson(f"sam@{CAMPUS}", "Sam Student"), "Learner")
    page.goto(f"{portal_url}/courses/{course.pk}/roster/")
    expect(page.get_by_text("Managed by")).to_be_visible()
    instructor.check("roster-lms-managed")
    instructor.press(page.get_by_role("button", name="Sync now"))
    apply = page.get_by_role("button", name="Apply this list")
    expect(apply).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    expect(page.get_by_role("main")).to_contain_text(sam.email)
    instructor.check("sync-preview")
    instructor.press(apply)
    expect(page.get_by_role("main")).to_contain_text("Sam Student")
    instructor.check("roster-synced")
    assert Membership.objects.get(course=course, email=sam.email).role == CourseRole.STUDENT

    # --- The student opens "My AWS account" from the LMS ------------------------------------------
    student = open_journey("lms-student")
    page = student.page
    launch_from_lms(student, lms, portal_url, sam, lms_course, custom={"portal_target": "my_account"})
    panel = page.locator("#account-panel")
    expect(panel.get_by_role("heading", name="Your AWS account")).to_be_visible()
    student.check("landed-on-account-panel")
    student.press(panel.get_by_role("button", name="Request my AWS account"))
    expect(panel.get_by_text("Account id")).to_be_visible(timeout=VENDING_TIMEOUT_MS)
    student.check("account-ready")
    account = MemberAccount.objects.get(membership__email=sam.email)
    assert account.state == AccountState.READY
    assert Membership.objects.get(course=course, email=sam.email).user.email == sam.email
