from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts_app.choices import AccountOrigin, AccountState, EndPolicy
from accounts_app.lifecycle import HELD_STATES, IN_USE_STATES, RETIRABLE_STATES
from accounts_app.models import Course, MemberAccount
from accounts_app.services import ending
from accounts_app.services.cleanup import cleanup_inventory
from accounts_app.services.guardrails import AwsNotBootstrapped


class Command(BaseCommand):
    help = (
        "End a course now: freeze its accounts; the end policy runs after the grace period "
        "(at once with --skip-grace). --dry-run shows what would happen and lists the resources "
        "cleanup would delete, changing nothing."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("course_code")
        parser.add_argument("--dry-run", action="store_true", help="Show the plan; change nothing.")
        parser.add_argument(
            "--skip-grace", action="store_true", help="Run the end policy now instead of after the grace period."
        )

    def handle(self, course_code: str, dry_run: bool, skip_grace: bool, **options) -> None:
        course = Course.objects.filter(code=course_code.lower()).first()
        if course is None:
            raise CommandError(f"No course has the code “{course_code}”.")
        accounts = list(ending_accounts(course))
        if dry_run:
            self._plan(course, accounts, skip_grace)
            return
        frozen = ending.course_end(actor=None, course=course)
        self.stdout.write(f"{course.code}: freezing {frozen} account(s).")
        if skip_grace:
            # Freeze here rather than wait for the workers (both are safe to run twice), so
            # that the end policy finds every account frozen.
            for account_id in ending_accounts(course).filter(state__in=IN_USE_STATES).values_list("pk", flat=True):
                ending.account_end(account_id=account_id)
            started = ending.course_accounts_retire(course=course)
            self.stdout.write(f"End policy started for {started} account(s).")
        else:
            self.stdout.write(f"The end policy runs on {course.grace_ends_at:%Y-%m-%d %H:%M}.")
        self.stdout.write(self.style.SUCCESS("Follow it on the course's End of course page."))

    def _plan(self, course: Course, accounts: list[MemberAccount], skip_grace: bool) -> None:
        schedule = ending.end_schedule(course)
        policy_at = timezone.now() if skip_grace else course.grace_ends_at
        self.stdout.write(f"{course.code} ({course.get_end_policy_display()}): dry run, nothing changes.")
        self.stdout.write(f"  Freeze: {'done' if schedule.ended else 'now'}; end policy: {policy_at:%Y-%m-%d %H:%M}")
        for account in accounts:
            who = account.membership.email if account.membership_id else "pool"
            self.stdout.write(f"- {who} {account.aws_account_id or ''}: {fate(account)}")
            if account.aws_account_id and account.state in IN_USE_STATES | RETIRABLE_STATES:
                self._inventory(account)

    def _inventory(self, account: MemberAccount) -> None:
        try:
            preview = cleanup_inventory(account)
        except AwsNotBootstrapped as error:
            raise CommandError(str(error)) from None
        if preview.error:
            self.stdout.write(f"    cannot clean: {preview.error}")
        for resource in preview.resources:
            self.stdout.write(f"    would delete {resource.kind} {resource.label or resource.id} ({resource.region})")
        if not preview.resources and not preview.error:
            self.stdout.write("    nothing to delete")


def ending_accounts(course: Course):
    # A declined request to bring an account never was the course's.
    accounts = MemberAccount.objects.filter(course=course).exclude(state=AccountState.DECLINED)
    return accounts.select_related("membership", "course").order_by("account_name")


def fate(account: MemberAccount) -> str:
    """What the end of the course does to this account, in a few words."""
    if account.end_excluded:
        return "kept out of the end of the course"
    if account.is_pooled:
        return "unused pool account: cleaned and returned to the organization's pool"
    if account.origin == AccountOrigin.INVITED:
        return "the student's own account: the school's access removed, then it leaves the organization"
    state = AccountState(account.state)
    if state in HELD_STATES:
        return "frozen, then " + POLICY_FATES[EndPolicy(account.course.end_policy)]
    return f"left as it is ({state.label.lower()})"


POLICY_FATES = {
    EndPolicy.CLOSE: "cleaned up and closed",
    EndPolicy.RECYCLE: "cleaned up and returned to the organization's pool",
    EndPolicy.KEEP: "cleaned up and closed unless the student keeps it",
}
