"""Thin Celery tasks: ids in, one service call. AWS hiccups (TransientAwsError, including lost
answers) are retried with jittered exponential backoff; everything else is the service's to
record on the account. Email goes out through `emails_deliver_task` only.

Each task imports its service inside its body: services import `accounts_app.next_step`, which
imports this module when it loads (see there)."""

import logging
from typing import Any

from celery import shared_task
from celery.utils.time import get_exponential_backoff_interval
from django.core.cache import cache

from portal.aws.errors import TransientAwsError

logger = logging.getLogger(__name__)

AWS_TASK: dict[str, Any] = {
    "autoretry_for": (TransientAwsError,),
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 12,
}
DISPATCH_SCHEDULED_KEY = "vending:dispatch-scheduled"
# A mail server that fails is tried again with jittered exponential backoff, at most an hour
# apart (below the broker's two-hour visibility timeout, past which a waiting retry would be
# delivered twice), 48 times: for about a day.
EMAIL_RETRY_BACKOFF = 2
EMAIL_RETRY_BACKOFF_MAX = 60 * 60
EMAIL_MAX_RETRIES = 48


def _account(account_id: int):
    from accounts_app.models import MemberAccount

    return MemberAccount.objects.filter(pk=account_id).first()


@shared_task(bind=True, max_retries=EMAIL_MAX_RETRIES)
def emails_deliver_task(self, messages: list[dict]) -> None:
    """Send queued emails. When the server fails part-way, the retry carries only the messages
    not sent yet (Celery's autoretry would send the first ones again)."""
    from accounts_app.services.notifications import EmailsUndelivered, emails_deliver

    try:
        emails_deliver(messages)
    except EmailsUndelivered as undelivered:
        if self.request.retries >= self.max_retries:
            logger.error(
                "Gave up sending %d email(s) after %d attempts: %s",
                len(undelivered.remaining),
                self.request.retries + 1,
                [(message["subject"], message["to"]) for message in undelivered.remaining],
            )
        countdown = get_exponential_backoff_interval(
            EMAIL_RETRY_BACKOFF, self.request.retries, EMAIL_RETRY_BACKOFF_MAX, full_jitter=True
        )
        raise self.retry(args=(undelivered.remaining,), exc=undelivered.__cause__, countdown=countdown) from undelivered


@shared_task
def invitations_send_task(member_ids: list[int], actor_id: int | None) -> int:
    from accounts_app.models import User
    from accounts_app.services.invitations import invitations_send

    actor = User.objects.filter(pk=actor_id).first() if actor_id else None
    return invitations_send(actor=actor, member_ids=member_ids)


@shared_task(**AWS_TASK)
def vending_dispatch_task() -> None:
    from accounts_app.services.vending_queue import vending_dispatch

    result = vending_dispatch()
    # One scheduled follow-up at a time, however many requests asked for a dispatch.
    if result.retry_in is not None and cache.add(DISPATCH_SCHEDULED_KEY, 1, timeout=max(result.retry_in - 0.5, 0.5)):
        vending_dispatch_task.apply_async(countdown=result.retry_in)


@shared_task(**AWS_TASK)
def account_poll_task(account_id: int) -> None:
    from accounts_app.services.vending_queue import account_poll_creation

    if (account := _account(account_id)) and (delay := account_poll_creation(account=account)) is not None:
        account_poll_task.apply_async((account_id,), countdown=delay)


@shared_task(**AWS_TASK)
def account_configure_task(account_id: int) -> None:
    from accounts_app.services.account_setup import account_configure

    if account := _account(account_id):
        account_configure(account=account)


@shared_task(**AWS_TASK)
def account_invite_task(account_id: int) -> None:
    from accounts_app.services.invited_accounts import account_invite

    if account := _account(account_id):
        account_invite(account=account)


@shared_task(**AWS_TASK)
def account_verify_access_role_task(account_id: int, actor_id: int | None) -> None:
    from accounts_app.models import User
    from accounts_app.services.invited_accounts import account_verify_access_role

    if account := _account(account_id):
        actor = User.objects.filter(pk=actor_id).first() if actor_id else None
        account_verify_access_role(actor=actor, account=account)


@shared_task(**AWS_TASK)
def account_check_invitation_task(account_id: int) -> None:
    from accounts_app.services.invited_accounts import account_check_invitation

    if account := _account(account_id):
        account_check_invitation(account=account)


@shared_task(**AWS_TASK)
def course_guardrails_task(course_id: int) -> None:
    from accounts_app.models import Course
    from accounts_app.services.guardrails import course_guardrails_apply

    course = Course.objects.filter(pk=course_id).first()
    if course is not None:
        course_guardrails_apply(actor=None, course=course)


@shared_task(**AWS_TASK)
def staff_access_sync_task(course_id: int, email: str) -> None:
    from accounts_app.models import Course
    from accounts_app.services.staff_access import staff_access_sync

    if course := Course.objects.filter(pk=course_id).first():
        staff_access_sync(course=course, email=email)


@shared_task(**AWS_TASK)
def reconcile_task() -> None:
    from accounts_app.services.reconcile import reconcile

    reconcile()


@shared_task(**AWS_TASK)
def cost_tags_activate_task() -> None:
    from accounts_app.services.bootstrap import cost_tags_activate

    cost_tags_activate()


# --- End of course --------------------------------------------------------------------------------


@shared_task(**AWS_TASK)
def courses_end_tick_task() -> None:
    from accounts_app.services.ending import courses_end_tick
    from accounts_app.services.recycling import pool_release_cooled

    courses_end_tick()
    pool_release_cooled()


@shared_task(**AWS_TASK)
def account_end_task(account_id: int) -> None:
    from accounts_app.services.ending import account_end

    if account := _account(account_id):
        account_end(account=account)


@shared_task(**AWS_TASK)
def account_unend_task(account_id: int) -> None:
    from accounts_app.services.ending import account_unend

    if account := _account(account_id):
        account_unend(account=account)


@shared_task(**AWS_TASK)
def account_freeze_sync_task(account_id: int) -> None:
    from accounts_app.services.freezing import account_freeze_sync

    if account := _account(account_id):
        account_freeze_sync(account=account)


@shared_task(**AWS_TASK)
def account_spending_sync_task(account_id: int) -> None:
    from accounts_app.services.spending import account_spending_sync

    if account := _account(account_id):
        account_spending_sync(account=account)


@shared_task(**AWS_TASK)
def account_cleanup_preview_task(account_id: int) -> None:
    from accounts_app.services.cleanup import account_cleanup_preview

    if account := _account(account_id):
        account_cleanup_preview(account=account)


@shared_task(**AWS_TASK)
def account_cleanup_task(account_id: int) -> None:
    from accounts_app.services.cleanup import account_clean

    if (account := _account(account_id)) and (delay := account_clean(account=account)) is not None:
        account_cleanup_task.apply_async((account_id,), countdown=delay)


@shared_task(**AWS_TASK)
def account_recycle_task(account_id: int) -> None:
    from accounts_app.services.recycling import account_recycle

    if account := _account(account_id):
        account_recycle(account=account)


CLOSE_SCHEDULED_KEY = "closing:dispatch-scheduled"


@shared_task(**AWS_TASK)
def close_dispatch_task() -> None:
    from accounts_app.services.closing import close_dispatch

    retry_in = close_dispatch()
    # One scheduled follow-up at a time, however many closures asked for a dispatch.
    if retry_in is not None and cache.add(CLOSE_SCHEDULED_KEY, 1, timeout=max(retry_in - 0.5, 0.5)):
        close_dispatch_task.apply_async(countdown=retry_in)


@shared_task(**AWS_TASK)
def account_poll_closure_task(account_id: int) -> None:
    from accounts_app.services.closing import account_poll_closure

    if (account := _account(account_id)) and (delay := account_poll_closure(account=account)) is not None:
        account_poll_closure_task.apply_async((account_id,), countdown=delay)


@shared_task(**AWS_TASK)
def handover_advance_task(handover_id: int) -> None:
    from accounts_app.models import Handover
    from accounts_app.services.handover import handover_advance

    if handover := Handover.objects.filter(pk=handover_id).first():
        handover_advance(handover=handover)


@shared_task(**AWS_TASK)
def handover_return_task(handover_id: int) -> None:
    from accounts_app.models import Handover
    from accounts_app.services.handover import handover_return

    if handover := Handover.objects.filter(pk=handover_id).first():
        handover_return(handover=handover)


@shared_task(**AWS_TASK)
def handover_code_check_task(handover_id: int, actor_id: int | None) -> None:
    from accounts_app.models import Handover, User
    from accounts_app.services.handover import handover_code_check

    if handover := Handover.objects.filter(pk=handover_id).first():
        actor = User.objects.filter(pk=actor_id).first() if actor_id else None
        handover_code_check(actor=actor, handover=handover)
