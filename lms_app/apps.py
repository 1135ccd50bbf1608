from django.apps import AppConfig


class LmsAppConfig(AppConfig):
    name = "lms_app"
    verbose_name = "Learning management systems (LTI 1.3)"

    def ready(self) -> None:
        from lms_app import checks  # noqa: F401  (registers the signing key check)
