from django.db import transaction

from accounts_app.choices import AuditAction
from accounts_app.models import User
from accounts_app.services.audit import audit_record


@transaction.atomic
def user_set_instructor(*, actor: User | None, user: User, is_instructor: bool) -> User:
    """Grant or take away the right to create courses."""
    if user.is_instructor == is_instructor:
        return user
    user.is_instructor = is_instructor
    user.save(update_fields=["is_instructor"])
    verb = "may now create courses" if is_instructor else "may no longer create courses"
    audit_record(
        actor=actor,
        action=AuditAction.INSTRUCTOR_GRANTED if is_instructor else AuditAction.INSTRUCTOR_REVOKED,
        target=user,
        summary=f"{user.email} {verb}",
    )
    return user
