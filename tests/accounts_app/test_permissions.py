"""Who may open which page and post which action, for every URL of accounts_app and billing_app.

MATRIX is the whole story: one line per (URL name, method) with the answer each of the seven
personas gets. test_every_url_pattern_is_in_the_matrix fails when a URL is added to
accounts_app/urls.py or billing_app/urls.py without a line here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, resolve, reverse
from django.utils import timezone
from django.utils.html import escape

from accounts_app import urls as accounts_urls
from accounts_app.choices import (
    AccountOrigin,
    AccountState,
    CourseRole,
    HandoverStatus,
    WebhookKind,
)
from accounts_app.crypto import WEBHOOK_PURPOSE, encrypt
from accounts_app.forms import CourseForm
from accounts_app.models import (
    AccountEvent,
    AuditEvent,
    AwsOrganization,
    Course,
    Handover,
    MemberAccount,
    Membership,
    RosterUpload,
    WebhookDelivery,
    WebhookEndpoint,
)
from accounts_app.services.invitations import invitation_token
from billing_app import urls as billing_urls
from billing_app.models import BudgetRequest, CourseSchedule, ScheduledStop, StopReason, StopStatus
from tests.factories import CourseFactory, MembershipFactory, browser_form_data

PERSONAS = (
    "anonymous",
    "student",
    "other_student",
    "ta",
    "instructor",
    "other_instructor",
    "admin",
)

LOGIN = "login"  # 302 to the sign-in page, with ?next= back to the URL asked for
DONE = "done"  # 302 to the page the action leads to on success (REQUESTS[...].redirects_to)
GET, POST = "GET", "POST"

JOIN_CODE = "K7QF-3MZP"

# fmt: off
MATRIX = [
    # url name                   method  anonymous student other_student ta   instructor other_instructor admin
    ("courses:list",             GET,    LOGIN,    200,    200,          200, 200,       200,             200),
    ("courses:create",           GET,    LOGIN,    403,    403,          403, 200,       200,             200),
    ("courses:create",           POST,   LOGIN,    403,    403,          403, DONE,      DONE,            DONE),
    ("courses:detail",           GET,    LOGIN,    200,    404,          200, 200,       404,             200),
    ("courses:edit",             GET,    LOGIN,    403,    404,          403, 200,       404,             200),
    ("courses:edit",             POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    ("courses:archive",          POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    # The course's webhooks, on its settings: instructors only (the school's are the Django admin's).
    ("courses:webhooks",         GET,    LOGIN,    403,    404,          403, 200,       404,             200),
    ("courses:webhooks",         POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    ("courses:webhook_test",     POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    ("courses:webhook_remove",   POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    ("courses:join_code",        POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    ("courses:audit",            GET,    LOGIN,    403,    404,          403, 200,       404,             200),
    ("courses:roster",           GET,    LOGIN,    403,    404,          200, 200,       404,             200),
    ("courses:roster_export",    GET,    LOGIN,    403,    404,          200, 200,       404,             200),
    ("courses:roster_import",    GET,    LOGIN,    403,    404,          403, 200,       404,             200),
    ("courses:roster_import",    POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    ("courses:roster_preview",   GET,    LOGIN,    403,    404,          403, 200,       404,             200),
    ("courses:roster_preview",   POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    ("courses:member_add",       POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    ("courses:invite_pending",   POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    ("courses:member_role",      POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    ("courses:member_resend",    POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    ("courses:member_remove",    POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    # A student's own AWS account: only students of the course have one, so for everyone else,
    # course staff and administrators included, these pages do not exist (404).
    ("courses:my_account",       GET,    LOGIN,    200,    404,          404, 404,       404,             404),
    ("courses:account_request",  POST,   LOGIN,    DONE,   404,          404, 404,       404,             404),
    ("courses:account_bring",    POST,   LOGIN,    DONE,   404,          404, 404,       404,             404),
    ("courses:account_check_role", POST, LOGIN,    DONE,   404,          404, 404,       404,             404),
    ("courses:account_password", POST,   LOGIN,    DONE,   404,          404, 404,       404,             404),
    ("courses:provision_all",    POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    ("courses:precreate",        POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    ("courses:account_retry",    POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    ("courses:account_bring_approve", POST, LOGIN, 403,    404,          403, DONE,      404,             DONE),
    ("courses:account_bring_decline", POST, LOGIN, 403,    404,          403, DONE,      404,             DONE),
    # End of course: the staff page, the instructors' actions, the student's handover
    ("courses:end",              GET,    LOGIN,    403,    404,          200, 200,       404,             200),
    ("courses:end_now",          POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    ("courses:end_extend",       POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    ("courses:cleanup_preview",  POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    ("courses:account_exclude",  POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    ("courses:handover_review",  GET,    LOGIN,    403,    404,          200, 200,       404,             200),
    ("courses:handover_approve", POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    ("courses:handover_decline", POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    ("courses:handover_cancel",  POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    ("courses:handover_start",   GET,    LOGIN,    200,    404,          404, 404,       404,             404),
    ("courses:handover_start",   POST,   LOGIN,    DONE,   404,          404, 404,       404,             404),
    ("courses:my_handover",      GET,    LOGIN,    200,    404,          404, 404,       404,             404),
    ("courses:my_handover_code", POST,   LOGIN,    DONE,   404,          404, 404,       404,             404),
    ("courses:my_handover_resend", POST, LOGIN,    DONE,   404,          404, 404,       404,             404),
    ("courses:my_handover_ready", POST,  LOGIN,    DONE,   404,          404, 404,       404,             404),
    ("courses:my_handover_cancel", POST, LOGIN,    DONE,   404,          404, 404,       404,             404),
    # The invitation link is a bearer token: anyone holding it may open it. People already on
    # cs101 cannot take a second place on its roster (409); anyone else is bound to the entry.
    ("invitation",               GET,    200,      200,    200,          200, 200,       200,             200),
    ("invitation",               POST,   200,      409,    DONE,         409, 409,       DONE,            DONE),
    ("join",                     GET,    LOGIN,    200,    200,          200, 200,       200,             200),
    ("join",                     POST,   LOGIN,    DONE,   DONE,         DONE, DONE,     DONE,            DONE),
    # cs101's join code is on: self-enrolment is for people not on the course yet, outsiders too.
    ("join_course",              GET,    LOGIN,    200,    200,          200, 200,       200,             200),
    ("join_course",              POST,   LOGIN,    DONE,   DONE,         DONE, DONE,     DONE,            DONE),
    ("aws_overview",             GET,    LOGIN,    403,    403,          403, 403,       403,             200),
    # Every course's accounts and spend: administrators only.
    ("billing:organization",     GET,    LOGIN,    403,    403,          403, 403,       403,             200),
    # The CloudFormation template a student runs in an account they bring; it holds no secret.
    ("access_role_template",     GET,    LOGIN,    200,    200,          200, 200,       200,             200),
    # Money: TAs watch it, instructors act on it, a student sees only their own spend.
    ("billing:costs",            GET,    LOGIN,    403,    404,          200, 200,       404,             200),
    ("billing:costs_export",     GET,    LOGIN,    403,    404,          200, 200,       404,             200),
    ("billing:statement",        GET,    LOGIN,    403,    404,          200, 200,       404,             200),
    # The course's spend limits: TAs read them, instructors set them (students see them on their spend page).
    ("billing:spend_limits",     GET,    LOGIN,    403,    404,          200, 200,       404,             200),
    ("billing:spend_limits",     POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    ("billing:student_costs",    GET,    LOGIN,    403,    404,          200, 200,       404,             200),
    ("billing:freeze",           POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    ("billing:unfreeze",         POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    ("billing:my_costs",         GET,    LOGIN,    200,    404,          404, 404,       404,             404),
    # A higher budget: the student asks for their own account, TAs see the request, instructors decide.
    ("billing:budget_request",   POST,   LOGIN,    DONE,   404,          404, 404,       404,             404),
    ("billing:budget_request_review", GET, LOGIN,  403,    404,          200, 200,       404,             200),
    ("billing:budget_request_approve", POST, LOGIN, 403,   404,          403, DONE,      404,             DONE),
    ("billing:budget_request_decline", POST, LOGIN, 403,   404,          403, DONE,      404,             DONE),
    ("billing:my_meter",         GET,    LOGIN,    200,    404,          404, 404,       404,             404),
    # The course's schedule: TAs read it, instructors set it; a student starts again what it stopped
    # in their own account, and nobody else does.
    ("billing:schedule",         GET,    LOGIN,    403,    404,          200, 200,       404,             200),
    ("billing:schedule",         POST,   LOGIN,    403,    404,          403, DONE,      404,             DONE),
    ("billing:my_scheduled_stops", GET,  LOGIN,    200,    404,          404, 404,       404,             404),
    ("billing:scheduled_stop_start", POST, LOGIN,  DONE,   404,          404, 404,       404,             404),
]
# fmt: on


@dataclass
class Scene:
    """cs101 and bio200 with everything the URLs need: a person not yet signed in, an upload
    waiting for its preview, an open join code."""

    personas: object
    course: Course
    other_course: Course
    student_member: Membership
    newcomer: Membership
    upload: RosterUpload
    other_member: Membership
    other_upload: RosterUpload
    failed_account: MemberAccount
    other_failed_account: MemberAccount
    student_account: MemberAccount


@pytest.fixture(autouse=True)
def fast_test_settings(settings):
    # The matrix is about course roles; tests/accounts_app/test_mfa.py covers the second factor.
    settings.PORTAL_REQUIRE_MFA_FOR_STAFF = False


def member_account(course: Course, name: str, state: AccountState, **fields) -> MemberAccount:
    return MemberAccount.objects.create(
        course=course,
        state=state,
        account_name=name,
        root_email=f"aws+{name}@school.example.edu",
        **fields,
    )


@pytest.fixture
def scene(personas) -> Scene:
    course = personas.course
    course.join_code, course.join_code_enabled = JOIN_CODE, True
    course.save()
    newcomer = MembershipFactory(course=course, user=None, email="newcomer@school.example", name="New Comer")
    upload = RosterUpload.objects.create(
        course=course,
        uploaded_by=personas.instructor,
        filename="roster.csv",
        content="email,name,role\nnew.person@school.example,New Person,student\n",
    )
    other_upload = RosterUpload.objects.create(
        course=personas.other_course,
        uploaded_by=personas.other_instructor,
        filename="bio.csv",
        content="email,name,role\nbio.person@school.example,Bio Person,student\n",
    )
    AwsOrganization.objects.create(
        pk=1,
        management_account_id="999999999999",
        access_portal_url="https://d-1.awsapps.com/start",
    )
    student_member = Membership.objects.get(course=course, user=personas.student)
    # The student's account is ready and its first password was already shown.
    student_account = member_account(
        course,
        "cs101-student",
        AccountState.READY,
        membership=student_member,
        aws_account_id="111111111111",
    )
    return Scene(
        personas=personas,
        course=course,
        other_course=personas.other_course,
        student_member=student_member,
        newcomer=newcomer,
        upload=upload,
        other_member=Membership.objects.get(course=personas.other_course, user=personas.other_student),
        other_upload=other_upload,
        failed_account=member_account(course, "cs101-pool-001", AccountState.FAILED),
        other_failed_account=member_account(personas.other_course, "bio200-pool-001", AccountState.FAILED),
        student_account=student_account,
    )


def course_form_data(course: Course | None = None, **overrides) -> dict:
    if course is not None:
        return browser_form_data(CourseForm(instance=course), **overrides)
    typed = {
        "name": "Serverless Systems",
        "code": "cs999",
        "term": "Spring 2027",
        "start_date": "2027-01-15",
        "end_date": "2027-05-01",
        "budget_per_student": "75.00",
        "billing_contact_email": "billing@school.example",
        "usage_alert_email": "alerts@school.example",
    }
    return browser_form_data(CourseForm(), **{**typed, **overrides})


@dataclass(frozen=True)
class Request:
    """How to call one URL: its arguments, what to post, and where success leads."""

    kwargs: callable
    data: callable = lambda scene: {}
    redirects_to: str | None = None
    prepare: callable = lambda scene: None  # what the URL needs to exist beyond the scene


def in_course(scene: Scene) -> dict:
    return {"course_id": scene.course.pk}


def handover_of(scene: Scene, *, approved: bool = False) -> Handover:
    """The student asked to keep their account; approved, its root email has already moved."""
    account = scene.student_account
    state = AccountState.HANDOVER if approved else AccountState.HANDOVER_REQUESTED
    MemberAccount.objects.filter(pk=account.pk).update(state=state)
    return Handover.objects.create(
        account=account,
        status=HandoverStatus.APPROVED if approved else HandoverStatus.REQUESTED,
        new_root_email="me@personal.example",
        contact_name="Stu Dent",
        contact_phone="+1 555 0100",
        previous_state=AccountState.READY,
        code_sent_at=timezone.now() if approved else None,
        root_email_moved_at=timezone.now() if approved else None,
    )


def bring_request(scene: Scene) -> MemberAccount:
    """Another student of cs101 asks to bring their own account; it waits for an instructor."""
    member = MembershipFactory(course=scene.course, user=None, email="brings@school.example", name="Bea Brings")
    account, _ = MemberAccount.objects.get_or_create(
        account_name="cs101-brings",
        defaults={
            "course": scene.course,
            "membership": member,
            "brought_by": member,
            "origin": AccountOrigin.INVITED,
            "state": AccountState.AWAITING_APPROVAL,
            "aws_account_id": "444444444444",
            "root_email": "existing-444444444444-1@brings.invalid",
        },
    )
    return account


SLACK_URL = "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXX"


def webhook_of(course: Course) -> WebhookEndpoint:
    """A Slack webhook of the course, as an instructor added it."""
    endpoint, _ = WebhookEndpoint.objects.get_or_create(
        course=course,
        name=f"#{course.code}-staff",
        defaults={
            "kind": WebhookKind.SLACK,
            "url_encrypted": encrypt(SLACK_URL, purpose=WEBHOOK_PURPOSE),
            "url_shown": "https://hooks.slack.com/…",
        },
    )
    return endpoint


def budget_request_of(account: MemberAccount) -> BudgetRequest:
    """The student asked for a higher budget; it waits for an instructor."""
    budget_request, _ = BudgetRequest.objects.get_or_create(
        account=account,
        defaults={
            "course": account.course,
            "requested_by": account.membership.user,
            "budget_before": "100.00",
            "amount": "150.00",
            "reason": "The final project trains a model.",
        },
    )
    return budget_request


def scheduled_stop_of(account: MemberAccount) -> ScheduledStop:
    """The course's nightly stop stopped an instance in the account."""
    stop, _ = ScheduledStop.objects.get_or_create(
        account=account,
        resource_id="i-0123456789abcdef0",
        defaults={
            "course": account.course,
            "region": "us-east-1",
            "kind": "ec2:instance",
            "label": "web (i-0123456789abcdef0): t3.micro, running",
            "reason": StopReason.SCHEDULE,
            "why": "nightly stop at 22:00",
            "period_start": timezone.now(),
            "status": StopStatus.STOPPED,
            "stopped_at": timezone.now(),
        },
    )
    return stop


REQUESTS = {
    "courses:list": Request(kwargs=lambda s: {}),
    "courses:create": Request(kwargs=lambda s: {}, data=lambda s: course_form_data(), redirects_to="courses:roster"),
    "courses:detail": Request(kwargs=in_course),
    "courses:edit": Request(
        kwargs=in_course,
        data=lambda s: course_form_data(s.course, name="Cloud Computing II"),
        redirects_to="courses:detail",
    ),
    "courses:archive": Request(kwargs=in_course, redirects_to="courses:detail"),
    "courses:webhooks": Request(
        kwargs=in_course,
        data=lambda s: {"name": "#cs101-staff", "kind": "slack", "url": SLACK_URL, "topics": ["budget_alerts"]},
        redirects_to="courses:webhooks",
    ),
    "courses:webhook_test": Request(
        kwargs=lambda s: in_course(s) | {"endpoint_id": webhook_of(s.course).pk}, redirects_to="courses:webhooks"
    ),
    "courses:webhook_remove": Request(
        kwargs=lambda s: in_course(s) | {"endpoint_id": webhook_of(s.course).pk}, redirects_to="courses:webhooks"
    ),
    "courses:join_code": Request(kwargs=in_course, data=lambda s: {"action": "rotate"}, redirects_to="courses:detail"),
    "courses:audit": Request(kwargs=in_course),
    "courses:roster": Request(kwargs=in_course),
    "courses:roster_export": Request(kwargs=in_course),
    "courses:roster_import": Request(
        kwargs=in_course,
        data=lambda s: {
            "file": SimpleUploadedFile("spring.csv", b"email,name,role\nimported@school.example,Imported,student\n")
        },
        redirects_to="courses:roster_preview",
    ),
    "courses:roster_preview": Request(
        kwargs=lambda s: {"course_id": s.course.pk, "upload_id": s.upload.pk},
        data=lambda s: {"send_invitations": ""},
        redirects_to="courses:roster",
    ),
    "courses:member_add": Request(
        kwargs=in_course,
        data=lambda s: {"email": "added@school.example", "name": "Added", "role": "student"},
        redirects_to="courses:roster",
    ),
    "courses:invite_pending": Request(kwargs=in_course, redirects_to="courses:roster"),
    "courses:member_role": Request(
        kwargs=lambda s: {"course_id": s.course.pk, "member_id": s.student_member.pk},
        data=lambda s: {"role": "ta"},
        redirects_to="courses:roster",
    ),
    "courses:member_resend": Request(
        kwargs=lambda s: {"course_id": s.course.pk, "member_id": s.newcomer.pk},
        redirects_to="courses:roster",
    ),
    "courses:member_remove": Request(
        kwargs=lambda s: {"course_id": s.course.pk, "member_id": s.student_member.pk},
        redirects_to="courses:roster",
    ),
    "courses:my_account": Request(kwargs=in_course),
    "courses:account_request": Request(kwargs=in_course, redirects_to="courses:detail"),
    "courses:account_bring": Request(
        kwargs=in_course,
        data=lambda s: {"aws_account_id": "222222222222"},
        redirects_to="courses:detail",
    ),
    "courses:account_check_role": Request(kwargs=in_course, redirects_to="courses:detail"),
    "courses:account_password": Request(kwargs=in_course, redirects_to="courses:detail"),
    "courses:provision_all": Request(kwargs=in_course, redirects_to="courses:roster"),
    "courses:precreate": Request(kwargs=in_course, data=lambda s: {"count": "2"}, redirects_to="courses:roster"),
    "courses:account_retry": Request(
        kwargs=lambda s: {"course_id": s.course.pk, "account_id": s.failed_account.pk},
        redirects_to="courses:roster",
    ),
    "courses:account_bring_approve": Request(
        kwargs=lambda s: in_course(s) | {"account_id": bring_request(s).pk}, redirects_to="courses:roster"
    ),
    "courses:account_bring_decline": Request(
        kwargs=lambda s: in_course(s) | {"account_id": bring_request(s).pk}, redirects_to="courses:roster"
    ),
    "courses:end": Request(kwargs=in_course),
    "courses:end_now": Request(kwargs=in_course, redirects_to="courses:end"),
    "courses:end_extend": Request(
        kwargs=in_course, data=lambda s: {"end_date": "2099-01-31"}, redirects_to="courses:end"
    ),
    "courses:cleanup_preview": Request(kwargs=in_course, redirects_to="courses:end"),
    "courses:account_exclude": Request(
        kwargs=lambda s: in_course(s) | {"account_id": s.student_account.pk},
        data=lambda s: {"excluded": "1"},
        redirects_to="courses:end",
    ),
    "courses:handover_review": Request(
        kwargs=lambda s: in_course(s) | {"account_id": s.student_account.pk}, prepare=lambda s: handover_of(s)
    ),
    "courses:handover_approve": Request(
        kwargs=lambda s: in_course(s) | {"account_id": s.student_account.pk},
        prepare=lambda s: handover_of(s),
        redirects_to="courses:handover_review",
    ),
    "courses:handover_decline": Request(
        kwargs=lambda s: in_course(s) | {"account_id": s.student_account.pk},
        data=lambda s: {"reason": "The account holds the course's shared data."},
        prepare=lambda s: handover_of(s),
        redirects_to="courses:handover_review",
    ),
    "courses:handover_cancel": Request(
        kwargs=lambda s: in_course(s) | {"account_id": s.student_account.pk},
        data=lambda s: {"reason": "The student asked us to."},
        prepare=lambda s: handover_of(s, approved=True),
        redirects_to="courses:handover_review",
    ),
    "courses:handover_start": Request(
        kwargs=in_course,
        data=lambda s: {
            "new_root_email": "me@personal.example",
            "contact_name": "Stu Dent",
            "contact_phone": "+1 555 0100",
        },
        redirects_to="courses:my_handover",
    ),
    # An approved handover whose root email has moved: the student's actions answer without AWS.
    "courses:my_handover": Request(kwargs=in_course, prepare=lambda s: handover_of(s, approved=True)),
    "courses:my_handover_code": Request(
        kwargs=in_course,
        data=lambda s: {"code": "123456"},
        prepare=lambda s: handover_of(s, approved=True),
        redirects_to="courses:my_handover",
    ),
    "courses:my_handover_resend": Request(
        kwargs=in_course, prepare=lambda s: handover_of(s, approved=True), redirects_to="courses:my_handover"
    ),
    "courses:my_handover_ready": Request(
        kwargs=in_course, prepare=lambda s: handover_of(s, approved=True), redirects_to="courses:my_handover"
    ),
    "courses:my_handover_cancel": Request(
        kwargs=in_course, prepare=lambda s: handover_of(s, approved=True), redirects_to="courses:my_handover"
    ),
    "invitation": Request(kwargs=lambda s: {"token": invitation_token(s.newcomer)}, redirects_to="courses:detail"),
    "join": Request(kwargs=lambda s: {}, data=lambda s: {"code": "k7qf3mzp"}, redirects_to="join_course"),
    "join_course": Request(kwargs=lambda s: {"code": JOIN_CODE}, redirects_to="courses:detail"),
    "aws_overview": Request(kwargs=lambda s: {}),
    "billing:organization": Request(kwargs=lambda s: {}),
    "access_role_template": Request(kwargs=lambda s: {}),
    "billing:costs": Request(kwargs=in_course),
    "billing:costs_export": Request(kwargs=in_course),
    "billing:spend_limits": Request(
        kwargs=in_course, data=lambda s: {"max_accelerated_instances": "0"}, redirects_to="billing:spend_limits"
    ),
    "billing:statement": Request(kwargs=lambda s: {"course_id": s.course.pk, "year": 2026, "month": 10}),
    "billing:student_costs": Request(kwargs=lambda s: in_course(s) | {"account_id": s.student_account.pk}),
    "billing:freeze": Request(
        kwargs=lambda s: in_course(s) | {"account_id": s.student_account.pk},
        redirects_to="billing:student_costs",
    ),
    "billing:unfreeze": Request(
        kwargs=lambda s: in_course(s) | {"account_id": s.student_account.pk},
        data=lambda s: {"budget": "120"},
        redirects_to="billing:student_costs",
    ),
    "billing:my_costs": Request(kwargs=in_course),
    "billing:budget_request": Request(
        kwargs=in_course,
        data=lambda s: {"amount": "150", "reason": "The final project trains a model."},
        redirects_to="billing:my_costs",
    ),
    "billing:budget_request_review": Request(
        kwargs=lambda s: in_course(s) | {"request_id": budget_request_of(s.student_account).pk}
    ),
    "billing:budget_request_approve": Request(
        kwargs=lambda s: in_course(s) | {"request_id": budget_request_of(s.student_account).pk},
        redirects_to="billing:budget_request_review",
    ),
    "billing:budget_request_decline": Request(
        kwargs=lambda s: in_course(s) | {"request_id": budget_request_of(s.student_account).pk},
        data=lambda s: {"reason": "Use the spot instances the lab explains."},
        redirects_to="billing:budget_request_review",
    ),
    "billing:my_meter": Request(kwargs=in_course),
    "billing:schedule": Request(
        kwargs=in_course,
        data=lambda s: {"mode": "nightly", "stop_at": "22:00", "time_zone": "Europe/Berlin", "idle_hours": "3"},
        redirects_to="billing:schedule",
    ),
    "billing:my_scheduled_stops": Request(kwargs=in_course),
    "billing:scheduled_stop_start": Request(
        kwargs=lambda s: in_course(s) | {"stop_id": scheduled_stop_of(s.student_account).pk},
        redirects_to="courses:detail",
    ),
}


def url_names(patterns, namespace: str = "") -> set[str]:
    """Every named URL under `patterns`, with its namespace, e.g. "courses:roster"."""
    names = set()
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            names |= url_names(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern):
            assert pattern.name, f"URL pattern {pattern.pattern} has no name"
            names.add(f"{namespace}{pattern.name}")
    return names


def database_state() -> dict:
    """Everything a refused request must leave as it was."""
    return {
        "courses": list(Course.objects.order_by("pk").values()),
        "memberships": list(Membership.objects.order_by("pk").values()),
        "uploads": list(RosterUpload.objects.order_by("pk").values()),
        "aws_accounts": list(MemberAccount.objects.order_by("pk").values()),
        "account_events": list(AccountEvent.objects.order_by("pk").values_list("pk", flat=True)),
        "audit": list(AuditEvent.objects.order_by("pk").values_list("pk", flat=True)),
        "webhooks": list(WebhookEndpoint.objects.order_by("pk").values()),
        "webhook_deliveries": list(WebhookDelivery.objects.order_by("pk").values_list("pk", flat=True)),
        "budget_requests": list(BudgetRequest.objects.order_by("pk").values()),
        "schedules": list(CourseSchedule.objects.order_by("pk").values()),
        "scheduled_stops": list(ScheduledStop.objects.order_by("pk").values()),
    }


def matrix_cases() -> list:
    return [
        pytest.param(name, method, persona, outcome, id=f"{name}-{method}-{persona}")
        for name, method, *expected in MATRIX
        for persona, outcome in zip(PERSONAS, expected, strict=True)
    ]


def test_every_url_pattern_is_in_the_matrix():
    in_matrix = {name for name, *_ in MATRIX}

    assert url_names(accounts_urls.urlpatterns) | url_names(billing_urls.urlpatterns, "billing:") == in_matrix
    assert set(REQUESTS) == in_matrix


def test_every_matrix_line_has_one_answer_per_persona():
    assert all(len(line) == 2 + len(PERSONAS) for line in MATRIX)
    assert len({(name, method) for name, method, *_ in MATRIX}) == len(MATRIX)


@pytest.mark.parametrize(("name", "method", "persona", "expected"), matrix_cases())
def test_authorization_matrix(scene, name, method, persona, expected):
    call = REQUESTS[name]
    call.prepare(scene)
    path = reverse(name, kwargs=call.kwargs(scene))
    client = scene.personas.client(persona)
    before = database_state()

    response = client.get(path) if method == GET else client.post(path, call.data(scene))

    if expected == LOGIN:
        assert response.status_code == 302
        location = urlsplit(response["Location"])
        assert location.path == reverse("account_login")
        assert parse_qs(location.query) == {"next": [path]}
    elif expected == DONE:
        assert response.status_code == 302
        assert resolve(urlsplit(response["Location"]).path).view_name == call.redirects_to
    else:
        assert response.status_code == expected
    if expected != DONE:
        assert database_state() == before, "a request that did not succeed changed the database"


@pytest.mark.parametrize("persona", ["instructor", "admin"])
@pytest.mark.parametrize("name", ["courses:member_role", "courses:member_resend", "courses:member_remove"])
def test_member_of_the_other_course_is_not_found_under_this_courses_url(scene, persona, name):
    client = scene.personas.client(persona)
    path = reverse(name, kwargs={"course_id": scene.course.pk, "member_id": scene.other_member.pk})
    before = database_state()

    response = client.post(path, {"role": "instructor"})

    assert response.status_code == 404
    assert database_state() == before


@pytest.mark.parametrize("persona", ["instructor", "admin"])
def test_aws_account_of_the_other_course_is_not_found_under_this_courses_url(scene, persona):
    client = scene.personas.client(persona)
    path = reverse(
        "courses:account_retry",
        kwargs={"course_id": scene.course.pk, "account_id": scene.other_failed_account.pk},
    )
    before = database_state()

    response = client.post(path)

    assert response.status_code == 404
    assert database_state() == before


@pytest.mark.parametrize("persona", ["instructor", "admin"])
@pytest.mark.parametrize(
    ("name", "method"),
    [("billing:student_costs", GET), ("billing:freeze", POST), ("billing:unfreeze", POST)],
)
def test_student_of_the_other_course_has_no_costs_under_this_courses_url(scene, persona, name, method):
    other_account = member_account(
        scene.other_course,
        "bio200-student",
        AccountState.READY,
        membership=scene.other_member,
        aws_account_id="333333333333",
    )
    client = scene.personas.client(persona)
    path = reverse(name, kwargs={"course_id": scene.course.pk, "account_id": other_account.pk})
    before = database_state()

    response = client.get(path) if method == GET else client.post(path, {"budget": "99"})

    assert response.status_code == 404
    assert database_state() == before


@pytest.mark.parametrize("persona", ["instructor", "admin"])
@pytest.mark.parametrize("name", ["courses:webhook_test", "courses:webhook_remove"])
def test_webhook_of_the_other_course_is_not_found_under_this_courses_url(scene, persona, name):
    other_webhook = webhook_of(scene.other_course)
    path = reverse(name, kwargs={"course_id": scene.course.pk, "endpoint_id": other_webhook.pk})
    before = database_state()

    response = scene.personas.client(persona).post(path)

    assert response.status_code == 404
    assert database_state() == before


@pytest.mark.parametrize("persona", ["instructor", "admin"])
@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("billing:budget_request_review", GET),
        ("billing:budget_request_approve", POST),
        ("billing:budget_request_decline", POST),
    ],
)
def test_budget_request_of_the_other_course_is_not_found_under_this_courses_url(scene, persona, name, method):
    other_account = member_account(
        scene.other_course,
        "bio200-student",
        AccountState.READY,
        membership=scene.other_member,
        aws_account_id="333333333333",
    )
    other_request = budget_request_of(other_account)
    path = reverse(name, kwargs={"course_id": scene.course.pk, "request_id": other_request.pk})
    before = database_state()

    client = scene.personas.client(persona)
    response = client.get(path) if method == GET else client.post(path)

    assert response.status_code == 404
    assert database_state() == before


@pytest.mark.parametrize("method", [GET, POST])
def test_upload_of_the_other_course_is_not_found_under_this_courses_url(scene, method):
    client = scene.personas.client("instructor")
    path = reverse(
        "courses:roster_preview",
        kwargs={"course_id": scene.course.pk, "upload_id": scene.other_upload.pk},
    )
    before = database_state()

    response = client.get(path) if method == GET else client.post(path, {"send_invitations": ""})

    assert response.status_code == 404
    assert database_state() == before


@pytest.mark.parametrize("name", ["courses:detail", "courses:roster", "courses:edit"])
def test_outsiders_get_the_same_answer_as_for_a_course_that_does_not_exist(scene, name):
    client = scene.personas.client("other_instructor")
    missing_id = Course.objects.order_by("-pk").first().pk + 1000

    existing = client.get(reverse(name, kwargs={"course_id": scene.course.pk}))
    missing = client.get(reverse(name, kwargs={"course_id": missing_id}))

    assert existing.status_code == missing.status_code == 404
    # The same page, but for the CSRF token and the script nonce, new in every response.
    assert without_per_response_tokens(existing.content) == without_per_response_tokens(missing.content)


def without_per_response_tokens(content: bytes) -> bytes:
    return re.sub(rb'(X-CSRFToken": "|name="csrfmiddlewaretoken" value="|nonce=")[^"]+', rb"\1", content)


@pytest.mark.parametrize(
    ("persona", "name", "reason"),
    [
        ("student", "courses:roster", "Only the course's instructors and TAs can see the roster."),
        ("ta", "courses:edit", "Only the course's instructors can do this."),
        ("student", "courses:create", "Only instructors and administrators can create courses."),
    ],
)
def test_refusal_page_says_why(scene, persona, name, reason):
    kwargs = {} if name == "courses:create" else {"course_id": scene.course.pk}

    response = scene.personas.client(persona).get(reverse(name, kwargs=kwargs))

    assert response.status_code == 403
    assert f'<p role="alert">{escape(reason)}</p>' in response.content.decode()


@pytest.mark.parametrize(
    ("persona", "expected_codes"),
    [
        ("student", {"cs101"}),
        ("ta", {"cs101"}),
        ("instructor", {"cs101"}),
        ("other_student", {"bio200"}),
        ("other_instructor", {"bio200"}),
        ("admin", {"cs101", "bio200", "geo300"}),
    ],
)
def test_course_list_shows_only_the_users_own_courses(personas, persona, expected_codes):
    CourseFactory(code="geo300", name="Geospatial Pipelines")  # nobody's course
    client = personas.client(persona)

    response = client.get(reverse("courses:list"))

    assert response.status_code == 200
    assert {course.code for course in response.context["active_courses"]} == expected_codes
    listed_names = {
        "cs101": "Cloud Computing",
        "bio200": "Bioinformatics on AWS",
        "geo300": "Geospatial Pipelines",
    }
    for code, name in listed_names.items():
        assert (name in response.content.decode()) == (code in expected_codes), code


def test_course_list_shows_each_members_role_and_archived_courses_separately(personas):
    archived = CourseFactory(code="old100", name="Last Year's Cloud")
    MembershipFactory(course=archived, user=personas.ta, role=CourseRole.STUDENT)
    Course.objects.filter(pk=archived.pk).update(archived_at="2026-01-01T00:00:00Z")

    response = personas.client("ta").get(reverse("courses:list"))

    active = [(c.code, c.viewer_role) for c in response.context["active_courses"]]
    assert active == [("cs101", "ta")]
    assert [c.code for c in response.context["archived_courses"]] == ["old100"]
