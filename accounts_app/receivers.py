"""Signal hooks: whoever signs in is joined to the roster entries that are theirs, enrolling an
authenticator counts as passing it, so does a university's own second factor where the portal
trusts it (docs/SSO.md), and a student whose AWS account is ready is told how to sign
in to it."""

import logging
from functools import partial

# allauth's own record of the steps of a sign-in (RequireMFAMiddleware reads it); not re-exported.
from allauth.account.internal.flows.login import record_authentication
from allauth.account.signals import email_confirmed, user_logged_in
from allauth.mfa.models import Authenticator
from allauth.mfa.signals import authenticator_added
from django.db import transaction
from django.dispatch import receiver

from accounts_app.choices import AccountState
from accounts_app.models import AccountEvent, MemberAccount
from accounts_app.selectors import account_access
from accounts_app.services.invitations import (
    INVITATION_SESSION_KEY,
    InvitationError,
    invitation_accept,
    invitation_member,
    memberships_claim_by_email,
)
from accounts_app.services.notifications import email_send
from accounts_app.signals import account_state_changed
from accounts_app.sso import trusts_idp_second_factor

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


@receiver(authenticator_added)
def count_enrolment_as_second_factor(sender, request, user, authenticator, **kwargs) -> None:
    """Activating an authenticator app takes a code from it, the same proof a sign-in asks for:
    this session has passed the second factor, and need not be asked again at once."""
    if authenticator.type == Authenticator.Type.TOTP and request is not None:
        record_authentication(request, user, "mfa", id=authenticator.pk, type=authenticator.type, enrolled=True)


@receiver(user_logged_in)
def count_idp_second_factor(sender, request, user, sociallogin=None, **kwargs) -> None:
    """A sign-in through a university's provider that asked for a second factor, with
    PORTAL_SSO_TRUST_IDP_MFA on: recorded as the session's second factor, which the portal's
    checks (RequireMFAMiddleware) then accept."""
    if trusts_idp_second_factor(sociallogin):
        record_authentication(request, user, "mfa", type="idp", provider=sociallogin.account.provider)


@receiver(account_state_changed)
def email_student_when_ready(sender, account, from_state, to_state, **kwargs) -> None:
    """The end of vending (CONFIGURING → READY) for a student's account: tell them how to sign in,
    once the change is committed. Pool accounts have nobody to tell, an unfrozen account is not
    news, and an account configured again after it was ready does not announce itself twice."""
    if from_state != AccountState.CONFIGURING or to_state != AccountState.READY or account.membership_id is None:
        return
    # This transition's own event is already written: any other READY means it was ready before.
    if AccountEvent.objects.filter(account_id=account.pk, to_state=AccountState.READY).count() > 1:
        return
    transaction.on_commit(partial(_account_ready_send, account.pk))


def _account_ready_send(account_id: int) -> None:
    account = (
        MemberAccount.objects.select_related("course", "membership")
        .filter(pk=account_id, state=AccountState.READY)
        .exclude(membership=None)
        .first()
    )
    if account is None:
        return
    context = {"account": account, "course": account.course, "access": account_access(account=account)}
    try:
        email_send("account_ready", context, [account.membership.email])
    except Exception:
        # The account is ready whether or not the mail could be queued; the course page says so too.
        logger.exception("Could not email %s that their AWS account is ready", account.membership.email)
