"""Thin Celery tasks: ids in, one service call."""

from celery import shared_task


@shared_task(autoretry_for=(OSError,), retry_backoff=True, retry_jitter=True, max_retries=5)
def invitations_send_task(member_ids: list[int], actor_id: int | None) -> int:
    from accounts_app.models import User
    from accounts_app.services.invitations import invitations_send

    actor = User.objects.filter(pk=actor_id).first() if actor_id else None
    return invitations_send(actor=actor, member_ids=member_ids)
