from __future__ import annotations

from typing import Any

from django.db import models

from accounts_app.choices import AuditAction
from accounts_app.models import AuditEvent, Course


def actor_label(actor) -> str:
    return actor.email if actor is not None else "system"


def audit_record(
    *,
    actor,
    action: AuditAction,
    summary: str,
    course: Course | None = None,
    target: models.Model | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one line to the audit log. Call it inside the transaction of the change it records."""
    return AuditEvent.objects.create(
        actor=actor,
        actor_label=actor_label(actor),
        course=course,
        action=action,
        object_type=target._meta.model_name if target is not None else "",
        object_id=str(target.pk) if target is not None else "",
        summary=summary[:500],
        data=data or {},
    )
