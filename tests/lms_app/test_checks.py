"""`migrate` and `check --database default` warn when a registered LMS has no key to verify the
portal with."""

from __future__ import annotations

from io import StringIO

from django.core.checks import run_checks
from django.core.management import call_command
from lti_tool.models import Key, LtiRegistration

from lms_app.services.keys import lti_key_ensure


def lti_warnings() -> list[str]:
    return [message.id for message in run_checks(tags=["database"], databases=["default"]) if message.id]


def test_no_warning_before_any_lms_is_registered(db):
    assert "lms_app.W001" not in lti_warnings()


def test_a_registered_lms_without_an_active_key_is_warned_of(canvas_registration):
    assert "lms_app.W001" in lti_warnings()

    lti_key_ensure(actor=None)

    assert "lms_app.W001" not in lti_warnings()


def test_a_registration_turned_off_needs_no_key(canvas_registration):
    LtiRegistration.objects.update(is_active=False)

    assert "lms_app.W001" not in lti_warnings()


def test_the_warning_names_the_command_that_fixes_it(canvas_registration):
    Key.objects.all().delete()
    errors = StringIO()

    call_command("check", "--database", "default", stdout=StringIO(), stderr=errors)

    assert "lms_app.W001" in errors.getvalue() and "lti_keys_ensure" in errors.getvalue()
