"""What `manage.py migrate` and `manage.py check --database default` say about LTI: a registered
LMS with no key to sign with cannot launch anyone."""

from __future__ import annotations

from collections.abc import Iterable

from django.core import checks
from django.db import connections
from lti_tool.models import Key, LtiRegistration


@checks.register(checks.Tags.database)
def lti_signing_key_check(app_configs=None, databases: Iterable[str] | None = None, **kwargs) -> list[checks.Warning]:
    warnings = []
    for alias in databases or []:
        # migrate runs this before it creates the tables.
        tables = set(connections[alias].introspection.table_names())
        if not {LtiRegistration._meta.db_table, Key._meta.db_table} <= tables:
            continue
        if LtiRegistration.objects.using(alias).active().exists() and not Key.objects.using(alias).active().exists():
            warnings.append(
                checks.Warning(
                    "LMS platforms are registered but the portal has no active LTI signing key: "
                    "every launch fails at login initiation.",
                    hint='Run `python manage.py lti_keys_ensure` (docs/LMS.md, "Signing keys").',
                    id="lms_app.W001",
                )
            )
    return warnings
