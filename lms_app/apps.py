from django.apps import AppConfig


class LmsAppConfig(AppConfig):
    name = "lms_app"
    verbose_name = "Learning management systems (LTI 1.3)"

    def ready(self) -> None:
        # Registers the signing key check, and connects the roster sync to launches.
        from lms_app import checks, receivers  # noqa: F401
