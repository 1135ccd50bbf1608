"""AWS Budgets and their budget actions, kept by budget_ensure (billing_app/services/budgets.py).
Alerts, freezing and unfreezing are in test_budget_alerts.py.

AWS is moto (the `aws` fixture: an organization set up by aws_bootstrap). moto implements
CreateBudget, DescribeBudget(s) and DescribeNotificationsForBudget but neither UpdateBudget nor
budget actions: those calls are checked with botocore's Stubber on the portal's Budgets client.
"""

from datetime import date
from decimal import Decimal

import pytest
from botocore.stub import Stubber
from moto.core import DEFAULT_ACCOUNT_ID

from accounts_app.choices import AccountState, AuditAction, BudgetPeriod
from accounts_app.lifecycle import transition
from accounts_app.models import AuditEvent, AwsOrganization, MemberAccount, Membership
from accounts_app.services.account_requests import account_request
from accounts_app.services.courses import course_update
from accounts_app.services.guardrails import freeze_policy_id
from billing_app.models import Alert, AlertKind, StudentBudget
from billing_app.services.budgets import budget_ensure, budget_raise, budgets_evaluate, course_budgets_ensure
from portal.aws import budgets as aws_budgets
from tests.support.billing import TODAY, d, spend

ROLE_ARN = "arn:aws:iam::123456789012:role/classroom-cloud-budget-actions"
IAM_ACTION, SCP_ACTION, NEW_ACTION = (
    "0b7d3c1e-0000-4000-8000-000000000001",
    "0b7d3c1e-0000-4000-8000-000000000002",
    "0b7d3c1e-0000-4000-8000-000000000003",
)


def moto_budget(name: str) -> tuple[dict, list]:
    """The budget as moto keeps it, and (notification, subscribers) pairs, which moto cannot describe."""
    from moto.budgets.models import budgets_backends

    management = AwsOrganization.load().management_account_id
    stored = budgets_backends[DEFAULT_ACCOUNT_ID]["global"].budgets[management][name]
    return stored.budget, [(n.details, n.subscribers) for n in stored.notifications]


def notification(kind: str, threshold: int) -> dict:
    return {
        "NotificationType": kind,
        "ComparisonOperator": "GREATER_THAN",
        "Threshold": threshold,
        "ThresholdType": "PERCENTAGE",
    }


STUDENT_AND_CONTACT = [
    {"SubscriptionType": "EMAIL", "Address": "student@school.example"},
    {"SubscriptionType": "EMAIL", "Address": "alerts@school.example"},
]


# --- The AWS Budget -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_account_that_becomes_ready_gets_its_aws_budget_with_four_notifications(personas, aws):
    student = Membership.objects.get(user=personas.student)

    account_request(actor=personas.student, membership=student)

    account = MemberAccount.objects.get(membership=student)
    assert account.state == AccountState.READY
    name = f"classroom-cloud-{account.aws_account_id}"
    management = AwsOrganization.load().management_account_id
    budgets = aws.client("budgets")
    described = budgets.describe_budget(AccountId=management, BudgetName=name)["Budget"]
    assert (
        described["BudgetLimit"],
        described["TimeUnit"],
        described["BudgetType"],
        described["CostFilters"],
    ) == (
        {"Amount": "100.00", "Unit": "USD"},
        "ANNUALLY",
        "COST",
        {"LinkedAccount": [account.aws_account_id]},
    )
    # The whole course: Sep 1 up to Dec 15 included.
    assert (described["TimePeriod"]["Start"].date(), described["TimePeriod"]["End"].date()) == (
        d(1, 9),
        d(16, 12),
    )
    assert budgets.describe_notifications_for_budget(AccountId=management, BudgetName=name)["Notifications"] == [
        notification("ACTUAL", 50),
        notification("ACTUAL", 80),
        notification("ACTUAL", 100),
        notification("FORECASTED", 100),
    ]
    assert [subscribers for _, subscribers in moto_budget(name)[1]] == [STUDENT_AND_CONTACT] * 4
    budget = StudentBudget.objects.get(account=account)
    assert (budget.aws_budget_name, budget.aws_action_id, budget.amount_override) == (
        name,
        "",
        None,
    )
    assert budget.synced_at is not None


@pytest.mark.django_db
def test_only_the_configuring_to_ready_transition_queues_the_budget(
    student_account, aws, django_capture_on_commit_callbacks
):
    MemberAccount.objects.filter(pk=student_account.pk).update(state=AccountState.CONFIGURING)
    student_account.refresh_from_db()

    with django_capture_on_commit_callbacks() as becoming_ready:
        transition(student_account, expected=AccountState.CONFIGURING, to=AccountState.READY)
    with django_capture_on_commit_callbacks() as freezing_and_back:
        transition(student_account, expected=AccountState.READY, to=AccountState.FROZEN)
        transition(student_account, expected=AccountState.FROZEN, to=AccountState.READY)

    # Becoming ready queues the budget (and the student's "account ready" email); freezing
    # and unfreezing queue nothing.
    assert len(becoming_ready) >= 1
    assert len(freezing_and_back) == 0
    assert StudentBudget.objects.count() == 0  # queued, not run yet
    for callback in becoming_ready:  # the commit: the tasks run (eagerly)
        callback()
    assert StudentBudget.objects.get().aws_budget_name == f"classroom-cloud-{student_account.aws_account_id}"


@pytest.mark.django_db
def test_budget_ensure_is_idempotent(student_account, aws):
    first = budget_ensure(account_id=student_account.pk)
    again = budget_ensure(account_id=student_account.pk)

    management = AwsOrganization.load().management_account_id
    described = aws.client("budgets").describe_budgets(AccountId=management)["Budgets"]
    assert [b["BudgetName"] for b in described] == [f"classroom-cloud-{student_account.aws_account_id}"]
    assert len(moto_budget(described[0]["BudgetName"])[1]) == 4
    assert first.pk == again.pk and StudentBudget.objects.count() == 1


@pytest.mark.django_db
def test_an_aws_budget_found_where_the_portal_had_none_on_record_is_read_and_brought_up_to_date(student_account, aws):
    """A new account's budget is created without asking AWS first. One AWS has after all (the
    account's earlier record's, or a run whose save was lost) is refused as a duplicate, then
    read and updated. Stubber: moto has no UpdateBudget."""
    budget_ensure(account_id=student_account.pk)
    management, name, current = aws_budget(aws, student_account)
    StudentBudget.objects.filter(account=student_account).delete()
    with_credits = {**current, "CostTypes": {**current["CostTypes"], "IncludeCredit": True}}

    with Stubber(aws.client("budgets")) as stubber:
        stubber.add_client_error("create_budget", service_error_code="DuplicateRecordException", http_status_code=400)
        stubber.add_response("describe_budget", {"Budget": with_credits}, {"AccountId": management, "BudgetName": name})
        stubber.add_response("update_budget", {})
        for _ in range(4):  # its notifications' subscribers, which the portal has no record of either
            stubber.add_response("describe_subscribers_for_notification", {"Subscribers": STUDENT_AND_CONTACT})
        budget = budget_ensure(account_id=student_account.pk)
        stubber.assert_no_pending_responses()

    assert budget.aws_budget_name == name


@pytest.mark.django_db
def test_a_monthly_course_gets_a_monthly_aws_budget(personas, student_account, aws):
    personas.course.budget_period = BudgetPeriod.MONTHLY
    personas.course.save()
    student_account.refresh_from_db()

    budget = budget_ensure(account_id=student_account.pk)

    stored, notifications = moto_budget(budget.aws_budget_name)
    assert (stored["TimeUnit"], stored["BudgetLimit"]) == (
        "MONTHLY",
        {"Amount": "100.00", "Unit": "USD"},
    )
    assert [n for n, _ in notifications] == [
        notification("ACTUAL", 50),
        notification("ACTUAL", 80),
        notification("ACTUAL", 100),
        notification("FORECASTED", 100),
    ]


@pytest.mark.django_db
def test_raising_a_budget_updates_the_aws_budget_amount(
    personas, student_account, aws, django_capture_on_commit_callbacks
):
    budget_ensure(account_id=student_account.pk)
    spend(student_account, {d(1): "60"})
    budgets_evaluate(today=TODAY)  # a 50% alert, then the raise settles it
    management = AwsOrganization.load().management_account_id
    name = f"classroom-cloud-{student_account.aws_account_id}"
    current = aws.client("budgets").describe_budget(AccountId=management, BudgetName=name)["Budget"]

    with Stubber(aws.client("budgets")) as stubber:  # moto has no UpdateBudget
        stubber.add_response("describe_budget", {"Budget": current}, {"AccountId": management, "BudgetName": name})
        stubber.add_response(
            "update_budget",
            {},
            {
                "AccountId": management,
                "NewBudget": {
                    "BudgetName": name,
                    "BudgetLimit": {"Amount": "250.00", "Unit": "USD"},
                    "TimeUnit": "ANNUALLY",
                    "BudgetType": "COST",
                    "CostFilters": {"LinkedAccount": [student_account.aws_account_id]},
                    "CostTypes": {"IncludeCredit": False, "IncludeRefund": False},
                    "TimePeriod": {"Start": "2026-09-01", "End": "2026-12-16"},
                },
            },
        )
        # The raise is saved, then a task brings the AWS Budget in line once it commits.
        with django_capture_on_commit_callbacks(execute=True):
            budget = budget_raise(actor=personas.instructor, account=student_account, amount=Decimal("250.00"))
        stubber.assert_no_pending_responses()

    assert StudentBudget.objects.get(pk=budget.pk).amount_override == Decimal("250.00")
    audit = AuditEvent.objects.get(action=AuditAction.BUDGET_RAISED)
    assert (audit.actor, audit.summary) == (
        personas.instructor,
        "Budget of cs101-student: $100.00 → $250.00",
    )
    # The alerts of the old budget are settled.
    assert sorted(Alert.objects.filter(resolved_at__isnull=False).values_list("kind", flat=True)) == [
        AlertKind.ACTUAL_50,
        AlertKind.FORECAST_100,
    ]
    assert not Alert.objects.filter(resolved_at=None).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("amount", ["0", "-5"])
def test_a_budget_cannot_be_lowered_to_nothing(student_account, amount):
    with pytest.raises(ValueError, match=r"A budget must be more than \$0."):
        budget_raise(actor=None, account=student_account, amount=Decimal(amount))
    assert StudentBudget.objects.count() == 0


def aws_budget(aws, account: MemberAccount) -> tuple[str, str, dict]:
    management = AwsOrganization.load().management_account_id
    name = f"classroom-cloud-{account.aws_account_id}"
    current = aws.client("budgets").describe_budget(AccountId=management, BudgetName=name)["Budget"]
    return management, name, current


@pytest.mark.django_db
def test_a_new_aws_budget_counts_neither_credits_nor_refunds(student_account):
    budget = budget_ensure(account_id=student_account.pk)

    stored, _ = moto_budget(budget.aws_budget_name)
    assert stored["CostTypes"] == {"IncludeCredit": False, "IncludeRefund": False}


@pytest.mark.django_db
def test_an_aws_budget_that_counts_credits_is_updated_to_exclude_them(student_account, aws):
    """Stubber: AWS's default CostTypes include credits and refunds (moto keeps what it is given)."""
    budget_ensure(account_id=student_account.pk)
    management, name, current = aws_budget(aws, student_account)
    with_credits = {**current, "CostTypes": {**current["CostTypes"], "IncludeCredit": True, "IncludeRefund": True}}

    with Stubber(aws.client("budgets")) as stubber:  # moto has no UpdateBudget
        stubber.add_response("describe_budget", {"Budget": with_credits})
        stubber.add_response(
            "update_budget",
            {},
            {
                "AccountId": management,
                "NewBudget": {
                    "BudgetName": name,
                    "BudgetLimit": {"Amount": "100.00", "Unit": "USD"},
                    "TimeUnit": "ANNUALLY",
                    "BudgetType": "COST",
                    "CostFilters": {"LinkedAccount": [student_account.aws_account_id]},
                    "CostTypes": {"IncludeCredit": False, "IncludeRefund": False},
                    "TimePeriod": {"Start": "2026-09-01", "End": "2026-12-16"},
                },
            },
        )
        budget_ensure(account_id=student_account.pk)
        stubber.assert_no_pending_responses()


@pytest.mark.django_db
def test_a_course_edit_updates_each_aws_budget_amount_end_date_and_recipients(
    personas, student_account, aws, django_capture_on_commit_callbacks
):
    """Stubber: moto has neither UpdateBudget nor the subscriber APIs."""
    budget_ensure(account_id=student_account.pk)
    management, name, current = aws_budget(aws, student_account)
    old_contact = {"SubscriptionType": "EMAIL", "Address": "alerts@school.example"}
    new_contact = {"SubscriptionType": "EMAIL", "Address": "ta@school.example"}

    with Stubber(aws.client("budgets")) as stubber:
        stubber.add_response("describe_budget", {"Budget": current})
        stubber.add_response(
            "update_budget",
            {},
            {
                "AccountId": management,
                "NewBudget": {
                    "BudgetName": name,
                    "BudgetLimit": {"Amount": "150.00", "Unit": "USD"},
                    "TimeUnit": "ANNUALLY",
                    "BudgetType": "COST",
                    "CostFilters": {"LinkedAccount": [student_account.aws_account_id]},
                    "CostTypes": {"IncludeCredit": False, "IncludeRefund": False},
                    "TimePeriod": {"Start": "2026-09-01", "End": "2027-01-16"},
                },
            },
        )
        for kind, threshold in (("ACTUAL", 50), ("ACTUAL", 80), ("ACTUAL", 100), ("FORECASTED", 100)):
            where = {"AccountId": management, "BudgetName": name, "Notification": notification(kind, threshold)}
            stubber.add_response("describe_subscribers_for_notification", {"Subscribers": STUDENT_AND_CONTACT}, where)
            stubber.add_response("create_subscriber", {}, {**where, "Subscriber": new_contact})
            stubber.add_response("delete_subscriber", {}, {**where, "Subscriber": old_contact})
        with django_capture_on_commit_callbacks(execute=True):
            course_update(
                actor=personas.instructor,
                course=personas.course,
                changes={
                    "budget_per_student": Decimal("150.00"),
                    "end_date": date(2027, 1, 15),
                    "usage_alert_email": "ta@school.example",
                },
            )
        stubber.assert_no_pending_responses()

    assert StudentBudget.objects.get(account=student_account).recipients == [
        "student@school.example",
        "ta@school.example",
    ]


@pytest.mark.django_db
def test_a_course_edit_leaves_the_budget_of_an_account_the_gate_refuses(personas, student_account, aws):
    """Stubber with no answers: any call to AWS Budgets would fail the test."""
    budget_ensure(account_id=student_account.pk)
    assert transition(student_account, expected=AccountState.READY, to=AccountState.ENDED)
    personas.course.budget_per_student = Decimal("150.00")
    personas.course.save()

    with Stubber(aws.client("budgets")):
        assert course_budgets_ensure(course_id=personas.course.pk) == 1

    student_account.refresh_from_db()
    assert student_account.last_error.startswith("AWS Budget not changed:")


# --- Budget actions (Stubber: moto has none) ------------------------------------------------------


def scp_action(action_id: str, action_type: str = "APPLY_SCP_POLICY", subscribers: list[dict] | None = None) -> dict:
    return {
        "ActionId": action_id,
        "BudgetName": "classroom-cloud-210987654321",
        "NotificationType": "ACTUAL",
        "ActionType": action_type,
        "ActionThreshold": {"ActionThresholdValue": 100.0, "ActionThresholdType": "PERCENTAGE"},
        "Definition": {"ScpActionDefinition": {"PolicyId": "p-freeze0001", "TargetIds": ["210987654321"]}},
        "ExecutionRoleArn": ROLE_ARN,
        "ApprovalModel": "AUTOMATIC",
        "Status": "STANDBY",
        "Subscribers": STUDENT_AND_CONTACT if subscribers is None else subscribers,
    }


def create_action_params(subscribers: list[str]) -> dict:
    return {
        "AccountId": "123456789012",
        "BudgetName": "classroom-cloud-210987654321",
        "NotificationType": "ACTUAL",
        "ActionType": "APPLY_SCP_POLICY",
        "ActionThreshold": {"ActionThresholdValue": 100.0, "ActionThresholdType": "PERCENTAGE"},
        "Definition": {"ScpActionDefinition": {"PolicyId": "p-freeze0001", "TargetIds": ["210987654321"]}},
        "ExecutionRoleArn": ROLE_ARN,
        "ApprovalModel": "AUTOMATIC",
        "Subscribers": [{"SubscriptionType": "EMAIL", "Address": email} for email in subscribers],
    }


def ensure_action() -> str:
    return aws_budgets.ensure_scp_action(
        "123456789012",
        budget_name="classroom-cloud-210987654321",
        policy_id="p-freeze0001",
        account_id="210987654321",
        execution_role_arn=ROLE_ARN,
        subscribers=["student@school.example", "alerts@school.example"],
    )


@pytest.mark.django_db
def test_ensure_scp_action_keeps_the_action_the_budget_already_has(aws):
    with Stubber(aws.client("budgets")) as stubber:
        stubber.add_response(
            "describe_budget_actions_for_budget",
            {"Actions": [scp_action(IAM_ACTION, "APPLY_IAM_POLICY"), scp_action(SCP_ACTION)]},
            {"AccountId": "123456789012", "BudgetName": "classroom-cloud-210987654321"},
        )
        assert ensure_action() == SCP_ACTION
        stubber.assert_no_pending_responses()  # and no CreateBudgetAction: the Stubber would refuse it


@pytest.mark.django_db
def test_the_existing_actions_subscribers_follow_the_course_and_a_topic_stays(aws):
    """Stubber: AWS keeps the subscribers a budget action was created with until UpdateBudgetAction
    replaces them (moto has no budget actions). Addresses compare without case."""
    topic = {"SubscriptionType": "SNS", "Address": "arn:aws:sns:us-east-1:123456789012:school-ops"}
    former = {"SubscriptionType": "EMAIL", "Address": "former-ta@school.example"}
    student = {"SubscriptionType": "EMAIL", "Address": "Student@School.example"}
    with Stubber(aws.client("budgets")) as stubber:
        stubber.add_response(
            "describe_budget_actions_for_budget",
            {"Actions": [scp_action(SCP_ACTION, subscribers=[student, former, topic])]},
            {"AccountId": "123456789012", "BudgetName": "classroom-cloud-210987654321"},
        )
        stubber.add_response(
            "update_budget_action",
            {
                "AccountId": "123456789012",
                "BudgetName": "classroom-cloud-210987654321",
                "OldAction": scp_action(SCP_ACTION, subscribers=[student, former, topic]),
                "NewAction": scp_action(SCP_ACTION, subscribers=[topic, *STUDENT_AND_CONTACT]),
            },
            {
                "AccountId": "123456789012",
                "BudgetName": "classroom-cloud-210987654321",
                "ActionId": SCP_ACTION,
                "Subscribers": [topic, *STUDENT_AND_CONTACT],
            },
        )
        assert ensure_action() == SCP_ACTION
        stubber.assert_no_pending_responses()

    # Run again once AWS has them: nothing to change, no UpdateBudgetAction.
    same = [{**STUDENT_AND_CONTACT[1]}, {"SubscriptionType": "EMAIL", "Address": "STUDENT@school.example"}]
    with Stubber(aws.client("budgets")) as stubber:
        stubber.add_response(
            "describe_budget_actions_for_budget", {"Actions": [scp_action(SCP_ACTION, subscribers=same)]}
        )
        assert ensure_action() == SCP_ACTION
        stubber.assert_no_pending_responses()


@pytest.mark.django_db
def test_a_new_usage_contact_reaches_the_budget_action_too(
    personas, student_account, aws, settings, django_capture_on_commit_callbacks
):
    """Stubber: moto has neither the subscriber APIs nor budget actions. A course edit of its usage
    contact updates the budget's notifications and its freeze action alike."""
    settings.PORTAL_AWS_BUDGET_ACTION_ROLE_ARN = ROLE_ARN
    personas.course.budget_action_enabled = True
    personas.course.save()
    student_account.refresh_from_db()
    StudentBudget.objects.create(
        account=student_account,
        recipients=["student@school.example", "alerts@school.example"],
        aws_budget_name=f"classroom-cloud-{student_account.aws_account_id}",
        aws_action_id=SCP_ACTION,
    )
    management, name = AwsOrganization.load().management_account_id, f"classroom-cloud-{student_account.aws_account_id}"
    current = {
        "BudgetName": name,
        "BudgetLimit": {"Amount": "100.00", "Unit": "USD"},
        "TimeUnit": "ANNUALLY",
        "BudgetType": "COST",
        "CostFilters": {"LinkedAccount": [student_account.aws_account_id]},
        "CostTypes": {"IncludeCredit": False, "IncludeRefund": False},
        "TimePeriod": {"Start": "2026-09-01T00:00:00Z", "End": "2026-12-16T00:00:00Z"},
    }
    new_contact = {"SubscriptionType": "EMAIL", "Address": "ta@school.example"}
    student_and_ta = [STUDENT_AND_CONTACT[0], new_contact]

    with Stubber(aws.client("budgets")) as stubber:
        stubber.add_response("describe_budget", {"Budget": current})
        for kind, threshold in (("ACTUAL", 50), ("ACTUAL", 80), ("ACTUAL", 100), ("FORECASTED", 100)):
            where = {"AccountId": management, "BudgetName": name, "Notification": notification(kind, threshold)}
            stubber.add_response("describe_subscribers_for_notification", {"Subscribers": STUDENT_AND_CONTACT}, where)
            stubber.add_response("create_subscriber", {}, {**where, "Subscriber": new_contact})
            stubber.add_response("delete_subscriber", {}, {**where, "Subscriber": STUDENT_AND_CONTACT[1]})
        stubber.add_response("describe_budget_actions_for_budget", {"Actions": [scp_action(SCP_ACTION)]})
        stubber.add_response(
            "update_budget_action",
            {
                "AccountId": management,
                "BudgetName": name,
                "OldAction": scp_action(SCP_ACTION),
                "NewAction": scp_action(SCP_ACTION, subscribers=student_and_ta),
            },
            {"AccountId": management, "BudgetName": name, "ActionId": SCP_ACTION, "Subscribers": student_and_ta},
        )
        with django_capture_on_commit_callbacks(execute=True):
            course_update(
                actor=personas.instructor, course=personas.course, changes={"usage_alert_email": "ta@school.example"}
            )
        stubber.assert_no_pending_responses()

    budget = StudentBudget.objects.get(account=student_account)
    assert (budget.recipients, budget.aws_action_id) == (["student@school.example", "ta@school.example"], SCP_ACTION)


@pytest.mark.django_db
def test_ensure_scp_action_creates_the_freeze_action_when_the_budget_has_none(aws):
    with Stubber(aws.client("budgets")) as stubber:
        stubber.add_response(
            "describe_budget_actions_for_budget",
            {"Actions": [scp_action(IAM_ACTION, "APPLY_IAM_POLICY")]},
            {"AccountId": "123456789012", "BudgetName": "classroom-cloud-210987654321"},
        )
        stubber.add_response(
            "create_budget_action",
            {
                "AccountId": "123456789012",
                "BudgetName": "classroom-cloud-210987654321",
                "ActionId": NEW_ACTION,
            },
            create_action_params(["student@school.example", "alerts@school.example"]),
        )
        assert ensure_action() == NEW_ACTION
        stubber.assert_no_pending_responses()


@pytest.mark.django_db
def test_budget_ensure_adds_the_budget_action_when_the_course_asks_for_it(personas, student_account, aws, settings):
    settings.PORTAL_AWS_BUDGET_ACTION_ROLE_ARN = ROLE_ARN
    personas.course.budget_action_enabled = True
    personas.course.save()
    student_account.refresh_from_db()
    management = AwsOrganization.load().management_account_id
    name = f"classroom-cloud-{student_account.aws_account_id}"
    policy_id = freeze_policy_id()

    with Stubber(aws.client("budgets")) as stubber:
        # A new account: its budget is created without asking AWS for it first.
        stubber.add_response("create_budget", {})
        stubber.add_response("describe_budget_actions_for_budget", {"Actions": []})
        stubber.add_response(
            "create_budget_action",
            {"AccountId": management, "BudgetName": name, "ActionId": NEW_ACTION},
            {
                "AccountId": management,
                "BudgetName": name,
                "NotificationType": "ACTUAL",
                "ActionType": "APPLY_SCP_POLICY",
                "ActionThreshold": {
                    "ActionThresholdValue": 100.0,
                    "ActionThresholdType": "PERCENTAGE",
                },
                "Definition": {
                    "ScpActionDefinition": {
                        "PolicyId": policy_id,
                        "TargetIds": [student_account.aws_account_id],
                    }
                },
                "ExecutionRoleArn": ROLE_ARN,
                "ApprovalModel": "AUTOMATIC",
                "Subscribers": STUDENT_AND_CONTACT,
            },
        )
        budget = budget_ensure(account_id=student_account.pk)
        stubber.assert_no_pending_responses()

    assert (budget.aws_budget_name, budget.aws_action_id) == (name, NEW_ACTION)
