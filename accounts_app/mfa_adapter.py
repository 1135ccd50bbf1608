"""allauth's MFA adapter, set as MFA_ADAPTER: authenticator secrets are stored encrypted.

allauth passes every secret it stores (a TOTP key, the seed recovery codes are derived from)
through `encrypt()` and reads it back through `decrypt()`. A copy of the database, a backup or a
read-only SQL injection then yields no second factor without SECRET_KEY as well."""

from allauth.mfa.adapter import DefaultMFAAdapter
from django.core.exceptions import ImproperlyConfigured

from accounts_app import crypto


class PortalMFAAdapter(DefaultMFAAdapter):
    def encrypt(self, text: str) -> str:
        return crypto.encrypt(text, purpose=crypto.MFA_PURPOSE)

    def decrypt(self, encrypted_text: str) -> str:
        text = crypto.decrypt(encrypted_text, purpose=crypto.MFA_PURPOSE)
        if text is None:
            # Failing loudly beats treating every code as wrong: the cause is the key, not the user.
            raise ImproperlyConfigured(
                "An authenticator secret cannot be decrypted: DJANGO_SECRET_KEY changed. Put the "
                "previous key in DJANGO_SECRET_KEY_FALLBACKS."
            )
        return text
