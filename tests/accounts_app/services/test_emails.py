"""Every email the portal sends, rendered with the context its service gives it.

Each email is three templates (templates/emails/<name>_subject.txt, <name>.txt, <name>.html);
these tests render every one of them through `email_build`, as the services do, and read what a
student or an instructor would read: a one-line subject naming the course, the facts that matter
(dates, links, reasons) in both bodies, a plain-text body with no HTML in it and an HTML body
that holds together. The account-ready email is sent by a receiver: it is tested on the lifecycle.
"""

import html
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.db import transaction
from django.utils import timezone

from accounts_app.choices import AccessMode, AccountState, CourseRole, EndPolicy, HandoverStatus
from accounts_app.lifecycle import transition
from accounts_app.models import AwsOrganization, Course, Handover, MemberAccount, Membership
from accounts_app.selectors import account_access, account_spending
from accounts_app.services.ending import end_outcome, end_schedule
from accounts_app.services.handover import REMOVAL_BLOCKERS
from accounts_app.services.invitations import invitation_url
from accounts_app.services.notifications import email_build
from billing_app.models import Alert, AlertKind, BudgetRequest, BudgetRequestStatus, SpendLimit
from billing_app.services.budget_requests import review_link
from billing_app.services.budgets import ask_for_more_link
from tests.factories import CourseFactory, MemberAccountFactory, MembershipFactory, UserFactory

BASE_URL = "https://cloud.school.example"
EMAILS_DIR = Path(settings.BASE_DIR) / "templates" / "emails"
SOURCE_DIRS = [Path(settings.BASE_DIR) / "accounts_app", Path(settings.BASE_DIR) / "billing_app"]
# An ampersand and an apostrophe: what autoescaping would turn into &amp; and &#x27;.
COURSE_NAME = "Cloud Computing & DevOps"
ACCESS_PORTAL = "https://d-9067c1a2b3.awsapps.com/start"
NEW_ROOT_EMAIL = "ada.lovelace@mail.example"
DECLINE_REASON = "Lab 5 isn't graded yet & the account holds the graders' test data."

TAG = re.compile(r"<\s*/?\s*[a-zA-Z][^>]*>")
ENTITY = re.compile(r"&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);")
SENT_NAME = re.compile(r"\bemail_(?:send|build)\(\s*[\"'](\w+)[\"']")


@dataclass
class World:
    course: Course
    student: Membership
    instructor: Membership
    account: MemberAccount
    handover: Handover

    def links(self) -> dict[str, str]:
        course, account = self.course.pk, self.account.pk
        return {
            "course": f"{BASE_URL}/courses/{course}/",
            "costs": f"{BASE_URL}/courses/{course}/my-costs/",
            "checklist": f"{BASE_URL}/courses/{course}/my-account/handover/",
            "decide": f"{BASE_URL}/courses/{course}/accounts/{account}/handover/",
            "account": f"{BASE_URL}/courses/{course}/costs/students/{account}/",
            "ask": f"{BASE_URL}/courses/{course}/my-costs/#budget-request",
        }


@pytest.fixture
def world(db, settings) -> World:
    settings.PORTAL_BASE_URL = BASE_URL + "/"  # email_build drops the trailing slash
    course = CourseFactory(
        code="cs101",
        name=COURSE_NAME,
        end_date=date(2026, 12, 15),
        grace_days=14,
        end_policy=EndPolicy.CLOSE,
        handover_allowed=True,
    )
    student = MembershipFactory(
        course=course, user=UserFactory(email="ada@school.example", name="Ada Lovelace"), role=CourseRole.STUDENT
    )
    instructor = MembershipFactory(
        course=course, user=UserFactory(email="grace@school.example", name="Grace Hopper"), role=CourseRole.INSTRUCTOR
    )
    account = MemberAccountFactory(membership=student, account_name="cs101-ada", aws_account_id="210987654321")
    handover = Handover.objects.create(
        account=account,
        new_root_email=NEW_ROOT_EMAIL,
        contact_name="Ada Lovelace",
        contact_phone="+1 555 0100",
        previous_state=AccountState.READY,
        requested_by=student.user,
    )
    organization = AwsOrganization.load()
    organization.access_portal_url = ACCESS_PORTAL
    organization.permission_sets = {"student": "arn:aws:sso:::permissionSet/ssoins-1/ps-student"}
    organization.save()
    return World(course, student, instructor, account, handover)


# --- One realistic context per email ---------------------------------------------------------------
# Each builder sets the world up as the service would have it when it sends the email, and returns
# the email's name, its context, its recipients and the facts both bodies must state.


def _invitation(w: World):
    member = MembershipFactory(course=w.course, user=None, email="new.student@school.example", name="Alan Turing")
    url = invitation_url(member)
    context = {
        "member": member,
        "course": w.course,
        "url": url,
        "max_age_days": settings.PORTAL_INVITATION_MAX_AGE_DAYS,
    }
    return (
        "invitation",
        context,
        [member.email],
        [url, "new.student@school.example", f"{settings.PORTAL_INVITATION_MAX_AGE_DAYS} days"],
    )


def _alert(w: World):
    w.account.state = AccountState.FROZEN
    alert = Alert.objects.create(
        account=w.account,
        course=w.course,
        kind=AlertKind.FROZEN,
        period="2026-10-20T14:05:00Z",
        message="Ada Lovelace's AWS account was frozen: it reached 100% of its $100.00 budget.",
        spend=Decimal("100.40"),
        budget=Decimal("100.00"),
    )
    context = {"alert": alert, "account": w.account, "course": w.course, "ask_link": ask_for_more_link(w.course)}
    recipients = [w.student.email, w.course.usage_alert_email, w.instructor.email]
    facts = [alert.message, "$100.40", w.links()["costs"], w.links()["account"], w.links()["ask"]]
    return "alert", context, recipients, facts


def _alert_limit(w: World):
    w.account.state = AccountState.FROZEN
    alert = Alert.objects.create(
        account=w.account,
        course=w.course,
        kind=AlertKind.FROZEN,
        limit=SpendLimit.ACCELERATORS,
        period="2026-10-20T14:05:00Z",
        message="Ada Lovelace's AWS account was frozen: g5.xlarge is a GPU or accelerator instance; "
        "the course allows 0.",
        spend=Decimal("12.40"),
        budget=Decimal("100.00"),
    )
    context = {"alert": alert, "account": w.account, "course": w.course, "ask_link": ask_for_more_link(w.course)}
    recipients = [w.student.email, w.course.usage_alert_email, w.instructor.email]
    facts = [
        "frozen by the course's limit on GPU and accelerator instances",
        "g5.xlarge is a GPU or accelerator instance; the course allows 0",
        "stops what runs in it (EC2 instances",
        w.links()["ask"],
        w.links()["account"],
    ]
    return "alert", context, recipients, facts


def _spending_stopped(w: World):
    w.account.state = AccountState.FROZEN
    w.account.spending_report = {
        "resources": [
            {
                "region": "us-east-1",
                "kind": "ec2:instance",
                "id": "i-0a1b",
                "label": "web (i-0a1b): t3.large, running",
                "status": "stopped",
                "reason": "",
            },
            {
                "region": "eu-west-1",
                "kind": "ec2:instance",
                "id": "i-0c2d",
                "label": "i-0c2d: c5d.large, spot, running",
                "status": "not stopped",
                "reason": "You can't stop the Spot Instance 'i-0c2d'.",
            },
        ],
        "checked_at": "2026-10-20T14:06:00+00:00",
    }
    context = {
        "account": w.account,
        "course": w.course,
        "spending": account_spending(account=w.account),
        "why": "running $14.20/h, the course allows $5.00/h",
        "ask_link": ask_for_more_link(w.course),
    }
    recipients = [w.student.email, w.course.usage_alert_email, w.instructor.email]
    facts = [
        "210987654321",
        "Why: running $14.20/h, the course allows $5.00/h.",
        w.links()["ask"],
        "EC2 instance web (i-0a1b): t3.large, running in us-east-1: stopped",
        "AWS refused to stop these",
        "EC2 instance i-0c2d: c5d.large, spot, running in eu-west-1: You can't stop the Spot Instance 'i-0c2d'.",
        "Ask your instructor to raise the budget",
        w.links()["costs"],
        w.links()["account"],
    ]
    return "spending_stopped", context, recipients, facts


def _course_ending(w: World):
    context = {
        "course": w.course,
        "account": w.account,
        "outcome": end_outcome(w.course),
        "schedule": end_schedule(w.course),
    }
    facts = [
        "December 15, 2026",  # the end date
        "December 16, 2026",  # the freeze, as the end date is over
        "December 30, 2026",  # the end policy, 14 days later
        "it is cleaned up and closed",
        "Save your work before December 16, 2026",
        "Keep my account",
        w.links()["course"],
    ]
    return "course_ending", context, [w.student.email], facts


def _course_ended(w: World):
    # Ended early by an instructor: the schedule follows the day it happened, not the end date.
    w.course.ended_at = datetime(2026, 12, 10, 15, 0, tzinfo=timezone.get_current_timezone())
    w.course.save()
    w.account.state = AccountState.ENDED
    context = {
        "course": w.course,
        "account": w.account,
        "outcome": end_outcome(w.course),
        "schedule": end_schedule(w.course),
    }
    facts = [
        "December 10, 2026",
        "December 24, 2026",
        "it is cleaned up and closed",
        "Keep my account",
        w.links()["course"],
    ]
    return "course_ended", context, [w.student.email], facts


def _account_closed(w: World):
    w.account.state = AccountState.CLOSED
    context = {"account": w.account, "course": w.course}
    return "account_closed", context, [w.student.email], ["210987654321", "90 days", w.links()["costs"]]


def _handover_requested(w: World):
    w.account.state = AccountState.HANDOVER_REQUESTED
    context = {"handover": w.handover, "account": w.account, "course": w.course}
    facts = ["Ada Lovelace", "ada@school.example", "210987654321", NEW_ROOT_EMAIL, w.links()["decide"]]
    return "handover_requested", context, [w.instructor.email], facts


def _approved(w: World, decided_by) -> None:
    w.account.state = AccountState.HANDOVER
    Handover.objects.filter(pk=w.handover.pk).update(
        status=HandoverStatus.APPROVED, decided_by=decided_by, decided_at=timezone.now()
    )
    w.handover.refresh_from_db()


def _handover_approved(w: World):
    _approved(w, w.instructor.user)
    context = {"handover": w.handover, "account": w.account, "course": w.course}
    facts = ["An instructor approved your request", NEW_ROOT_EMAIL, w.links()["checklist"]]
    return "handover_approved", context, [w.student.email], facts


def _handover_approved_at_once(w: World):
    # A course whose end policy is "keep" approves every request itself: nobody decided.
    w.course.end_policy = EndPolicy.KEEP
    w.course.save()
    _approved(w, None)
    context = {"handover": w.handover, "account": w.account, "course": w.course}
    facts = [f"{COURSE_NAME} lets students keep their accounts", NEW_ROOT_EMAIL, w.links()["checklist"]]
    return "handover_approved", context, [w.student.email], facts


def _handover_declined(w: World):
    Handover.objects.filter(pk=w.handover.pk).update(
        status=HandoverStatus.DECLINED,
        decided_by=w.instructor.user,
        decided_at=timezone.now(),
        decline_reason=DECLINE_REASON,
    )
    w.handover.refresh_from_db()
    context = {"handover": w.handover, "account": w.account, "course": w.course}
    return "handover_declined", context, [w.student.email], [DECLINE_REASON, w.links()["course"]]


def _handover_cancelled(w: World):
    reason = "Timed out: no step done for 30 days"
    Handover.objects.filter(pk=w.handover.pk).update(
        status=HandoverStatus.CANCELLED, cancelled_at=timezone.now(), cancel_reason=reason
    )
    w.handover.refresh_from_db()
    context = {"handover": w.handover, "account": w.account, "course": w.course}
    recipients = [w.student.email, w.instructor.email]
    return "handover_cancelled", context, recipients, [reason, w.account.aws_account_id, w.links()["course"]]


def _handover_code(w: World):
    _approved(w, w.instructor.user)
    Handover.objects.filter(pk=w.handover.pk).update(code_sent_at=timezone.now())
    w.handover.refresh_from_db()
    context = {"handover": w.handover, "account": w.account, "course": w.course}
    facts = [
        "AWS has sent a one-time code to that address",
        NEW_ROOT_EMAIL,
        "Type the code on your checklist page",
        "request a new one",
        w.links()["checklist"],
    ]
    return "handover_code", context, [w.student.email], facts


def _handover_your_turn(w: World):
    _approved(w, w.instructor.user)
    now = timezone.now()
    Handover.objects.filter(pk=w.handover.pk).update(
        code_sent_at=now, root_email_moved_at=now, contacts_set_at=now, access_removed_at=now
    )
    w.handover.refresh_from_db()
    context = {"handover": w.handover, "account": w.account, "course": w.course}
    facts = [
        "https://signin.aws.amazon.com/",
        NEW_ROOT_EMAIL,
        "Forgot password",
        "payment method",
        "Verify a phone number",
        "I've done these steps",
        w.links()["checklist"],
    ]
    return "handover_your_turn", context, [w.student.email], facts


BLOCKERS = [
    {"reason": reason, "message": REMOVAL_BLOCKERS[reason]}
    for reason in ("MEMBER_ACCOUNT_PAYMENT_INSTRUMENT_REQUIRED", "ACCOUNT_CANNOT_LEAVE_WITHOUT_PHONE_VERIFICATION")
]


def _handover_blocked(w: World):
    _approved(w, w.instructor.user)
    now = timezone.now()
    Handover.objects.filter(pk=w.handover.pk).update(
        root_email_moved_at=now,
        contacts_set_at=now,
        access_removed_at=now,
        blockers=BLOCKERS,
        last_error="The member account must have a valid payment instrument.",
    )
    w.handover.refresh_from_db()
    context = {"handover": w.handover, "account": w.account, "course": w.course}
    facts = [*(b["message"] for b in BLOCKERS), "I've done these steps", w.links()["checklist"]]
    return "handover_blocked", context, [w.student.email], facts


def _handover_done(w: World):
    w.account.state = AccountState.HANDED_OVER
    Handover.objects.filter(pk=w.handover.pk).update(status=HandoverStatus.COMPLETED, removed_at=timezone.now())
    w.handover.refresh_from_db()
    context = {"handover": w.handover, "account": w.account, "course": w.course}
    facts = ["it is yours now", "bills it to you", "OrganizationAccountAccessRole", NEW_ROOT_EMAIL, w.links()["costs"]]
    return "handover_done", context, [w.student.email], facts


def _account_ready(w: World):
    access = account_access(account=w.account)
    assert access["deep_link"].startswith(ACCESS_PORTAL) and "&" in access["deep_link"]
    context = {"account": w.account, "course": w.course, "access": access}
    facts = [access["deep_link"], "ada@school.example", "Forgot password", "$100.00", w.links()["costs"]]
    return "account_ready", context, [w.student.email], facts


def _account_ready_iam_user(w: World):
    w.course.access_mode = AccessMode.IAM_USER
    w.course.save()
    w.account.iam_user_name, w.account.account_alias = "ada", "cs101-ada"
    access = account_access(account=w.account)
    context = {"account": w.account, "course": w.course, "access": access}
    facts = [
        "https://cs101-ada.signin.aws.amazon.com/console",
        "User name: ada",
        "Show my first password (once)",
        w.links()["course"],
    ]
    return "account_ready", context, [w.student.email], facts


BUDGET_REASON = "Lab 7 trains a model on a GPU & the spot price doubled."


def _budget_request(w: World, **fields) -> BudgetRequest:
    return BudgetRequest.objects.create(
        account=w.account,
        course=w.course,
        requested_by=w.student.user,
        budget_before=Decimal("100.00"),
        amount=Decimal("175.50"),
        reason=BUDGET_REASON,
        **fields,
    )


def _budget_requested(w: World):
    w.account.state = AccountState.FROZEN
    budget_request = _budget_request(w)
    link = review_link(budget_request)
    context = {
        "budget_request": budget_request,
        "account": w.account,
        "course": w.course,
        "link": link,
        "student": "Ada Lovelace",
    }
    recipients = [w.instructor.email, w.course.usage_alert_email]
    facts = [
        "Ada Lovelace",
        "ada@school.example",
        "$175.50",
        "$100.00",
        "frozen",
        BUDGET_REASON,
        f"{BASE_URL}/courses/{w.course.pk}/budget-requests/{budget_request.pk}/",
    ]
    return "budget_requested", context, recipients, facts


def _budget_request_approved(w: World):
    budget_request = _budget_request(w, status=BudgetRequestStatus.APPROVED)
    context = {"budget_request": budget_request, "account": w.account, "course": w.course, "unfrozen": True}
    facts = ["approved", "$175.50", "210987654321", "is being unfrozen", w.links()["costs"]]
    return "budget_request_decided", context, [w.student.email], facts


def _budget_request_declined(w: World):
    budget_request = _budget_request(w, status=BudgetRequestStatus.DECLINED, decline_reason="Use the spot instances.")
    context = {"budget_request": budget_request, "account": w.account, "course": w.course, "unfrozen": False}
    facts = ["declined", "$175.50", "stays $100.00", "Use the spot instances.", w.links()["costs"]]
    return "budget_request_decided", context, [w.student.email], facts


# Keyed by email name; "name/variant" for a second context of the same email.
CASES = {
    "invitation": _invitation,
    "alert": _alert,
    "alert/limit": _alert_limit,
    "spending_stopped": _spending_stopped,
    "budget_requested": _budget_requested,
    "budget_request_decided": _budget_request_approved,
    "budget_request_decided/declined": _budget_request_declined,
    "course_ending": _course_ending,
    "course_ended": _course_ended,
    "account_closed": _account_closed,
    "handover_requested": _handover_requested,
    "handover_approved": _handover_approved,
    "handover_approved/at_once": _handover_approved_at_once,
    "handover_declined": _handover_declined,
    "handover_cancelled": _handover_cancelled,
    "handover_code": _handover_code,
    "handover_your_turn": _handover_your_turn,
    "handover_blocked": _handover_blocked,
    "handover_done": _handover_done,
    "account_ready": _account_ready,
    "account_ready/iam_user": _account_ready_iam_user,
}


# --- Reading what was rendered ---------------------------------------------------------------------

VOID_ELEMENTS = {"br", "hr", "img", "meta", "link", "input", "wbr"}


class _TagBalance(HTMLParser):
    """Every element opened is closed, in order; the document is one <html> element."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.problems: list[str] = []
        self.roots = 0

    def handle_starttag(self, tag, attrs) -> None:
        if tag in VOID_ELEMENTS:
            return
        if not self.open:
            self.roots += 1
        self.open.append(tag)

    def handle_endtag(self, tag) -> None:
        if tag in VOID_ELEMENTS:
            return
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1] if self.open else 'nothing'}")
            return
        self.open.pop()


def assert_well_formed(body: str) -> None:
    assert body.lstrip().startswith("<!DOCTYPE html>")
    assert '<html lang="en">' in body
    checker = _TagBalance()
    checker.feed(body)
    checker.close()
    assert checker.problems == [] and checker.open == [], (checker.problems, checker.open)
    assert checker.roots == 1
    # Mail clients block remote content: everything is inline, nothing is fetched.
    assert not re.search(r"<(?:img|link|script|style)\b|\bsrc=", body)


def html_body(message) -> str:
    [(content, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return content


def read(message) -> tuple[str, str]:
    """The text and the HTML body as a reader sees them (tags dropped, lines joined); the HTML
    one followed by its markup, unescaped, so that the links' targets count too."""
    body = html_body(message)
    text_read = " ".join(message.body.split())
    html_read = " ".join(html.unescape(TAG.sub("", body)).split()) + " " + html.unescape(body)
    return text_read, html_read


@pytest.mark.parametrize("case", CASES)
def test_email_renders_with_its_facts(world, case):
    name, context, recipients, facts = CASES[case](world)
    assert name == case.split("/")[0]

    message = email_build(name, context, recipients)

    prefix = settings.ACCOUNT_EMAIL_SUBJECT_PREFIX
    subject = message.subject
    assert subject.startswith(prefix) and subject[len(prefix) :].strip()
    assert "\n" not in subject and "\r" not in subject
    assert "cs101" in subject
    assert not ENTITY.search(subject), subject
    assert message.to == sorted(set(recipients))

    text, body = message.body, html_body(message)
    assert not TAG.search(text), TAG.search(text)
    assert not ENTITY.search(text), ENTITY.search(text)
    assert "{{" not in text and "{%" not in text and "{{" not in body and "{%" not in body
    assert_well_formed(body)
    text_read, html_read = read(message)
    for fact in [COURSE_NAME, *facts]:
        assert fact in text_read, f"{fact!r} missing from {name}.txt"
        assert fact in html_read, f"{fact!r} missing from {name}.html"


def test_the_ending_notice_offers_to_keep_the_account_only_where_the_course_allows(world):
    world.course.handover_allowed = False
    world.course.save()
    context = {
        "course": world.course,
        "account": world.account,
        "outcome": end_outcome(world.course),
        "schedule": end_schedule(world.course),
    }

    for name in ("course_ending", "course_ended"):
        message = email_build(name, context, [world.student.email])
        for body in read(message):
            assert "Keep my account" not in body
            assert "December 30, 2026" in body


def test_an_ending_notice_under_the_keep_policy_asks_no_instructor(world):
    world.course.end_policy = EndPolicy.KEEP
    world.course.save()
    context = {
        "course": world.course,
        "account": world.account,
        "outcome": end_outcome(world.course),
        "schedule": end_schedule(world.course),
    }

    message = email_build("course_ending", context, [world.student.email])

    for body in read(message):
        assert "it is cleaned up and closed, unless you keep it" in body
        assert "Keep my account" in body and "instructor approves" not in body


# --- The templates themselves ----------------------------------------------------------------------


def _email_parts() -> dict[str, set[str]]:
    parts: dict[str, set[str]] = {}
    for path in EMAILS_DIR.iterdir():
        filename = path.name
        if filename.endswith("_subject.txt"):
            parts.setdefault(filename.removesuffix("_subject.txt"), set()).add("subject")
        elif filename.endswith(".txt"):
            parts.setdefault(filename.removesuffix(".txt"), set()).add("text")
        elif filename.endswith(".html"):
            parts.setdefault(filename.removesuffix(".html"), set()).add("html")
        else:
            parts.setdefault(filename, set()).add("unknown file")
    return parts


def test_every_email_has_a_subject_a_text_and_an_html_template():
    incomplete = {name: sorted(found) for name, found in _email_parts().items() if found != {"subject", "text", "html"}}
    assert incomplete == {}


def test_every_email_the_portal_sends_has_its_templates_and_a_test_here():
    sent = set()
    for directory in SOURCE_DIRS:
        for path in directory.rglob("*.py"):
            sent |= set(SENT_NAME.findall(path.read_text()))
    assert {"invitation", "alert", "account_ready", "course_ending", "handover_done"} <= sent  # the scan works
    assert sent - set(_email_parts()) == set()
    assert sent - {case.split("/")[0] for case in CASES} == set()


# --- The account-ready email -----------------------------------------------------------------------


@pytest.fixture
def no_budgets(monkeypatch):
    """The billing receiver creates an AWS Budget for every account that becomes ready: not here."""
    made = []
    monkeypatch.setattr("billing_app.services.budgets.budget_ensure", lambda *, account_id: made.append(account_id))
    return made


def test_an_account_ready_for_the_first_time_emails_its_student_once(
    world, no_budgets, django_capture_on_commit_callbacks
):
    MemberAccount.objects.filter(pk=world.account.pk).update(state=AccountState.CONFIGURING)
    world.account.refresh_from_db()

    with django_capture_on_commit_callbacks(execute=True):
        assert transition(
            world.account, expected=AccountState.CONFIGURING, to=AccountState.READY, reason="Access verified"
        )

    [message] = mail.outbox
    assert message.to == ["ada@school.example"]
    assert message.subject == f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}cs101: your AWS account is ready"
    assert account_access(account=world.account)["deep_link"] in message.body
    assert no_budgets == [world.account.pk]  # the budget receiver still runs beside it

    # Configured again later (READY → CONFIGURING → READY): the student already knows.
    with django_capture_on_commit_callbacks(execute=True):
        transition(world.account, expected=AccountState.READY, to=AccountState.CONFIGURING)
        transition(world.account, expected=AccountState.CONFIGURING, to=AccountState.READY)
    assert len(mail.outbox) == 1


def test_an_unfrozen_account_sends_no_ready_email(world, no_budgets, django_capture_on_commit_callbacks):
    MemberAccount.objects.filter(pk=world.account.pk).update(state=AccountState.FROZEN)
    world.account.refresh_from_db()

    with django_capture_on_commit_callbacks(execute=True):
        assert transition(world.account, expected=AccountState.FROZEN, to=AccountState.READY, reason="Unfrozen")

    assert mail.outbox == []


def test_a_pool_account_has_nobody_to_tell(world, no_budgets, django_capture_on_commit_callbacks):
    pooled = MemberAccountFactory(course=world.course, membership=None, state=AccountState.CONFIGURING)

    with django_capture_on_commit_callbacks(execute=True):
        assert transition(pooled, expected=AccountState.CONFIGURING, to=AccountState.READY)

    assert mail.outbox == []


def test_no_ready_email_when_the_change_is_rolled_back(world, no_budgets, django_capture_on_commit_callbacks):
    MemberAccount.objects.filter(pk=world.account.pk).update(state=AccountState.CONFIGURING)
    world.account.refresh_from_db()

    # The raise inside the block is the rollback under test.
    with (  # noqa: PT012
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        transition(world.account, expected=AccountState.CONFIGURING, to=AccountState.READY)
        raise RuntimeError("the worker died before the commit")

    assert mail.outbox == []
    assert MemberAccount.objects.get(pk=world.account.pk).state == AccountState.CONFIGURING
