"""Students' AWS accounts in the browser: requesting one, watching it being made, signing in;
and, for instructors, provisioning a whole course and retrying what failed."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import HTMX_STOP_POLLING

from accounts_app import selectors
from accounts_app.choices import AccountOrigin, AccountState
from accounts_app.forms import BringAccountForm, PrecreateForm
from accounts_app.lifecycle import (
    BROUGHT_ACCOUNT_STEPS,
    CREATED_ACCOUNT_STEPS,
    PANEL_POLLED_STATES,
    STEP_SHOWN_FOR,
)
from accounts_app.middleware import AUTO_REFRESH_HEADER
from accounts_app.models import AwsOrganization, Course, MemberAccount, Membership
from accounts_app.services import account_requests, invited_accounts
from accounts_app.services.ending import end_outcome, end_schedule
from accounts_app.services.handover import handover_offered
from accounts_app.views.common import managed_course

# While the account is being made, the status panel asks for news this often (seconds).
PANEL_REFRESH_SECONDS = 3


def my_student_membership(request: HttpRequest, course_id: int) -> tuple[Course, Membership]:
    """The signed-in student's own entry in the course (404 for anyone who is not a student of it),
    read with its course and account."""
    membership = selectors.student_entry(user=request.user, course_id=course_id)
    if membership is None:
        raise Http404("Only students of the course have an AWS account in it.")
    return membership.course, membership


def panel_context(course: Course, membership: Membership, account: MemberAccount | None) -> dict:
    context = {
        "course": course,
        "account": account,
        "refresh_seconds": PANEL_REFRESH_SECONDS,
        "access_role_name": settings.PORTAL_AWS_MEMBER_ROLE_NAME,
        "access_role_template_url": settings.PORTAL_ACCESS_ROLE_TEMPLATE_URL,
    }
    if account is None:
        # Only the request form reads them: a poll of an account in progress never does.
        context["bring"] = selectors.student_bring_requests(membership=membership)
        context["bring_form"] = BringAccountForm()
    else:
        context["in_progress"] = account.state in PANEL_POLLED_STATES
        context["steps"] = _progress_steps(account)
        context["account_note"] = selectors.student_account_note(account=account)
        context["spending"] = selectors.account_spending(account=account)
        if account.state == AccountState.READY:
            context["access"] = selectors.account_access(account=account)
        context["handover_offered"] = handover_offered(account) and not hasattr(account, "handover")
        context["schedule"] = end_schedule(course)
        context["outcome"] = end_outcome(course)
    return context


def _progress_steps(account: MemberAccount) -> list[tuple[str, str]]:
    """The steps a student sees, each "done", "current" or "todo" (none for a failed account)."""
    brought = account.origin == AccountOrigin.INVITED
    order = BROUGHT_ACCOUNT_STEPS if brought else CREATED_ACCOUNT_STEPS
    current = STEP_SHOWN_FOR.get(account.state, account.state)
    if current not in order:
        return []
    at = order.index(current)
    finished = current == AccountState.READY
    return [
        (state.label, "done" if i < at or finished else "current" if i == at else "todo")
        for i, state in enumerate(order)
    ]


@login_required
def my_account(request: HttpRequest, course_id: int) -> HttpResponse:
    """The student's status panel; htmx asks for it again while the account is in progress. A poll
    that finds the account settled gets the settled panel with htmx's "stop polling" status."""
    course, membership = my_student_membership(request, course_id)
    context = panel_context(course, membership, selectors.entry_account(membership))
    polled = bool(request.htmx) and AUTO_REFRESH_HEADER in request.headers
    status = HTMX_STOP_POLLING if polled and not context.get("in_progress") else 200
    return render(request, "accounts/_account_panel.html", context, status=status)


@require_POST
@login_required
def account_request(request: HttpRequest, course_id: int) -> HttpResponse:
    course, membership = my_student_membership(request, course_id)
    try:
        account_requests.account_request(actor=request.user, membership=membership)
    except account_requests.VendingError as error:
        messages.error(request, str(error))
    return _back_to_panel(request, course, membership)


@require_POST
@login_required
def account_bring(request: HttpRequest, course_id: int) -> HttpResponse:
    course, membership = my_student_membership(request, course_id)
    form = BringAccountForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors["aws_account_id"]))
    else:
        try:
            account_requests.account_bring_existing(
                actor=request.user, membership=membership, aws_account_id=form.cleaned_data["aws_account_id"]
            )
        except account_requests.VendingError as error:
            messages.error(request, str(error))
    return _back_to_panel(request, course, membership)


@require_POST
@login_required
def account_check_role(request: HttpRequest, course_id: int) -> HttpResponse:
    course, membership = my_student_membership(request, course_id)
    account = get_object_or_404(MemberAccount, membership=membership)
    if invited_accounts.access_role_check_request(actor=request.user, account=account):
        messages.info(request, "Checking the access role in your account… this page updates by itself.")
    else:
        messages.info(request, "Your account is not waiting for its access role.")
    return _back_to_panel(request, course, membership)


@require_POST
@login_required
def account_password(request: HttpRequest, course_id: int) -> HttpResponse:
    course, membership = my_student_membership(request, course_id)
    account = get_object_or_404(MemberAccount, membership=membership, state=AccountState.READY)
    password = account_requests.account_password_reveal(actor=request.user, account=account)
    if password is None:
        messages.info(
            request, "Your first password was already shown. If you lost it, ask your instructor to reset it."
        )
        return redirect("courses:detail", course_id=course.pk)
    context = {"course": course, "account": account, "password": password, **selectors.account_access(account=account)}
    response = render(request, "accounts/password.html", context)
    response["Cache-Control"] = "no-store"
    return response


def _back_to_panel(request: HttpRequest, course, membership) -> HttpResponse:
    if request.htmx:
        # Read again: the request has just changed the account.
        account = selectors.student_account(membership=membership)
        return render(request, "accounts/_account_panel.html", panel_context(course, membership, account))
    return redirect("courses:detail", course_id=course.pk)


@require_POST
@login_required
def provision_all(request: HttpRequest, course_id: int) -> HttpResponse:
    course = managed_course(request, course_id)
    count = account_requests.course_provision_all(actor=request.user, course=course)
    messages.success(request, f"Queued {count} account(s)." if count else "Every student already has an account.")
    return redirect("courses:roster", course_id=course.pk)


@require_POST
@login_required
def precreate(request: HttpRequest, course_id: int) -> HttpResponse:
    course = managed_course(request, course_id)
    form = PrecreateForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors["count"]))
    else:
        accounts = account_requests.course_precreate(
            actor=request.user, course=course, count=form.cleaned_data["count"]
        )
        messages.success(request, f"Pre-creating {len(accounts)} account(s) for the pool.")
    return redirect("courses:roster", course_id=course.pk)


@require_POST
@login_required
def account_retry(request: HttpRequest, course_id: int, account_id: int) -> HttpResponse:
    course = managed_course(request, course_id)
    account = get_object_or_404(MemberAccount, course=course, pk=account_id)
    if account_requests.account_retry(actor=request.user, account=account):
        messages.success(request, f"Retrying {account.account_name}.")
    else:
        messages.info(request, f"{account.account_name} is no longer failed.")
    return redirect("courses:roster", course_id=course.pk)


def _bring_request(request: HttpRequest, course_id: int, account_id: int):
    course = managed_course(request, course_id)
    return course, get_object_or_404(
        MemberAccount.objects.select_related("course", "membership"),
        course=course,
        pk=account_id,
        origin=AccountOrigin.INVITED,
    )


@require_POST
@login_required
def account_bring_approve(request: HttpRequest, course_id: int, account_id: int) -> HttpResponse:
    course, account = _bring_request(request, course_id, account_id)
    if account_requests.account_bring_approve(actor=request.user, account=account):
        messages.success(request, f"Approved: the portal invites account {account.aws_account_id}.")
    else:
        messages.info(request, "This request was already decided.")
    return redirect("courses:roster", course_id=course.pk)


@require_POST
@login_required
def account_bring_decline(request: HttpRequest, course_id: int, account_id: int) -> HttpResponse:
    course, account = _bring_request(request, course_id, account_id)
    if account_requests.account_bring_decline(actor=request.user, account=account):
        messages.success(request, "Declined. The student can request a new account or bring another one.")
    else:
        messages.info(request, "This request can no longer be declined.")
    return redirect("courses:roster", course_id=course.pk)


@login_required
def access_role_template(request: HttpRequest) -> HttpResponse:
    """The CloudFormation template that creates the portal's access role in an invited account."""
    organization = AwsOrganization.load()
    if not organization.management_account_id:
        raise Http404("The AWS organization is not set up yet.")
    response = render(
        request,
        "accounts/access-role.yaml",
        {
            "role_name": settings.PORTAL_AWS_MEMBER_ROLE_NAME,
            "management_account_id": organization.management_account_id,
        },
        content_type="text/yaml; charset=utf-8",
    )
    response["Content-Disposition"] = 'attachment; filename="classroom-cloud-access-role.yaml"'
    return response


@login_required
def aws_overview(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise PermissionDenied("Only administrators can see the AWS organization.")
    return render(request, "accounts/aws_overview.html", selectors.vending_overview())
