"""allauth's account adapter, set as ACCOUNT_ADAPTER.

- allauth's emails (address verification, password reset, security notices) are queued for
  `emails_deliver_task` like the portal's own, so that no sign-up or reset request waits on the
  mail server and a failed send is tried again.
- With PORTAL_STUDENT_PASSWORDS off, a student signs in only through their university's provider
  (docs/SSO.md); administrators, instructors and TAs keep their password.
- The portal's TOTP step at sign-in gives way to the provider's own second factor where the portal
  trusts it (PORTAL_SSO_TRUST_IDP_MFA)."""

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.internal.stagekit import clear_login
from allauth.core import context as allauth_context
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.sites.shortcuts import get_current_site
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from accounts_app.permissions import holds_staff_role
from accounts_app.services.notifications import emails_send

ALLAUTH_MFA_STAGE = "allauth.mfa.stages.AuthenticateStage"
PORTAL_MFA_STAGE = "accounts_app.sso.IdpAwareAuthenticateStage"
STUDENT_PASSWORD_REFUSED = (
    "Students sign in with their university account: use the “Sign in with …” button above the "
    "password form. Your password is not accepted here."
)


class PortalAccountAdapter(DefaultAccountAdapter):
    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        """allauth's own, but queued rather than sent: the message is rendered here, with the
        same context (the request, the address, the site), and sent by the task."""
        request = allauth_context.request
        context = {
            "request": request,
            "email": email,
            "current_site": get_current_site(request),
            **context,
        }
        emails_send([self.render_mail(template_prefix, email, context)])

    def pre_login(self, request: HttpRequest, user: AbstractBaseUser, **kwargs: Any) -> HttpResponse | None:
        """Every way into a session but a provider's (a password, the link that confirms an
        address) passes here without a `sociallogin`: that is where a student is stopped."""
        signed_in_by_provider = "sociallogin" in (kwargs.get("signal_kwargs") or {})
        if not signed_in_by_provider and not may_use_password(user):
            clear_login(request)
            messages.error(request, STUDENT_PASSWORD_REFUSED)
            return redirect("account_login")
        return super().pre_login(request, user, **kwargs)

    def get_login_stages(self) -> list[str]:
        return [PORTAL_MFA_STAGE if stage == ALLAUTH_MFA_STAGE else stage for stage in super().get_login_stages()]


def may_use_password(user: AbstractBaseUser) -> bool:
    """Staff (administrators, instructors, TAs) always may; students only while
    PORTAL_STUDENT_PASSWORDS is on."""
    return settings.PORTAL_STUDENT_PASSWORDS or holds_staff_role(user)
