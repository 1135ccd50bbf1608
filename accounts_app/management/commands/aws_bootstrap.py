from django.core.management.base import BaseCommand, CommandError

from accounts_app.services.bootstrap import BootstrapError, aws_bootstrap
from portal.aws.errors import AwsError


class Command(BaseCommand):
    help = (
        "Find or set up what the portal needs in the school's AWS organization: the portal OU, "
        "trusted access, Identity Center, permission sets and baseline SCPs. Safe to re-run."
    )

    def handle(self, **options) -> None:
        try:
            report = aws_bootstrap(actor=None)
        except (BootstrapError, AwsError) as error:
            raise CommandError(str(error)) from None
        for line in report:
            self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS("The AWS organization is ready for the portal."))
