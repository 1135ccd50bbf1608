import time

from django.core.management.base import BaseCommand, CommandError

from accounts_app.services.bootstrap import BootstrapError, aws_bootstrap
from portal.aws import emulator, organizations
from portal.aws.errors import AwsError, TransientAwsError


class Command(BaseCommand):
    help = (
        "Find or set up what the portal needs in the school's AWS organization: the portal OU, "
        "trusted access, Identity Center, permission sets and baseline SCPs. Safe to re-run."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--wait", type=int, default=0, metavar="SECONDS", help="Wait this long for AWS to answer.")
        parser.add_argument(
            "--create-organization",
            action="store_true",
            help="Create the organization if there is none. Only on the local emulator (AWS_ENDPOINT_URL on loopback).",
        )

    def handle(self, wait: int, create_organization: bool, **options) -> None:
        if create_organization:
            try:
                emulator.endpoint()
            except ValueError as error:
                raise CommandError(f"--create-organization is for the local AWS emulator only: {error}") from None
        try:
            exists = self.organization_exists(wait)
            if not exists and create_organization:
                self.stdout.write(f"Created organization {organizations.create_organization().id}.")
            report = aws_bootstrap(actor=None)
        except (BootstrapError, AwsError) as error:
            raise CommandError(str(error)) from None
        for line in report:
            self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS("The AWS organization is ready for the portal."))

    def organization_exists(self, wait: int) -> bool:
        deadline = time.monotonic() + wait
        while True:
            try:
                return organizations.organization_exists()
            except TransientAwsError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
