from allauth.core.internal import ratelimit
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts_app.forms import JoinCodeForm
from accounts_app.services.invitations import (
    INVITATION_SESSION_KEY,
    InvitationError,
    JoinCodeUnknown,
    JoinRefused,
    course_join_with_code,
    invitation_accept,
    invitation_member,
    join_code_course,
)

# The rate limit on wrong join codes, in ACCOUNT_RATE_LIMITS.
JOIN_CODE_FAILURES = "join_code_failed"


@require_http_methods(["GET", "POST"])
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """The page an invitation email links to. Anonymous visitors sign up or sign in first; the
    token waits in their session and is accepted as soon as they are signed in."""
    try:
        member = invitation_member(token)
    except InvitationError as error:
        return render(request, "invitations/invalid.html", {"error": error}, status=410)

    if not request.user.is_authenticated:
        request.session[INVITATION_SESSION_KEY] = token
        return render(request, "invitations/invitation.html", {"member": member})

    if request.method == "POST" or member.user_id == request.user.pk:
        try:
            invitation_accept(user=request.user, member=member)
        except InvitationError as error:
            return render(request, "invitations/invalid.html", {"error": error}, status=409)
        messages.success(request, f"Welcome to {member.course.name}.")
        return redirect("courses:detail", course_id=member.course_id)
    return render(request, "invitations/invitation.html", {"member": member})


@login_required
def join(request: HttpRequest) -> HttpResponse:
    form = JoinCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        return redirect("join_course", code=form.cleaned_data["code"])
    return render(request, "invitations/join.html", {"form": form})


@login_required
def join_course(request: HttpRequest, code: str) -> HttpResponse:
    # Checked before the code is looked up: once over the limit, a right code answers as a wrong
    # one does, so that guessing on cannot tell them apart.
    if not _join_failures(request, dry_run=True):
        return render(request, "invitations/too_many_codes.html", status=429)
    try:
        course = join_code_course(user=request.user, code=code)
        if request.method == "POST":
            course_join_with_code(user=request.user, course=course)
            messages.success(request, f"You joined {course.name}.")
            return redirect("courses:detail", course_id=course.pk)
    except JoinCodeUnknown as unknown:
        _join_failures(request, dry_run=False)
        form = JoinCodeForm(data={"code": unknown.code})  # bound: add_error() needs a cleaned form
        form.add_error(None, str(unknown))
        return render(request, "invitations/join.html", {"form": form}, status=404)
    except JoinRefused as refused:
        return render(request, "invitations/join_refused.html", {"error": refused}, status=refused.status)
    return render(request, "invitations/join_confirm.html", {"course": course})


def _join_failures(request: HttpRequest, *, dry_run: bool) -> bool:
    """Count a wrong join code against this person and their address (ACCOUNT_RATE_LIMITS
    ["join_code_failed"]), or with `dry_run` only ask whether they may try another; False once
    they have had too many. allauth's limiter, through its internal module: the public
    `allauth.core.ratelimit.consume` never counts GET requests, and /join/<code>/ is opened by GET."""
    usage = ratelimit.consume(
        request, app="allauth.account", action=JOIN_CODE_FAILURES, limit_get=True, dry_run=dry_run
    )
    return usage is not None
