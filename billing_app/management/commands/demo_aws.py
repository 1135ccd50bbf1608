"""Give the demo course real AWS accounts in the emulator and a month of costs.

The emulator keeps nothing between runs, so this starts the demo's AWS side afresh each time
`make run` starts: it forgets the accounts of the previous emulator, provisions every demo
student through the normal vending path (the Celery worker does the work), then seeds Cost
Explorer with a month of believable spend and syncs it.
"""

import time
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts_app.choices import AccountState
from accounts_app.models import Course, MemberAccount
from accounts_app.services.vending import course_provision_all
from billing_app.demo import cost_explorer_results, daily_costs
from billing_app.models import CostRecord
from billing_app.services.refresh import costs_refresh
from portal.aws import emulator

DEMO_COURSE_CODE = "cloud101-demo"
DEMO_DAYS = 31
READY_TIMEOUT_SECONDS = 300


class Command(BaseCommand):
    help = "Emulator only: provision the demo course's accounts and seed a month of costs."

    def handle(self, **options) -> None:
        try:
            emulator.endpoint()
        except ValueError:
            self.stdout.write("Not using the emulator: the demo's AWS side is left alone.")
            return
        course = Course.objects.filter(code=DEMO_COURSE_CODE).first()
        if course is None:
            raise CommandError("No demo course: run `python manage.py seed_demo` first.")
        self.forget_previous_emulator()
        queued = course_provision_all(actor=None, course=course)
        self.stdout.write(f"Provisioning {queued} demo accounts…")
        accounts = self.wait_until_ready(course)
        self.seed_costs(accounts)

    def forget_previous_emulator(self) -> None:
        CostRecord.objects.all().delete()
        MemberAccount.objects.all().delete()
        Course.objects.update(aws_ou_id="", aws_scp_id="", guardrails_applied_at=None)

    def wait_until_ready(self, course: Course) -> list[MemberAccount]:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        accounts = MemberAccount.objects.filter(course=course)
        while accounts.exclude(state=AccountState.READY).exists():
            if time.monotonic() > deadline:
                raise CommandError("The demo accounts were not ready in time; is the Celery worker running?")
            time.sleep(2)
        return list(accounts.select_related("membership"))

    def seed_costs(self, accounts: list[MemberAccount]) -> None:
        ids = [a.aws_account_id for a in accounts]
        start = timezone.localdate() - timedelta(days=DEMO_DAYS - 1)
        usage, credits = daily_costs(ids, start=start, days=DEMO_DAYS, over_budget=ids[1] if len(ids) > 1 else None)
        emulator.seed_cost_explorer(cost_explorer_results(usage, credits, start=start, days=DEMO_DAYS))
        sync = costs_refresh(days=DEMO_DAYS - 1)
        self.stdout.write(self.style.SUCCESS(f"Seeded a month of costs: {sync.rows} Cost Explorer rows."))
