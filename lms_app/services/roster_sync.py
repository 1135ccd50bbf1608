"""The roster of a course linked to an LMS course, kept from the LMS's Names and Role Provisioning
Services (NRPS): every page of its members is fetched with PyLTI1p3, as the tool (OAuth 2 client
credentials, one token per fetch), turned into the list accounts_app's roster sync takes, and
applied or kept for an instructor.

Three triggers, each an `LmsRosterFetch` and one `lms_roster_sync_task`:
- a launch into the course (`lms_roster_sync_on_launch`, at most once per
  PORTAL_LMS_SYNC_ON_LAUNCH_MINUTES a course) and the nightly beat job (`lms_rosters_sync_nightly`)
  apply the list at once, unless it would remove more students than the safety limit
  (PORTAL_LMS_SYNC_MAX_REMOVALS, PORTAL_LMS_SYNC_MAX_REMOVAL_PERCENT): then it waits for an
  instructor, who is emailed;
- an instructor's Sync now (`lms_roster_sync_request`) always waits for them: they see the
  preview and apply it (`lms_roster_fetch_apply`).

An LMS that cannot be asked (refused token, HTTP errors, no answer) changes nothing: the error is
kept on the fetch and shown on the roster page, and the task tries again later when the error may
pass (no answer, 5xx, 429).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

import requests
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from lti_tool.models import Key
from pylti1p3.exception import LtiServiceException
from pylti1p3.names_roles import NamesRolesProvisioningService, TMember
from pylti1p3.service_connector import REQUESTS_USER_AGENT, ServiceConnector

from accounts_app.choices import CourseRole
from accounts_app.models import User
from accounts_app.services.notifications import absolute_url, email_send
from accounts_app.services.roster_sync import (
    RemovalLimit,
    RosterPerson,
    RosterSyncError,
    RosterSyncHeld,
    RosterSyncPlan,
    roster_sync_apply,
    roster_sync_awaiting_review,
    roster_sync_failed,
    roster_sync_plan,
)
from lms_app.models import LmsCourseLink, LmsRosterFetch, RosterFetchStatus, RosterFetchTrigger
from lms_app.roles import portal_role
from lms_app.tasks import lms_roster_sync_task

# Long enough for a large course's page on a busy LMS; a worker never waits on one forever.
LMS_TIMEOUT_SECONDS = 30
# The LMS is asked anew at the next launch or night: old answers are history after a month.
FETCHES_KEPT_DAYS = 30
ACTIVE = "Active"  # NRPS member status; Inactive and Deleted members are not in the class


class LmsError(Exception):
    """The LMS could not be asked for the roster. `transient`: asking again later may work."""

    def __init__(self, message: str, *, transient: bool):
        super().__init__(message)
        self.transient = transient


class LmsUnavailable(Exception):
    """A transient LmsError the task tries again later (the fetch stays pending)."""


class RosterFetchNotApplicable(Exception):
    """An instructor applies a list that failed, is still being fetched, or a newer one replaced."""


@dataclass
class LmsRoster:
    """The LMS's members as the roster takes them, and those it cannot take, with why."""

    people: list[RosterPerson] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)


# --- Asking the LMS -------------------------------------------------------------------------------


def lms_roster_fetch(*, link: LmsCourseLink) -> LmsRoster:
    """Every page of the LMS course's members. HTTP only, no database write; LmsError when the
    LMS cannot be asked or answers what cannot be read."""
    context = link.context
    if not context.memberships_url:
        raise LmsError(
            "The LMS has not offered its names and roles service for this course (a launch brings its "
            "address once the LMS administrator allows it to the tool).",
            transient=False,
        )
    registration = context.deployment.registration
    try:
        # One connector per fetch: it keeps the access token it asked for, so the pages share it.
        connector = ServiceConnector(registration.to_registration(), requests_session=_TimeoutSession())
        service = NamesRolesProvisioningService(connector, {"context_memberships_url": context.memberships_url})
        members = service.get_members()
    except Key.DoesNotExist:
        raise LmsError("The portal has no key to sign its token request with.", transient=False) from None
    except LtiServiceException as error:
        raise _refusal(error.response, token_url=registration.token_url) from error
    except requests.Timeout as error:
        raise LmsError(f"The LMS did not answer within {LMS_TIMEOUT_SECONDS} seconds.", transient=True) from error
    except requests.ConnectionError as error:
        raise LmsError("The portal could not connect to the LMS.", transient=True) from error
    except (requests.RequestException, KeyError) as error:  # not JSON, a token answer without a token
        raise LmsError(f"The LMS's answer could not be read ({error!r}).", transient=False) from error
    return roster_from_members(members)


class _TimeoutSession(requests.Session):
    """requests waits forever unless told: every request PyLTI1p3 makes gets a timeout."""

    def __init__(self) -> None:
        super().__init__()
        self.headers["User-Agent"] = REQUESTS_USER_AGENT

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", LMS_TIMEOUT_SECONDS)
        return super().request(*args, **kwargs)


def _refusal(response: requests.Response, *, token_url: str) -> LmsError:
    status = response.status_code
    # An LMS down or busy recovers; a refusal (a wrong client id, keys it does not have, a course
    # the tool may not read) stays until someone changes the registration.
    transient = status >= 500 or status == 429
    if response.url == token_url:
        return LmsError(
            f"The LMS refused the portal's token request (HTTP {status} {response.reason}): check the "
            "registration's client id and that the LMS has the portal's keys.",
            transient=transient,
        )
    return LmsError(f"The LMS's names and roles service answered HTTP {status} {response.reason}.", transient=transient)


def roster_from_members(members: Iterable[TMember]) -> LmsRoster:
    """NRPS members as roster people (pure). Inactive and deleted members are not in the class;
    a member without an email address or without a role the portal uses is reported."""
    roster = LmsRoster()
    for member in members:
        if member.get("status", ACTIVE) != ACTIVE:
            continue
        name = member.get("name") or " ".join(
            part for part in (member.get("given_name"), member.get("family_name")) if part
        )
        role = portal_role(member.get("roles", []))
        email = (member.get("email") or "").strip()
        if role is None:
            roster.skipped.append(_skipped(member, name, "no role the portal gives anything to (e.g. an observer)"))
        elif not email:
            roster.skipped.append(_skipped(member, name, "the LMS shares no email address"))
        else:
            roster.people.append(RosterPerson(email=email, name=name, role=role))
    return roster


def _skipped(member: TMember, name: str, reason: str) -> dict[str, str]:
    return {"name": name, "user_id": member.get("user_id", ""), "reason": reason}


# --- The triggers ---------------------------------------------------------------------------------


def lms_roster_sync_on_launch(*, link: LmsCourseLink) -> LmsRosterFetch | None:
    """Someone launched into the course: bring its roster up to date, at most once per
    PORTAL_LMS_SYNC_ON_LAUNCH_MINUTES (a class launching at the start of a lecture is one sync)."""
    if not _syncs_automatically(link):
        return None
    minutes = settings.PORTAL_LMS_SYNC_ON_LAUNCH_MINUTES
    if not cache.add(f"lms:roster-sync-on-launch:{link.course_id}", 1, timeout=minutes * 60):
        return None
    return _fetch_enqueue(link, trigger=RosterFetchTrigger.LAUNCH)


def lms_rosters_sync_nightly() -> int:
    """The nightly sync: one fetch for every linked course still running. Returns how many."""
    links = LmsCourseLink.objects.filter(
        course__archived_at__isnull=True,
        course__ended_at__isnull=True,
        context__deployment__is_active=True,
        context__deployment__registration__is_active=True,
    ).exclude(context__memberships_url="")
    queued = [_fetch_enqueue(link, trigger=RosterFetchTrigger.NIGHTLY) for link in links]
    cutoff = timezone.now() - timedelta(days=FETCHES_KEPT_DAYS)
    LmsRosterFetch.objects.filter(created_at__lt=cutoff).exclude(
        status__in=[RosterFetchStatus.PENDING, RosterFetchStatus.FETCHED]
    ).delete()
    return len(queued)


def _syncs_automatically(link: LmsCourseLink) -> bool:
    """An archived or ended course's roster is history; a course without the LMS's service
    address has nothing to ask."""
    course = link.course
    return not course.is_archived and not course.is_ended and bool(link.context.memberships_url)


def lms_roster_sync_request(*, actor: User, link: LmsCourseLink) -> LmsRosterFetch:
    """Sync now: ask the LMS in the background; its list then waits for the instructor's look. A
    request of theirs still under way is the answer to a second click."""
    under_way = link.roster_fetches.filter(
        trigger=RosterFetchTrigger.ON_DEMAND, status=RosterFetchStatus.PENDING, requested_by=actor
    ).first()
    return under_way or _fetch_enqueue(link, trigger=RosterFetchTrigger.ON_DEMAND, actor=actor)


def _fetch_enqueue(link: LmsCourseLink, *, trigger: RosterFetchTrigger, actor: User | None = None) -> LmsRosterFetch:
    fetch = LmsRosterFetch.objects.create(link=link, trigger=trigger, requested_by=actor)
    lms_roster_sync_task.delay_on_commit(fetch.pk)
    return fetch


# --- One fetch: ask, then apply or keep -----------------------------------------------------------


def lms_roster_sync(*, fetch_id: int, final: bool = True) -> None:
    """One attempt at a fetch (the task's). Raises LmsUnavailable, with the error recorded, when
    the LMS may answer later and this is not the `final` attempt; records it and stops otherwise."""
    fetch = (
        LmsRosterFetch.objects.select_related(
            "link__course", "link__linked_by", "link__context__deployment__registration"
        )
        .filter(pk=fetch_id, status=RosterFetchStatus.PENDING)
        .first()
    )
    if fetch is None:  # gone, or settled by an earlier delivery of the same message
        return
    try:
        roster = lms_roster_fetch(link=fetch.link)
    except LmsError as error:
        trying_again = error.transient and not final
        _record_failure(fetch, str(error), trying_again=trying_again)
        if trying_again:
            raise LmsUnavailable(str(error)) from error
        return
    _record_answer(fetch, roster)


def _record_failure(fetch: LmsRosterFetch, message: str, *, trying_again: bool) -> None:
    status = RosterFetchStatus.PENDING if trying_again else RosterFetchStatus.FAILED
    shown = f"{message} The portal tries again shortly." if trying_again else message
    with transaction.atomic():
        LmsRosterFetch.objects.filter(pk=fetch.pk, status=RosterFetchStatus.PENDING).update(status=status, error=shown)
        roster_sync_failed(
            course=fetch.link.course, managed_by=lms_roster_label(fetch.link), error=shown, trying_again=trying_again
        )


def _record_answer(fetch: LmsRosterFetch, roster: LmsRoster) -> None:
    link, course = fetch.link, fetch.link.course
    with transaction.atomic():
        still_pending = LmsRosterFetch.objects.select_for_update().filter(pk=fetch.pk, status=RosterFetchStatus.PENDING)
        if not list(still_pending.values_list("pk", flat=True)):  # settled meanwhile by another delivery
            return
        fetch.members = [asdict(person) for person in roster.people]
        fetch.skipped, fetch.fetched_at, fetch.error = roster.skipped, timezone.now(), ""
        if fetch.trigger == RosterFetchTrigger.ON_DEMAND:
            plan = roster_sync_plan(course=course, people=roster.people, keep_emails=_keep_emails(link))
            _settle(fetch, RosterFetchStatus.FETCHED, plan)
            roster_sync_awaiting_review(course=course, managed_by=lms_roster_label(link))
            return
        try:
            plan = roster_sync_apply(
                actor=None,
                course=course,
                people=roster.people,
                managed_by=lms_roster_label(link),
                send_invitations=True,  # as a CSV import's confirmation offers by default
                keep_emails=_keep_emails(link),
                removal_limit=RemovalLimit(
                    at_least=settings.PORTAL_LMS_SYNC_MAX_REMOVALS, percent=settings.PORTAL_LMS_SYNC_MAX_REMOVAL_PERCENT
                ),
            )
        except RosterSyncHeld as held:
            _hold(fetch, held.plan)
        except RosterSyncError as refused:
            fetch.error = f"The LMS's list cannot be applied: {refused}"
            fetch.status, fetch.summary = RosterFetchStatus.FAILED, {"errors": refused.errors}
            fetch.save()
            roster_sync_failed(course=course, managed_by=lms_roster_label(link), error=fetch.error, trying_again=False)
        else:
            fetch.applied_at = timezone.now()
            _settle(fetch, RosterFetchStatus.APPLIED, plan)


def _settle(fetch: LmsRosterFetch, status: RosterFetchStatus, plan: RosterSyncPlan) -> None:
    # Only the newest list may be applied: one still waiting from before would undo this one.
    LmsRosterFetch.objects.filter(link_id=fetch.link_id, status=RosterFetchStatus.FETCHED).exclude(pk=fetch.pk).update(
        status=RosterFetchStatus.SUPERSEDED
    )
    fetch.status, fetch.summary = status, _plan_summary(plan)
    fetch.save()


def _hold(fetch: LmsRosterFetch, plan: RosterSyncPlan) -> None:
    link, course = fetch.link, fetch.link.course
    _settle(fetch, RosterFetchStatus.FETCHED, plan)
    reason = f"it would remove {plan.students_removed} of the {plan.students_before} students"
    roster_sync_awaiting_review(course=course, managed_by=lms_roster_label(link), held_because=reason)
    instructors = course.memberships.filter(role=CourseRole.INSTRUCTOR).values_list("email", flat=True)
    email_send(
        "roster_sync_held",
        {
            "course": course,
            "managed_by": lms_roster_label(link),
            "fetch": fetch,
            "plan": plan,
            "link": absolute_url("lms:roster_sync_preview", course_id=course.pk, fetch_id=fetch.pk),
        },
        instructors,
    )


def _plan_summary(plan: RosterSyncPlan) -> dict[str, Any]:
    return {
        **plan.summary,
        "students_before": plan.students_before,
        "students_removed": plan.students_removed,
        "errors": plan.errors,
    }


# --- The instructor's look ------------------------------------------------------------------------


def lms_roster_fetch_plan(*, fetch: LmsRosterFetch) -> RosterSyncPlan:
    """What applying a fetched list would do to the roster as it is now (the preview). Reads only."""
    return roster_sync_plan(course=fetch.link.course, people=_fetch_people(fetch), keep_emails=_keep_emails(fetch.link))


def lms_roster_fetch_apply(*, actor: User, fetch: LmsRosterFetch, send_invitations: bool) -> RosterSyncPlan | None:
    """Apply a fetched list an instructor looked at, made again against the roster as it is now.
    Applying it again does nothing (None). Raises RosterFetchNotApplicable for a list that cannot
    be applied any more, RosterSyncError when the roster changed so that it has errors."""
    with transaction.atomic():
        fetch = (
            LmsRosterFetch.objects.select_for_update(of=("self",))
            .select_related("link__course", "link__linked_by", "link__context__deployment__registration")
            .get(pk=fetch.pk)
        )
        if fetch.applied_at is not None:
            return None
        if fetch.status != RosterFetchStatus.FETCHED:
            raise RosterFetchNotApplicable(f"This list cannot be applied: {fetch.get_status_display().lower()}.")
        plan = roster_sync_apply(
            actor=actor,
            course=fetch.link.course,
            people=_fetch_people(fetch),
            managed_by=lms_roster_label(fetch.link),
            send_invitations=send_invitations,
            keep_emails=_keep_emails(fetch.link),
        )
        fetch.status, fetch.applied_at, fetch.applied_by = RosterFetchStatus.APPLIED, timezone.now(), actor
        fetch.summary = _plan_summary(plan)
        fetch.save(update_fields=["status", "applied_at", "applied_by", "summary"])
    return plan


def _fetch_people(fetch: LmsRosterFetch) -> list[RosterPerson]:
    return [
        RosterPerson(email=person["email"], name=person["name"], role=CourseRole(person["role"]))
        for person in fetch.members
    ]


def lms_roster_label(link: LmsCourseLink) -> str:
    """How the roster page names who keeps the roster, e.g. "Canvas: CS 101"."""
    context = link.context
    return f"{context.deployment.registration.name}: {context.label or context.title or context.id_on_platform}"


def _keep_emails(link: LmsCourseLink) -> list[str]:
    """The instructor who linked the course stays while the LMS lists no instructor."""
    return [link.linked_by.email] if link.linked_by else []
