from django.apps import AppConfig


class LmsAppConfig(AppConfig):
    name = "lms_app"
    verbose_name = "Learning management systems (LTI 1.3)"
