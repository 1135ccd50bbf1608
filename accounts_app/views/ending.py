"""The end of a course in the browser: the schedule and each account's fate for the course's
staff; ending early, extending and keeping accounts out for instructors; and the handover
checklist for the student who keeps their account and the instructor who approves it."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts_app import selectors
from accounts_app.forms import (
    ExtendForm,
    HandoverCancelForm,
    HandoverCodeForm,
    HandoverDeclineForm,
    HandoverRequestForm,
)
from accounts_app.lifecycle import CLEANABLE_STATES
from accounts_app.models import Handover, MemberAccount
from accounts_app.permissions import can_manage_course
from accounts_app.services import ending, handover
from accounts_app.views.aws_accounts import my_student_membership
from accounts_app.views.common import managed_course, roster_course

# While a handover waits for the portal, its checklist asks for news this often (seconds); more
# often while the code the student just typed is with AWS.
CHECKLIST_REFRESH_SECONDS = 5
CODE_CHECK_REFRESH_SECONDS = 2


# --- Staff ----------------------------------------------------------------------------------------


@login_required
def course_end(request: HttpRequest, course_id: int) -> HttpResponse:
    course = roster_course(request, course_id)
    accounts = list(selectors.course_end_accounts(course=course))
    context = {
        "course": course,
        "can_manage": can_manage_course(request.user, course),
        "can_view_roster": True,
        "schedule": ending.end_schedule(course),
        "accounts": accounts,
        "cleanup_regions": selectors.course_cleanup_by_region(accounts),
        "extend_form": ExtendForm(initial={"end_date": course.end_date}),
        "close_queue": selectors.close_queue_status(),
    }
    return render(request, "ending/course_end.html", context)


@require_POST
@login_required
def course_end_now(request: HttpRequest, course_id: int) -> HttpResponse:
    course = managed_course(request, course_id)
    if course.is_ended:
        messages.info(request, "The course had already ended.")
    else:
        count = ending.course_end(actor=request.user, course=course)
        messages.success(request, f"Ended the course: freezing {count} account(s).")
    return redirect("courses:end", course_id=course.pk)


@require_POST
@login_required
def course_extend(request: HttpRequest, course_id: int) -> HttpResponse:
    course = managed_course(request, course_id)
    form = ExtendForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors["end_date"]))
        return redirect("courses:end", course_id=course.pk)
    try:
        back = ending.course_extend(actor=request.user, course=course, end_date=form.cleaned_data["end_date"])
    except ending.EndingError as error:
        messages.error(request, str(error))
    else:
        note = f" {back} frozen account(s) are being given back." if back else ""
        messages.success(request, f"The course now ends on {course.end_date:%b %-d, %Y}.{note}")
    return redirect("courses:end", course_id=course.pk)


@require_POST
@login_required
def cleanup_preview(request: HttpRequest, course_id: int) -> HttpResponse:
    """List, without deleting anything, what cleanup would delete in every account."""
    from accounts_app.tasks import account_cleanup_preview_task

    course = managed_course(request, course_id)
    accounts = MemberAccount.objects.filter(course=course).exclude(aws_account_id=None)
    accounts = accounts.filter(state__in=CLEANABLE_STATES)
    for account in accounts:
        account_cleanup_preview_task.delay_on_commit(account.pk)
    messages.success(
        request, f"Listing the resources in {len(accounts)} account(s); this page shows them as they come."
    )
    return redirect("courses:end", course_id=course.pk)


@require_POST
@login_required
def account_exclude(request: HttpRequest, course_id: int, account_id: int) -> HttpResponse:
    course = managed_course(request, course_id)
    account = get_object_or_404(
        MemberAccount.objects.select_related("membership", "course"), course=course, pk=account_id
    )
    excluded = request.POST.get("excluded") == "1"
    try:
        ending.account_exclude(actor=request.user, account=account, excluded=excluded)
    except ending.EndingError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request,
            f"{account.membership.email} is {'kept out of' if excluded else 'back in'} the end of the course.",
        )
    return redirect("courses:end", course_id=course.pk)


def _staff_handover(request: HttpRequest, course_id: int, account_id: int, *, manage: bool) -> Handover:
    course = managed_course(request, course_id) if manage else roster_course(request, course_id)
    record = get_object_or_404(
        Handover.objects.select_related("account__membership"), account__course=course, account__pk=account_id
    )
    # The course as the user sees it (with their role), not a fresh copy.
    record.account.course = course
    return record


@login_required
def handover_review(request: HttpRequest, course_id: int, account_id: int) -> HttpResponse:
    record = _staff_handover(request, course_id, account_id, manage=False)
    course = record.account.course
    context = {
        "course": course,
        "handover": record,
        "account": record.account,
        "steps": handover.handover_steps(record),
        "can_manage": can_manage_course(request.user, course),
        "can_view_roster": True,
        "decline_form": HandoverDeclineForm(),
        "cancel_form": HandoverCancelForm(),
    }
    return render(request, "ending/handover_review.html", context)


@require_POST
@login_required
def handover_approve(request: HttpRequest, course_id: int, account_id: int) -> HttpResponse:
    record = _staff_handover(request, course_id, account_id, manage=True)
    if handover.handover_approve(actor=request.user, handover=record):
        messages.success(request, f"Approved. {record.account.membership.email} has been emailed the next steps.")
    else:
        messages.info(request, "This request was already decided.")
    return redirect("courses:handover_review", course_id=course_id, account_id=account_id)


@require_POST
@login_required
def handover_decline(request: HttpRequest, course_id: int, account_id: int) -> HttpResponse:
    record = _staff_handover(request, course_id, account_id, manage=True)
    form = HandoverDeclineForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say why the request is declined: the student reads it.")
    elif handover.handover_decline(actor=request.user, handover=record, reason=form.cleaned_data["reason"]):
        messages.success(request, f"Declined. {record.account.membership.email} has been told why.")
    else:
        messages.info(request, "This request was already decided.")
    return redirect("courses:handover_review", course_id=course_id, account_id=account_id)


@require_POST
@login_required
def handover_cancel(request: HttpRequest, course_id: int, account_id: int) -> HttpResponse:
    """An instructor stops a handover: the account returns to its course."""
    record = _staff_handover(request, course_id, account_id, manage=True)
    _cancel(request, record, who="an instructor")
    return redirect("courses:handover_review", course_id=course_id, account_id=account_id)


def _cancel(request: HttpRequest, record: Handover, *, who: str) -> None:
    form = HandoverCancelForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    reason = f"Cancelled by {who}" + (f": {reason}" if reason.strip() else ".")
    if handover.handover_cancel(actor=request.user, handover=record, reason=reason):
        messages.success(
            request, "Cancelled. The account goes back into its course; the student and instructors are told."
        )
    else:
        messages.info(request, "This handover has already finished or been stopped.")


# --- The student ----------------------------------------------------------------------------------


def _my_account(request: HttpRequest, course_id: int) -> MemberAccount:
    _, membership = my_student_membership(request, course_id)
    return get_object_or_404(MemberAccount.objects.select_related("course", "membership"), membership=membership)


@login_required
def handover_start(request: HttpRequest, course_id: int) -> HttpResponse:
    """The "keep my account" form."""
    account = _my_account(request, course_id)
    if Handover.objects.filter(account=account).exists():
        return redirect("courses:my_handover", course_id=course_id)
    if not handover.handover_offered(account):
        raise Http404("This account cannot be handed over.")
    form = HandoverRequestForm(request.POST or None, initial={"contact_name": account.membership.name})
    if request.method == "POST" and form.is_valid():
        try:
            handover.handover_request(actor=request.user, account=account, **form.cleaned_data)
        except handover.HandoverError as error:
            messages.error(request, str(error))
        else:
            return redirect("courses:my_handover", course_id=course_id)
    return render(request, "ending/handover_start.html", {"course": account.course, "account": account, "form": form})


def _my_handover(request: HttpRequest, course_id: int) -> Handover:
    account = _my_account(request, course_id)
    return get_object_or_404(Handover.objects.select_related("account__course", "account__membership"), account=account)


@login_required
def my_handover(request: HttpRequest, course_id: int) -> HttpResponse:
    """The student's checklist; htmx asks for it again while the portal works on a step."""
    record = _my_handover(request, course_id)
    steps = handover.handover_steps(record)
    context = {
        "course": record.account.course,
        "handover": record,
        "account": record.account,
        "steps": steps,
        "handover_error": handover.student_error(record),
        "code_form": HandoverCodeForm(),
        "portal_working": any(step.status == "current" for step in steps),
        "refresh_seconds": CODE_CHECK_REFRESH_SECONDS if record.pending_code else CHECKLIST_REFRESH_SECONDS,
    }
    template = "ending/_checklist.html" if request.htmx else "ending/my_handover.html"
    return render(request, template, context)


@require_POST
@login_required
def my_handover_code(request: HttpRequest, course_id: int) -> HttpResponse:
    record = _my_handover(request, course_id)
    form = HandoverCodeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Type the code from the email AWS sent you.")
    else:
        try:
            handover.handover_submit_code(actor=request.user, handover=record, code=form.cleaned_data["code"])
        except handover.HandoverError as error:
            messages.error(request, str(error))
        else:
            messages.info(request, "Checking the code with AWS…")
    return redirect("courses:my_handover", course_id=course_id)


@require_POST
@login_required
def my_handover_resend(request: HttpRequest, course_id: int) -> HttpResponse:
    record = _my_handover(request, course_id)
    try:
        handover.handover_resend_code(actor=request.user, handover=record)
    except handover.HandoverError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"AWS is sending a new code to {record.new_root_email}.")
    return redirect("courses:my_handover", course_id=course_id)


@require_POST
@login_required
def my_handover_ready(request: HttpRequest, course_id: int) -> HttpResponse:
    record = _my_handover(request, course_id)
    try:
        handover.handover_student_ready(actor=request.user, handover=record)
    except handover.HandoverError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request, "Thanks. The portal is asking AWS to let the account leave the school's organization."
        )
    return redirect("courses:my_handover", course_id=course_id)


@require_POST
@login_required
def my_handover_cancel(request: HttpRequest, course_id: int) -> HttpResponse:
    record = _my_handover(request, course_id)
    _cancel(request, record, who="the student")
    return redirect("courses:my_handover", course_id=course_id)
