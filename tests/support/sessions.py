"""Sessions as a real sign-in leaves them, for tests that sign in with `force_login`."""

from __future__ import annotations

from allauth.account.internal.flows.login import record_authentication
from allauth.mfa.models import Authenticator
from django.test import Client, RequestFactory


def sign_in_with_second_factor(client: Client, user) -> Client:
    """`force_login` records no step of a sign-in; allauth's does, and RequireMFAMiddleware lets
    a session through only when one of them is the second factor. Write the two steps a sign-in
    with a password and an authenticator app leaves, through allauth's own recorder."""
    client.force_login(user)
    request = RequestFactory().get("/")
    request.session = client.session
    request.user = user
    authenticator = Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP)
    record_authentication(request, user, "password", email=user.email)
    record_authentication(request, user, "mfa", id=authenticator.pk, type=authenticator.type)
    request.session.save()
    return client
