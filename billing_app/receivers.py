from django.dispatch import receiver

from accounts_app.choices import AccountState
from accounts_app.signals import account_state_changed
from billing_app.signals import meter_read


@receiver(account_state_changed)
def create_budget_when_ready(sender, account, from_state, to_state, **kwargs) -> None:
    """Every student account gets its AWS Budget as soon as it is ready."""
    if to_state == AccountState.READY and from_state == AccountState.CONFIGURING:
        from billing_app.tasks import budget_ensure_task

        budget_ensure_task.delay_on_commit(account.pk)


@receiver(meter_read)
def freeze_past_the_course_limits(sender, reading, previous_usd_per_hour, **kwargs) -> None:
    """A reading over one of the course's spend limits freezes the ready account it read."""
    from billing_app.services.limits import account_limits_check

    account_limits_check(reading=reading)
