from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest

from accounts_app.services.invitations import InvitationError, invitation_member

INVITATION_SESSION_KEY = "invitation_token"


class PortalAccountAdapter(DefaultAccountAdapter):
    def get_signup_form_initial_data(self, request: HttpRequest) -> dict:
        """Someone signing up from an invitation starts with the invited address filled in."""
        initial = super().get_signup_form_initial_data(request)
        token = request.session.get(INVITATION_SESSION_KEY)
        if token:
            try:
                initial["email"] = invitation_member(token).email
            except InvitationError:
                pass
        return initial
