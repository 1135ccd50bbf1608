"""allauth's account adapter, set as ACCOUNT_ADAPTER: allauth's emails (address verification,
password reset, security notices) are queued for `emails_deliver_task` like the portal's own, so
that no sign-up or reset request waits on the mail server and a failed send is tried again."""

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context as allauth_context
from django.contrib.sites.shortcuts import get_current_site

from accounts_app.services.notifications import emails_send


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
