from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts_app import selectors
from accounts_app.choices import AccountState, CourseRole
from accounts_app.forms import CourseForm, JoinCodeLimitsForm
from accounts_app.models import Course
from accounts_app.permissions import can_create_courses, can_manage_course, can_view_roster
from accounts_app.services import courses as course_services
from accounts_app.views.aws_accounts import panel_context
from accounts_app.views.common import managed_course, visible_course

AUDIT_PAGE_SIZE = 50


@login_required
def course_list(request: HttpRequest) -> HttpResponse:
    courses = Course.objects.for_user(request.user).order_by("archived_at", "-start_date", "code")
    return render(
        request,
        "courses/list.html",
        {
            "active_courses": [c for c in courses if not c.is_archived],
            "archived_courses": [c for c in courses if c.is_archived],
        },
    )


@login_required
def course_create(request: HttpRequest) -> HttpResponse:
    if not can_create_courses(request.user):
        raise PermissionDenied("Only instructors and administrators can create courses.")
    contacts = {"billing_contact_email": request.user.email, "usage_alert_email": request.user.email}
    form = CourseForm(request.POST or None, initial=contacts)
    if request.method == "POST" and form.is_valid():
        course = course_services.course_create(
            actor=request.user, instructor_email=request.user.email, **form.cleaned_data
        )
        messages.success(request, f"Created {course.code}. Next, add people to the roster.")
        return redirect("courses:roster", course_id=course.pk)
    return render(request, "courses/form.html", {"form": form, "creating": True})


@login_required
def course_detail(request: HttpRequest, course_id: int) -> HttpResponse:
    course = visible_course(request, course_id)
    can_manage = can_manage_course(request.user, course)
    context = {
        "course": course,
        "can_manage": can_manage,
        "join_limits_form": JoinCodeLimitsForm(course=course) if can_manage else None,
        "can_view_roster": can_view_roster(request.user, course),
        "my_membership": selectors.own_entry(user=request.user, course=course),
    }
    if context["can_view_roster"]:
        context["role_counts"] = selectors.course_role_counts(course=course)
        context["account_counts"] = [
            (AccountState(state).label, n) for state, n in selectors.course_account_counts(course=course).items()
        ]
    membership = context["my_membership"]
    if membership is not None and membership.role == CourseRole.STUDENT:
        context.update(panel_context(course, membership, selectors.entry_account(membership)), show_account_panel=True)
    return render(request, "courses/detail.html", context)


@login_required
def course_edit(request: HttpRequest, course_id: int) -> HttpResponse:
    course = managed_course(request, course_id)
    # The form validates on its own copy, so `course` still holds the old values for the audit log.
    form = CourseForm(request.POST or None, instance=Course.objects.get(pk=course.pk))
    if request.method == "POST" and form.is_valid():
        try:
            course_services.course_update(actor=request.user, course=course, changes=form.changes())
        except course_services.CourseError as error:
            form.add_error("code", str(error))
        else:
            messages.success(request, "Saved the course settings.")
            return redirect("courses:detail", course_id=course.pk)
    return render(request, "courses/form.html", {"form": form, "course": course})


@require_POST
@login_required
def course_archive(request: HttpRequest, course_id: int) -> HttpResponse:
    course = managed_course(request, course_id, allow_archived=True)
    if course.is_archived:
        course_services.course_unarchive(actor=request.user, course=course)
        messages.success(request, f"Restored {course.code} from the archive.")
    else:
        course_services.course_archive(actor=request.user, course=course)
        messages.success(request, f"Archived {course.code}. It is read-only until restored.")
    return redirect("courses:detail", course_id=course.pk)


@require_POST
@login_required
def course_join_code(request: HttpRequest, course_id: int) -> HttpResponse:
    course = managed_course(request, course_id)
    action = request.POST.get("action", "")
    if action == "disable":
        course_services.course_join_code_disable(actor=request.user, course=course)
        messages.success(request, "Turned the join code off.")
        return redirect("courses:detail", course_id=course.pk)
    actions = {
        "enable": course_services.course_join_code_enable,
        "rotate": course_services.course_join_code_rotate,
        "limits": course_services.course_join_code_limits_set,
    }
    if action not in actions:
        messages.error(request, "Choose to turn the join code on, change it or turn it off.")
        return redirect("courses:detail", course_id=course.pk)
    form = JoinCodeLimitsForm(request.POST, course=course)
    if not form.is_valid():
        problems = [f"{form[name].label}: {' '.join(errors)}" for name, errors in form.errors.items()]
        messages.error(request, "The join code was not changed. " + " ".join(problems))
        return redirect("courses:detail", course_id=course.pk)
    actions[action](actor=request.user, course=course, limits=form.limits())
    messages.success(request, "Updated the join code.")
    return redirect("courses:detail", course_id=course.pk)


@login_required
def course_audit(request: HttpRequest, course_id: int) -> HttpResponse:
    course = managed_course(request, course_id, allow_archived=True)
    events = selectors.course_audit_events(course=course)
    page = Paginator(events, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "courses/audit.html", {"course": course, "page": page})
