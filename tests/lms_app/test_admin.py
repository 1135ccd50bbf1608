"""Registering an LMS by hand in the Django admin: the registration with the email domains it is
trusted for, its deployments to activate, and the portal's addresses for the LMS's administrator."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.urls import reverse
from lti_tool.models import Key, LtiDeployment, LtiRegistration

from lms_app.admin import PlatformRegistrationAdmin
from lms_app.models import PlatformTrust


def shown_form_data(response, **typed) -> dict:
    """What the browser posts for an admin page as shown (the form and its inlines), with `typed`
    by the names the browser posts them under."""
    shown = [response.context["adminform"].form]
    data = {}
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        data.update({management[name].html_name: management[name].value() for name in management.fields})
        shown.extend(formset.forms)
    for form in shown:
        for name, field in form.fields.items():
            value = field.prepare_value(form[name].value())
            if isinstance(field, forms.BooleanField):
                if value:
                    data[form[name].html_name] = "on"
            else:
                data[form[name].html_name] = "" if value is None else str(value)
    data.update(typed)
    return data


def test_the_registration_admin_is_the_portals(db):
    assert isinstance(admin.site._registry[LtiRegistration], PlatformRegistrationAdmin)


def test_the_change_page_shows_the_addresses_the_lms_needs(personas, canvas_registration):
    response = personas.client("admin").get(
        reverse("admin:lti_tool_ltiregistration_change", args=[canvas_registration.pk])
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "http://testserver/lti/init/" in page
    assert f"http://testserver/lti/init/{canvas_registration.uuid}/" in page
    assert "http://testserver/lti/launch/" in page
    assert "http://testserver/lti/.well-known/jwks.json" in page
    assert "http://testserver/lti/config/canvas.json" in page
    assert "school.example" in page  # the trusted domains, in the inline


def test_the_add_page_and_the_lists_open(personas, canvas_registration):
    LtiDeployment.objects.create(registration=canvas_registration, deployment_id="1:abc")
    client = personas.client("admin")

    assert client.get(reverse("admin:lti_tool_ltiregistration_add")).status_code == 200
    listed = client.get(reverse("admin:lti_tool_ltiregistration_changelist"))
    assert listed.status_code == 200
    assert [row.deployments_waiting for row in listed.context["cl"].result_list] == [1]
    assert client.get(reverse("admin:lti_tool_ltideployment_changelist")).status_code == 200


def test_an_administrator_activates_the_deployment_a_first_launch_added_and_sets_the_domains(
    personas, canvas_registration
):
    deployment = LtiDeployment.objects.create(registration=canvas_registration, deployment_id="1:abc")
    client = personas.client("admin")
    url = reverse("admin:lti_tool_ltiregistration_change", args=[canvas_registration.pk])
    shown = client.get(url)

    response = client.post(
        url,
        shown_form_data(
            shown,
            **{"trust-0-email_domains": "School.example; students.school.example", "deployments-0-is_active": "on"},
        ),
    )

    assert response.status_code == 302, response.context["errors"] if response.context else ""
    deployment.refresh_from_db()
    assert deployment.is_active
    assert PlatformTrust.objects.get(registration=canvas_registration).email_domains == [
        "school.example",
        "students.school.example",
    ]
    # A registered LMS can be signed for from then on.
    assert Key.objects.active().exists()


def test_a_malformed_domain_is_refused_and_nothing_changes(personas, canvas_registration):
    client = personas.client("admin")
    url = reverse("admin:lti_tool_ltiregistration_change", args=[canvas_registration.pk])

    response = client.post(url, shown_form_data(client.get(url), **{"trust-0-email_domains": "@"}))

    assert response.status_code == 200
    assert "Not an email domain" in response.content.decode()
    assert PlatformTrust.objects.get(registration=canvas_registration).email_domains == ["school.example"]


def test_a_new_registration_gets_its_domains_from_the_add_page(personas):
    client = personas.client("admin")
    url = reverse("admin:lti_tool_ltiregistration_add")
    typed = {
        "name": "Moodle",
        "issuer": "https://moodle.school.example",
        "client_id": "vQz3kP0aLm",
        "auth_url": "https://moodle.school.example/mod/lti/auth.php",
        "token_url": "https://moodle.school.example/mod/lti/token.php",
        "keyset_url": "https://moodle.school.example/mod/lti/certs.php",
        "trust-0-email_domains": "school.example",
        "deployments-TOTAL_FORMS": "1",
        "deployments-0-deployment_id": "3",
        "deployments-0-is_active": "on",
    }

    response = client.post(url, shown_form_data(client.get(url), **typed))

    assert response.status_code == 302
    registration = LtiRegistration.objects.get(client_id="vQz3kP0aLm")
    assert registration.trust.email_domains == ["school.example"]
    assert list(registration.deployments.values_list("deployment_id", "is_active")) == [("3", True)]


def test_deployments_can_be_activated_from_their_list(personas, canvas_registration):
    waiting = LtiDeployment.objects.create(registration=canvas_registration, deployment_id="1:abc")

    personas.client("admin").post(
        reverse("admin:lti_tool_ltideployment_changelist"),
        {"action": "activate", "_selected_action": [waiting.pk]},
    )

    waiting.refresh_from_db()
    assert waiting.is_active


def test_the_lms_admin_is_for_administrators_only(personas, canvas_registration):
    response = personas.client("instructor").get(reverse("admin:lti_tool_ltiregistration_changelist"))

    assert response.status_code == 302
