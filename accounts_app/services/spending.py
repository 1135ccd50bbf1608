"""A frozen account stops spending: what runs in it is stopped, and brought back when it is unfrozen.

The freeze SCP (services/freezing.py) denies new requests, but what already runs keeps billing, and
the portal's own member role, which the SCP exempts, is the one that can stop it. Once the SCP step
is done, `account_spending_sync_task` runs the step the account's state asks for, behind the same
gate (FREEZE or UNFREEZE), in every region the cleanup looks in:

- frozen or ended: Auto Scaling groups scaled to zero, EC2 instances and SageMaker notebook
  instances stopped, SageMaker endpoints deleted (their configs kept), Aurora clusters and RDS DB
  instances stopped (portal/aws/spending.py);
- ready again: what the portal stopped is brought back, where it is still as the freeze left it.

`MemberAccount.spending_report` is the note of it, for the student, staff and the next step: each
resource is written down (with what it takes to bring it back) before the call that stops it, so a
retried or crashed step never forgets what the portal stopped, and an unfreeze brings back exactly
those. AWS's refusals are kept in the note and in the account's `last_error`; each step that changes
something appends to the audit log. One step at a time runs per account.

The reconciler queues the step where its task was lost, and runs it again once a day in every
account still frozen: AWS starts a stopped RDS DB instance or Aurora cluster by itself after seven
days.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts_app import tasks
from accounts_app.choices import STAFF_ROLES, AuditAction, SpendingStatus, WebhookTopic
from accounts_app.models import AccountEvent, MemberAccount
from accounts_app.selectors import account_spending
from accounts_app.services.audit import audit_record
from accounts_app.services.cleanup import cleanup_regions
from accounts_app.services.gates import ALLOWED_STATES, Action, StateRefused, action_gate, state_gate
from accounts_app.services.guardrails import organization_ready
from accounts_app.services.notifications import absolute_url, email_send
from accounts_app.services.ownership import NotOurs
from accounts_app.services.webhooks import account_data, account_link, account_name, webhooks_send
from accounts_app.webhook_formats import Notice
from portal.aws import spending as aws_spending
from portal.aws.display import SPENDING_KIND_LABELS
from portal.aws.errors import PermanentAwsError, TransientAwsError
from portal.aws.spending import Billing

logger = logging.getLogger(__name__)

MUST_BE_STOPPED = ALLOWED_STATES[Action.FREEZE]
MUST_RUN_AGAIN = ALLOWED_STATES[Action.UNFREEZE]

STOPPING, STOPPED, NOT_STOPPED = SpendingStatus.STOPPING, SpendingStatus.STOPPED, SpendingStatus.NOT_STOPPED
RESTORED, NOT_RESTORED = SpendingStatus.RESTORED, SpendingStatus.NOT_RESTORED
STOPPED_BY_THE_PORTAL = frozenset({STOPPING, STOPPED})

# How `last_error` says that this step, not another, wrote it: a later step that succeeds clears it.
ERROR_PREFIX = "Not stopped in AWS: "
RESTORE_ERROR_PREFIX = "Not brought back in AWS: "
# Longer than any step (a few calls per region and resource); a worker that dies holding it delays
# the next step by this much at most.
LOCK_SECONDS = 15 * 60
# A state change younger than this is left to its own task by the reconciler.
TASK_GRACE = timedelta(minutes=10)


def spending_sync_enqueue(account: MemberAccount) -> None:
    tasks.account_spending_sync_task.delay_on_commit(account.pk)


def account_spending_sync(*, account_id: int) -> None:
    """Stop what a frozen or ended account runs, or bring back in a ready one what its freeze
    stopped. A transient AWS error (or another step of the account still running) propagates for
    the task to retry; the note says how far the step got, and the retry goes on from there."""
    lock = f"spending-step:{account_id}"
    if not cache.add(lock, 1, timeout=LOCK_SECONDS):
        raise TransientAwsError("Another step is stopping or bringing back what this account runs.")
    try:
        # Read once the lock is held: the note is then the one the previous step left.
        account = MemberAccount.objects.select_related("course", "membership").filter(pk=account_id).first()
        if account is None or not account.aws_account_id:
            return
        if account.state in MUST_BE_STOPPED:
            _stop_all(account)
        elif account.state in MUST_RUN_AGAIN:
            _restore_all(account)
    finally:
        cache.delete(lock)


# --- The freeze: stop ----------------------------------------------------------------------------


def _stop_all(account: MemberAccount) -> None:
    report = _report_for_freeze(account.spending_report)
    try:
        action_gate(account, action=Action.FREEZE, organization=organization_ready())
        regions = cleanup_regions(account.aws_account_id)
    except StateRefused:
        return  # unfrozen meanwhile: the unfreeze's own step follows
    except NotOurs as error:
        return _refused(account, report, str(error))
    except PermanentAwsError as error:
        return _refused(account, report, f"AWS refused to list the account's regions: {error.message}")
    before = {entry_key(e): e["status"] for e in report["resources"]}
    report["errors"] = []
    running: dict[str, set[str]] = {}  # region read → keys of what was running there
    try:
        for region in regions:
            if (found := _stop_region(account, report, region)) is not None:
                running[region] = found
    except StateRefused:
        return
    _stop_finished(account, report, before, running)


def _report_for_freeze(report: dict) -> dict:
    """The note this freeze writes to: the current one, or a new one once the last freeze's
    resources were brought back."""
    if not report or report.get("restored_at"):
        return {"resources": [], "errors": []}
    return {"resources": [], "errors": [], **report}


def _stop_region(account: MemberAccount, report: dict, region: str) -> set[str] | None:
    """Stop what runs in one region. Returns the keys of what it found running (None: AWS refused
    to list the region)."""
    try:
        found = aws_spending.running(account.aws_account_id, region)
    except PermanentAwsError as error:
        report["errors"].append(f"{region} could not be read: {error.message}")
        return None
    for item in found:
        state_gate(account, action=Action.FREEZE)  # an unfreeze stops the step between two calls
        entry = _written_down(report, item)
        _save(account, report)
        try:
            changed = aws_spending.stop(account.aws_account_id, item)
        except PermanentAwsError as error:
            entry.update(status=NOT_STOPPED, reason=error.message, at=_now())
        else:
            entry.update(status=STOPPED, reason="", at=_now(), memory={**entry["memory"], **changed})
        _save(account, report)
    return {item.key for item in found}


def _written_down(report: dict, item: Billing) -> dict:
    """The note's entry for `item`, marked as being stopped. An entry the portal already stopped
    keeps its memory (an Auto Scaling group AWS or a schedule scaled out again still goes back to
    the sizes it had before the freeze)."""
    for entry in report["resources"]:
        if entry_key(entry) == item.key:
            if entry["status"] not in STOPPED_BY_THE_PORTAL:
                entry["memory"] = item.memory
            entry.update(status=STOPPING, label=item.label)
            return entry
    entry = {**item.as_dict(), "status": STOPPING, "reason": "", "at": _now()}
    report["resources"].append(entry)
    return entry


def _stop_finished(account: MemberAccount, report: dict, before: dict[str, str], running: dict[str, set[str]]) -> None:
    for entry in list(report["resources"]):
        if entry["region"] not in running or entry_key(entry) in running[entry["region"]]:
            continue
        # No longer running, in a region this step read through.
        if entry["status"] == STOPPING:
            entry["status"] = STOPPED  # an earlier, interrupted step stopped it
        elif entry["status"] == NOT_STOPPED:
            report["resources"].remove(entry)  # gone or stopped otherwise: it bills no more
    report["checked_at"] = _now()
    found = set().union(*running.values())
    # New in the note, or with a new outcome, or stopped once more (AWS started an RDS DB again).
    changed = [
        e
        for e in report["resources"]
        if e["status"] != before.get(entry_key(e)) or (e["status"] == STOPPED and entry_key(e) in found)
    ]
    first_note = not report.get("notified_at") and bool(report["resources"])
    if first_note:
        report["notified_at"] = report["checked_at"]
    with transaction.atomic():
        _save(account, report, last_error=_problems(report))
        if changed:
            audit_record(
                actor=None,
                action=AuditAction.SPENDING_STOPPED,
                course=account.course,
                target=account,
                summary=f"{account.account_name}: {_summary(changed)}",
                data={"resources": changed},
            )
        if first_note:
            transaction.on_commit(lambda: _notify(account, report))


def _problems(report: dict) -> str:
    refused = [f"{_what(e)}: {e['reason']}" for e in report["resources"] if e["status"] == NOT_STOPPED]
    problems = refused + report.get("errors", [])
    return ERROR_PREFIX + "; ".join(problems) if problems else ""


def _refused(account: MemberAccount, report: dict, message: str) -> None:
    logger.warning("What %s runs was not stopped: %s", account.account_name, message)
    report.update(errors=[message], checked_at=_now())
    _save(account, report, last_error=ERROR_PREFIX + message)


# --- The unfreeze: bring back ---------------------------------------------------------------------


def _restore_all(account: MemberAccount) -> None:
    report = account.spending_report
    if not report or report.get("restored_at"):
        return
    try:
        action_gate(account, action=Action.UNFREEZE, organization=organization_ready())
    except StateRefused:
        return  # frozen again meanwhile: what was stopped stays stopped
    except NotOurs as error:
        logger.warning("What the freeze of %s stopped was not brought back: %s", account.account_name, error)
        report.update(errors=[str(error)], checked_at=_now())
        return _save(account, report, last_error=RESTORE_ERROR_PREFIX + str(error))
    waiting = [e for e in report["resources"] if e["status"] in STOPPED_BY_THE_PORTAL]
    # Databases first, Auto Scaling groups last: the reverse of the order they were stopped in.
    waiting.sort(key=lambda e: -aws_spending.KINDS.index(e["kind"]))
    try:
        for entry in waiting:
            state_gate(account, action=Action.UNFREEZE)
            _restore_one(account, report, entry)
    except StateRefused:
        return
    report.update(restored_at=_now(), checked_at=_now(), errors=[])
    with transaction.atomic():
        _save(account, report, last_error="")
        if waiting:
            audit_record(
                actor=None,
                action=AuditAction.SPENDING_RESTORED,
                course=account.course,
                target=account,
                summary=f"{account.account_name}: {_summary(waiting)}",
                data={"resources": waiting},
            )


def _restore_one(account: MemberAccount, report: dict, entry: dict) -> None:
    try:
        reason = aws_spending.restore(account.aws_account_id, Billing.from_dict(entry))
    except PermanentAwsError as error:
        reason = error.message
    entry.update(status=NOT_RESTORED if reason else RESTORED, reason=reason, at=_now())
    _save(account, report)


# --- The reconciler -------------------------------------------------------------------------------


def spending_reconcile(*, now: datetime | None = None) -> list[str]:
    """Queue the step for accounts whose step never ran since their last freeze or unfreeze (a lost
    task), and for frozen accounts not looked at for PORTAL_SPENDING_RECHECK_HOURS, at most
    PORTAL_SPENDING_CHECKS_PER_RUN a run, the longest unchecked first. Returns the drift found."""
    now = now or timezone.now()
    recheck = now - timedelta(hours=settings.PORTAL_SPENDING_RECHECK_HOURS)
    due: list[tuple[str, MemberAccount, bool]] = []
    for account in _candidates(now):
        checked = _checked(account.spending_report)
        never = checked is None or checked < account.state_changed_at
        if never or checked < recheck:
            due.append((checked.isoformat() if checked else "", account, never))
    due.sort(key=lambda found: found[0])
    drift = []
    for _, account, never in due[: settings.PORTAL_SPENDING_CHECKS_PER_RUN]:
        if never:
            drift.append(_lost_step(account))
        spending_sync_enqueue(account)
    return drift


def _candidates(now: datetime) -> list[MemberAccount]:
    """Frozen and ended accounts, and ready ones with resources their freeze stopped still to bring
    back, whose state has not changed for TASK_GRACE (a task on its way is not doubled)."""
    settled = MemberAccount.objects.exclude(aws_account_id=None).filter(state_changed_at__lt=now - TASK_GRACE)
    frozen = list(settled.filter(state__in=MUST_BE_STOPPED))
    unfrozen = settled.filter(state__in=MUST_RUN_AGAIN, spending_report__has_key="resources").exclude(
        spending_report__has_key="restored_at"
    )
    waiting = [a for a in unfrozen if any(e["status"] in STOPPED_BY_THE_PORTAL for e in a.spending_report["resources"])]
    return frozen + waiting


def _lost_step(account: MemberAccount) -> str:
    if account.state in MUST_BE_STOPPED:
        return f"{account.account_name} is frozen, but what it runs was not stopped yet: stopping it."
    return f"{account.account_name} is ready, but what its freeze stopped was not brought back yet: bringing it back."


# --- The note -------------------------------------------------------------------------------------


def entry_key(entry: dict) -> str:
    return f"{entry['region']}/{entry['kind']}/{entry['id']}"


def _what(entry: dict) -> str:
    return f"{SPENDING_KIND_LABELS[entry['kind']]} {entry['label'] or entry['id']} in {entry['region']}"


def _outcome(entry: dict) -> str:
    return f"{_what(entry)}: {entry['status']}" + (f" ({entry['reason']})" if entry["reason"] else "")


def _summary(entries: list[dict]) -> str:
    return "; ".join(_outcome(e) for e in entries)


def _checked(report: dict | None) -> datetime | None:
    moment = (report or {}).get("checked_at")
    return datetime.fromisoformat(moment) if moment else None


def _now() -> str:
    return timezone.now().isoformat()


def _save(account: MemberAccount, report: dict, *, last_error: str | None = None) -> None:
    """Keep the note. With `last_error`, also set (or clear, "") this module's own error; another
    step's error is left as it is."""
    account.spending_report = report
    MemberAccount.objects.filter(pk=account.pk).update(spending_report=report)
    if last_error is None:
        return
    if last_error:
        MemberAccount.objects.filter(pk=account.pk).update(last_error=last_error)
    else:
        own = Q(last_error__startswith=ERROR_PREFIX) | Q(last_error__startswith=RESTORE_ERROR_PREFIX)
        MemberAccount.objects.filter(own, pk=account.pk).update(last_error="")


def _notify(account: MemberAccount, report: dict) -> None:
    """Tell the student and the course's staff (instructors, TAs, the usage contact) what the
    freeze stopped, why the account was frozen, and how to get more."""
    course = account.course
    recipients = {course.usage_alert_email} if course.usage_alert_email else set()
    recipients |= set(course.memberships.filter(role__in=STAFF_ROLES).values_list("email", flat=True))
    if account.membership is not None:
        recipients.add(account.membership.email)
    spending, why = account_spending(account=account), _why_frozen(account)
    ask_link = absolute_url("billing:my_costs", course_id=course.pk) + "#budget-request"
    context = {"account": account, "course": course, "spending": spending, "why": why, "ask_link": ask_link}
    email_send("spending_stopped", context, recipients)
    webhooks_send(course=course, topic=WebhookTopic.FREEZES, notice=_notice(account, spending, why))


def _why_frozen(account: MemberAccount) -> str:
    """The reason given when the account was moved to the state it is in (the budget, a course
    limit, an instructor, the end of the course)."""
    events = AccountEvent.objects.filter(account=account, to_state=account.state).order_by("-created_at", "-id")
    return events.values_list("reason", flat=True).first() or ""


NOTICE_LINES = 10  # a chat message names the first ones; the page has them all


def _notice(account: MemberAccount, spending, why: str) -> Notice:
    stopped = [line for line in spending.lines if line.status != SpendingStatus.NOT_STOPPED]
    refused = spending.not_stopped
    text = f"So that the frozen account stops costing money, the portal stopped {len(stopped)} resource(s)."
    if refused:
        text += f" AWS refused to stop {len(refused)}: they keep costing money."
    facts = [
        ("Course", f"{account.course.name} ({account.course.code})"),
        ("AWS account", account.aws_account_id or ""),
    ]
    if why:
        facts.append(("Frozen", why))
    facts += [
        (f"{line.what} in {line.region}", f"{line.name}: {line.reason or line.status}")
        for line in [*refused, *stopped][:NOTICE_LINES]
    ]
    resources = [
        {"what": line.what, "name": line.name, "region": line.region, "status": line.status, "reason": line.reason}
        for line in spending.lines
    ]
    return Notice(
        event="account.spending_stopped",
        title=f"{account.course.code}: what ran in {account_name(account)}'s frozen AWS account was stopped",
        text=text,
        link=account_link(account),
        link_label="Open the account's page",
        facts=tuple(facts),
        data={**account_data(account), "resources": resources},
    )
