"""Thin Celery tasks: ids in, one service call, which loads the row once (a row gone meanwhile is
no error: the service returns). AWS hiccups (TransientAwsError, including lost answers) are
retried with jittered exponential backoff; everything else is the service's to record on the
account. Email goes out through `emails_deliver_task` only, webhook messages
through `webhook_deliver_task`.

Each task imports its service inside its body: services import `accounts_app.next_step`, which
imports this module when it loads (see there)."""

import logging
from typing import Any

from celery import shared_task
from celery.contrib.django.task import DjangoTask
from celery.utils.time import get_exponential_backoff_interval
from django.core.cache import cache
from django.utils import timezone

from accounts_app.lifecycle import step_due
from accounts_app.models import MemberAccount
from portal.aws.errors import TransientAwsError

logger = logging.getLogger(__name__)

AWS_TASK: dict[str, Any] = {
    "autoretry_for": (TransientAwsError,),
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 12,
}


class AccountStepTask(DjangoTask):
    """The task that moves one account on from its state (next_step.NEXT_STEPS), given its id.

    Retried later (AWS throttled it, or its answer was lost), it moves the account's due time
    with the retry's countdown: beat's due tick leaves the retry to the broker, and queues the
    step again only if the broker loses it."""

    # The field of MemberAccount that the task's first argument is.
    account_field = "pk"

    def retry(self, *args, countdown=None, **kwargs):
        if countdown is not None and self.request.args:
            MemberAccount.objects.filter(**{self.account_field: self.request.args[0]}).update(
                next_attempt_at=step_due(timezone.now(), countdown)
            )
        return super().retry(*args, countdown=countdown, **kwargs)


class HandoverStepTask(AccountStepTask):
    account_field = "handover__pk"


ACCOUNT_STEP = {**AWS_TASK, "base": AccountStepTask}
# A mail server that fails is tried again with jittered exponential backoff, at most an hour
# apart (below the broker's two-hour visibility timeout, past which a waiting retry would be
# delivered twice), 48 times: for about a day.
EMAIL_RETRY_BACKOFF = 2
EMAIL_RETRY_BACKOFF_MAX = 60 * 60
EMAIL_MAX_RETRIES = 48
# A webhook receiver that is down or busy is tried again with jittered exponential backoff, at
# most an hour apart, 12 times: for about half a day. An alert older than that is news nobody
# needs in a channel; the email went, and the endpoint shows the failure to staff.
WEBHOOK_RETRY_BACKOFF = 30
WEBHOOK_RETRY_BACKOFF_MAX = 60 * 60
WEBHOOK_MAX_RETRIES = 12


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


@shared_task(bind=True, max_retries=WEBHOOK_MAX_RETRIES)
def webhook_deliver_task(self, delivery_id: int) -> None:
    """One attempt to post a webhook message; retried later while the receiver may recover."""
    from accounts_app.services.webhooks import WebhookRetry, webhook_deliver

    try:
        webhook_deliver(delivery_id=delivery_id, final=self.request.retries >= self.max_retries)
    except WebhookRetry as retry:
        countdown = get_exponential_backoff_interval(
            WEBHOOK_RETRY_BACKOFF, self.request.retries, WEBHOOK_RETRY_BACKOFF_MAX, full_jitter=True
        )
        raise self.retry(exc=retry, countdown=countdown) from retry


@shared_task
def invitations_send_task(member_ids: list[int], actor_id: int | None) -> int:
    from accounts_app.services.invitations import invitations_send

    return invitations_send(actor_id=actor_id, member_ids=member_ids)


@shared_task(**AWS_TASK)
def vending_dispatch_task() -> None:
    from accounts_app.services.vending_queue import vending_dispatch

    vending_dispatch()


@shared_task
def steps_due_task() -> None:
    from accounts_app.next_step import steps_due_enqueue

    steps_due_enqueue()


@shared_task(**ACCOUNT_STEP)
def account_configure_task(account_id: int) -> None:
    from accounts_app.services.account_setup import account_configure

    account_configure(account_id=account_id)


@shared_task(**ACCOUNT_STEP)
def account_invite_task(account_id: int) -> None:
    from accounts_app.services.invited_accounts import account_invite

    account_invite(account_id=account_id)


@shared_task(**AWS_TASK)
def account_verify_access_role_task(account_id: int, actor_id: int | None) -> None:
    from accounts_app.services.invited_accounts import account_verify_access_role

    account_verify_access_role(actor_id=actor_id, account_id=account_id)


@shared_task(**ACCOUNT_STEP)
def account_check_invitation_task(account_id: int) -> None:
    from accounts_app.services.invited_accounts import account_check_invitation

    account_check_invitation(account_id=account_id)


@shared_task(**AWS_TASK)
def course_guardrails_task(course_id: int) -> None:
    from accounts_app.services.guardrails import course_guardrails_sync

    course_guardrails_sync(course_id=course_id)


@shared_task(**AWS_TASK)
def staff_access_sync_task(course_id: int, email: str) -> None:
    from accounts_app.services.staff_access import staff_access_sync

    staff_access_sync(course_id=course_id, email=email)


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

    account_end(account_id=account_id)


@shared_task(**AWS_TASK)
def account_unend_task(account_id: int) -> None:
    from accounts_app.services.ending import account_unend

    account_unend(account_id=account_id)


@shared_task(**AWS_TASK)
def account_freeze_sync_task(account_id: int) -> None:
    from accounts_app.services.freezing import account_freeze_sync

    account_freeze_sync(account_id=account_id)


@shared_task(**AWS_TASK)
def account_spending_sync_task(account_id: int) -> None:
    from accounts_app.services.spending import account_spending_sync

    account_spending_sync(account_id=account_id)


@shared_task(**AWS_TASK)
def account_cleanup_preview_task(account_id: int) -> None:
    from accounts_app.services.cleanup import account_cleanup_preview

    account_cleanup_preview(account_id=account_id)


@shared_task(**ACCOUNT_STEP)
def account_cleanup_task(account_id: int) -> None:
    from accounts_app.choices import AccountState
    from accounts_app.next_step import step_enqueue_later
    from accounts_app.services.cleanup import account_clean

    if (delay := account_clean(account_id=account_id)) is not None:
        step_enqueue_later(account_id, state=AccountState.CLEANING, delay=delay)


@shared_task(**AWS_TASK)
def account_recycle_task(account_id: int) -> None:
    from accounts_app.services.recycling import account_recycle

    account_recycle(account_id=account_id)


CLOSE_SCHEDULED_KEY = "closing:dispatch-scheduled"


@shared_task(**AWS_TASK)
def close_dispatch_task() -> None:
    from accounts_app.services.closing import close_dispatch

    retry_in = close_dispatch()
    # One scheduled follow-up at a time, however many closures asked for a dispatch.
    if retry_in is not None and cache.add(CLOSE_SCHEDULED_KEY, 1, timeout=max(retry_in - 0.5, 0.5)):
        close_dispatch_task.apply_async(countdown=retry_in)


@shared_task(**ACCOUNT_STEP)
def account_poll_closure_task(account_id: int) -> None:
    from accounts_app.choices import AccountState
    from accounts_app.next_step import step_enqueue_later
    from accounts_app.services.closing import account_poll_closure

    if (delay := account_poll_closure(account_id=account_id)) is not None:
        step_enqueue_later(account_id, state=AccountState.CLOSING, delay=delay)


@shared_task(**AWS_TASK, base=HandoverStepTask)
def handover_advance_task(handover_id: int) -> None:
    from accounts_app.services.handover import handover_advance

    handover_advance(handover_id=handover_id)


@shared_task(**AWS_TASK)
def handover_return_task(handover_id: int) -> None:
    from accounts_app.services.handover import handover_return

    handover_return(handover_id=handover_id)


@shared_task(**AWS_TASK)
def handover_code_check_task(handover_id: int, actor_id: int | None) -> None:
    from accounts_app.services.handover import handover_code_check

    handover_code_check(actor_id=actor_id, handover_id=handover_id)
