from django.core.management.base import BaseCommand, CommandError

from billing_app.services.refresh import costs_refresh
from portal.aws.errors import AwsError


class Command(BaseCommand):
    help = "Pull Cost Explorer for the whole organization (one query family) and check budgets."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, help="Trailing days to re-sync (default 14).")

    def handle(self, days: int | None, **options) -> None:
        if days is not None and not 1 <= days <= 365:
            raise CommandError("--days must be between 1 and 365.")
        try:
            sync = costs_refresh(days=days)
        except AwsError as error:
            raise CommandError(f"Cost Explorer refused: {error}") from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Synced {sync.window_start} to {sync.window_end}: {sync.rows} rows from "
                f"{sync.requests} Cost Explorer request(s) (${sync.requests * 0.01:.2f})."
            )
        )
        for warning in sync.warnings.splitlines():
            self.stdout.write(self.style.WARNING(f"Warning: {warning}"))
