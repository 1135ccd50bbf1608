"""A student asks for a higher budget; an instructor of the course approves or declines it.

The request is emailed to the course's instructors and usage contact and posted to the course's
and the school's webhooks, with a link to the page where an instructor decides in one click.
Approving raises the budget through `budget_raise_and_unfreeze` (the AWS Budget follows by its
task; an account its budget froze is unfrozen if the new budget is above its spend); the answer
is emailed to the student. Each step is audited; a request is decided once, whoever clicks
second finds it decided.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts_app.choices import AuditAction, CourseRole, WebhookTopic
from accounts_app.lifecycle import IN_USE_STATES
from accounts_app.models import MemberAccount
from accounts_app.services.audit import audit_record
from accounts_app.services.notifications import absolute_url, email_send
from accounts_app.services.webhooks import account_data, account_name, webhooks_send
from accounts_app.webhook_formats import Notice
from billing_app.models import BudgetRequest, BudgetRequestStatus
from billing_app.services.budgets import budget_amount, budget_raise_and_unfreeze

CENTS = Decimal("0.01")
# A declined student may ask again, but not so often that the instructors' mail fills with it.
REQUESTS_PER_DAY = 3


class BudgetRequestError(ValueError):
    """The request cannot be made or decided; the message says why, for the person who tried."""


def budget_request_create(*, actor, account: MemberAccount, amount: Decimal, reason: str) -> BudgetRequest:
    """Record the student's request and tell the course's staff."""
    amount = amount.quantize(CENTS)
    with transaction.atomic():
        # One request waits at a time: two clicks at once are made one after the other.
        accounts = MemberAccount.objects.select_for_update(of=("self",)).select_related("course", "membership")
        account = accounts.get(pk=account.pk)
        if account.state not in IN_USE_STATES:
            raise BudgetRequestError("Your account is not in use, so its budget cannot change.")
        waiting = BudgetRequest.objects.filter(account=account, status=BudgetRequestStatus.PENDING).first()
        if waiting is not None:
            raise BudgetRequestError(
                f"You already asked for ${waiting.amount} on {waiting.created_at:%b %-d}; "
                "your instructor has not answered yet."
            )
        since = timezone.now() - timedelta(days=1)
        if BudgetRequest.objects.filter(account=account, created_at__gte=since).count() >= REQUESTS_PER_DAY:
            raise BudgetRequestError(f"You asked {REQUESTS_PER_DAY} times in the last day; ask again tomorrow.")
        current = budget_amount(account)
        if amount <= current:
            raise BudgetRequestError(f"Ask for more than your current budget of ${current}.")
        budget_request = BudgetRequest.objects.create(
            account=account,
            course=account.course,
            requested_by=actor,
            budget_before=current,
            amount=amount,
            reason=reason,
        )
        audit_record(
            actor=actor,
            action=AuditAction.BUDGET_REQUESTED,
            course=account.course,
            target=account,
            summary=f"{account_name(account)} asked for a budget of ${amount} (now ${current})",
            data={"budget_request": budget_request.pk},
        )
        _tell_staff(budget_request)
    return budget_request


def budget_request_approve(*, actor, budget_request: BudgetRequest) -> bool:
    """Raise the budget as asked (and unfreeze where the budget froze the account). Returns
    False, changing nothing, when the request was already decided."""
    with transaction.atomic():
        budget_request = _pending(budget_request)
        if budget_request is None:
            return False
        account = budget_request.account
        if account.state not in IN_USE_STATES:
            raise BudgetRequestError("The account is no longer in use: its budget cannot change. Decline the request.")
        _decide(budget_request, actor=actor, status=BudgetRequestStatus.APPROVED)
        unfrozen = budget_raise_and_unfreeze(actor=actor, account=account, amount=budget_request.amount)
        audit_record(
            actor=actor,
            action=AuditAction.BUDGET_REQUEST_APPROVED,
            course=account.course,
            target=account,
            summary=f"Approved {account_name(account)}'s budget of ${budget_request.amount}"
            + (" and unfroze the account" if unfrozen else ""),
            data={"budget_request": budget_request.pk},
        )
        _tell_student(budget_request, unfrozen=unfrozen)
    return True


def budget_request_decline(*, actor, budget_request: BudgetRequest, reason: str) -> bool:
    """Decline the request, with the reason the student reads. False when already decided."""
    with transaction.atomic():
        budget_request = _pending(budget_request)
        if budget_request is None:
            return False
        budget_request.decline_reason = reason
        _decide(budget_request, actor=actor, status=BudgetRequestStatus.DECLINED)
        account = budget_request.account
        audit_record(
            actor=actor,
            action=AuditAction.BUDGET_REQUEST_DECLINED,
            course=account.course,
            target=account,
            summary=f"Declined {account_name(account)}'s budget of ${budget_request.amount}",
            data={"budget_request": budget_request.pk, "reason": reason},
        )
        _tell_student(budget_request, unfrozen=False)
    return True


def _pending(budget_request: BudgetRequest) -> BudgetRequest | None:
    """The request, locked, if it still waits for a decision."""
    locked = (
        BudgetRequest.objects.select_for_update(of=("self",))
        .select_related("account__course", "account__membership")
        .get(pk=budget_request.pk)
    )
    return locked if locked.status == BudgetRequestStatus.PENDING else None


def _decide(budget_request: BudgetRequest, *, actor, status: BudgetRequestStatus) -> None:
    budget_request.status, budget_request.decided_by, budget_request.decided_at = status, actor, timezone.now()
    budget_request.save(update_fields=["status", "decided_by", "decided_at", "decline_reason"])


def review_link(budget_request: BudgetRequest) -> str:
    return absolute_url(
        "billing:budget_request_review", course_id=budget_request.course_id, request_id=budget_request.pk
    )


def _tell_staff(budget_request: BudgetRequest) -> None:
    account, course = budget_request.account, budget_request.course
    recipients = set(course.memberships.filter(role=CourseRole.INSTRUCTOR).values_list("email", flat=True))
    if course.usage_alert_email:
        recipients.add(course.usage_alert_email)
    link = review_link(budget_request)
    context = {"budget_request": budget_request, "account": account, "course": course, "link": link}
    email_send("budget_requested", {**context, "student": account_name(account)}, recipients)
    notice = Notice(
        event="budget.raise_requested",
        title=f"{course.code}: {account_name(account)} asks for a budget of ${budget_request.amount}",
        text=budget_request.reason,
        link=link,
        link_label="Approve or decline",
        facts=(
            ("Course", f"{course.name} ({course.code})"),
            ("Budget now", f"${budget_request.budget_before}"),
            ("Asked for", f"${budget_request.amount}"),
            ("Account", account.get_state_display()),
        ),
        data={**account_data(account), "budget_request": _request_data(budget_request)},
    )
    webhooks_send(course=course, topic=WebhookTopic.BUDGET_REQUESTS, notice=notice)


def _tell_student(budget_request: BudgetRequest, *, unfrozen: bool) -> None:
    account, course = budget_request.account, budget_request.course
    approved = budget_request.status == BudgetRequestStatus.APPROVED
    context = {"budget_request": budget_request, "account": account, "course": course, "unfrozen": unfrozen}
    if account.membership is not None:
        email_send("budget_request_decided", context, [account.membership.email])
    verb = "approved" if approved else "declined"
    who = budget_request.decided_by.email if budget_request.decided_by is not None else "the portal"
    text = f"{who} {verb} the budget of ${budget_request.amount}."
    if unfrozen:
        text += " The account is being unfrozen."
    if budget_request.decline_reason:
        text += f" Reason: {budget_request.decline_reason}"
    notice = Notice(
        event="budget.raise_decided",
        title=f"{course.code}: {account_name(account)}'s budget request {verb}",
        text=text,
        link=review_link(budget_request),
        link_label="Open the request",
        facts=(
            ("Course", f"{course.name} ({course.code})"),
            ("Budget", f"${budget_request.amount if approved else budget_request.budget_before}"),
        ),
        data={**account_data(account), "budget_request": _request_data(budget_request)},
    )
    webhooks_send(course=course, topic=WebhookTopic.BUDGET_REQUESTS, notice=notice)


def _request_data(budget_request: BudgetRequest) -> dict:
    return {
        "id": budget_request.pk,
        "status": budget_request.status,
        "budget_before": str(budget_request.budget_before),
        "amount": str(budget_request.amount),
        "reason": budget_request.reason,
        "decline_reason": budget_request.decline_reason,
    }
