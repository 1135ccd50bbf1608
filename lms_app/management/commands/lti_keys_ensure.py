from django.core.management.base import BaseCommand

from lms_app.services.keys import lti_key_ensure


class Command(BaseCommand):
    help = (
        "Create the key pair the portal signs with as an LTI tool when there is no active one. "
        "Safe to re-run: run after every migrate. Rotating keys is `rotate_keys` (docs/LMS.md)."
    )

    def handle(self, **options) -> None:
        key = lti_key_ensure(actor=None)
        if key is None:
            self.stdout.write("An active LTI signing key exists: nothing to do.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Created LTI signing key {key}."))
