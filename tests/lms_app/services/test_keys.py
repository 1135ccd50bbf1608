"""There is always a key the portal signs with: made when there is none, once, and audited."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command
from lti_tool.models import Key

from accounts_app.choices import AuditAction
from accounts_app.models import AuditEvent
from lms_app.services.keys import lti_key_ensure


def test_a_key_is_made_when_there_is_none_and_only_then(db):
    first = lti_key_ensure(actor=None)
    again = lti_key_ensure(actor=None)

    assert first is not None and again is None
    assert list(Key.objects.active()) == [first]
    [event] = AuditEvent.objects.filter(action=AuditAction.LTI_KEY_CREATED)
    assert event.actor_label == "system" and event.data["kid"] == str(first)


def test_a_key_is_made_when_every_key_there_is_was_deactivated(db):
    old = Key.objects.generate()
    Key.objects.filter(pk=old.pk).update(is_active=False)

    new = lti_key_ensure(actor=None)

    assert new is not None and list(Key.objects.active()) == [new]


def test_the_command_makes_the_key_once_and_says_so(db):
    first, second = StringIO(), StringIO()

    call_command("lti_keys_ensure", stdout=first)
    call_command("lti_keys_ensure", stdout=second)

    assert "Created LTI signing key" in first.getvalue()
    assert "nothing to do" in second.getvalue()
    assert Key.objects.count() == 1
    # The key is what platforms read at the JWKS URL.
    assert Key.objects.as_jwks()["keys"][0]["kid"] == str(Key.objects.get())
