"""roster_member_ensure: one person's roster entry brought to what another system (the LMS) says."""

import pytest

from accounts_app.choices import AuditAction, CourseRole, MembershipSource
from accounts_app.models import AuditEvent
from accounts_app.services import rosters
from accounts_app.services.rosters import RosterChangeError, roster_member_ensure
from accounts_app.services.staff_access import RoleChange
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_changes(monkeypatch) -> list[RoleChange]:
    """The role changes passed on to staff access (which queues the AWS side)."""
    seen: list[RoleChange] = []
    monkeypatch.setattr(rosters, "staff_access_follow", lambda *, course, changes: seen.extend(changes))
    return seen


def ensure(course, *, email="Nora.New@School.example", name="Nora New", role=CourseRole.STUDENT, actor=None):
    return roster_member_ensure(
        actor=actor, course=course, email=email, name=name, role=role, source=MembershipSource.LMS
    )


def events_about(member) -> list[tuple]:
    return list(
        AuditEvent.objects.filter(object_type="membership", object_id=str(member.pk))
        .order_by("pk")
        .values_list("action", "actor", "summary")
    )


def test_someone_new_is_added_with_the_source_and_logged(personas, staff_changes):
    member = ensure(personas.course, role=CourseRole.TA, actor=personas.instructor)

    assert (member.email, member.name, member.role, member.source, member.user) == (
        "nora.new@school.example",
        "Nora New",
        CourseRole.TA,
        MembershipSource.LMS,
        None,
    )
    assert events_about(member) == [
        (AuditAction.MEMBER_ADDED, personas.instructor.pk, "Added nora.new@school.example as TA (from the LMS)")
    ]
    assert staff_changes == [RoleChange("nora.new@school.example", None, CourseRole.TA)]


def test_an_existing_entry_takes_the_role_and_name_and_keeps_its_source(personas, staff_changes):
    entry = MembershipFactory(course=personas.course, user=None, email="nora.new@school.example", name="N. New")

    member = ensure(personas.course, role=CourseRole.TA)

    assert member.pk == entry.pk
    assert (member.name, member.role, member.source) == ("Nora New", CourseRole.TA, MembershipSource.IMPORT)
    assert events_about(member) == [
        (AuditAction.MEMBER_ROLE_CHANGED, None, "Changed nora.new@school.example from Student to TA (from the LMS)")
    ]
    assert staff_changes == [RoleChange("nora.new@school.example", CourseRole.STUDENT, CourseRole.TA)]


def test_an_entry_already_as_said_is_left_alone_and_a_blank_name_keeps_the_known_one(personas, staff_changes):
    entry = MembershipFactory(course=personas.course, user=None, email="nora.new@school.example", name="Nora New")

    member = ensure(personas.course, name="")

    assert (member.pk, member.name, member.updated_at) == (entry.pk, "Nora New", entry.updated_at)
    assert events_about(member) == []
    assert staff_changes == []


def test_the_last_instructor_keeps_the_role(personas, staff_changes):
    with pytest.raises(RosterChangeError):
        ensure(personas.course, email=personas.instructor.email, role=CourseRole.STUDENT)

    assert personas.course.memberships.get(user=personas.instructor).role == CourseRole.INSTRUCTOR
    assert staff_changes == []


def test_an_instructor_with_another_beside_them_may_be_made_a_ta(personas, staff_changes):
    ensure(personas.course, email="second@school.example", role=CourseRole.INSTRUCTOR)

    member = ensure(personas.course, email=personas.instructor.email, role=CourseRole.TA)

    assert member.role == CourseRole.TA
