"""Symmetric encryption for the secrets the portal must hold: a first console password until the
student has seen it, every authenticator app's secret and recovery-code seed, and webhook
addresses and signing secrets. The keys are
derived from SECRET_KEY, one per purpose, so that a token made for one use is useless for another.
Tokens made with a key listed in SECRET_KEY_FALLBACKS stay readable after SECRET_KEY changes."""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

PURPOSE = b"classroom-cloud-portal/one-time-secrets"
MFA_PURPOSE = b"classroom-cloud-portal/mfa-secrets"
WEBHOOK_PURPOSE = b"classroom-cloud-portal/webhook-secrets"


def _key(purpose: bytes, secret_key: str) -> Fernet:
    digest = hashlib.sha256(purpose + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _fernet(purpose: bytes) -> MultiFernet:
    """Encrypts with SECRET_KEY; decrypts with it or any of its fallbacks."""
    secret_keys = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    return MultiFernet([_key(purpose, secret_key) for secret_key in secret_keys])


def encrypt(text: str, *, purpose: bytes = PURPOSE) -> str:
    return _fernet(purpose).encrypt(text.encode()).decode()


def decrypt(token: str, *, purpose: bytes = PURPOSE) -> str | None:
    """The plain text, or None if the token was made with another SECRET_KEY or purpose."""
    try:
        return _fernet(purpose).decrypt(token.encode()).decode()
    except InvalidToken:
        return None
