"""The course form's Bedrock model families (accounts_app/forms.py): checkboxes of the vendored
table (portal/aws/bedrock_models.py), unknown keys refused by name, the SCP's size checked with
them."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts_app.choices import AuditAction
from accounts_app.forms import CourseForm
from accounts_app.models import AuditEvent, Course
from portal.aws.bedrock_models import FAMILIES
from portal.aws.catalog import service_prefixes
from tests.factories import browser_form_data

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_second_factor(settings):
    settings.PORTAL_REQUIRE_MFA_FOR_STAFF = False


def edit_data(course: Course, **overrides) -> dict:
    """The settings form of `course` submitted as the browser shows it."""
    return browser_form_data(CourseForm(instance=course), **overrides)


def new_course_data(**overrides) -> dict:
    typed = {
        "name": "Applied AI",
        "code": "ai100",
        "term": "Spring 2027",
        "start_date": "2027-01-15",
        "end_date": "2027-05-01",
        "budget_per_student": "50",
        "billing_contact_email": "billing@school.example",
        "usage_alert_email": "alerts@school.example",
    }
    return browser_form_data(CourseForm(), **{**typed, **overrides})


def edit(personas, **overrides):
    course = personas.course
    return personas.client("instructor").post(
        reverse("courses:edit", kwargs={"course_id": course.pk}), edit_data(course, **overrides)
    )


def test_the_settings_page_shows_each_family_as_a_checkbox_with_what_an_empty_list_means(personas):
    page = personas.client("instructor").get(reverse("courses:edit", kwargs={"course_id": personas.course.pk}))

    html = page.content.decode()
    for family in FAMILIES.values():
        assert f'type="checkbox" name="bedrock_model_families" value="{family.key}"' in html
        assert family.label in html
    assert "none ticked allows every model" in html


def test_the_chosen_families_are_saved_and_recorded(personas):
    response = edit(
        personas, allowed_services="ec2 s3 bedrock", bedrock_model_families=["anthropic.claude", "amazon.nova"]
    )

    assert response.status_code == 302
    course = Course.objects.get(pk=personas.course.pk)
    assert course.bedrock_model_families == ["amazon.nova", "anthropic.claude"]
    [event] = AuditEvent.objects.filter(course=course, action=AuditAction.COURSE_UPDATED)
    assert event.data["changes"]["bedrock_model_families"] == [[], ["amazon.nova", "anthropic.claude"]]


def test_unknown_families_are_refused_by_name_and_nothing_changes(personas):
    response = edit(
        personas,
        allowed_services="ec2 s3 bedrock",
        bedrock_model_families=["anthropic.claude", "openai.gpt5", "acme.llm"],
    )

    assert response.status_code == 200
    [error] = response.context["form"].errors["bedrock_model_families"]
    assert error.startswith("Unknown Bedrock model family: acme.llm, openai.gpt5. Known families: amazon.nova, ")
    course = Course.objects.get(pk=personas.course.pk)
    assert course.bedrock_model_families == [] and "bedrock" not in course.allowed_services
    assert not AuditEvent.objects.filter(course=course, action=AuditAction.COURSE_UPDATED).exists()


def test_no_family_is_the_default_and_allows_every_model():
    form = CourseForm(data=new_course_data(allowed_services="bedrock"))

    assert form.is_valid(), form.errors
    assert form.cleaned_data["bedrock_model_families"] == []


def test_families_that_overfill_the_scp_are_refused_with_what_to_trim():
    services = sorted({*sorted(service_prefixes())[:150], "bedrock"})
    data = new_course_data(allowed_services=" ".join(services), bedrock_model_families=list(FAMILIES))

    form = CourseForm(data=data)

    assert not form.is_valid()
    [message] = form.errors["allowed_services"]
    assert message.endswith(
        f"Allow fewer services ({len(services)} now) or fewer EC2 instance families or fewer Bedrock model families."
    )
    assert CourseForm(data={**data, "bedrock_model_families": []}).is_valid()
