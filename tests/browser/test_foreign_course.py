"""A student of one course types the addresses of another course's pages and of an account in it:
the portal answers 404, as if they did not exist, and shows nothing of them."""

import pytest
from playwright.sync_api import expect

from accounts_app.choices import CourseRole
from tests.browser.people import course_around, enrol, person, sign_in
from tests.support.cost_explorer import student_accounts

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_student_of_another_course_gets_404_for_its_pages_and_accounts(open_journey, term):
    course = course_around(*term, code="cs101", name="Cloud Computing")
    enrol(course, person("prof@school.example", "Prof Ada", is_instructor=True), CourseRole.INSTRUCTOR)
    (account,) = student_accounts(course, ["111111111111"])
    own_course = course_around(*term, code="bio200", name="Bioinformatics on AWS")
    enrol(own_course, person("outsider@school.example", "Olive Outsider"), CourseRole.STUDENT)

    journey = open_journey("foreign-student")
    page = journey.page
    sign_in(journey, "outsider@school.example")
    expect(page.get_by_role("link", name="Bioinformatics on AWS")).to_be_visible()
    expect(page.get_by_text("Cloud Computing")).to_have_count(0)
    journey.check("my-courses")

    journey.goto(f"/courses/{course.pk}/", status=404)
    expect(page.get_by_text("Cloud Computing")).to_have_count(0)
    journey.check("foreign-course")

    journey.goto(f"/courses/{course.pk}/costs/students/{account.pk}/", status=404)
    expect(page.get_by_text("111111111111")).to_have_count(0)
    journey.check("foreign-account")

    for path in (
        f"/courses/{course.pk}/my-account/",
        f"/courses/{course.pk}/my-costs/",
        f"/courses/{course.pk}/roster/",
        f"/courses/{course.pk}/costs/",
    ):
        journey.goto(path, status=404)
