"""A student's own AWS account, brought into the course: the organization's invitation (sent
once, within AWS's daily quota, and only ever taken as the portal's own when it is proven so), the
student's acceptance, and the access role they create, checked before `account_setup` configures
the account.

The request and the instructor's approval come first (`account_requests.account_bring_existing`,
`account_bring_approve`).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts_app import next_step
from accounts_app.choices import AccountState as S
from accounts_app.lifecycle import transition
from accounts_app.models import AwsOrganization, MemberAccount, OrganizationInvitation, User
from accounts_app.services.account_setup import account_access_verify, account_place_in_course_ou
from accounts_app.services.guardrails import organization_ready
from accounts_app.services.identity import NotThePortals, account_tags
from portal.aws import organizations
from portal.aws.errors import (
    AwsError,
    NotFound,
    PermanentAwsError,
    TransientAwsError,
    UnknownOutcome,
)

# An invitation stays open this long at AWS; an older one is never taken as the portal's own.
HANDSHAKE_LIFETIME = timedelta(days=15)
# A handshake proven the portal's (its stored id, or its reference) is taken while open, or once
# the student accepted it before the portal read AWS's answer; never one found by account id alone.
OWN_HANDSHAKE_STATES = frozenset({"REQUESTED", "OPEN", "ACCEPTED"})
# AWS's invitation quota is counted over a rolling day.
INVITATION_WINDOW = timedelta(hours=24)
# After AWS refused an invitation for the daily quota, the next one waits this long.
RATE_LIMITED_PAUSE = timedelta(hours=1)


def account_invite(*, account_id: int) -> None:
    """Send the organization's invitation to a student's existing account, once, within AWS's
    daily invitation quota.

    Only an invitation the portal sent for this request is ever taken as its own: one whose
    handshake id it stored, or, after a lost answer, one whose notes carry the random reference the
    portal wrote for this request, sent by this organization's management account, and open (or
    accepted by the student before the portal read AWS's answer). A handshake of the same account
    id that is accepted, or sent by someone else, proves nothing: taking it would let a student
    name an account already in the organization, another student's, and be given it.
    """
    account = MemberAccount.objects.select_related("course", "membership").filter(pk=account_id).first()
    if account is None or account.state != S.INVITING:
        return
    organization = organization_ready()
    handshake = _own_handshake(account, organization)
    if handshake is None:
        if organizations.find_account(account.aws_account_id) is not None:
            transition(
                account,
                expected=S.INVITING,
                to=S.FAILED,
                reason="Already a member of the organization",
                last_error="That AWS account is already in the school's organization: it cannot be brought into "
                "a course. Decline the request; the student can then request a new account.",
            )
            return
        slot = _invitation_slot(account, organization)
        if not isinstance(slot, OrganizationInvitation):
            _wait_for_invitation_quota(account, slot)
            return
        handshake = _send_invitation(account, organization, slot)
        if handshake is None:
            return
    transition(
        account,
        expected=S.INVITING,
        to=S.INVITED,
        reason=f"Handshake {handshake.id}",
        handshake_id=handshake.id,
        last_error="",
    )


def _reference_note(reference: str) -> str:
    return f"Portal reference {reference}."


def _is_ours(handshake: organizations.Handshake, account: MemberAccount, organization: AwsOrganization) -> bool:
    """Sent by this organization's management account to this account (the caller has proven
    that it is this request's, by its stored id or its reference) and not closed."""
    return (
        handshake.state in OWN_HANDSHAKE_STATES
        and handshake.action == "INVITE"
        and handshake.account_id == account.aws_account_id
        and handshake.organization_id == organization.organization_id
        and handshake.sender_account_id == organization.management_account_id
    )


def _own_handshake(account: MemberAccount, organization: AwsOrganization) -> organizations.Handshake | None:
    """The invitation the portal already sent for this request, if it is not closed."""
    recent = list(account.invitations.filter(sent_at__gte=timezone.now() - HANDSHAKE_LIFETIME, rate_limited=False))
    for invitation in reversed(recent):
        if not invitation.handshake_id:
            continue
        try:
            handshake = organizations.describe_handshake(invitation.handshake_id)
        except NotFound:
            continue
        if _is_ours(handshake, account, organization):
            return handshake
    unanswered = [invitation for invitation in recent if not invitation.handshake_id]
    return _find_by_reference(account, organization, unanswered) if unanswered else None


def _find_by_reference(
    account: MemberAccount, organization: AwsOrganization, invitations: list[OrganizationInvitation]
) -> organizations.Handshake | None:
    """A handshake of this organization, not closed, whose notes carry one of `invitations`'
    references (sent, its answer lost); its id is stored on the invitation."""
    for handshake in organizations.invitation_handshakes():
        if not _is_ours(handshake, account, organization):
            continue
        for invitation in invitations:
            if _reference_note(invitation.reference) in handshake.notes:
                OrganizationInvitation.objects.filter(pk=invitation.pk).update(handshake_id=handshake.id)
                return handshake
    return None


def _invitation_slot(account: MemberAccount, organization: AwsOrganization) -> OrganizationInvitation | datetime:
    """One of the organization's invitations for the last 24 hours, recorded before it is sent
    (so that a worker dying after the send still counts it, and its notes can be recognised), or
    the moment the next one frees."""
    quota = settings.PORTAL_AWS_INVITATIONS_PER_DAY
    with transaction.atomic():
        # One claimant at a time, across every worker: the organization row is the lock.
        AwsOrganization.objects.select_for_update().get(pk=organization.pk)
        now = timezone.now()
        window = OrganizationInvitation.objects.filter(sent_at__gt=now - INVITATION_WINDOW)
        refused_at = window.filter(rate_limited=True).order_by("-sent_at").values_list("sent_at", flat=True).first()
        if refused_at is not None and refused_at + RATE_LIMITED_PAUSE > now:
            return refused_at + RATE_LIMITED_PAUSE
        sent = list(window.filter(rate_limited=False).order_by("sent_at").values_list("sent_at", flat=True))
        if len(sent) >= quota:
            return sent[len(sent) - quota] + INVITATION_WINDOW
        return OrganizationInvitation.objects.create(account=account, reference=secrets.token_hex(8), sent_at=now)


def _wait_for_invitation_quota(account: MemberAccount, until: datetime) -> None:
    """The request stays INVITING with a plain explanation; the reconciler, which re-queues the
    invitations that have not moved, sends it once AWS allows."""
    moment = timezone.localtime(until)
    explanation = (
        f"AWS lets the school send {settings.PORTAL_AWS_INVITATIONS_PER_DAY} invitations a day; "
        f"yours goes out after {moment:%H:%M} ({moment.tzname()})."
    )
    MemberAccount.objects.filter(pk=account.pk).update(last_error=explanation)


def _send_invitation(
    account: MemberAccount, organization: AwsOrganization, invitation: OrganizationInvitation
) -> organizations.Handshake | None:
    course = account.course
    notes = (
        f"{course.name} ({course.code}) invites this account to the school's AWS organization. "
        f"{_reference_note(invitation.reference)}"
    )
    try:
        handshake = organizations.invite_account(account.aws_account_id, notes=notes, tags=account_tags(account))
    except UnknownOutcome:
        handshake = _find_by_reference(account, organization, [invitation])
        if handshake is None:
            raise  # the task looks again later, before sending anything
        return handshake
    except PermanentAwsError as error:
        return _invitation_refused(account, organization, invitation, error)
    except TransientAwsError:
        # Refused before AWS did anything (throttled): no invitation was spent.
        OrganizationInvitation.objects.filter(pk=invitation.pk).delete()
        raise
    OrganizationInvitation.objects.filter(pk=invitation.pk).update(handshake_id=handshake.id)
    return handshake


def _invitation_refused(
    account: MemberAccount, organization: AwsOrganization, invitation: OrganizationInvitation, error: AwsError
) -> organizations.Handshake | None:
    if error.reason == "HANDSHAKE_RATE_LIMIT_EXCEEDED":
        # AWS counts invitations the portal did not send (an administrator's, by hand): a wait,
        # not a failure. The refused one is not counted, and the next waits RATE_LIMITED_PAUSE.
        OrganizationInvitation.objects.filter(pk=invitation.pk).update(rate_limited=True)
        _wait_for_invitation_quota(account, invitation.sent_at + RATE_LIMITED_PAUSE)
        return None
    OrganizationInvitation.objects.filter(pk=invitation.pk).delete()
    if error.code == "DuplicateHandshakeException":
        # An invitation of this account is open: the portal's own from an earlier lost answer,
        # or someone else's, which the portal never takes.
        handshake = _own_handshake(account, organization)
        if handshake is not None:
            return handshake
    transition(account, expected=S.INVITING, to=S.FAILED, reason=str(error), last_error=_refusal_explained(error))
    return None


def _refusal_explained(error: AwsError) -> str:
    explanations = {
        "DuplicateAccountException": "That account is already in this organization.",
        "DuplicateHandshakeException": "The school's organization already has an open invitation for that "
        "account that the portal did not send. An administrator must cancel it (AWS Organizations → "
        "Invitations) before the portal invites the account; then retry.",
        "AccountOwnerNotVerifiedException": "The account's owner has not verified its email address yet.",
        "HandshakeConstraintViolationException": "AWS will not invite that account now "
        f"({error.reason or error.message}); it may already belong to another organization.",
    }
    return explanations.get(error.code, f"AWS refused the invitation: {error.message}")


def account_check_invitation(*, account_id: int) -> None:
    """Follow the invitation: accepted → ask for the access role (and check it at once)."""
    account = MemberAccount.objects.select_related("course", "membership").filter(pk=account_id).first()
    if account is None or account.state != S.INVITED:
        return
    handshake = organizations.describe_handshake(account.handshake_id)
    if handshake.state == "ACCEPTED":
        # A joined account sits under the organization's root, outside every guardrail, and the
        # portal's role may work only under its own OU: it goes to its course's OU at once.
        try:
            account_place_in_course_ou(account)
        except NotThePortals as refusal:
            transition(account, expected=S.INVITED, to=S.FAILED, reason=str(refusal)[:1000], last_error=str(refusal))
            return
        transition(account, expected=S.INVITED, to=S.AWAITING_ACCESS_ROLE, reason="Invitation accepted")
        _access_role_verify(account, actor=None)
    elif handshake.state in {"DECLINED", "CANCELED", "EXPIRED"}:
        transition(
            account,
            expected=S.INVITED,
            to=S.FAILED,
            reason=f"Invitation {handshake.state.lower()}",
            last_error=f"The invitation was {handshake.state.lower()}. Retry to send a new one.",
            handshake_id="",
        )


def access_role_check_request(*, actor, account: MemberAccount) -> bool:
    """The student says the access role is in place: a task checks it (the web tier makes no AWS
    call). Returns whether a check was queued."""
    if account.state != S.AWAITING_ACCESS_ROLE:
        return False
    next_step.access_role_check_enqueue(account, actor=actor)
    return True


def account_verify_access_role(*, actor_id: int | None, account_id: int) -> bool:
    """Check that the student created the access role in their account; continue if so. The
    actor is the person who said the role is in place (None: the portal, or a user since removed)."""
    account = MemberAccount.objects.filter(pk=account_id).first()
    if account is None:
        return False
    actor = User.objects.filter(pk=actor_id).first() if actor_id else None
    return _access_role_verify(account, actor=actor)


def _access_role_verify(account: MemberAccount, *, actor: User | None) -> bool:
    if account.state != S.AWAITING_ACCESS_ROLE:
        return False
    try:
        account_access_verify(account)
    except AwsError as error:
        MemberAccount.objects.filter(pk=account.pk).update(
            last_error=(
                f"The portal cannot use the role {settings.PORTAL_AWS_MEMBER_ROLE_NAME} in your account yet: "
                f"{error.message}"
            )
        )
        return False
    if transition(
        account,
        expected=S.AWAITING_ACCESS_ROLE,
        to=S.CONFIGURING,
        actor=actor,
        reason="Access role works",
        last_error="",
    ):
        next_step.next_step_enqueue(account)
    return True
