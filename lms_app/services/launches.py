"""What a launch from an LMS does: whom it signs in, which roster entry it brings up to date,
where it lands; and the portal course an instructor sets up for an LMS course that has none yet.

PyLTI1p3 (through django-lti) has checked the launch before any of this: the state against the
browser's cookie, the signature against the platform's keys (fetched from its JWKS), the issuer
and client id against an active registration, the deployment id, the message's claims, the
expiry. What it leaves to the portal, and this module decides:

- a launch played again: PyLTI1p3 checks that its nonce was issued, never that it is unused, so
  each accepted launch's nonce is kept (UsedLaunchNonce, unique) in the launch's transaction;
- a deployment nobody turned on: django-lti records an unknown deployment id as inactive;
- whom the LMS may sign in: people at the email domains the portal trusts it for
  (PlatformTrust), never a portal administrator.

A refused launch raises LaunchRefused before its transaction commits: nothing is written, neither
a user nor a roster entry, a course or a nonce.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any

from allauth.account.models import EmailAddress
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify
from lti_tool.models import LtiContext, LtiLaunch, LtiRegistration
from lti_tool.utils import sync_data_from_launch
from pylti1p3.deep_link_resource import DeepLinkResource

from accounts_app.choices import STAFF_ROLES, AuditAction, CourseRole, MembershipSource
from accounts_app.models import Course, User, normalize_email
from accounts_app.services.audit import audit_record
from accounts_app.services.courses import course_create
from accounts_app.services.invitations import memberships_claim_by_email
from accounts_app.services.rosters import RosterChangeError, roster_member_ensure
from lms_app.models import LmsCourseLink, PlatformTrust, UsedLaunchNonce
from lms_app.roles import portal_role
from lms_app.signals import course_launched

LTI_CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
DEEP_LINKING_SETTINGS_CLAIM = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"
# How long PyLTI1p3 keeps a nonce it issued (SessionService._launch_data_lifetime): a launch whose
# nonce is older is refused by PyLTI1p3 itself, so the portal's record of it may go.
NONCE_LIFETIME = timedelta(days=1)
# The custom parameter a link carries to say where in the portal it leads, and its one value.
PORTAL_TARGET = "portal_target"
MY_ACCOUNT = "my_account"
MY_ACCOUNT_TITLE = "My AWS account"
# The custom parameters (an LMS administrator maps them to the LMS's variables) that prefill a
# new course: Canvas `$Canvas.term.name`, `$Canvas.course.startAt`, `$Canvas.course.endAt`;
# Moodle `$CourseSection.timeFrom`, `$CourseSection.timeTo` (Unix times).
TERM_PARAMETER = "term_name"
START_PARAMETER = "course_start"
END_PARAMETER = "course_end"
CODE_MAX_LENGTH = Course._meta.get_field("code").max_length or 50
TERM_MAX_LENGTH = Course._meta.get_field("term").max_length or 50
NAME_MAX_LENGTH = Course._meta.get_field("name").max_length or 200


class LaunchRefused(Exception):
    """A launch (or a course set-up that follows one) the portal refuses. `title` and
    `explanation` are for the person in front of the page, `detail` is the technical reason for
    whoever they ask, `status` the page's HTTP status."""

    def __init__(self, title: str, explanation: str, *, detail: str = "", status: int = 403) -> None:
        super().__init__(detail or title)
        self.title = title
        self.explanation = explanation
        self.detail = detail
        self.status = status


@dataclass(frozen=True)
class _LtiErrorMeaning:
    starts: tuple[str, ...]  # how PyLTI1p3's messages for it begin
    title: str
    explanation: str


# PyLTI1p3 says what is wrong only in its exceptions' messages: each known start of one, with
# what it means for the person launching. The first match wins.
_LTI_ERRORS = (
    _LtiErrorMeaning(
        starts=("Missing state param", "State not found", "Missing %s cookie"),
        title="The portal could not match this launch to your browser",
        explanation="The launch came back without the cookie the portal set when it started, which happens "
        "when it is opened twice, after more than five minutes, or inside the LMS's page by a browser that "
        "blocks cookies there. Open the tool again from the LMS; if this keeps happening, ask the LMS "
        "administrator to make it open in a new window.",
    ),
    _LtiErrorMeaning(
        starts=('"nonce" is empty', "Invalid Nonce"),
        title="This launch was not started by your browser",
        explanation="The launch carries a one-time code the portal did not give out, or gave out more than "
        "a day ago. Open the tool again from the LMS.",
    ),
    _LtiErrorMeaning(
        starts=("Registration not found", "Client id not registered", "Could not find registration details"),
        title="This LMS is not registered with the portal",
        explanation="The launch names an LMS (issuer and client id) the portal has no active registration "
        "for. Ask the portal's administrator to register it, or to turn its registration back on.",
    ),
    _LtiErrorMeaning(
        starts=("Can't decode id_token: Signature has expired",),
        title="This launch has expired",
        explanation="The LMS signed it for a few minutes only, and they have passed. Open the tool again from the LMS.",
    ),
    _LtiErrorMeaning(
        starts=("Unable to find public key", "JWT KID not found", "JWT ALG not found", "Can't decode id_token"),
        title="This launch's signature does not match the LMS's keys",
        explanation="The portal checks every launch against the keys the LMS publishes; this one was not "
        "signed by any of them. Ask the portal's administrator to check the registration's key set URL.",
    ),
    _LtiErrorMeaning(
        starts=("Error during fetch URL", "Invalid response from", "Invalid URL"),
        title="The portal could not fetch the LMS's keys",
        explanation="The LMS's key set URL did not answer with keys, so the launch could not be checked. "
        "Try again in a moment; if it persists, ask the portal's administrator to check the registration.",
    ),
    _LtiErrorMeaning(
        starts=(
            "Missing id_token",
            "Invalid id_token",
            "Invalid JWT format",
            "Could not find issuer",
            "Could not find login hint",
            "Missing target_link_uri",
        ),
        title="The LMS sent no launch the portal can read",
        explanation="Open the tool from a link or menu of the LMS course, not from a bookmark.",
    ),
    _LtiErrorMeaning(
        starts=("Unable to find deployment", "deployment_id is not set"),
        title="This launch names no deployment of the tool",
        explanation="Ask the LMS administrator to check how the tool is installed.",
    ),
)
_LTI_MESSAGE_INVALID = _LtiErrorMeaning(
    starts=(),
    title="The launch is missing something LTI requires",
    explanation="The LMS sent a launch without a part the standard asks for. Ask the LMS administrator to "
    "check the tool's placement and settings.",
)


def lti_error_refusal(error: Exception, *, about: str = "") -> LaunchRefused:
    """The page for what PyLTI1p3 (or django-lti's login initiation) refused, in plain words; the
    technical detail is its message, followed by `about` (what the request named) when given."""
    message = str(error)
    meaning = next((known for known in _LTI_ERRORS if message.startswith(known.starts)), _LTI_MESSAGE_INVALID)
    detail = f"{message}: {about}" if about else message
    return LaunchRefused(meaning.title, meaning.explanation, detail=detail, status=400)


# --- Where a launch lands ---------------------------------------------------------------------------


class Destination(StrEnum):
    COURSE = "course"  # the portal course's page
    ACCOUNT_PANEL = "account_panel"  # the student's own account panel on it
    SETUP = "setup"  # an instructor sets up the portal course for the LMS course
    NOT_SET_UP = "not_set_up"  # nobody has set it up yet
    DEEP_LINK = "deep_link"  # an instructor adds the portal's link to the LMS course


@dataclass(frozen=True)
class CourseSetup:
    """What the set-up pages need from the launch, kept in the session (never in the forms): the
    LMS course, who launched, and the new course's prefilled fields."""

    context_id: int
    user_id: int
    lms_title: str
    name: str
    code: str
    term: str
    start_date: str  # ISO dates, or "" when the LMS gave none
    end_date: str

    def as_session(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_session(cls, data: Mapping[str, Any]) -> CourseSetup:
        return cls(**data)

    def initial(self) -> dict[str, Any]:
        """The course form's initial values."""
        values: dict[str, Any] = {"name": self.name, "code": self.code, "term": self.term}
        if self.start_date:
            values["start_date"] = date.fromisoformat(self.start_date)
        if self.end_date:
            values["end_date"] = date.fromisoformat(self.end_date)
        return values


@dataclass(frozen=True)
class DeepLinkAnswer:
    """The deep-linking response: a JWT signed with the portal's key, for the form that posts it
    to the LMS."""

    return_url: str
    jwt: str
    title: str


@dataclass(frozen=True)
class Landing:
    destination: Destination
    user: User | None = None  # whom the launch signs in
    course: Course | None = None
    lms_title: str = ""
    setup: CourseSetup | None = None
    deep_link: DeepLinkAnswer | None = None


def launch_accept(*, lti_launch: LtiLaunch, launch_url: str) -> Landing:
    """Everything a checked launch does, in one transaction; LaunchRefused (and nothing written)
    when the portal will not take it. `launch_url` is the portal's launch address, the link a
    deep-linking answer gives the LMS."""
    if lti_launch.is_deep_link_launch:
        return _deep_link_accept(lti_launch, launch_url)
    if not lti_launch.is_resource_launch:
        raise LaunchRefused(
            "The portal does not handle this kind of launch",
            "It opens from a course's links and menus, and adds its links to a course. Ask the LMS "
            "administrator which placement of the tool this was.",
            detail=f"message type {_claim(lti_launch, 'message_type')!r}",
            status=400,
        )
    return _resource_accept(lti_launch)


@transaction.atomic
def _resource_accept(lti_launch: LtiLaunch) -> Landing:
    _refuse_inactive_deployment(lti_launch)
    context_claim = lti_launch.context_claim or {}
    if not context_claim.get("id"):
        raise LaunchRefused(
            "Open the portal from inside a course",
            "This launch came from outside any LMS course, and the portal's courses follow LMS courses.",
            detail="no context claim",
            status=400,
        )
    email = _trusted_email(lti_launch)
    role = _usable_role(lti_launch)
    user = _portal_user(email)
    _refuse_signing_in(user)
    _nonce_use(lti_launch)
    sync_data_from_launch(lti_launch)
    context = lti_launch.context
    link = LmsCourseLink.objects.select_related("course").filter(context=context).first()
    if link is None and role != CourseRole.INSTRUCTOR:
        return Landing(Destination.NOT_SET_UP, lms_title=context.title)

    user = _sign_in_user(user, email, _launch_name(lti_launch))
    lti_user = lti_launch.user
    lti_user.auth_user = user
    lti_user.save(update_fields=["auth_user", "datetime_modified"])
    if link is None:
        return Landing(
            Destination.SETUP, user=user, lms_title=context.title, setup=_course_setup(lti_launch, context, user)
        )
    _course_member_ensure(link.course, user, email, _launch_name(lti_launch), role)
    transaction.on_commit(partial(course_launched.send, sender=LmsCourseLink, link=link, user=user))
    to_panel = role == CourseRole.STUDENT and _custom(lti_launch).get(PORTAL_TARGET) == MY_ACCOUNT
    destination = Destination.ACCOUNT_PANEL if to_panel else Destination.COURSE
    return Landing(destination, user=user, course=link.course, lms_title=context.title)


@transaction.atomic
def _deep_link_accept(lti_launch: LtiLaunch, launch_url: str) -> Landing:
    """An instructor or TA picks what to add to the LMS course: the portal offers one link, to
    each student's own account panel. Nobody is signed in: the answer goes to the LMS."""
    _refuse_inactive_deployment(lti_launch)
    if _course_role(lti_launch) not in STAFF_ROLES:
        raise LaunchRefused(
            "Only instructors and TAs can add the portal's links",
            "The LMS says you are not teaching this course.",
            detail=f"roles {lti_launch.roles_claim}",
        )
    _nonce_use(lti_launch)
    sync_data_from_launch(lti_launch)
    resource = (
        DeepLinkResource()
        .set_url(launch_url)
        .set_title(MY_ACCOUNT_TITLE)
        .set_custom_params({PORTAL_TARGET: MY_ACCOUNT})
        .set_target("window")
    )
    deep_link = lti_launch.get_message_launch().get_deep_link()
    settings = lti_launch.get_claim(DEEP_LINKING_SETTINGS_CLAIM)
    answer = DeepLinkAnswer(
        return_url=settings["deep_link_return_url"],
        jwt=deep_link.get_response_jwt([resource]),
        title=MY_ACCOUNT_TITLE,
    )
    return Landing(Destination.DEEP_LINK, lms_title=lti_launch.context.title, deep_link=answer)


def _refuse_inactive_deployment(lti_launch: LtiLaunch) -> None:
    deployment = lti_launch.deployment
    if not deployment.is_active:
        raise LaunchRefused(
            "This installation of the tool is not turned on yet",
            "The LMS launched through a deployment the portal has not been told to accept. The portal's "
            "administrator can turn it on in the administration pages (LTI deployments); then open the "
            "tool again.",
            detail=f"deployment {deployment.deployment_id!r} of {deployment.registration} is inactive",
        )


def _trusted_email(lti_launch: LtiLaunch) -> str:
    """The launch's email address, which must be at a domain the portal trusts the LMS for."""
    email = normalize_email(lti_launch.get_claim("email") or "")
    if not email:
        raise LaunchRefused(
            "The LMS did not send your email address",
            "The portal signs you in by the address the LMS gives. Ask the LMS administrator to share "
            "email addresses with the tool (Canvas: the key's privacy level Public; Moodle: share the "
            "launcher's email).",
            detail="no email claim",
        )
    domains = _trusted_domains(lti_launch.registration)
    if email.rpartition("@")[2] not in domains:
        trusted = ", ".join(domains) or "no email domain yet"
        raise LaunchRefused(
            "The portal does not take this address from this LMS",
            f"The LMS signed you in as {email}, but the portal trusts it only for {trusted}. Open the "
            "tool with the account your school gave you, or ask the portal's administrator.",
            detail=f"{email} is outside the trusted domains of {lti_launch.registration}",
        )
    return email


def _trusted_domains(registration: LtiRegistration) -> list[str]:
    trust = PlatformTrust.objects.filter(registration=registration).first()
    if trust is None:
        return []
    return [domain.strip().lower() for domain in trust.email_domains if domain.strip()]


def _course_role(lti_launch: LtiLaunch) -> CourseRole | None:
    return portal_role(lti_launch.roles_claim or [])


def _usable_role(lti_launch: LtiLaunch) -> CourseRole:
    role = _course_role(lti_launch)
    if role is None:
        raise LaunchRefused(
            "The LMS gave you no role the portal knows in this course",
            "The portal lets in the course's instructors, TAs and students. Ask your instructor to "
            "enrol you, or the LMS administrator to check your role.",
            detail=f"roles {lti_launch.roles_claim}",
        )
    return role


def _portal_user(email: str) -> User | None:
    """The portal user who holds `email`: by a verified address first, then by their login
    address, then by an address they added and never verified (any case)."""
    verified = EmailAddress.objects.filter(email__iexact=email, verified=True).select_related("user").first()
    if verified is not None:
        return verified.user
    by_login = User.objects.filter(email__iexact=email).first()
    if by_login is not None:
        return by_login
    unverified = EmailAddress.objects.filter(email__iexact=email).select_related("user").first()
    return unverified.user if unverified is not None else None


def _refuse_signing_in(user: User | None) -> None:
    if user is None:
        return
    if user.is_staff or user.is_superuser:
        raise LaunchRefused(
            "Portal administrators sign in to the portal directly",
            "A launch from the LMS never signs in an administrator of the portal. Sign in on the portal's "
            "own sign-in page, with your second factor.",
            detail=f"{user.email} is a portal administrator",
        )
    if not user.is_active:
        raise LaunchRefused(
            "Your portal account is turned off",
            "Ask the portal's administrator.",
            detail=f"{user.email} is inactive",
        )


def _nonce_use(lti_launch: LtiLaunch) -> None:
    """Keep the launch's nonce: the same signed launch posted again finds it and is refused."""
    try:
        with transaction.atomic():
            UsedLaunchNonce.objects.create(issuer=lti_launch.get_claim("iss"), nonce=lti_launch.get_claim("nonce"))
    except IntegrityError:
        raise LaunchRefused(
            "This launch was already used",
            "Each launch from the LMS opens the portal once. Open the tool again from the LMS.",
            detail=f"nonce {lti_launch.get_claim('nonce')!r} of {lti_launch.get_claim('iss')} seen before",
            status=400,
        ) from None


def _launch_name(lti_launch: LtiLaunch) -> str:
    name = lti_launch.get_claim("name") or " ".join(
        part for part in (lti_launch.get_claim("given_name"), lti_launch.get_claim("family_name")) if part
    )
    return str(name).strip()[:NAME_MAX_LENGTH]


def _sign_in_user(user: User | None, email: str, name: str) -> User:
    """The user the launch signs in, made at a first launch; the launch's address becomes one of
    their verified addresses, as a campus sign-in's does (accounts_app/sso.py). Whoever set a
    password on that address without ever verifying it loses the password, as allauth does there."""
    if user is None:
        try:
            with transaction.atomic():
                user = User.objects.create_user(email, password=None, name=name)
                EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
                return user
        except IntegrityError:
            # A second launch of the same newcomer (a double click in the LMS) made them first.
            user = User.objects.get(email__iexact=email)
    address = EmailAddress.objects.filter(user=user, email__iexact=email).first()
    if address is not None and address.verified:
        return user
    if user.has_usable_password():
        user.set_unusable_password()
        user.save(update_fields=["password"])
    if address is None:
        has_primary = EmailAddress.objects.filter(user=user, primary=True).exists()
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=not has_primary)
    else:
        address.verified = True
        address.save(update_fields=["verified"])
    return user


def _course_member_ensure(course: Course, user: User, email: str, name: str, role: CourseRole) -> None:
    """The person's roster entry in the linked course, with the role the LMS gives them, bound to
    their user. An archived course's roster stays as it is: its members still land in it."""
    entry = course.memberships.filter(user=user).first()
    if course.is_archived:
        if entry is None:
            raise LaunchRefused(
                f"{course.code} is archived in the portal",
                "Its roster no longer changes. Ask your instructor.",
                detail=f"course {course.pk} archived",
            )
        return
    try:
        # Someone already on the roster under another of their addresses keeps that entry.
        roster_member_ensure(
            actor=user,
            course=course,
            email=entry.email if entry is not None else email,
            name=name,
            role=role,
            source=MembershipSource.LMS,
        )
    except RosterChangeError as error:
        raise LaunchRefused(
            "The LMS gives you another role in this course",
            f"You are the only instructor of {course.code} in the portal, and the LMS launched you as "
            f"{role.label}. Add another instructor in the portal first, or open the tool with your "
            "instructor role.",
            detail=str(error),
            status=409,
        ) from error
    memberships_claim_by_email(user=user)
    if not course.memberships.filter(user=user).exists():
        raise LaunchRefused(
            "Your roster entry belongs to someone else",
            f"The entry for {email} in {course.code} is bound to another portal user. Ask your instructor.",
            detail=f"membership of {email} in course {course.pk} is bound to another user",
            status=409,
        )


# --- The new course's prefilled fields --------------------------------------------------------------


def _course_setup(lti_launch: LtiLaunch, context: LtiContext, user: User) -> CourseSetup:
    custom = _custom(lti_launch)
    start, end = _lms_date(custom.get(START_PARAMETER)), _lms_date(custom.get(END_PARAMETER))
    return CourseSetup(
        context_id=context.pk,
        user_id=user.pk,
        lms_title=context.title,
        name=(context.title or context.label)[:NAME_MAX_LENGTH],
        code=course_code_free(context.label or context.title),
        term=(custom.get(TERM_PARAMETER) or "")[:TERM_MAX_LENGTH],
        start_date=start.isoformat() if start else "",
        end_date=end.isoformat() if end else "",
    )


def _custom(lti_launch: LtiLaunch) -> dict[str, str]:
    custom = lti_launch.get_claim(LTI_CLAIM + "custom") or {}
    return {str(key): str(value) for key, value in custom.items()} if isinstance(custom, dict) else {}


def _lms_date(value: str | None) -> date | None:
    """A date the LMS substituted into a custom parameter: an ISO 8601 date or time (Canvas), or
    Unix seconds (Moodle), on the portal's calendar. None when missing, unsubstituted (Canvas
    leaves `$Canvas.course.startAt` as it is for a course without a start) or unreadable."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        moment = datetime.fromtimestamp(int(value), tz=UTC) if value.isdigit() else datetime.fromisoformat(value)
    except (ValueError, OverflowError, OSError):
        return None
    if timezone.is_naive(moment):
        return moment.date()
    return timezone.localtime(moment).date()


def course_code_free(label: str) -> str:
    """A course code made from the LMS course's label ("CS 101-A" → "cs-101-a"), with a number
    after it when a course already has that code."""
    base = slugify(label)[:CODE_MAX_LENGTH].strip("-") or "course"
    taken = set(Course.objects.filter(code__startswith=base).values_list("code", flat=True))
    code, number = base, 1
    while code in taken:
        number += 1
        suffix = f"-{number}"
        code = base[: CODE_MAX_LENGTH - len(suffix)].rstrip("-") + suffix
    return code


# --- Setting the course up ------------------------------------------------------------------------


def _setup_context(setup: CourseSetup) -> LtiContext:
    context = LtiContext.objects.select_related("deployment__registration").get(pk=setup.context_id)
    link = LmsCourseLink.objects.select_related("course").filter(context=context).first()
    if link is not None:
        raise LaunchRefused(
            "This LMS course is set up already",
            f"It was linked to {link.course.code} meanwhile. Open the tool again from the LMS to go there.",
            detail=f"context {context.pk} linked to course {link.course_id}",
            status=409,
        )
    return context


@transaction.atomic
def lms_course_create(*, actor: User, setup: CourseSetup, fields: dict[str, Any]) -> LmsCourseLink:
    """A new portal course for the LMS course, with the instructor who launched as its first
    instructor. The LMS's word that they teach it is their right to create this one course: it
    gives no right to create others (User.is_instructor stays as it is)."""
    context = _setup_context(setup)
    course = course_create(actor=actor, instructor_email=actor.email, **fields)
    return _link_create(actor=actor, course=course, context=context)


@transaction.atomic
def lms_course_link(*, actor: User, setup: CourseSetup, course: Course) -> LmsCourseLink:
    """Link a portal course the launcher teaches to the LMS course."""
    context = _setup_context(setup)
    course = Course.objects.select_for_update().get(pk=course.pk)
    if not course.memberships.filter(user=actor, role=CourseRole.INSTRUCTOR).exists():
        raise LaunchRefused(
            "You do not teach this course in the portal",
            "Only a course you are an instructor of can be linked.",
            detail=f"{actor.email} is not an instructor of course {course.pk}",
        )
    if course.is_archived or LmsCourseLink.objects.filter(course=course).exists():
        raise LaunchRefused(
            f"{course.code} cannot be linked",
            "It is archived, or already follows another LMS course. Pick another course or create a new one.",
            detail=f"course {course.pk} archived or linked",
            status=409,
        )
    return _link_create(actor=actor, course=course, context=context)


def _link_create(*, actor: User, course: Course, context: LtiContext) -> LmsCourseLink:
    try:
        with transaction.atomic():
            link = LmsCourseLink.objects.create(course=course, context=context, linked_by=actor)
    except IntegrityError:
        raise LaunchRefused(
            "This LMS course is set up already",
            "Someone linked it a moment ago. Open the tool again from the LMS to go there.",
            detail=f"context {context.pk} or course {course.pk} linked meanwhile",
            status=409,
        ) from None
    registration = context.deployment.registration
    audit_record(
        actor=actor,
        action=AuditAction.COURSE_UPDATED,
        course=course,
        target=course,
        summary=f"Linked to the LMS course “{context.title or context.id_on_platform}” ({registration.name})",
        data={
            "lms": {"issuer": registration.issuer, "context": context.id_on_platform, "title": context.title},
        },
    )
    transaction.on_commit(partial(course_launched.send, sender=LmsCourseLink, link=link, user=actor))
    return link


def launch_nonces_purge() -> int:
    """Forget the nonces of launches too old to be played again (PyLTI1p3 no longer knows them)."""
    deleted, _ = UsedLaunchNonce.objects.filter(used_at__lt=timezone.now() - NONCE_LIFETIME).delete()
    return deleted


def _claim(lti_launch: LtiLaunch, name: str) -> Any:
    return lti_launch.get_claim(LTI_CLAIM + name)
