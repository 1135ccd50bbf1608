from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts_app import selectors
from accounts_app.choices import CourseRole
from accounts_app.forms import MemberAddForm, RoleForm, RosterConfirmForm, RosterUploadForm
from accounts_app.permissions import can_manage_course
from accounts_app.roster_csv import write_csv
from accounts_app.services import rosters as roster_services
from accounts_app.services.invitations import invitations_enqueue
from accounts_app.views.common import managed_course, roster_course, visible_member


@login_required
def roster(request: HttpRequest, course_id: int) -> HttpResponse:
    course = roster_course(request, course_id)
    role, search = request.GET.get("role"), request.GET.get("q", "").strip()
    members = selectors.roster_members(course=course, role=role, search=search)
    context = {
        "course": course,
        "members": members,
        "can_manage": can_manage_course(request.user, course),
        "roles": CourseRole.choices,
        "selected_role": role,
        "search": search,
        "add_form": MemberAddForm(),
        "bring_requests": selectors.course_bring_requests(course=course),
        **selectors.course_vending_progress(course=course),
    }
    if request.htmx:
        return render(request, "roster/roster.html#roster-table", context)
    return render(request, "roster/roster.html", context)


@login_required
def roster_export(request: HttpRequest, course_id: int) -> HttpResponse:
    course = roster_course(request, course_id)
    rows = [
        [m.email, m.name, m.role, m.get_invite_status_display(), bool(m.user_id)]
        for m in selectors.roster_members(course=course)
    ]
    response = HttpResponse(
        write_csv(["email", "name", "role", "invitation", "signed_in"], rows),
        content_type="text/csv; charset=utf-8",
    )
    filename = f"{course.code}-roster-{timezone.localdate():%Y-%m-%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
def roster_import(request: HttpRequest, course_id: int) -> HttpResponse:
    course = managed_course(request, course_id)
    form = RosterUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload_file = form.cleaned_data["file"]
        try:
            upload, _ = roster_services.roster_upload_create(
                actor=request.user, course=course, filename=upload_file.name, data=upload_file.read()
            )
        except ValueError as error:
            form.add_error("file", str(error))
        else:
            return redirect("courses:roster_preview", course_id=course.pk, upload_id=upload.pk)
    return render(request, "roster/import.html", {"course": course, "form": form})


@login_required
def roster_preview(request: HttpRequest, course_id: int, upload_id: int) -> HttpResponse:
    course = managed_course(request, course_id)
    upload = get_object_or_404(course.roster_uploads, pk=upload_id, applied_at__isnull=True)
    form = RosterConfirmForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            plan = roster_services.roster_upload_apply(
                actor=request.user,
                upload=upload,
                send_invitations=form.cleaned_data["send_invitations"],
            )
        except roster_services.RosterImportError:
            messages.error(request, "The roster changed since this preview; see the errors below.")
        else:
            messages.success(
                request,
                f"Imported {upload.filename}: {plan.count(roster_services.RowOutcome.ADD)} added, "
                f"{plan.count(roster_services.RowOutcome.UPDATE)} updated.",
            )
            return redirect("courses:roster", course_id=course.pk)
    plan = roster_services.roster_plan(course=course, text=upload.content)
    return render(
        request,
        "roster/preview.html",
        {"course": course, "upload": upload, "plan": plan, "form": form},
    )


@require_POST
@login_required
def member_add(request: HttpRequest, course_id: int) -> HttpResponse:
    course = managed_course(request, course_id)
    form = MemberAddForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{field.capitalize()}: {' '.join(errors)}")
        return redirect("courses:roster", course_id=course.pk)
    try:
        member = roster_services.member_add(actor=request.user, course=course, **form.cleaned_data)
    except roster_services.RosterChangeError as error:
        messages.error(request, str(error))
    else:
        invitations_enqueue(actor=request.user, course=course, member_ids=[member.pk])
        messages.success(request, f"Added {member.email} and sent them an invitation.")
    return redirect("courses:roster", course_id=course.pk)


@require_POST
@login_required
def member_role(request: HttpRequest, course_id: int, member_id: int) -> HttpResponse:
    course = managed_course(request, course_id)
    member = visible_member(request, course, member_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose instructor, TA or student.")
    else:
        try:
            member = roster_services.member_change_role(
                actor=request.user, member=member, role=form.cleaned_data["role"]
            )
            messages.success(request, f"{member.display_name} is now {member.get_role_display()}.")
        except roster_services.RosterChangeError as error:
            messages.error(request, str(error))
    if request.htmx:
        member.refresh_from_db()
        return render(
            request,
            "roster/roster.html#member-row",
            {"course": course, "member": member, "can_manage": True, "roles": CourseRole.choices},
        )
    return redirect("courses:roster", course_id=course.pk)


@require_POST
@login_required
def member_resend(request: HttpRequest, course_id: int, member_id: int) -> HttpResponse:
    course = managed_course(request, course_id)
    member = visible_member(request, course, member_id)
    if member.user_id:
        messages.info(request, f"{member.display_name} has already signed in; no invitation needed.")
    else:
        invitations_enqueue(actor=request.user, course=course, member_ids=[member.pk])
        messages.success(request, f"Sent a new invitation to {member.email}.")
    return redirect("courses:roster", course_id=course.pk)


@require_POST
@login_required
def member_remove(request: HttpRequest, course_id: int, member_id: int) -> HttpResponse:
    course = managed_course(request, course_id)
    member = visible_member(request, course, member_id)
    try:
        roster_services.member_remove(actor=request.user, member=member)
    except roster_services.RosterChangeError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Removed {member.display_name} from the roster.")
    return redirect("courses:roster", course_id=course.pk)


@require_POST
@login_required
def invitations_send_pending(request: HttpRequest, course_id: int) -> HttpResponse:
    course = managed_course(request, course_id)
    queued = invitations_enqueue(actor=request.user, course=course)
    if queued:
        messages.success(request, f"Sending {queued} invitation(s).")
    else:
        messages.info(request, "Everyone on the roster has already been invited.")
    return redirect("courses:roster", course_id=course.pk)
