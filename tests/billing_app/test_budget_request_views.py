"""A student asks for a higher budget; an instructor approves or declines it in one click.

Driven through the pages with Django's test client, as the student and the instructor use them.
The end-to-end test runs against moto (the `aws` fixture): the budget's freeze attaches the SCP,
the approval's tasks detach it; moto has no UpdateBudget, so that call is checked with botocore's
Stubber. The webhook receivers and their DNS are in process (tests/support/webhooks.py).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from botocore.stub import Stubber
from celery.app.task import Task
from django.core import mail
from django.urls import reverse
from django.utils.html import escape

from accounts_app.choices import AccountState, AuditAction, WebhookKind
from accounts_app.models import AuditEvent, AwsOrganization, MemberAccount, Membership
from accounts_app.services.webhooks import webhook_create
from billing_app.models import AccountDailyCost, BudgetRequest, BudgetRequestStatus, StudentBudget
from billing_app.services.budgets import account_freeze, budget_ensure, budgets_evaluate
from tests.support.aws_calls import NoAwsCalls, place_as_configured
from tests.support.billing import TODAY, attached_policies, d, spend
from tests.support.webhooks import webhook_receivers

SLACK_URL = "https://hooks.slack.com/services/T0001/B0002/abcdefghijklmnop"
REASON = "The final project fine-tunes a model; the lab's GPU instance costs $1.20 an hour."


@pytest.fixture(autouse=True)
def fast_test_settings(settings):
    settings.PORTAL_REQUIRE_MFA_FOR_STAFF = False


@pytest.fixture
def receivers(monkeypatch):
    return webhook_receivers(monkeypatch)


@pytest.fixture
def queued_tasks(monkeypatch) -> list[tuple[str, tuple]]:
    """Tasks are queued, never run: apply_async only records the task and its arguments."""
    queued: list[tuple[str, tuple]] = []

    def record(task, args=None, kwargs=None, **options):
        queued.append((task.name, tuple(args or ())))

    monkeypatch.setattr(Task, "apply_async", record)
    return queued


def student_account(personas, state: AccountState = AccountState.READY, **fields) -> MemberAccount:
    return MemberAccount.objects.create(
        course=personas.course,
        membership=Membership.objects.get(user=personas.student),
        state=state,
        root_email="aws+cs101-student@school.example",
        account_name="cs101-student",
        **({"aws_account_id": "111111111111"} | fields),
    )


def ask(personas, amount: str = "200", reason: str = REASON):
    path = reverse("billing:budget_request", kwargs={"course_id": personas.course.pk})
    return personas.client("student").post(path, {"amount": amount, "reason": reason}, follow=True)


def review_path(budget_request: BudgetRequest, action: str = "") -> str:
    name = f"billing:budget_request_{action or 'review'}"
    return reverse(name, kwargs={"course_id": budget_request.course_id, "request_id": budget_request.pk})


def audit(personas) -> list[tuple[str, str]]:
    budget_actions = {
        AuditAction.BUDGET_REQUESTED,
        AuditAction.BUDGET_REQUEST_APPROVED,
        AuditAction.BUDGET_REQUEST_DECLINED,
        AuditAction.BUDGET_RAISED,
        AuditAction.ACCOUNT_UNFROZEN,
    }
    events = AuditEvent.objects.filter(course=personas.course, action__in=budget_actions).order_by("id")
    return list(events.values_list("action", "actor_label"))


@pytest.mark.django_db(transaction=True)
def test_a_frozen_student_asks_an_instructor_approves_from_the_link_and_the_account_is_unfrozen(
    personas, aws, receivers
):
    status = aws.client("organizations").create_account(
        Email="aws+cs101-student@school.example", AccountName="cs101-student"
    )
    account = place_as_configured(student_account(personas, aws_account_id=status["CreateAccountStatus"]["AccountId"]))
    webhook_create(
        actor=personas.instructor,
        course=personas.course,
        name="#cs101-staff",
        kind=WebhookKind.SLACK,
        url=SLACK_URL,
        topics=["budget_requests"],
    )
    budget_ensure(account_id=account.pk)
    spend(account, {d(1, 9): "100"})
    budgets_evaluate(today=TODAY)
    account.refresh_from_db()
    assert account.state == AccountState.FROZEN
    assert "classroom-cloud-freeze" in attached_policies(aws, account.aws_account_id)
    mail.outbox.clear()

    # The student asks from their spend page.
    page = personas.client("student").get(reverse("billing:my_costs", kwargs={"course_id": personas.course.pk}))
    assert "Ask for a higher budget" in page.content.decode()
    asked = ask(personas)

    assert "Your request was sent to your instructor." in asked.content.decode()
    budget_request = BudgetRequest.objects.get()
    assert (budget_request.status, budget_request.amount, budget_request.budget_before, budget_request.reason) == (
        BudgetRequestStatus.PENDING,
        Decimal("200.00"),
        Decimal("100.00"),
        REASON,
    )
    link = f"http://localhost:8000/courses/{personas.course.pk}/budget-requests/{budget_request.pk}/"
    [staff_mail] = mail.outbox
    assert staff_mail.to == ["alerts@school.example", "instructor@school.example"]
    assert staff_mail.subject == "[Classroom Cloud] cs101: Stella Student asks for a budget of $200.00"
    assert link in staff_mail.body and REASON in staff_mail.body
    [posted] = receivers.received
    assert posted.json["text"].startswith("cs101: Stella Student asks for a budget of $200.00")
    assert f"<{link}|Approve or decline>" in str(posted.json["blocks"])

    # The instructor follows the link and approves in one click.
    instructor = personas.client("instructor")
    review = instructor.get(link.removeprefix("http://localhost:8000"))
    assert review.status_code == 200
    html = review.content.decode()
    assert f'action="{review_path(budget_request, "approve")}"' in html
    assert "it is unfrozen, and what the freeze stopped is started again" in html
    management = AwsOrganization.load().management_account_id
    name = f"classroom-cloud-{account.aws_account_id}"
    current = aws.client("budgets").describe_budget(AccountId=management, BudgetName=name)["Budget"]
    with Stubber(aws.client("budgets")) as stubber:  # moto has no UpdateBudget
        stubber.add_response("describe_budget", {"Budget": current})
        stubber.add_response(
            "update_budget",
            {},
            {
                "AccountId": management,
                "NewBudget": {
                    **{
                        key: current[key]
                        for key in ("BudgetName", "TimeUnit", "BudgetType", "CostFilters", "CostTypes")
                    },
                    "BudgetLimit": {"Amount": "200.00", "Unit": "USD"},
                    "TimePeriod": {"Start": "2026-09-01", "End": "2026-12-16"},
                },
            },
        )
        approved = instructor.post(review_path(budget_request, "approve"), follow=True)
        stubber.assert_no_pending_responses()

    assert "Approved: the budget is now $200.00. The student is told." in approved.content.decode()
    account.refresh_from_db()
    assert account.state == AccountState.READY
    assert attached_policies(aws, account.aws_account_id) == ["FullAWSAccess"]
    assert StudentBudget.objects.get(account=account).amount_override == Decimal("200.00")
    budget_request.refresh_from_db()
    assert (budget_request.status, budget_request.decided_by) == (BudgetRequestStatus.APPROVED, personas.instructor)
    assert audit(personas) == [
        (AuditAction.BUDGET_REQUESTED, "student@school.example"),
        (AuditAction.BUDGET_RAISED, "instructor@school.example"),
        (AuditAction.ACCOUNT_UNFROZEN, "instructor@school.example"),
        (AuditAction.BUDGET_REQUEST_APPROVED, "instructor@school.example"),
    ]
    student_mail = mail.outbox[-1]
    assert student_mail.to == ["student@school.example"]
    assert student_mail.subject == "[Classroom Cloud] cs101: your request for a budget of $200.00 was approved"
    assert "Your account is being unfrozen" in student_mail.body
    assert receivers.received[-1].json["text"].startswith("cs101: Stella Student's budget request approved")

    # A second click, or a colleague's, finds it decided and changes nothing.
    again = instructor.post(review_path(budget_request, "approve"), follow=True)
    assert "This request was already decided." in again.content.decode()
    assert len(audit(personas)) == 4


@pytest.mark.django_db
def test_approving_queues_the_aws_work_and_calls_no_aws_in_the_request(
    personas, monkeypatch, queued_tasks, django_capture_on_commit_callbacks
):
    account = student_account(personas)
    StudentBudget.objects.create(account=account, aws_budget_name="classroom-cloud-111111111111")
    AccountDailyCost.objects.create(account=account, course=personas.course, day=TODAY, usage=Decimal(100))
    account_freeze(actor=None, account=account, reason="Spent $100.00 of $100.00")
    budget_request = BudgetRequest.objects.create(
        account=account, course=personas.course, budget_before=Decimal(100), amount=Decimal(150), reason=REASON
    )
    queued_tasks.clear()
    guard = NoAwsCalls(monkeypatch)

    with django_capture_on_commit_callbacks(execute=True):
        response = personas.client("instructor").post(review_path(budget_request, "approve"))

    assert response.status_code == 302
    assert guard.calls == []
    assert [task for task, _ in queued_tasks] == [
        "billing_app.tasks.budget_ensure_task",
        "accounts_app.tasks.account_freeze_sync_task",
        "accounts_app.tasks.emails_deliver_task",
    ]
    account.refresh_from_db()
    assert (account.state, account.freeze_sync_pending) == (AccountState.READY, True)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who_froze", "spent", "why"),
    [("instructor", "100", "an instructor's freeze stays"), (None, "190", "spent past the new budget's freeze line")],
)
def test_approval_raises_the_budget_but_leaves_a_freeze_the_budget_alone_did_not_make(
    personas, queued_tasks, django_capture_on_commit_callbacks, who_froze, spent, why
):
    account = student_account(personas)
    AccountDailyCost.objects.create(account=account, course=personas.course, day=TODAY, usage=Decimal(spent))
    actor = getattr(personas, who_froze) if who_froze else None
    account_freeze(actor=actor, account=account, reason=why)
    budget_request = BudgetRequest.objects.create(
        account=account, course=personas.course, budget_before=Decimal(100), amount=Decimal(150), reason=REASON
    )
    instructor = personas.client("instructor")
    assert "The account stays frozen" in instructor.get(review_path(budget_request)).content.decode()
    queued_tasks.clear()

    with django_capture_on_commit_callbacks(execute=True):
        instructor.post(review_path(budget_request, "approve"))

    account.refresh_from_db()
    assert account.state == AccountState.FROZEN, why
    assert StudentBudget.objects.get(account=account).amount_override == Decimal("150.00")
    assert [task for task, _ in queued_tasks] == ["accounts_app.tasks.emails_deliver_task"]
    [[student_mail]] = queued_tasks[0][1]
    assert "Your account is still frozen; your instructor unfreezes it." in student_mail["body"]


@pytest.mark.django_db
def test_a_declined_request_tells_the_student_why_and_changes_no_budget(
    personas, receivers, django_capture_on_commit_callbacks
):
    account = student_account(personas)
    webhook_create(
        actor=None,
        course=personas.course,
        name="#cs101",
        kind=WebhookKind.SLACK,
        url=SLACK_URL,
        topics=["budget_requests"],
    )
    with django_capture_on_commit_callbacks(execute=True):
        ask(personas, amount="130.50")
    budget_request = BudgetRequest.objects.get()
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        response = personas.client("instructor").post(
            review_path(budget_request, "decline"), {"reason": "Use the spot instances lab 6 explains."}, follow=True
        )

    assert "Declined. The student is told." in response.content.decode()
    budget_request.refresh_from_db()
    assert (budget_request.status, budget_request.decline_reason) == (
        BudgetRequestStatus.DECLINED,
        "Use the spot instances lab 6 explains.",
    )
    assert not StudentBudget.objects.filter(account=account).exists()
    [student_mail] = mail.outbox
    assert student_mail.subject == "[Classroom Cloud] cs101: your request for a budget of $130.50 was declined"
    assert "your budget stays $100.00. Their reason:" in " ".join(student_mail.body.split())
    assert "Use the spot instances lab 6 explains." in student_mail.body
    assert receivers.received[-1].json["text"].startswith("cs101: Stella Student's budget request declined")
    assert audit(personas)[-1] == (AuditAction.BUDGET_REQUEST_DECLINED, "instructor@school.example")
    # The answer is on the student's page; they may ask again.
    page = personas.client("student").get(reverse("billing:my_costs", kwargs={"course_id": personas.course.pk}))
    read = " ".join(page.content.decode().split())
    assert "$130.50, asked" in read and "<strong>Declined</strong> (Use the spot instances lab 6 explains.)" in read
    with django_capture_on_commit_callbacks(execute=True):
        ask(personas, amount="120")
    assert BudgetRequest.objects.filter(status=BudgetRequestStatus.PENDING).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("amount", "says"),
    [
        ("100", "Ask for more than your current budget of $100.00."),
        ("-5", "New budget (USD): Ensure this value is greater than or equal to 0.01."),
        ("lots", "New budget (USD): Enter a number."),
    ],
)
def test_a_request_that_would_not_raise_the_budget_is_refused(personas, amount, says):
    student_account(personas)

    response = ask(personas, amount=amount)

    assert says in response.content.decode()
    assert not BudgetRequest.objects.exists()


@pytest.mark.django_db
def test_one_request_waits_at_a_time(personas):
    student_account(personas)
    ask(personas, amount="150")

    response = ask(personas, amount="300")

    assert "You already asked for $150.00 on" in response.content.decode()
    assert list(BudgetRequest.objects.values_list("amount", flat=True)) == [Decimal("150.00")]


@pytest.mark.django_db
def test_a_student_declined_again_and_again_stops_at_three_requests_a_day(personas):
    account = student_account(personas)
    for amount in ("150", "140", "130"):
        ask(personas, amount=amount)
        BudgetRequest.objects.filter(status=BudgetRequestStatus.PENDING).update(status=BudgetRequestStatus.DECLINED)

    response = ask(personas, amount="120")

    assert "You asked 3 times in the last day; ask again tomorrow." in response.content.decode()
    assert BudgetRequest.objects.filter(account=account).count() == 3


@pytest.mark.django_db
def test_the_students_account_panel_leads_to_the_request(personas):
    student_account(personas, state=AccountState.FROZEN)

    panel = personas.client("student").get(reverse("courses:detail", kwargs={"course_id": personas.course.pk}))

    my_costs = reverse("billing:my_costs", kwargs={"course_id": personas.course.pk})
    assert f'<a href="{my_costs}#budget-request">Ask for a higher budget</a>' in panel.content.decode()


@pytest.mark.django_db
def test_an_account_no_longer_in_use_is_not_raised_and_its_request_waits_to_be_declined(personas):
    account = student_account(personas)
    ask(personas)
    MemberAccount.objects.filter(pk=account.pk).update(state=AccountState.CLEANING)
    budget_request = BudgetRequest.objects.get()

    response = personas.client("instructor").post(review_path(budget_request, "approve"), follow=True)

    assert "The account is no longer in use" in response.content.decode()
    budget_request.refresh_from_db()
    assert budget_request.status == BudgetRequestStatus.PENDING
    assert not StudentBudget.objects.filter(account=account).exists()


@pytest.mark.django_db
def test_tas_see_the_request_without_the_buttons_and_instructors_find_it_on_the_costs_page(personas):
    student_account(personas)
    ask(personas)
    budget_request = BudgetRequest.objects.get()

    ta_page = personas.client("ta").get(review_path(budget_request)).content.decode()
    costs = personas.client("instructor").get(reverse("billing:costs", kwargs={"course_id": personas.course.pk}))

    assert escape(REASON) in ta_page and "budget_request_approve" not in ta_page and "/approve/" not in ta_page
    assert f'href="{review_path(budget_request)}">Stella Student: $200.00</a>' in costs.content.decode()
