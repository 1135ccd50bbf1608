"""Budget alerts, freezing and unfreezing (billing_app/services/budgets.py): what
budgets_evaluate decides from the spend the cost sync recorded, account_freeze and
account_unfreeze.

AWS is moto (the `aws` fixture: an organization set up by aws_bootstrap); the AWS Budget itself
and its actions are in test_budgets.py.
"""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from botocore.stub import Stubber
from django.core import mail

from accounts_app.choices import AccountState, AuditAction, BudgetPeriod
from accounts_app.models import AccountEvent, AuditEvent, AwsOrganization, MemberAccount, Membership
from accounts_app.services.guardrails import FREEZE_POLICY_NAME, portal_role
from billing_app.models import Alert, AlertKind, StudentBudget
from billing_app.services.budgets import account_freeze, account_unfreeze, budget_ensure, budgets_evaluate
from portal.aws.guardrails import freeze_policy
from tests.support.billing import TODAY, attached_policies, d, spend


def alerts(**filters) -> list[tuple]:
    return sorted(Alert.objects.filter(**filters).values_list("kind", "period", "spend", "budget"))


# --- Alerts ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_each_threshold_fires_once_and_a_course_that_never_freezes_keeps_the_account(
    personas, student_account, aws, django_capture_on_commit_callbacks
):
    personas.course.freeze_at_percent = 0
    personas.course.save()
    budget = Decimal("100.00")

    with django_capture_on_commit_callbacks(execute=True):
        spend(student_account, {d(1, 9): "55"})
        first = budgets_evaluate(today=TODAY)
        again = budgets_evaluate(today=TODAY)
        spend(student_account, {d(2, 9): "30"})
        at_85 = budgets_evaluate(today=TODAY)
        spend(student_account, {d(3, 9): "35"})
        at_120 = budgets_evaluate(today=TODAY)
        after = budgets_evaluate(today=TODAY)

    # 55 in 50 days is 116.60 over the course's 106: the forecast alert comes with the 50% one.
    assert sorted(a.kind for a in first) == [AlertKind.ACTUAL_50, AlertKind.FORECAST_100]
    assert (again, [a.kind for a in at_85], [a.kind for a in at_120], after) == (
        [],
        [AlertKind.ACTUAL_80],
        [AlertKind.ACTUAL_100],
        [],
    )
    assert alerts() == [
        (AlertKind.ACTUAL_100, "course", Decimal("120.00"), budget),
        (AlertKind.ACTUAL_50, "course", Decimal("55.00"), budget),
        (AlertKind.ACTUAL_80, "course", Decimal("85.00"), budget),
        (AlertKind.FORECAST_100, "course", Decimal("55.00"), budget),
    ]
    assert len(mail.outbox) == 4
    student_account.refresh_from_db()
    assert student_account.state == AccountState.READY
    assert not AccountEvent.objects.filter(account=student_account).exists()
    assert FREEZE_POLICY_NAME not in attached_policies(aws, student_account.aws_account_id)


@pytest.mark.django_db
def test_threshold_alerts_email_the_student_and_the_usage_contact(
    personas, student_account, django_capture_on_commit_callbacks
):
    personas.course.freeze_at_percent = 0
    personas.course.save()
    name = "Siobhán O'Brien & co"
    Membership.objects.filter(user=personas.student).update(name=name)
    spend(student_account, {d(1, 9): "30", d(2, 9): "25"})

    with django_capture_on_commit_callbacks(execute=True):
        budgets_evaluate(today=TODAY)

    half = next(m for m in mail.outbox if "50% of the budget spent" in m.subject)
    assert half.subject == f"[Classroom Cloud] cs101: 50% of the budget spent ({name})"
    assert half.to == ["alerts@school.example", "student@school.example"]
    assert half.body.splitlines()[:3] == [
        f"{name} passed 50% of the $100.00 budget: $55.00 spent (55%).",
        "",
        "Course: Cloud Computing (cs101)",
    ]
    assert "Spend: $55.00 of a $100.00 budget" in half.body
    course_id, account_id = personas.course.pk, student_account.pk
    assert f"Your spend (for the student): http://localhost:8000/courses/{course_id}/my-costs/" in half.body
    assert (
        "The account's page (for course staff): "
        f"http://localhost:8000/courses/{course_id}/costs/students/{account_id}/" in half.body
    )
    assert "frozen" not in half.body
    html, mimetype = half.alternatives[0]
    assert mimetype == "text/html" and "<strong>Siobhán O&#x27;Brien &amp; co passed 50% of the $100.00 budget" in html
    forecast = next(m for m in mail.outbox if "Forecast" in m.subject)
    assert forecast.body.splitlines()[0] == (
        f"At this pace {name} will spend about $116.60 of the $100.00 budget by Dec 15."
    )


@pytest.mark.django_db
def test_the_whole_budget_spent_also_emails_the_instructors(
    personas, student_account, django_capture_on_commit_callbacks
):
    personas.course.freeze_at_percent = 0
    personas.course.save()
    spend(student_account, {d(1, 9): "100"})

    with django_capture_on_commit_callbacks(execute=True):
        budgets_evaluate(today=TODAY)

    recipients = {m.subject.split(": ", 1)[1].split(" (")[0]: m.to for m in mail.outbox}
    assert recipients == {
        "50% of the budget spent": ["alerts@school.example", "student@school.example"],
        "80% of the budget spent": ["alerts@school.example", "student@school.example"],
        "The whole budget spent": [
            "alerts@school.example",
            "instructor@school.example",
            "student@school.example",
        ],
    }


@pytest.mark.django_db
def test_a_pace_above_the_budget_raises_the_forecast_alert_alone(personas, student_account):
    name = Membership.objects.get(user=personas.student).display_name
    spend(student_account, {d(1, 9): "48"})

    raised = budgets_evaluate(today=TODAY)

    # 48 in 50 days is 101.76 over 106 days.
    assert [(a.kind, a.message) for a in raised] == [
        (
            AlertKind.FORECAST_100,
            f"At this pace {name} will spend about $101.76 of the $100.00 budget by Dec 15.",
        )
    ]
    assert budgets_evaluate(today=TODAY) == []


@pytest.mark.django_db
def test_a_monthly_budget_counts_each_month_apart(personas, student_account):
    personas.course.budget_period = BudgetPeriod.MONTHLY
    personas.course.save()
    spend(student_account, {d(10, 9): "60", d(5): "10"})

    october = budgets_evaluate(today=TODAY)
    september = budgets_evaluate(today=d(30, 9))

    assert october == []
    assert [(a.kind, a.period, a.spend) for a in september] == [(AlertKind.ACTUAL_50, "2026-09", Decimal("60.00"))]


@pytest.mark.django_db
def test_a_day_far_above_the_recent_median_raises_one_spike_alert(
    personas, student_account, django_capture_on_commit_callbacks
):
    name = Membership.objects.get(user=personas.student).display_name
    spend(student_account, {d(10) + timedelta(days=i): "2.00" for i in range(10)} | {d(20): "7.00"})

    with django_capture_on_commit_callbacks(execute=True):
        raised = budgets_evaluate(today=TODAY)
        again = budgets_evaluate(today=TODAY)

    assert [(a.kind, a.period, a.spend, a.message) for a in raised] == [
        (
            AlertKind.DAILY_SPIKE,
            "2026-10-20",
            Decimal("27.00"),
            f"{name} spent $7.00 on Oct 20, more than 3.00× the usual $2.00 a day.",
        ),
    ]
    assert again == []
    assert [m.subject for m in mail.outbox] == [f"[Classroom Cloud] cs101: Unusual daily spend ({name})"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("history", "latest", "spiked"),
    [
        ({d(i): "2.00" for i in range(10, 20)}, "6.01", True),
        (
            {d(i): "2.00" for i in range(10, 20)},
            "6.00",
            False,
        ),  # exactly 3× the median is not above it
        ({d(i): "0.10" for i in range(10, 20)}, "0.99", False),  # 9.9× the median, but under $1
        ({d(i): "0.10" for i in range(10, 20)}, "1.00", True),
        ({d(18): "0.50", d(19): "0.50"}, "5.00", False),  # two days are not a history
        ({d(i): "2.00" for i in range(1, 5)}, "9.00", False),  # too long ago to count
    ],
)
def test_spike_alert_thresholds(student_account, history, latest, spiked):
    spend(student_account, history | {d(20): latest})

    raised = budgets_evaluate(today=TODAY)

    assert [a.kind for a in raised if a.kind == AlertKind.DAILY_SPIKE] == ([AlertKind.DAILY_SPIKE] if spiked else [])


# --- Freeze and unfreeze --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_spending_the_whole_budget_freezes_the_account_with_the_freeze_scp(personas, student_account, aws):
    spend(student_account, {d(1, 9): "60", d(2, 9): "40"})

    raised = budgets_evaluate(today=TODAY)

    account = MemberAccount.objects.get(pk=student_account.pk)
    assert account.state == AccountState.FROZEN
    assert attached_policies(aws, account.aws_account_id) == ["FullAWSAccess", FREEZE_POLICY_NAME]
    organizations = aws.client("organizations")
    policy = next(
        p
        for p in organizations.list_policies(Filter="SERVICE_CONTROL_POLICY")["Policies"]
        if p["Name"] == FREEZE_POLICY_NAME
    )
    assert json.loads(organizations.describe_policy(PolicyId=policy["Id"])["Policy"]["Content"]) == freeze_policy(
        portal_role=portal_role()
    )
    assert list(
        AccountEvent.objects.filter(account=account).values_list("from_state", "to_state", "actor", "reason")
    ) == [(AccountState.READY, AccountState.FROZEN, None, "Spent $100.00 of $100.00")]
    audit = AuditEvent.objects.get(action=AuditAction.ACCOUNT_FROZEN)
    assert (audit.actor_label, audit.course, audit.object_id, audit.summary) == (
        "system",
        personas.course,
        str(account.pk),
        "Froze cs101-student: Spent $100.00 of $100.00",
    )
    assert sorted(a.kind for a in raised) == [
        AlertKind.ACTUAL_100,
        AlertKind.ACTUAL_50,
        AlertKind.ACTUAL_80,
    ]
    frozen = Alert.objects.get(kind=AlertKind.FROZEN)
    assert (frozen.spend, frozen.budget, frozen.message) == (
        Decimal("100.00"),
        Decimal("100.00"),
        f"{account.membership.display_name}'s AWS account was frozen: Spent $100.00 of $100.00.",
    )
    frozen_mail = mail.outbox[-1]
    assert (
        frozen_mail.subject
        == f"[Classroom Cloud] cs101: Account frozen for its budget ({account.membership.display_name})"
    )
    assert frozen_mail.to == [
        "alerts@school.example",
        "instructor@school.example",
        "student@school.example",
        "ta@school.example",
    ]
    assert "The account is frozen: everything except billing, support and cost pages is denied" in frozen_mail.body

    # Checking again changes nothing: no second freeze, alert or event.
    assert budgets_evaluate(today=TODAY) == []
    assert account_freeze(actor=None, account=account, reason="again") is False
    assert AccountEvent.objects.filter(account=account).count() == 1
    assert Alert.objects.filter(kind=AlertKind.FROZEN).count() == 1
    assert len(mail.outbox) == 4


@pytest.mark.django_db(transaction=True)
def test_unfreezing_with_a_new_budget_detaches_the_scp_and_lets_the_thresholds_fire_again(
    personas, student_account, aws
):
    budget_ensure(account_id=student_account.pk)
    spend(student_account, {d(1, 9): "100"})
    budgets_evaluate(today=TODAY)
    account = MemberAccount.objects.select_related("course", "membership").get(pk=student_account.pk)
    assert account.state == AccountState.FROZEN
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
                    "BudgetName": name,
                    "BudgetLimit": {"Amount": "200.00", "Unit": "USD"},
                    "TimeUnit": "ANNUALLY",
                    "BudgetType": "COST",
                    "CostFilters": {"LinkedAccount": [account.aws_account_id]},
                    "CostTypes": {"IncludeCredit": False, "IncludeRefund": False},
                    "TimePeriod": {"Start": "2026-09-01", "End": "2026-12-16"},
                },
            },
        )
        assert account_unfreeze(actor=personas.instructor, account=account, new_budget=Decimal(200)) is True
        stubber.assert_no_pending_responses()

    account.refresh_from_db()
    assert account.state == AccountState.READY
    assert attached_policies(aws, account.aws_account_id) == ["FullAWSAccess"]
    assert list(AccountEvent.objects.filter(account=account).values_list("to_state", "actor")) == [
        (AccountState.FROZEN, None),
        (AccountState.READY, personas.instructor.pk),
    ]
    assert list(
        AuditEvent.objects.filter(course=personas.course)
        .exclude(action=AuditAction.GUARDRAILS_APPLIED)  # the fixture's course OU
        .order_by("id")
        .values_list("action", "actor_label")
    ) == [
        (AuditAction.ACCOUNT_FROZEN, "system"),
        (AuditAction.BUDGET_RAISED, "instructor@school.example"),
        (AuditAction.ACCOUNT_UNFROZEN, "instructor@school.example"),
    ]
    assert not Alert.objects.filter(resolved_at=None).exists()

    # $100 of the new $200 budget: the 50% threshold fires again, for this budget (with the
    # forecast: $212 at this pace), and nothing freezes.
    again = budgets_evaluate(today=TODAY)
    assert sorted((a.kind, a.spend, a.budget) for a in again) == [
        (AlertKind.ACTUAL_50, Decimal("100.00"), Decimal(200)),
        (AlertKind.FORECAST_100, Decimal("100.00"), Decimal(200)),
    ]
    account.refresh_from_db()
    assert account.state == AccountState.READY
    # All of the new budget: frozen again.
    spend(student_account, {d(2, 9): "100"})
    budgets_evaluate(today=TODAY)
    account.refresh_from_db()
    assert account.state == AccountState.FROZEN
    assert alerts(budget=Decimal(200), period="course") == [
        (AlertKind.ACTUAL_100, "course", Decimal("200.00"), Decimal("200.00")),
        (AlertKind.ACTUAL_50, "course", Decimal("100.00"), Decimal("200.00")),
        (AlertKind.ACTUAL_80, "course", Decimal("200.00"), Decimal("200.00")),
        (AlertKind.FORECAST_100, "course", Decimal("100.00"), Decimal("200.00")),
    ]
    assert sorted(Alert.objects.filter(kind=AlertKind.FROZEN).values_list("budget", flat=True)) == [
        Decimal("100.00"),
        Decimal("200.00"),
    ]
    assert attached_policies(aws, account.aws_account_id) == ["FullAWSAccess", FREEZE_POLICY_NAME]


@pytest.mark.django_db
def test_unfreezing_without_a_new_budget_keeps_the_budget(
    personas, student_account, aws, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        assert account_freeze(actor=personas.instructor, account=student_account, reason="Paused by the instructor")
    assert attached_policies(aws, student_account.aws_account_id) == [
        "FullAWSAccess",
        FREEZE_POLICY_NAME,
    ]

    with django_capture_on_commit_callbacks(execute=True):
        assert account_unfreeze(actor=personas.instructor, account=student_account) is True
    assert account_unfreeze(actor=personas.instructor, account=student_account) is False

    student_account.refresh_from_db()
    assert student_account.state == AccountState.READY
    assert attached_policies(aws, student_account.aws_account_id) == ["FullAWSAccess"]
    assert StudentBudget.objects.count() == 0
    assert not AuditEvent.objects.filter(action=AuditAction.BUDGET_RAISED).exists()
