"""Join code limits (expiry, a cap on joins, email domains), and authenticator secrets
encrypted at rest: the secrets stored before accounts_app.mfa_adapter are encrypted here."""

from collections.abc import Callable

from django.db import migrations, models

from accounts_app import crypto

# The secrets allauth passes through the MFA adapter's encrypt(), by authenticator type.
SECRET_KEYS = {"totp": ("secret",), "recovery_codes": ("seed",)}
MIGRATED_CODES = "migrated_codes"  # recovery codes brought from django-allauth's older format


def _rewrite_secrets(apps, convert: Callable[[str], str | None]) -> None:
    Authenticator = apps.get_model("mfa", "Authenticator")
    for authenticator in Authenticator.objects.filter(type__in=SECRET_KEYS):
        data = dict(authenticator.data)
        for key in SECRET_KEYS[authenticator.type]:
            if key in data:
                data[key] = _converted(convert, data[key])
        if MIGRATED_CODES in data:
            data[MIGRATED_CODES] = [_converted(convert, code) for code in data[MIGRATED_CODES]]
        authenticator.data = data
        authenticator.save(update_fields=["data"])


def _converted(convert: Callable[[str], str | None], value: str) -> str:
    result = convert(value)
    if result is None:
        raise RuntimeError("An authenticator secret cannot be decrypted with this DJANGO_SECRET_KEY.")
    return result


def encrypt_authenticator_secrets(apps, schema_editor) -> None:
    _rewrite_secrets(apps, lambda text: crypto.encrypt(text, purpose=crypto.MFA_PURPOSE))


def decrypt_authenticator_secrets(apps, schema_editor) -> None:
    _rewrite_secrets(apps, lambda token: crypto.decrypt(token, purpose=crypto.MFA_PURPOSE))


class Migration(migrations.Migration):

    dependencies = [
        ('accounts_app', '0006_freeze_policy_id'),
        ('mfa', '0003_authenticator_type_uniq'),
    ]

    operations = [
        migrations.AddField(
            model_name='course',
            name='join_code_expires_at',
            field=models.DateTimeField(blank=True, help_text='Empty: until you turn it off.', null=True, verbose_name='code works until'),
        ),
        migrations.AddField(
            model_name='course',
            name='join_code_joins',
            field=models.PositiveIntegerField(default=0, help_text='People who joined with the current code.'),
        ),
        migrations.AddField(
            model_name='course',
            name='join_code_max_joins',
            field=models.PositiveIntegerField(blank=True, help_text='Counted from when the code was made. Empty: no limit.', null=True, verbose_name='most people who can join with the code'),
        ),
        migrations.AddField(
            model_name='course',
            name='join_email_domains',
            field=models.JSONField(blank=True, default=list, help_text='e.g. school.edu: only people with a verified address there (or at a subdomain) can join with the code. Empty: any address.', verbose_name='email domains allowed to join'),
        ),
        migrations.RunPython(encrypt_authenticator_secrets, decrypt_authenticator_secrets),
    ]
