from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts_app.forms import JoinCodeForm
from accounts_app.models import Course
from accounts_app.services.invitations import (
    INVITATION_SESSION_KEY,
    InvitationError,
    course_join_with_code,
    invitation_accept,
    invitation_member,
)


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
    code = Course.normalize_join_code(code)
    course = Course.objects.filter(join_code=code, join_code_enabled=True).first()
    if course is None or not course.join_is_open:
        form = JoinCodeForm(data={"code": code})  # bound: add_error() needs a cleaned form
        form.add_error(
            None,
            f"No course is open for joining with the code “{code}”. "
            "Check the code with your instructor.",
        )
        return render(request, "invitations/join.html", {"form": form}, status=404)
    if request.method == "POST":
        course_join_with_code(user=request.user, course=course)
        messages.success(request, f"You joined {course.name}.")
        return redirect("courses:detail", course_id=course.pk)
    return render(request, "invitations/join_confirm.html", {"course": course})
