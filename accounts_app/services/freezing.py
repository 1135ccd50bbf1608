"""The freeze SCP follows the account's state, never the other way round.

Freezing, unfreezing, the end of a course and its extension move the record first (a
compare-and-swap that also sets `freeze_sync_pending`) and queue `account_freeze_sync_task`.
The task reads the state when it runs and makes AWS match it, through the gate: the deny-all
SCP attached to a frozen or ended account, detached from a ready one, and nothing done in any
other state. It is safe to repeat and to run late, and the web tier never waits for AWS. The
reconciler compares the SCP's targets with the records and queues the task where they differ.

The SCP denies new requests only: once it is in place (or off again), the task queues the step
that stops what the account runs, or brings it back (services/spending.py). That step is a task
of its own, retried on its own, so that it never holds the SCP up.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from accounts_app.choices import AccountState as S
from accounts_app.models import MemberAccount
from accounts_app.services.gates import ALLOWED_STATES, Action, StateRefused, action_gate
from accounts_app.services.guardrails import freeze_policy_id, organization_ready
from accounts_app.services.ownership import NotOurs
from accounts_app.services.spending import spending_sync_enqueue
from portal.aws import organizations
from portal.aws.errors import PermanentAwsError

logger = logging.getLogger(__name__)

MUST_BE_FROZEN = ALLOWED_STATES[Action.FREEZE]
MUST_BE_OPEN = ALLOWED_STATES[Action.UNFREEZE]
# A state that keeps changing while the task acts is followed this many times; after that the
# newest transition's own task finishes the job.
MAX_ROUNDS = 3
# A pending change younger than this is left to its own task by the reconciler.
TASK_GRACE = timedelta(minutes=10)


def freeze_sync_enqueue(account: MemberAccount) -> None:
    from accounts_app.tasks import account_freeze_sync_task

    account_freeze_sync_task.delay_on_commit(account.pk)


def _wanted(state: str) -> Action | None:
    if state in MUST_BE_FROZEN:
        return Action.FREEZE
    if state in MUST_BE_OPEN:
        return Action.UNFREEZE
    return None


def account_freeze_sync(*, account_id: int) -> bool:
    """Make the account's freeze SCP match its state. Returns whether AWS matches it now (or the
    state asks nothing of it; False when the record is gone). A transient AWS error propagates for
    the task to retry; a refusal is kept in `last_error` for staff, and the record stays marked
    pending."""
    organization = organization_ready()
    for _ in range(MAX_ROUNDS):
        # Read at the start of each round: a round only follows a state that moved while the
        # previous one acted, and acts on the state as it is now.
        record = MemberAccount.objects.select_related("course").filter(pk=account_id).first()
        if record is None:
            return False
        wanted = _wanted(record.state)
        if wanted is None:
            MemberAccount.objects.filter(pk=record.pk, state=record.state).update(freeze_sync_pending=False)
            return True
        try:
            action_gate(record, action=wanted, organization=organization)
            if wanted == Action.FREEZE:
                organizations.attach_policy(freeze_policy_id(), record.aws_account_id)
            else:
                organizations.detach_policy(freeze_policy_id(), record.aws_account_id)
        except StateRefused:
            continue  # the state moved under us: look again
        except NotOurs as error:
            return _refused(record, str(error))
        except PermanentAwsError as error:
            return _refused(record, f"AWS refused to {wanted} the account: {error.message}")
        # Done only if the state is still the one acted on; otherwise the next round follows it.
        done = MemberAccount.objects.filter(pk=record.pk, state=record.state)
        if done.update(freeze_sync_pending=False, last_error=""):
            spending_sync_enqueue(record)
            return True
    return False


def _refused(account: MemberAccount, message: str) -> bool:
    logger.warning("Freeze SCP of %s not changed: %s", account.account_name, message)
    MemberAccount.objects.filter(pk=account.pk).update(last_error=message)
    return False


def freeze_reconcile(*, now: datetime | None = None) -> list[str]:
    """Compare the freeze SCP's targets in AWS with every in-use record, queue the sync task
    where they differ, and return the drift found. (Called by the reconciler.)"""
    now = now or timezone.now()
    attached = organizations.policy_targets(freeze_policy_id())
    drift: list[str] = []
    accounts = MemberAccount.objects.filter(state__in=MUST_BE_FROZEN | MUST_BE_OPEN).exclude(aws_account_id=None)
    for account in accounts.select_related("course"):
        frozen_in_aws = account.aws_account_id in attached
        if frozen_in_aws == (account.state in MUST_BE_FROZEN):
            continue
        if account.freeze_sync_pending and account.state_changed_at > now - TASK_GRACE:
            continue  # its task is on the way
        where = f"{account.account_name} ({account.aws_account_id}) is {S(account.state).label.lower()}"
        if frozen_in_aws and not account.freeze_sync_pending and _budget_action_on(account):
            # AWS Budgets' own action froze it at 100% of its budget; the next cost sync records
            # the freeze. Taking the SCP off would undo the course's budget action.
            drift.append(f"{where} here, but AWS Budgets' action has frozen it in AWS.")
            continue
        scp = "on" if frozen_in_aws else "off"
        drift.append(f"{where} here, but its freeze SCP is {scp} in AWS: setting it right.")
        MemberAccount.objects.filter(pk=account.pk).update(freeze_sync_pending=True)
        freeze_sync_enqueue(account)
    return drift


def _budget_action_on(account: MemberAccount) -> bool:
    course = account.course
    return bool(course and course.budget_action_enabled and settings.PORTAL_AWS_BUDGET_ACTION_ROLE_ARN)
