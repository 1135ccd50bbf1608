"""Invitations and self-enrolment: how a person on a roster becomes a signed-in member."""

from __future__ import annotations

from collections.abc import Iterable

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import dateformat, timezone

from accounts_app.choices import AuditAction, CourseRole, InviteStatus, MembershipSource
from accounts_app.models import Course, Membership, User
from accounts_app.services.audit import audit_record
from accounts_app.services.notifications import email_build, emails_send

INVITATION_SALT = "accounts_app.invitation"
# Where an invitation opened by someone not yet signed in waits for their sign-in.
INVITATION_SESSION_KEY = "invitation_token"


class InvitationError(Exception):
    """The invitation link cannot be used; the message says why in plain words."""


def invitation_token(member: Membership) -> str:
    # The email is signed too: changing a roster entry's address voids links sent to the old one.
    return signing.dumps({"member": member.pk, "email": member.email}, salt=INVITATION_SALT)


def invitation_url(member: Membership) -> str:
    path = reverse("invitation", kwargs={"token": invitation_token(member)})
    return settings.PORTAL_BASE_URL.rstrip("/") + path


def invitation_member(token: str) -> Membership:
    """The roster entry an invitation link points at, or InvitationError."""
    max_age = settings.PORTAL_INVITATION_MAX_AGE_DAYS * 24 * 60 * 60
    try:
        payload = signing.loads(token, salt=INVITATION_SALT, max_age=max_age)
    except signing.SignatureExpired:
        raise InvitationError("This invitation has expired. Ask your instructor to send you a new one.") from None
    except signing.BadSignature:
        raise InvitationError("This invitation link is not valid. Check that it was copied whole.") from None
    member = (
        Membership.objects.select_related("course").filter(pk=payload.get("member"), email=payload.get("email")).first()
    )
    if member is None:
        raise InvitationError(
            "This invitation is no longer valid: you were removed from the roster "
            "or your address changed. Ask your instructor for a new invitation."
        )
    return member


def invitations_enqueue(*, actor: User | None, course: Course, member_ids: Iterable[int] | None = None) -> int:
    """Queue invitation emails after the current transaction commits. Without `member_ids`,
    everyone on the roster who was never invited is queued. Returns how many were queued."""
    from accounts_app.tasks import invitations_send_task

    members = course.memberships.filter(user__isnull=True)
    if member_ids is None:
        members = members.filter(invite_status=InviteStatus.NOT_SENT)
    else:
        members = members.filter(pk__in=list(member_ids))
    ids = list(members.values_list("pk", flat=True))
    if ids:
        invitations_send_task.delay_on_commit(ids, actor.pk if actor else None)
    return len(ids)


def invitations_send(*, actor_id: int | None, member_ids: list[int]) -> int:
    """Mark each roster entry invited and queue its invitation, in one transaction: the emails
    go (over one mail connection) once the entries say so. The actor is who asked (None: the
    portal, or a user since removed)."""
    members = list(Membership.objects.select_related("course").filter(pk__in=member_ids, user__isnull=True))
    if not members:
        return 0

    actor = User.objects.filter(pk=actor_id).first() if actor_id else None
    now = timezone.now()
    for member in members:
        member.invite_status = InviteStatus.SENT
        member.invited_at = now
    with transaction.atomic():
        Membership.objects.bulk_update(members, ["invite_status", "invited_at"], batch_size=1000)
        emails_send([_invitation_email(member) for member in members])
        for course, emails in _emails_by_course(members).items():
            audit_record(
                actor=actor,
                action=AuditAction.INVITATIONS_SENT,
                course=course,
                target=course,
                summary=f"Sent {len(emails)} invitation(s)",
                data={"emails": emails},
            )
    return len(members)


def _emails_by_course(members: list[Membership]) -> dict[Course, list[str]]:
    grouped: dict[Course, list[str]] = {}
    for member in members:
        grouped.setdefault(member.course, []).append(member.email)
    return grouped


def _invitation_email(member: Membership) -> EmailMultiAlternatives:
    context = {
        "member": member,
        "course": member.course,
        "url": invitation_url(member),
        "max_age_days": settings.PORTAL_INVITATION_MAX_AGE_DAYS,
    }
    return email_build("invitation", context, [member.email])


@transaction.atomic
def invitation_accept(*, user: User, member: Membership) -> Membership:
    """Bind the signed-in `user` to the roster entry their invitation names."""
    member = Membership.objects.select_for_update().select_related("course").get(pk=member.pk)
    if member.user_id == user.pk:
        return member
    if member.user_id is not None:
        raise InvitationError("This invitation has already been used by another person.")
    other = Membership.objects.filter(course=member.course, user=user).first()
    if other is not None:
        raise InvitationError(
            f"You are already on {member.course.code} as {other.get_role_display()} (with {other.email})."
        )
    _bind(member, user)
    audit_record(
        actor=user,
        action=AuditAction.INVITE_ACCEPTED,
        course=member.course,
        target=member,
        summary=f"{user.email} accepted the invitation sent to {member.email}",
    )
    return member


def memberships_claim_by_email(*, user: User) -> int:
    """Bind the roster entries that name one of `user`'s verified addresses. Returns how many."""
    verified = set(EmailAddress.objects.filter(user=user, verified=True).values_list("email", flat=True))
    emails = {email.lower() for email in verified}
    if not emails:
        return 0
    claimed = 0
    unbound = Membership.objects.filter(email__in=emails, user__isnull=True).exclude(course__memberships__user=user)
    for member in unbound.select_related("course"):
        try:
            invitation_accept(user=user, member=member)
            claimed += 1
        except InvitationError:
            continue  # bound meanwhile, or a second entry in the same course
    return claimed


class JoinCodeUnknown(Exception):
    """No course is open for joining with this code (never was, changed, turned off, archived)."""

    def __init__(self, code: str):
        self.code = code
        super().__init__(f"No course is open for joining with the code “{code}”. Check the code with your instructor.")


class JoinRefused(Exception):
    """The code is right, but this person cannot join with it; the message says why. `status` is
    the HTTP status the page answers with."""

    status = 403


class JoinCodeExpired(JoinRefused):
    status = 410


class JoinCodeFull(JoinRefused):
    status = 409


def join_code_course(*, user: User, code: str) -> Course:
    """The course `user` would join with `code` (typed loosely), or JoinCodeUnknown, or the
    JoinRefused that says why they cannot. Someone already on the course is never refused:
    joining again changes nothing."""
    code = Course.normalize_join_code(code)
    course = Course.objects.filter(join_code=code, join_code_enabled=True).first()
    if course is None or not course.join_is_open:
        raise JoinCodeUnknown(code)
    if not Membership.objects.filter(course=course, user=user).exists():
        _check_join_limits(user, course)
    return course


@transaction.atomic
def course_join_with_code(*, user: User, course: Course) -> Membership:
    """Enrol `user` as a student through the course's join code. Joining twice is harmless."""
    existing = Membership.objects.filter(course=course, user=user).first()
    if existing is not None:
        return existing
    # Locked, so that two people taking the last place of a capped code do not both get it.
    locked = Course.objects.select_for_update().get(pk=course.pk)
    if not locked.join_is_open or locked.join_code != course.join_code:
        raise JoinCodeUnknown(course.join_code or "")
    _check_join_limits(user, locked)
    Course.objects.filter(pk=locked.pk).update(join_code_joins=F("join_code_joins") + 1)
    unbound = Membership.objects.filter(course=course, email=user.email, user__isnull=True).first()
    if unbound is not None:
        return invitation_accept(user=user, member=unbound)
    member = Membership.objects.create(
        course=course,
        email=user.email,
        name=user.name,
        role=CourseRole.STUDENT,
        source=MembershipSource.JOIN_CODE,
    )
    _bind(member, user)
    audit_record(
        actor=user,
        action=AuditAction.JOINED_WITH_CODE,
        course=course,
        target=member,
        summary=f"{user.email} joined as a student with the course code",
    )
    return member


def _check_join_limits(user: User, course: Course) -> None:
    if course.join_code_expires_at is not None and course.join_code_expires_at <= timezone.now():
        expired_at = dateformat.format(timezone.localtime(course.join_code_expires_at), r"F j, Y \a\t H:i T")
        raise JoinCodeExpired(
            f"This course code stopped working on {expired_at}. Ask your instructor for a new code or an invitation."
        )
    if course.join_code_max_joins is not None and course.join_code_joins >= course.join_code_max_joins:
        raise JoinCodeFull(
            "This course code has been used by as many people as your instructor allowed. "
            "Ask your instructor for a new code or an invitation."
        )
    if course.join_email_domains and not _has_verified_address_at(user, course.join_email_domains):
        raise JoinRefused(
            f"This course is open only to people with an address at {', '.join(course.join_email_domains)}. "
            "Add that address to your account (Account → Email), confirm it from the email you "
            "receive, then use the code again."
        )


def _has_verified_address_at(user: User, domains: list[str]) -> bool:
    """Whether one of `user`'s verified addresses is at one of `domains` or a subdomain of one
    (school.edu admits cs.school.edu, never school.edu.example.com)."""
    verified = EmailAddress.objects.filter(user=user, verified=True).values_list("email", flat=True)
    for email in verified:
        domain = email.rsplit("@", 1)[-1].lower()
        if any(domain == allowed or domain.endswith("." + allowed) for allowed in domains):
            return True
    return False


def _bind(member: Membership, user: User) -> None:
    member.user = user
    member.invite_status = InviteStatus.ACCEPTED
    member.accepted_at = timezone.now()
    if not member.name and user.name:
        member.name = user.name
    member.save(update_fields=["user", "invite_status", "accepted_at", "name", "updated_at"])
