"""Thin Celery tasks for costs and budgets."""

from celery import shared_task

from accounts_app.tasks import AWS_TASK


@shared_task(**AWS_TASK)
def costs_sync_task(days: int | None = None) -> None:
    from billing_app.services.refresh import costs_refresh

    costs_refresh(days=days)


@shared_task(**AWS_TASK)
def budget_ensure_task(account_id: int) -> None:
    from accounts_app.models import MemberAccount
    from billing_app.services.budgets import budget_ensure

    account = MemberAccount.objects.select_related("course", "membership").filter(pk=account_id).first()
    if account is not None:
        budget_ensure(account=account)


@shared_task(**AWS_TASK)
def course_budgets_ensure_task(course_id: int) -> None:
    from accounts_app.models import Course
    from billing_app.services.budgets import course_budgets_ensure

    course = Course.objects.filter(pk=course_id).first()
    if course is not None:
        course_budgets_ensure(course=course)
