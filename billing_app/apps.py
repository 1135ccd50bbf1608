from django.apps import AppConfig


class BillingAppConfig(AppConfig):
    name = "billing_app"
    verbose_name = "Costs and budgets"

    def ready(self) -> None:
        from billing_app import receivers  # noqa: F401  (budgets for new accounts, the spend limits)
