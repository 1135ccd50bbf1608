"""Sign-in hooks: whoever signs in is joined to the roster entries that are theirs."""

import logging

from allauth.account.signals import email_confirmed, user_logged_in
from django.dispatch import receiver

from accounts_app.services.invitations import (
    INVITATION_SESSION_KEY,
    InvitationError,
    invitation_accept,
    invitation_member,
    memberships_claim_by_email,
)

logger = logging.getLogger(__name__)


@receiver(user_logged_in)
def claim_memberships_on_login(sender, request, user, **kwargs) -> None:
    token = request.session.pop(INVITATION_SESSION_KEY, None)
    if token:
        try:
            invitation_accept(user=user, member=invitation_member(token))
        except InvitationError as error:
            logger.info("Invitation not accepted at sign-in for %s: %s", user.email, error)
    memberships_claim_by_email(user=user)


@receiver(email_confirmed)
def claim_memberships_on_confirmation(sender, request, email_address, **kwargs) -> None:
    memberships_claim_by_email(user=email_address.user)
