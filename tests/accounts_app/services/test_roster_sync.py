"""Rosters an outside system keeps: the plan (a preview that reads only), the all-or-nothing apply
with its removals, the instructor protections, the safety limit of automatic syncs, and what the
roster page is told of syncs that did not apply."""

import re

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts_app.choices import AccountState, AuditAction, CourseRole, EndPolicy, MembershipSource
from accounts_app.models import AuditEvent, Course, MemberAccount, Membership
from accounts_app.services import roster_sync as roster_sync_module
from accounts_app.services.roster_sync import (
    RemovalLimit,
    RosterPerson,
    RosterSyncError,
    RosterSyncHeld,
    SyncOutcome,
    roster_sync_apply,
    roster_sync_awaiting_review,
    roster_sync_failed,
    roster_sync_plan,
)
from tests.factories import MemberAccountFactory, MembershipFactory

pytestmark = pytest.mark.django_db

LMS = "Canvas: CS 101"
INSTRUCTOR = RosterPerson("instructor@school.example", "Ines Instructor", CourseRole.INSTRUCTOR)


def person(email: str, name: str = "", role: CourseRole = CourseRole.STUDENT) -> RosterPerson:
    return RosterPerson(email, name, role)


def roster(course) -> dict[str, tuple[str, str, str]]:
    return {m.email: (m.name, m.role, m.source) for m in course.memberships.all()}


def apply(course, people, **options):
    options.setdefault("send_invitations", False)
    return roster_sync_apply(actor=None, course=course, people=people, managed_by=LMS, **options)


def lms_member(course, email: str, role: CourseRole = CourseRole.STUDENT, **fields) -> Membership:
    return MembershipFactory.create(
        course=course, user=None, email=email, role=role, source=MembershipSource.LMS, **fields
    )


# --- The plan ------------------------------------------------------------------------------------


def test_the_plan_adds_updates_removes_and_leaves_alone_and_says_how(personas):
    course = personas.course
    lms_member(course, "gone@school.example", name="Gus Gone")
    lms_member(course, "same@school.example", name="Sam Same")
    people = [
        INSTRUCTOR,
        person("new@school.example", "Nora New"),
        person("ta@school.example", "Theo Assistant", CourseRole.STUDENT),  # the TA, made a student
        person("student@school.example", "Stella Star", CourseRole.TA),
        person("same@school.example", "Sam Same"),
    ]

    with CaptureQueriesContext(connection) as queries:
        plan = roster_sync_plan(course=course, people=people)

    assert all(query["sql"].startswith("SELECT") for query in queries.captured_queries)
    outcomes = {line.email: (line.outcome, line.changes) for line in plan.lines}
    assert outcomes == {
        "new@school.example": (SyncOutcome.ADD, ()),
        "instructor@school.example": (SyncOutcome.UPDATE, ("source: Roster import → From the LMS",)),
        "student@school.example": (
            SyncOutcome.UPDATE,
            ("role: Student → TA", "name: Stella Student → Stella Star", "source: Roster import → From the LMS"),
        ),
        "ta@school.example": (SyncOutcome.UPDATE, ("role: TA → Student", "source: Roster import → From the LMS")),
        "gone@school.example": (SyncOutcome.REMOVE, ("not in the list",)),
        "same@school.example": (SyncOutcome.UNCHANGED, ()),
    }
    assert plan.ok and plan.summary == {"add": 1, "update": 3, "remove": 1, "unchanged": 1}
    assert (plan.students_before, plan.students_removed) == (3, 1)
    assert [line.outcome for line in plan.lines] == sorted(
        (line.outcome for line in plan.lines), key=list(SyncOutcome).index
    )


def test_people_added_by_hand_by_csv_or_with_the_join_code_are_not_removed(personas):
    course = personas.course
    MembershipFactory(course=course, user=None, email="hand@school.example", source=MembershipSource.MANUAL)
    MembershipFactory(course=course, user=None, email="joined@school.example", source=MembershipSource.JOIN_CODE)

    plan = roster_sync_plan(course=course, people=[INSTRUCTOR])

    assert plan.with_outcome(SyncOutcome.REMOVE) == []
    assert plan.ok


def test_a_bad_address_and_a_person_listed_twice_are_errors(personas):
    plan = roster_sync_plan(
        course=personas.course,
        people=[
            INSTRUCTOR,
            person("not-an-address", "Nat Address"),
            person("twice@school.example"),
            person(" TWICE@school.example "),
        ],
    )

    assert plan.errors == [
        "“not-an-address” (Nat Address) is not an email address.",
        "twice@school.example is listed twice. Each person needs their own address.",
    ]


def test_addresses_are_matched_however_the_outside_system_spells_them(personas):
    plan = roster_sync_plan(
        course=personas.course, people=[person(" Instructor@School.Example ", role=CourseRole.INSTRUCTOR)]
    )

    [line] = [line for line in plan.lines if line.email == "instructor@school.example"]
    assert line.outcome == SyncOutcome.UPDATE  # the source only: the same person
    assert line.member.user == personas.instructor


def test_a_list_that_leaves_no_instructor_is_refused(personas):
    lms_member(personas.course, "lms-teacher@school.example", CourseRole.INSTRUCTOR)
    Membership.objects.filter(email="instructor@school.example").update(source=MembershipSource.LMS)

    plan = roster_sync_plan(course=personas.course, people=[person("student@school.example")])

    assert plan.errors == ["This list would leave the course without an instructor."]


def test_the_instructor_who_linked_the_course_stays_while_the_list_names_no_instructor(personas):
    course = personas.course
    Membership.objects.filter(email="instructor@school.example").update(source=MembershipSource.LMS)
    MembershipFactory(course=course, user=None, email="second@school.example", role=CourseRole.INSTRUCTOR)
    keep = ["Instructor@school.example"]

    plan = roster_sync_plan(course=course, people=[person("student@school.example")], keep_emails=keep)

    assert plan.errors == [
        (
            "The list names no instructor and would remove instructor@school.example, who linked the course. "
            "Check who the outside system lists as the course's teachers."
        )
    ]
    # A list naming its own instructors may drop the one who linked the course.
    other_teacher = person("lms-teacher@school.example", role=CourseRole.INSTRUCTOR)
    assert roster_sync_plan(course=course, people=[other_teacher], keep_emails=keep).ok


# --- Applying -------------------------------------------------------------------------------------


def test_applying_writes_the_plan_and_records_the_sync(personas, queued):
    course = personas.course
    lms_member(course, "gone@school.example")
    people = [INSTRUCTOR, person("new@school.example", "Nora New"), person("student@school.example", "", CourseRole.TA)]

    plan = apply(course, people)

    assert plan.summary == {"add": 1, "update": 2, "remove": 1, "unchanged": 0}
    assert roster(course) == {
        "instructor@school.example": ("Ines Instructor", "instructor", "lms"),
        "ta@school.example": ("Theo Assistant", "ta", "import"),  # not in the list, not the LMS's: stays
        "student@school.example": ("Stella Student", "ta", "lms"),  # no name in the list keeps the known one
        "new@school.example": ("Nora New", "student", "lms"),
    }
    course.refresh_from_db()
    assert course.roster_managed_by == LMS and course.roster_synced_at is not None
    event = AuditEvent.objects.get(action=AuditAction.ROSTER_SYNCED)
    assert event.summary == f"Synced with {LMS}: 1 added, 2 updated, 1 removed, 0 unchanged"
    assert event.data == {
        "added": ["new@school.example"],
        "updated": {
            "instructor@school.example": ["source: Roster import → From the LMS"],
            "student@school.example": ["role: Student → TA", "source: Roster import → From the LMS"],
        },
        "removed": ["gone@school.example"],
    }
    assert AuditEvent.objects.filter(
        action=AuditAction.MEMBER_REMOVED, summary__contains="gone@school.example"
    ).exists()


@pytest.mark.parametrize(("policy", "destination"), [(EndPolicy.CLOSE, "close"), (EndPolicy.RECYCLE, "recycle")])
def test_a_removed_students_account_follows_the_courses_end_policy(personas, queued, policy, destination):
    course = personas.course
    Course.objects.filter(pk=course.pk).update(end_policy=policy)
    gone = lms_member(course, "gone@school.example")
    account = MemberAccountFactory(membership=gone, state=AccountState.READY)
    stays = MemberAccountFactory(membership=Membership.objects.get(email="student@school.example"))

    apply(course, [INSTRUCTOR, person("student@school.example")])

    account.refresh_from_db()
    assert (account.state, account.membership, account.cleanup_report) == (
        AccountState.CLEANING,
        None,
        {"destination": destination},
    )
    assert queued["account_cleanup_task"] == [account.pk]
    assert MemberAccount.objects.get(pk=stays.pk).state == AccountState.READY


def test_a_person_the_list_named_once_is_removed_when_it_no_longer_does(personas, queued):
    course = personas.course
    MembershipFactory(course=course, user=None, email="hand@school.example", source=MembershipSource.MANUAL)

    apply(course, [INSTRUCTOR, person("hand@school.example")])
    assert roster(course)["hand@school.example"][2] == MembershipSource.LMS
    apply(course, [INSTRUCTOR])

    assert "hand@school.example" not in roster(course)


def test_the_same_list_again_changes_nothing_and_is_no_event(personas):
    people = [INSTRUCTOR, person("new@school.example", "Nora New")]
    apply(personas.course, people)
    before = list(personas.course.memberships.order_by("email").values_list("email", "name", "role", "updated_at"))

    plan = apply(personas.course, people)

    assert plan.summary == {"add": 0, "update": 0, "remove": 0, "unchanged": 2}
    assert (
        list(personas.course.memberships.order_by("email").values_list("email", "name", "role", "updated_at")) == before
    )
    assert AuditEvent.objects.filter(action=AuditAction.ROSTER_SYNCED).count() == 1


def test_a_list_with_errors_changes_nothing(personas):
    before = roster(personas.course)

    with pytest.raises(RosterSyncError, match="is not an email address"):
        apply(personas.course, [INSTRUCTOR, person("new@school.example"), person("nope")])

    assert roster(personas.course) == before
    assert not AuditEvent.objects.filter(action=AuditAction.ROSTER_SYNCED).exists()


def test_invitations_go_to_the_people_added_only(personas, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        apply(personas.course, [INSTRUCTOR, person("new@school.example", "Nora New")], send_invitations=True)

    assert [message.to for message in mail.outbox] == [["new@school.example"]]


@pytest.mark.parametrize(
    ("students", "removed", "allowed"),
    [(10, 3, True), (10, 4, False), (40, 4, True), (40, 5, False), (0, 0, True)],
)
def test_the_removal_limit_is_a_number_or_a_share_of_the_class_whichever_is_more(students, removed, allowed):
    plan = roster_sync_module.RosterSyncPlan(
        lines=[
            roster_sync_module.SyncLine(f"s{i}@x.example", "", CourseRole.STUDENT, SyncOutcome.REMOVE)
            for i in range(removed)
        ],
        students_before=students,
    )

    assert RemovalLimit(at_least=3, percent=10).allows(plan) is allowed


def test_a_sync_over_the_removal_limit_changes_nothing(personas, queued):
    course = personas.course
    leaving = [lms_member(course, f"s{i}@school.example") for i in range(4)]
    MemberAccountFactory(membership=leaving[0])
    before = roster(course)

    with pytest.raises(RosterSyncHeld) as held:
        apply(course, [INSTRUCTOR, person("new@school.example")], removal_limit=RemovalLimit(at_least=3, percent=10))

    assert (held.value.plan.students_removed, held.value.plan.students_before) == (4, 5)
    assert roster(course) == before
    assert MemberAccount.objects.get(membership=leaving[0]).state == AccountState.READY
    assert queued["account_cleanup_task"] == []


def test_an_error_midway_rolls_everything_back(personas, queued, monkeypatch):
    course = personas.course
    first, second = lms_member(course, "a@school.example"), lms_member(course, "b@school.example")
    account = MemberAccountFactory(membership=first)
    before = roster(course)
    removals = []

    def remove_then_fail(*, actor, member):
        removals.append(member.email)
        if len(removals) == 2:
            raise RuntimeError("the database went away")
        real_member_remove(actor=actor, member=member)

    real_member_remove = roster_sync_module.member_remove
    monkeypatch.setattr(roster_sync_module, "member_remove", remove_then_fail)

    with pytest.raises(RuntimeError):
        apply(course, [INSTRUCTOR, person("new@school.example")])

    assert removals == [first.email, second.email]
    assert roster(course) == before
    assert MemberAccount.objects.get(pk=account.pk).state == AccountState.READY
    assert Course.objects.get(pk=course.pk).roster_synced_at is None
    assert not AuditEvent.objects.filter(course=course).exists()


# --- What the roster page is told ------------------------------------------------------------------


def test_a_held_list_is_audited_and_a_requested_one_is_not(personas):
    course = personas.course

    roster_sync_awaiting_review(course=course, managed_by=LMS)
    assert not AuditEvent.objects.filter(course=course).exists()
    roster_sync_awaiting_review(course=course, managed_by=LMS, held_because="it would remove 9 of 10 students")

    course.refresh_from_db()
    assert (course.roster_managed_by, course.roster_sync_awaiting_review) == (LMS, True)
    assert AuditEvent.objects.get(action=AuditAction.ROSTER_SYNC_HELD).summary == (
        f"Sync with {LMS} held for review: it would remove 9 of 10 students"
    )


def test_a_failure_is_shown_and_audited_once_it_is_not_tried_again(personas):
    course = personas.course

    roster_sync_failed(course=course, managed_by=LMS, error="HTTP 503.", trying_again=True)
    assert not AuditEvent.objects.filter(course=course).exists()
    roster_sync_failed(course=course, managed_by=LMS, error="HTTP 401.", trying_again=False)

    course.refresh_from_db()
    assert course.roster_sync_error == "HTTP 401."
    assert AuditEvent.objects.get(action=AuditAction.ROSTER_SYNC_FAILED).summary == f"Sync with {LMS} failed: HTTP 401."


def test_a_sync_that_applies_clears_the_failure_and_the_wait(personas):
    course = personas.course
    roster_sync_failed(course=course, managed_by=LMS, error="HTTP 401.", trying_again=False)
    roster_sync_awaiting_review(course=course, managed_by=LMS)

    apply(course, [INSTRUCTOR])

    course.refresh_from_db()
    assert (course.roster_sync_error, course.roster_sync_awaiting_review) == ("", False)


def test_the_roster_page_shows_who_keeps_the_roster_and_why_the_last_sync_failed(personas):
    apply(personas.course, [INSTRUCTOR])
    roster_sync_failed(course=personas.course, managed_by=LMS, error="HTTP 401 Unauthorized.", trying_again=False)
    url = reverse("courses:roster", kwargs={"course_id": personas.course.pk})

    page = personas.client("ta").get(url).content.decode()

    assert f"Managed by <strong>{LMS}</strong>" in page
    assert re.search(r"last synced \d+\xa0minutes? ago", page)
    assert "Last sync failed: HTTP 401 Unauthorized." in page
