import json

from django.core.management.base import BaseCommand, CommandError

from accounts_app.services.bootstrap import ROLE_POLICIES, BootstrapError, role_policy


class Command(BaseCommand):
    help = (
        "Print the IAM policy of the portal's bootstrap or runtime role (docs/iam/), the runtime "
        "role's examples replaced by this organization's OU path, accounts and identity store."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("role", choices=sorted(ROLE_POLICIES))

    def handle(self, role: str, **options) -> None:
        try:
            policy = role_policy(role)
        except BootstrapError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(json.dumps(policy, indent=2))
