"""Give the demo course real AWS accounts in the emulator, a month of costs, and a story.

The emulator keeps nothing between runs, so this starts the demo's AWS side afresh each time
`make run` starts: it forgets the accounts of the previous emulator, provisions the demo
students through the normal vending path (the Celery worker does the work), seeds Cost Explorer
with a month of believable spend and syncs it (one student blows their budget and is frozen).
The course gets spend limits, two students leave a small instance running and one starts a GPU
instance the limits do not allow: within a meter interval (PORTAL_METER_INTERVAL_MINUTES, one
minute under `make run`) the course's costs show the burn rate, and the portal freezes that
account and stops its instance. Then the term moves on, through the portal's own services: one
student asks to keep their
account, one drops the course (their account is cleaned up and closed), the instructor
pre-creates spare accounts for late adds, and two late joiners ask for accounts. From then on
the emulator takes DEMO_CREATION_SECONDS per account, as AWS takes minutes: the spares and the
first late joiner fill AWS's creations in progress, so the second waits in the queue
(requested), then is created (creating), then is ready while you watch the roster.
"""

import time
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts_app.choices import AccountState, CourseRole
from accounts_app.management.commands.seed_demo import (
    DROPPED,
    KEEPER,
    LATE_JOINERS,
    OVER_BUDGET,
    OVER_THE_LIMIT,
    SMALL_RUNNERS,
    demo_email,
    refuse_unless_local_emulator,
)
from accounts_app.models import Course, MemberAccount, Membership
from accounts_app.services.account_requests import account_request, course_precreate
from accounts_app.services.handover import handover_request
from accounts_app.services.rosters import member_remove
from billing_app.demo import cost_explorer_results, daily_costs
from billing_app.models import CostRecord
from billing_app.services.limits import course_spend_limits_set
from billing_app.services.refresh import costs_refresh
from portal.aws import emulator

DEMO_COURSE_CODE = "cloud101-demo"
DEMO_DAYS = 31
READY_TIMEOUT_SECONDS = 300
# Longer than AWS's usual few minutes, so that there is time to look at every state.
DEMO_CREATION_SECONDS = 600
# No GPU instance, at most $2 an hour, and a freeze a day before the budget runs out.
DEMO_LIMITS = {
    "max_usd_per_hour": Decimal("2.00"),
    "max_accelerated_instances": 0,
    "bedrock_daily_tokens": None,
    "bedrock_daily_usd": None,
    "freeze_within_hours": 24,
}
WORKLOAD_REGION = "us-east-1"
SMALL_INSTANCE, GPU_INSTANCE = "t3.micro", "g5.xlarge"


class Command(BaseCommand):
    help = "Emulator only: provision the demo course's accounts and seed a month of costs."

    def handle(self, **options) -> None:
        refuse_unless_local_emulator("demo_aws")
        if not emulator.is_running():
            self.stdout.write("The emulator is not running: `make run` sets up the demo's AWS side as it starts.")
            return
        course = Course.objects.filter(code=DEMO_COURSE_CODE).first()
        if course is None:
            raise CommandError("No demo course: run `python manage.py seed_demo` first.")
        self.forget_previous_emulator()
        emulator.set_creation_seconds(0)  # the term's accounts exist already when the demo opens
        late_joiners = list(course.memberships.filter(email__in=[demo_email(name) for name in LATE_JOINERS]))
        for member in course.memberships.filter(role=CourseRole.STUDENT).exclude(pk__in=[m.pk for m in late_joiners]):
            account_request(actor=member.user, membership=member)
        self.stdout.write("Provisioning the demo accounts…")
        accounts = self.wait_until_ready(course)
        self.seed_costs(accounts)
        self.run_workloads(course)
        emulator.set_creation_seconds(DEMO_CREATION_SECONDS)
        self.tell_the_story(course, late_joiners)

    def forget_previous_emulator(self) -> None:
        CostRecord.objects.all().delete()
        MemberAccount.objects.all().delete()
        Course.objects.update(aws_ou_id="", aws_scp_id="", guardrails_applied_at=None)

    def wait_until_ready(self, course: Course) -> list[MemberAccount]:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        accounts = MemberAccount.objects.filter(course=course)
        while not accounts.exists() or accounts.exclude(state=AccountState.READY).exists():
            if time.monotonic() > deadline:
                raise CommandError("The demo accounts were not ready in time; is the Celery worker running?")
            time.sleep(2)
        return list(accounts.select_related("membership"))

    def tell_the_story(self, course: Course, late_joiners: list[Membership]) -> None:
        keeper = course.memberships.get(email=demo_email(KEEPER))
        handover_request(
            actor=keeper.user,
            account=keeper.aws_account,
            new_root_email=f"{keeper.email.split('@')[0]}@personal.example",
            contact_name=keeper.name,
            contact_phone="+1 555 0100",
        )
        dropped = course.memberships.get(email=demo_email(DROPPED))
        instructor = course.memberships.filter(role=CourseRole.INSTRUCTOR).first()
        member_remove(actor=instructor.user, member=dropped)
        # All but one of AWS's creations in progress, so that the second late joiner waits.
        spares = course_precreate(
            actor=instructor.user, course=course, count=settings.PORTAL_AWS_MAX_CREATIONS_IN_PROGRESS - 1
        )
        for member in late_joiners:
            account_request(actor=member.user, membership=member)
        self.stdout.write(
            self.style.SUCCESS(
                f"{keeper.name} asks to keep their account; {dropped.name} left the course (account closing); "
                f"{len(spares)} spare accounts and {len(late_joiners)} late joiners' accounts are being created, "
                f"{DEMO_CREATION_SECONDS // 60} minutes each, at most "
                f"{settings.PORTAL_AWS_MAX_CREATIONS_IN_PROGRESS} at a time."
            )
        )

    def run_workloads(self, course: Course) -> None:
        """The course's spend limits, and what three students run under them: the meter reads it
        within its interval, and freezes the account whose GPU instance the limits do not allow."""
        instructor = course.memberships.filter(role=CourseRole.INSTRUCTOR).first()
        course_spend_limits_set(actor=instructor.user, course=course, values=DEMO_LIMITS)
        workloads = [(name, SMALL_INSTANCE) for name in SMALL_RUNNERS] + [(OVER_THE_LIMIT, GPU_INSTANCE)]
        for name, instance_type in workloads:
            account = MemberAccount.objects.get(course=course, membership__email=demo_email(name))
            emulator.start_instance(account.aws_account_id, WORKLOAD_REGION, instance_type, f"{name.split()[0]}'s lab")
        self.stdout.write(
            self.style.SUCCESS(
                f"{OVER_THE_LIMIT} started a {GPU_INSTANCE}, which the course's limits do not allow: the portal "
                f"freezes the account and stops it within {settings.PORTAL_METER_INTERVAL_MINUTES} minute(s)."
            )
        )

    def seed_costs(self, accounts: list[MemberAccount]) -> None:
        ids = [a.aws_account_id for a in accounts]
        start = timezone.localdate() - timedelta(days=DEMO_DAYS - 1)
        over_budget = next((a.aws_account_id for a in accounts if a.membership.email == demo_email(OVER_BUDGET)), None)
        usage, credits = daily_costs(ids, start=start, days=DEMO_DAYS, over_budget=over_budget)
        emulator.seed_cost_explorer(cost_explorer_results(usage, credits, start=start, days=DEMO_DAYS))
        sync = costs_refresh(days=DEMO_DAYS - 1)
        self.stdout.write(self.style.SUCCESS(f"Seeded a month of costs: {sync.rows} Cost Explorer rows."))
