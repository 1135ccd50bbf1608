"""Thin Celery tasks for costs and budgets: ids in, one service call, which loads the row once."""

from celery import shared_task

from accounts_app.tasks import AWS_TASK


@shared_task(**AWS_TASK)
def costs_sync_task(days: int | None = None) -> None:
    from billing_app.services.refresh import costs_refresh

    costs_refresh(days=days)


@shared_task(**AWS_TASK)
def budget_ensure_task(account_id: int) -> None:
    from billing_app.services.budgets import budget_ensure

    budget_ensure(account_id=account_id)


@shared_task(**AWS_TASK)
def course_budgets_ensure_task(course_id: int) -> None:
    from billing_app.services.budgets import course_budgets_ensure

    course_budgets_ensure(course_id=course_id)


# A reading a throttled or unreachable AWS refused is tried again twice within the minute; after
# that the next cycle reads the account anyway.
METER_TASK = {**AWS_TASK, "retry_backoff": 5, "retry_backoff_max": 30, "max_retries": 2}


@shared_task
def meter_cycle_task() -> None:
    from billing_app.services.meter import meter_cycle

    meter_cycle()


@shared_task(**METER_TASK)
def account_meter_task(account_id: int) -> None:
    from billing_app.services.meter import account_meter_read

    account_meter_read(account_id=account_id)


@shared_task
def schedules_tick_task() -> None:
    from billing_app.services.schedules import schedules_tick

    schedules_tick()


# A pass a throttled AWS refused is tried again twice within the minute; a resource still
# starting waits for the next pass, which the next tick queues anyway.
@shared_task(**METER_TASK)
def account_schedule_task(account_id: int) -> None:
    from billing_app.services.schedules import account_schedule_apply

    account_schedule_apply(account_id=account_id)


@shared_task(**AWS_TASK)
def scheduled_stop_restart_task(stop_id: int) -> None:
    from billing_app.services.schedules import scheduled_stop_restart

    scheduled_stop_restart(stop_id=stop_id)
