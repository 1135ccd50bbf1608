"""The roster of a course linked to an LMS, from the test LMS's names and roles service (live on
loopback): paging with the tool's client-credentials token, what becomes of each member, the
three triggers, the safety stop, the LMS's errors and applying a kept list."""

import time

import pytest
from django.conf import settings
from django.core import mail
from django.core.cache import cache
from django.utils import timezone

from accounts_app.choices import AccountState, AuditAction, CourseRole, EndPolicy, MembershipSource
from accounts_app.models import AuditEvent, Course, MemberAccount, Membership
from accounts_app.services.roster_sync import RosterPerson
from lms_app import tasks
from lms_app.models import LmsCourseLink, LmsRosterFetch, RosterFetchStatus, RosterFetchTrigger
from lms_app.services import roster_sync
from lms_app.services.roster_sync import (
    LmsError,
    LmsUnavailable,
    RosterFetchNotApplicable,
    lms_roster_fetch,
    lms_roster_fetch_apply,
    lms_roster_sync,
    lms_roster_sync_request,
    lms_rosters_sync_nightly,
    roster_from_members,
)
from lms_app.signals import course_launched
from portal.celery import app as celery_app
from tests.factories import CourseFactory, MemberAccountFactory, MembershipFactory
from tests.lms_app.conftest import link_course
from tests.support.lti_platform import NRPS_SCOPE, LmsPerson

pytestmark = pytest.mark.django_db


def launch(linked, django_capture_on_commit_callbacks, user=None) -> None:
    """What the launch sends once it committed; the tasks it queues run."""
    with django_capture_on_commit_callbacks(execute=True):
        course_launched.send(sender=LmsCourseLink, link=linked.link, user=user)


def roster(course) -> dict[str, tuple[str, str]]:
    return {m.email: (m.role, m.source) for m in course.memberships.all()}


def enrol_students(linked, count: int, start: int = 0) -> list[LmsPerson]:
    return [
        linked.lms_course.enrol(LmsPerson(f"student{i}@school.example", f"Student {i}"), "Learner")
        for i in range(start, start + count)
    ]


def nrps_requests(linked) -> list[str]:
    return [path for method, path in linked.platform.requests if path.startswith("/nrps/")]


@pytest.fixture
def retries_inline():
    """Celery runs a task's retries inline (eager) only when its errors do not propagate."""
    celery_app.conf.task_eager_propagates = False
    yield
    celery_app.conf.task_eager_propagates = True


# --- Asking the LMS -------------------------------------------------------------------------------


def test_every_page_is_fetched_with_one_token_the_platform_verified(linked):
    enrol_students(linked, 119)  # and the instructor: 120 members, 50 a page

    fetched = lms_roster_fetch(link=linked.link)

    assert len(fetched.people) == 120
    assert nrps_requests(linked) == [
        f"/nrps/{linked.lms_course.id}",
        f"/nrps/{linked.lms_course.id}?page=1",
        f"/nrps/{linked.lms_course.id}?page=2",
    ]
    # The platform accepted the assertion only once it checked its signature against the
    # tool's public keys, its issuer and subject (the client id) and its audience (the token URL).
    [token] = linked.platform.token_requests
    assert (token["iss"], token["sub"], token["aud"]) == (
        linked.platform.client_id,
        linked.platform.client_id,
        linked.platform.token_url,
    )
    assert token["scope"] == NRPS_SCOPE


def test_members_become_roster_people_with_their_portal_role():
    members = [
        {"status": "Active", "email": "i@x.example", "name": "Ida", "roles": ["Instructor"]},
        {
            "status": "Active",
            "email": "t@x.example",
            "given_name": "Tom",
            "family_name": "Ta",
            "roles": [
                "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor",
                "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant",
            ],
        },
        {"status": "Active", "email": "l@x.example", "name": "Lea", "roles": ["Learner"]},
        {"status": "Inactive", "email": "gone@x.example", "name": "Gone", "roles": ["Learner"]},
        {"status": "Deleted", "email": "del@x.example", "name": "Del", "roles": ["Learner"]},
        {"status": "Active", "user_id": "u1", "name": "No Mail", "roles": ["Learner"]},
        {"status": "Active", "user_id": "u2", "email": "o@x.example", "name": "Olga Observer", "roles": ["Mentor"]},
    ]

    fetched = roster_from_members(members)

    assert fetched.people == [
        RosterPerson("i@x.example", "Ida", CourseRole.INSTRUCTOR),
        RosterPerson("t@x.example", "Tom Ta", CourseRole.TA),
        RosterPerson("l@x.example", "Lea", CourseRole.STUDENT),
    ]
    assert fetched.skipped == [
        {"name": "No Mail", "user_id": "u1", "reason": "the LMS shares no email address"},
        {"name": "Olga Observer", "user_id": "u2", "reason": "no role the portal gives anything to (e.g. an observer)"},
    ]


def test_a_member_without_an_email_address_is_reported_not_added(linked, django_capture_on_commit_callbacks):
    linked.lms_course.enrol(LmsPerson("", "Test Student"), "Learner")

    launch(linked, django_capture_on_commit_callbacks)

    fetch = LmsRosterFetch.objects.get()
    assert fetch.status == RosterFetchStatus.APPLIED
    assert [member["reason"] for member in fetch.skipped] == ["the LMS shares no email address"]
    assert set(roster(linked.course)) == {"instructor@school.example", "ta@school.example", "student@school.example"}


# --- Automatic syncs: applied at once ------------------------------------------------------------


def test_a_launch_adds_changes_roles_and_drops_people_and_retires_a_dropped_students_account(
    linked, queued, staff_access_queued, django_capture_on_commit_callbacks
):
    Course.objects.filter(pk=linked.course.pk).update(end_policy=EndPolicy.RECYCLE)
    ana, ben, cleo, dan = enrol_students(linked, 4)
    sync(linked)
    accounts = [MemberAccountFactory(membership=Membership.objects.get(email=p.email)) for p in (ben, cleo)]
    # In the LMS: Ana becomes a TA, Ben is dropped, Cleo is marked inactive, Eve joins.
    linked.lms_course.enrol(ana, "TeachingAssistant")
    linked.lms_course.drop(ben)
    linked.lms_course.enrol(cleo, "Learner", status="Inactive")
    linked.lms_course.enrol(LmsPerson("eve@school.example", "Eve New"), "Learner")
    mail.outbox.clear()

    launch(linked, django_capture_on_commit_callbacks)

    assert roster(linked.course) == {
        "instructor@school.example": (CourseRole.INSTRUCTOR, MembershipSource.LMS),
        "ta@school.example": (CourseRole.TA, MembershipSource.IMPORT),  # not the LMS's: stays
        "student@school.example": (CourseRole.STUDENT, MembershipSource.IMPORT),
        ana.email: (CourseRole.TA, MembershipSource.LMS),
        dan.email: (CourseRole.STUDENT, MembershipSource.LMS),
        "eve@school.example": (CourseRole.STUDENT, MembershipSource.LMS),
    }
    for account in accounts:
        account.refresh_from_db()
        assert (account.state, account.cleanup_report) == (AccountState.CLEANING, {"destination": "recycle"})
    assert sorted(queued["account_cleanup_task"]) == sorted(account.pk for account in accounts)
    assert (linked.course.pk, ana.email) in staff_access_queued  # the new TA's AWS access follows
    assert [message.to for message in mail.outbox] == [["eve@school.example"]]  # invited, as by an import
    fetch = LmsRosterFetch.objects.first()
    assert (fetch.trigger, fetch.status, fetch.applied_at is not None) == (
        RosterFetchTrigger.LAUNCH,
        RosterFetchStatus.APPLIED,
        True,
    )
    assert (fetch.summary["add"], fetch.summary["update"], fetch.summary["remove"]) == (1, 1, 2)
    course = Course.objects.get(pk=linked.course.pk)
    assert (course.roster_managed_by, course.roster_sync_error) == ("Canvas: CS101", "")
    assert AuditEvent.objects.filter(action=AuditAction.ROSTER_SYNCED, actor=None).count() == 2


def test_people_added_by_hand_stay_and_a_matched_one_follows_the_lms_from_then_on(linked):
    course = linked.course
    MembershipFactory(course=course, user=None, email="hand@school.example", source=MembershipSource.MANUAL)
    matched = MembershipFactory(course=course, user=None, email="csv@school.example", source=MembershipSource.IMPORT)
    csv_person = linked.lms_course.enrol(LmsPerson("csv@school.example", "Cee Esvee"), "Learner")
    sync(linked)
    assert roster(course)["csv@school.example"] == (CourseRole.STUDENT, MembershipSource.LMS)

    linked.lms_course.drop(csv_person)
    sync(linked)

    assert "hand@school.example" in roster(course)
    assert not Membership.objects.filter(pk=matched.pk).exists()


def test_the_lms_listing_no_instructor_never_removes_the_one_who_linked_the_course(linked):
    course = linked.course
    MembershipFactory(course=course, user=None, email="co@school.example", role=CourseRole.INSTRUCTOR)
    enrol_students(linked, 2)
    sync(linked)  # the instructor, listed, now follows the LMS
    linked.lms_course.members.pop(next(iter(linked.lms_course.members)))  # the LMS loses its teacher
    before = roster(course)

    fetch = sync(linked)

    assert fetch.status == RosterFetchStatus.FAILED
    assert "who linked the course" in fetch.error
    assert roster(course) == before
    course.refresh_from_db()
    assert course.roster_sync_error.startswith("The LMS's list cannot be applied: The list names no instructor")
    assert AuditEvent.objects.filter(action=AuditAction.ROSTER_SYNC_FAILED).exists()


def test_the_last_instructor_is_never_removed(linked):
    course = linked.course
    LmsCourseLink.objects.filter(pk=linked.link.pk).update(linked_by=None)
    sync(linked)
    Membership.objects.filter(course=course, role=CourseRole.TA).delete()
    linked.lms_course.members.clear()
    linked.lms_course.enrol(LmsPerson("student@school.example", "Stella Student"), "Learner")

    fetch = sync(linked)

    assert fetch.error == "The LMS's list cannot be applied: This list would leave the course without an instructor."
    assert roster(course)["instructor@school.example"] == (CourseRole.INSTRUCTOR, MembershipSource.LMS)


# --- The safety stop ------------------------------------------------------------------------------


def test_an_automatic_sync_that_would_remove_many_students_changes_nothing_and_waits(
    linked, queued, django_capture_on_commit_callbacks
):
    students = enrol_students(linked, 20)
    sync(linked)
    account = MemberAccountFactory(membership=Membership.objects.get(email=students[0].email))
    for student in students:  # an LMS glitch: the class is gone
        linked.lms_course.drop(student)
    before = roster(linked.course)

    with django_capture_on_commit_callbacks(execute=True):
        fetch = sync(linked, RosterFetchTrigger.NIGHTLY)

    assert roster(linked.course) == before
    assert MemberAccount.objects.get(pk=account.pk).state == AccountState.READY
    assert queued["account_cleanup_task"] == []
    assert (fetch.status, fetch.applied_at) == (RosterFetchStatus.FETCHED, None)
    assert (fetch.summary["remove"], fetch.summary["students_removed"], fetch.summary["students_before"]) == (
        20,
        20,
        21,
    )
    course = Course.objects.get(pk=linked.course.pk)
    assert course.roster_sync_awaiting_review
    assert AuditEvent.objects.get(action=AuditAction.ROSTER_SYNC_HELD).summary == (
        "Sync with Canvas: CS101 held for review: it would remove 20 of the 21 students"
    )
    [message] = mail.outbox
    assert message.to == ["instructor@school.example"]
    assert (
        message.subject
        == f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}cs101: the roster sync with Canvas: CS101 waits for you"
    )
    preview = f"/lti/courses/{course.pk}/roster-sync/{fetch.pk}/"
    assert "would remove 20 of the 21 students" in message.body and preview in message.body
    assert preview in message.alternatives[0].content

    # The instructor looks and confirms: now the students go.
    assert lms_roster_fetch_apply(actor=linked.link.linked_by, fetch=fetch, send_invitations=False) is not None
    assert MemberAccount.objects.get(pk=account.pk).state == AccountState.CLEANING
    assert not Course.objects.get(pk=linked.course.pk).roster_sync_awaiting_review


def test_removing_a_few_students_needs_nobodys_look(linked, settings):
    settings.PORTAL_LMS_SYNC_MAX_REMOVALS, settings.PORTAL_LMS_SYNC_MAX_REMOVAL_PERCENT = 3, 10
    students = enrol_students(linked, 20)
    sync(linked)
    for student in students[:3]:
        linked.lms_course.drop(student)

    assert sync(linked, RosterFetchTrigger.NIGHTLY).status == RosterFetchStatus.APPLIED
    linked.lms_course.members = {}
    linked.lms_course.enrol(LmsPerson("instructor@school.example", "Ines Instructor"), "Instructor")
    assert sync(linked, RosterFetchTrigger.NIGHTLY).status == RosterFetchStatus.FETCHED


# --- The LMS's errors -----------------------------------------------------------------------------


def test_a_refused_token_is_recorded_changes_nothing_and_is_not_retried(linked):
    enrol_students(linked, 3)
    linked.platform.trust_tool({"keys": []})  # the LMS does not have the portal's keys
    before = roster(linked.course)

    fetch = LmsRosterFetch.objects.create(link=linked.link, trigger=RosterFetchTrigger.NIGHTLY)
    tasks.lms_roster_sync_task.delay(fetch.pk)  # raises if the task asked for a retry

    fetch.refresh_from_db()
    assert fetch.status == RosterFetchStatus.FAILED
    assert fetch.error.startswith("The LMS refused the portal's token request (HTTP 401 UNAUTHORIZED)")
    assert roster(linked.course) == before
    assert nrps_requests(linked) == []
    course = Course.objects.get(pk=linked.course.pk)
    assert course.roster_sync_error == fetch.error
    assert AuditEvent.objects.get(action=AuditAction.ROSTER_SYNC_FAILED).summary.startswith(
        "Sync with Canvas: CS101 failed: The LMS refused"
    )


def test_a_server_error_is_retried_then_recorded_and_changes_nothing(linked, retries_inline, monkeypatch):
    enrol_students(linked, 3)

    def broken(course, page):
        raise RuntimeError("the LMS's database is down")

    monkeypatch.setattr(linked.platform, "membership_page", broken)
    monkeypatch.setattr(tasks.lms_roster_sync_task, "max_retries", 2)
    before = roster(linked.course)

    fetch = LmsRosterFetch.objects.create(link=linked.link, trigger=RosterFetchTrigger.NIGHTLY)
    tasks.lms_roster_sync_task.delay(fetch.pk)

    fetch.refresh_from_db()
    assert len(nrps_requests(linked)) == 3  # the first try and two retries
    assert (fetch.status, fetch.error) == (
        RosterFetchStatus.FAILED,
        "The LMS's names and roles service answered HTTP 500 INTERNAL SERVER ERROR.",
    )
    assert roster(linked.course) == before


def test_while_a_retry_waits_the_roster_page_says_so(linked, monkeypatch):
    monkeypatch.setattr(roster_sync, "LMS_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(linked.platform, "membership_page", lambda course, page: time.sleep(1))
    fetch = LmsRosterFetch.objects.create(link=linked.link, trigger=RosterFetchTrigger.LAUNCH)

    with pytest.raises(LmsUnavailable):
        lms_roster_sync(fetch_id=fetch.pk, final=False)

    fetch.refresh_from_db()
    assert fetch.status == RosterFetchStatus.PENDING
    message = "The LMS did not answer within 0.2 seconds. The portal tries again shortly."
    assert fetch.error == message
    assert Course.objects.get(pk=linked.course.pk).roster_sync_error == message
    assert not AuditEvent.objects.filter(action=AuditAction.ROSTER_SYNC_FAILED).exists()


def test_a_course_without_the_service_address_is_told_why(linked):
    linked.link.context.memberships_url = ""
    linked.link.context.save()

    with pytest.raises(LmsError, match="has not offered its names and roles service") as error:
        lms_roster_fetch(link=linked.link)

    assert not error.value.transient


# --- Triggers -------------------------------------------------------------------------------------


def test_a_class_launching_at_once_syncs_the_roster_once(linked, django_capture_on_commit_callbacks):
    launch(linked, django_capture_on_commit_callbacks)
    launch(linked, django_capture_on_commit_callbacks)

    assert LmsRosterFetch.objects.filter(trigger=RosterFetchTrigger.LAUNCH).count() == 1
    assert len(linked.platform.token_requests) == 1

    cache.clear()  # PORTAL_LMS_SYNC_ON_LAUNCH_MINUTES later
    launch(linked, django_capture_on_commit_callbacks)

    assert LmsRosterFetch.objects.filter(trigger=RosterFetchTrigger.LAUNCH).count() == 2


def test_the_launch_throttle_is_per_course(linked, personas, lms, lms_registration, django_capture_on_commit_callbacks):
    other = link_course(lms, lms_registration, personas.other_course)
    other.lms_course.enrol(LmsPerson("other_instructor@school.example", "Otto Instructor"), "Instructor")

    launch(linked, django_capture_on_commit_callbacks)
    launch(other, django_capture_on_commit_callbacks)

    assert LmsRosterFetch.objects.filter(status=RosterFetchStatus.APPLIED).count() == 2


@pytest.mark.parametrize("over", ["archived_at", "ended_at"])
def test_launches_into_an_archived_or_ended_course_sync_nothing(linked, over, django_capture_on_commit_callbacks):
    Course.objects.filter(pk=linked.course.pk).update(**{over: timezone.now()})
    linked.link.course.refresh_from_db()

    launch(linked, django_capture_on_commit_callbacks)

    assert not LmsRosterFetch.objects.exists()


def test_the_nightly_job_is_scheduled_and_syncs_only_linked_running_courses(
    linked, personas, lms, lms_registration, django_capture_on_commit_callbacks
):
    assert settings.CELERY_BEAT_SCHEDULE["lms-rosters"]["task"] == tasks.lms_rosters_sync_nightly_task.name
    archived = link_course(lms, lms_registration, CourseFactory(archived_at=timezone.now()))
    ended = link_course(lms, lms_registration, CourseFactory(ended_at=timezone.now()))
    CourseFactory()  # not linked
    for course in (archived, ended):
        course.lms_course.enrol(LmsPerson("instructor@school.example", "Ines Instructor"), "Instructor")

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.lms_rosters_sync_nightly_task.delay().get() == 1

    assert [fetch.link for fetch in LmsRosterFetch.objects.all()] == [linked.link]
    assert nrps_requests(linked) == [f"/nrps/{linked.lms_course.id}"]
    assert LmsRosterFetch.objects.get().status == RosterFetchStatus.APPLIED


def test_the_nightly_job_forgets_old_settled_fetches(linked):
    old = [sync(linked, RosterFetchTrigger.NIGHTLY), sync(linked, RosterFetchTrigger.ON_DEMAND)]
    LmsRosterFetch.objects.filter(pk__in=[fetch.pk for fetch in old]).update(
        created_at=timezone.now() - timezone.timedelta(days=31)
    )

    lms_rosters_sync_nightly()

    assert list(LmsRosterFetch.objects.filter(pk__in=[fetch.pk for fetch in old])) == [old[1]]  # still waiting


# --- Sync now, and applying a kept list ------------------------------------------------------------


def test_sync_now_keeps_the_list_for_the_instructor_and_changes_nothing(linked, django_capture_on_commit_callbacks):
    enrol_students(linked, 2)
    before = roster(linked.course)

    with django_capture_on_commit_callbacks(execute=True):
        fetch = lms_roster_sync_request(actor=linked.link.linked_by, link=linked.link)
        assert lms_roster_sync_request(actor=linked.link.linked_by, link=linked.link) == fetch  # a second click

    fetch.refresh_from_db()
    assert (fetch.status, fetch.summary["add"], fetch.summary["errors"]) == (RosterFetchStatus.FETCHED, 2, [])
    assert roster(linked.course) == before
    assert Course.objects.get(pk=linked.course.pk).roster_sync_awaiting_review


def test_applying_a_list_twice_applies_it_once(linked):
    enrol_students(linked, 2)
    fetch = sync(linked, RosterFetchTrigger.ON_DEMAND)

    first = lms_roster_fetch_apply(actor=linked.link.linked_by, fetch=fetch, send_invitations=False)
    after_first = list(linked.course.memberships.order_by("email").values_list("email", "role", "updated_at"))
    second = lms_roster_fetch_apply(actor=linked.link.linked_by, fetch=fetch, send_invitations=False)

    assert (first.summary["add"], second) == (2, None)
    assert list(linked.course.memberships.order_by("email").values_list("email", "role", "updated_at")) == after_first
    assert AuditEvent.objects.filter(action=AuditAction.ROSTER_SYNCED).count() == 1
    fetch.refresh_from_db()
    assert (fetch.status, fetch.applied_by) == (RosterFetchStatus.APPLIED, linked.link.linked_by)


def test_a_newer_list_replaces_one_still_waiting(linked):
    enrol_students(linked, 1)
    waiting = sync(linked, RosterFetchTrigger.ON_DEMAND)
    enrol_students(linked, 1, start=1)

    sync(linked, RosterFetchTrigger.LAUNCH)

    waiting.refresh_from_db()
    assert waiting.status == RosterFetchStatus.SUPERSEDED
    with pytest.raises(RosterFetchNotApplicable, match="replaced by a newer list"):
        lms_roster_fetch_apply(actor=linked.link.linked_by, fetch=waiting, send_invitations=False)


def test_an_error_while_applying_rolls_everything_back(linked, queued, monkeypatch):
    students = enrol_students(linked, 2)
    sync(linked)
    account = MemberAccountFactory(membership=Membership.objects.get(email=students[0].email))
    linked.lms_course.drop(students[0])
    enrol_students(linked, 1, start=5)
    fetch = sync(linked, RosterFetchTrigger.ON_DEMAND)
    before = roster(linked.course)

    def failing_follow(**kwargs):
        raise RuntimeError("the broker went away")

    monkeypatch.setattr("accounts_app.services.roster_sync.staff_access_follow", failing_follow)
    with pytest.raises(RuntimeError):
        lms_roster_fetch_apply(actor=linked.link.linked_by, fetch=fetch, send_invitations=False)

    assert roster(linked.course) == before
    assert MemberAccount.objects.get(pk=account.pk).state == AccountState.READY
    fetch.refresh_from_db()
    assert (fetch.status, fetch.applied_at) == (RosterFetchStatus.FETCHED, None)


def sync(linked, trigger: RosterFetchTrigger = RosterFetchTrigger.NIGHTLY) -> LmsRosterFetch:
    """One fetch of `trigger`, run as the task runs it."""
    fetch = LmsRosterFetch.objects.create(link=linked.link, trigger=trigger, requested_by=linked.link.linked_by)
    lms_roster_sync(fetch_id=fetch.pk)
    fetch.refresh_from_db()
    return fetch
