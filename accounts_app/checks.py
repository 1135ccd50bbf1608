"""Settings checked by `manage.py check` and at every start, before AWS would refuse them."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register

from accounts_app.naming import root_email_pattern_problems


@register()
def root_email_pattern_check(app_configs=None, **kwargs) -> list[Error]:
    pattern = settings.PORTAL_ROOT_EMAIL_PATTERN
    return [
        Error(
            f"PORTAL_ROOT_EMAIL_PATTERN {pattern!r} cannot be used: {problem}.",
            hint="Example: aws+{course}-{student}@school.example.edu",
            id="accounts_app.E001",
        )
        for problem in root_email_pattern_problems(pattern)
    ]
