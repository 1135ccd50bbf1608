from django.apps import AppConfig


class AccountsAppConfig(AppConfig):
    name = "accounts_app"
    verbose_name = "Courses and rosters"

    def ready(self) -> None:
        from accounts_app import checks, receivers  # noqa: F401  (registers the checks and sign-in handlers)
