"""The spend limits page (billing_app/limits_views.py), and where the cost pages show the limits and
which one froze an account. Who may open and post it is in tests/accounts_app/test_permissions.py."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils.html import escape

from accounts_app.choices import AccountState, AuditAction
from accounts_app.models import AuditEvent, MemberAccount, Membership
from billing_app.models import CourseSpendLimits, SpendLimit
from billing_app.services.budgets import account_freeze

pytestmark = pytest.mark.django_db

EMPTY = {
    "max_usd_per_hour": "",
    "max_accelerated_instances": "",
    "bedrock_daily_tokens": "",
    "bedrock_daily_usd": "",
    "freeze_within_hours": "",
}


@pytest.fixture(autouse=True)
def fast_test_settings(settings):
    settings.PORTAL_REQUIRE_MFA_FOR_STAFF = False


def limits_path(course) -> str:
    return reverse("billing:spend_limits", args=[course.pk])


def student_account(personas, state: AccountState = AccountState.READY) -> MemberAccount:
    return MemberAccount.objects.create(
        course=personas.course,
        membership=Membership.objects.get(user=personas.student),
        state=state,
        root_email="aws+cs101-student@school.example",
        account_name="cs101-student",
        aws_account_id="111111111111",
    )


def test_an_instructor_sets_the_limits_and_reads_them_back(personas):
    course = personas.course
    typed = {**EMPTY, "max_usd_per_hour": "5", "max_accelerated_instances": "0", "freeze_within_hours": "12"}

    response = personas.client("instructor").post(limits_path(course), typed, follow=True)

    assert response.redirect_chain == [(limits_path(course), 302)]
    text = response.content.decode()
    assert "Spend limits saved: each student account is checked at its next reading, within 5 minutes." in text
    saved = CourseSpendLimits.objects.get(course=course)
    assert (saved.max_usd_per_hour, saved.max_accelerated_instances, saved.bedrock_daily_tokens) == (
        Decimal("5.00"),
        0,
        None,
    )
    assert 'value="5.00"' in text and 'value="12"' in text
    assert AuditEvent.objects.filter(action=AuditAction.COURSE_UPDATED, course=course).count() == 1

    # Emptying a field lifts that limit.
    personas.client("instructor").post(limits_path(course), {**typed, "max_accelerated_instances": ""})
    saved.refresh_from_db()
    assert saved.max_accelerated_instances is None and saved.max_usd_per_hour == Decimal("5.00")


@pytest.mark.parametrize(
    ("field", "typed", "message"),
    [
        ("max_usd_per_hour", "0", "A limit in dollars an hour must be more than $0, e.g. 2.50, or leave it empty"),
        ("max_usd_per_hour", "-3", "A limit in dollars an hour must be more than $0, e.g. 2.50, or leave it empty"),
        ("max_usd_per_hour", "five", "Enter a number."),
        ("max_accelerated_instances", "-1", "Give a whole number of instances from 0 (none allowed) to 1,000"),
        ("max_accelerated_instances", "1001", "Give a whole number of instances from 0 (none allowed) to 1,000"),
        ("max_accelerated_instances", "1.5", "Enter a whole number."),
        ("bedrock_daily_tokens", "0", "Give a whole number of tokens, 1 or more, or leave it empty for no limit."),
        ("bedrock_daily_usd", "0", "A daily Bedrock limit must be more than $0, e.g. 5, or leave it empty"),
        ("freeze_within_hours", "0", "Give a whole number of hours from 1 to 744 (31 days)"),
        ("freeze_within_hours", "745", "Give a whole number of hours from 1 to 744 (31 days)"),
    ],
)
def test_a_limit_out_of_range_is_refused_by_name_and_nothing_changes(personas, field, typed, message):
    course = personas.course
    CourseSpendLimits.objects.create(course=course, max_usd_per_hour=Decimal("9.00"))

    response = personas.client("instructor").post(limits_path(course), {**EMPTY, field: typed})

    assert response.status_code == 200
    assert escape(message) in response.content.decode()
    assert CourseSpendLimits.objects.get(course=course).max_usd_per_hour == Decimal("9.00")
    assert not AuditEvent.objects.filter(action=AuditAction.COURSE_UPDATED).exists()


def test_a_ta_reads_the_limits_without_a_form(personas):
    CourseSpendLimits.objects.create(course=personas.course, max_accelerated_instances=0, bedrock_daily_tokens=500_000)

    text = personas.client("ta").get(limits_path(personas.course)).content.decode()

    assert "No GPU or accelerator instances." in text
    assert "At most 500,000 Bedrock tokens a day per model family." in text
    assert "Only the course's instructors can change them." in text
    assert '<form method="post" class="form"' not in text


def test_the_costs_page_shows_the_limits_and_which_one_froze_an_account(personas):
    course = personas.course
    CourseSpendLimits.objects.create(course=course, max_usd_per_hour=Decimal("5.00"))
    account = student_account(personas)
    account_freeze(
        actor=None, account=account, reason="running $14.20/h, the course allows $5.00/h", limit=SpendLimit.USD_PER_HOUR
    )

    for persona, link in (("instructor", "Set the spend limits"), ("ta", "See the spend limits")):
        text = personas.client(persona).get(reverse("billing:costs", args=[course.pk])).content.decode()
        assert "At most $5.00 an hour per student account." in text
        assert f'<a href="{limits_path(course)}">{link}</a>' in text
        assert "by the limit on dollars an hour" in text


def test_a_course_without_limits_says_so(personas):
    text = personas.client("ta").get(reverse("billing:costs", args=[personas.course.pk])).content.decode()

    assert "No spend limits: only the budget freezes an account." in text


def test_the_student_reads_which_limit_froze_their_account_and_how_to_ask_for_more(personas):
    CourseSpendLimits.objects.create(course=personas.course, max_accelerated_instances=0)
    account = student_account(personas)
    reason = "g5.xlarge is a GPU or accelerator instance; the course allows 0"
    account_freeze(actor=None, account=account, reason=reason, limit=SpendLimit.ACCELERATORS)

    text = personas.client("student").get(reverse("billing:my_costs", args=[personas.course.pk])).content.decode()

    assert "Your account is frozen by the course's limit on GPU and accelerator instances." in text
    assert escape(reason) in text
    assert '<a href="#budget-request">Ask for more</a>' in text
    assert "No GPU or accelerator instances." in text
    assert "A higher budget does not lift the course's limit on GPU and accelerator instances" in text

    # The account panel on the course's page sends them there.
    panel = personas.client("student").get(reverse("courses:detail", args=[personas.course.pk])).content.decode()
    assert "crossed one of the course's spend limits" in " ".join(panel.split())


def test_staff_read_that_unfreezing_an_account_still_over_its_limit_freezes_it_again(personas):
    account = student_account(personas)
    account_freeze(actor=None, account=account, reason="at $3.10/h …", limit=SpendLimit.PROJECTION)

    path = reverse("billing:student_costs", args=[personas.course.pk, account.pk])
    text = personas.client("instructor").get(path).content.decode()

    assert "This account is frozen by the course's limit on the budget running out." in text
    assert "the next reading freezes the account again" in text


def test_a_budget_freeze_reads_as_before(personas):
    account = student_account(personas)
    account_freeze(actor=None, account=account, reason="Spent $100.00 of $100.00")

    text = personas.client("student").get(reverse("billing:my_costs", args=[personas.course.pk])).content.decode()

    assert "Your account is frozen because it used up its budget." in text
    assert "If they approve a budget above what you spent, your account is unfrozen." in text
