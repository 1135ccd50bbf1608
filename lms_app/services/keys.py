"""The key pair the portal signs with as an LTI tool (django-lti's `Key`): there is always one.

Platforms verify what the portal signs (its service token requests, deep linking answers) with
the public keys at `lms:jwks`; without an active key nothing can be signed and every launch fails
at login initiation. Rotation is django-lti's `rotate_keys` (docs/LMS.md, "Signing keys").
"""

from __future__ import annotations

from django.db import transaction
from lti_tool.models import Key

from accounts_app.choices import AuditAction
from accounts_app.services.audit import audit_record


def lti_key_ensure(*, actor) -> Key | None:
    """Create a key pair when there is no active one; the new key, or None when one was there.

    Two processes starting at once may both create one: two active keys are both published and
    the newest signs, which is what a rotation leaves too.
    """
    if Key.objects.active().exists():
        return None
    with transaction.atomic():
        key = Key.objects.generate()
        audit_record(
            actor=actor,
            action=AuditAction.LTI_KEY_CREATED,
            summary=f"LTI signing key {key} created: there was no active key.",
            target=key,
            data={"kid": str(key)},
        )
    return key
