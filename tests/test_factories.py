"""The test factories build records the portal could have made."""

import pytest

from accounts_app.choices import AccountOrigin
from accounts_app.choices import AccountState as S
from tests.factories import NO_ACCOUNT_ID, NO_STUDENT, MemberAccountFactory, MembershipFactory


@pytest.mark.django_db
@pytest.mark.parametrize("state", list(S))
def test_a_member_account_in_any_state_is_consistent(state):
    account = MemberAccountFactory(state=state)

    account.refresh_from_db()
    assert account.state == state
    assert (account.membership is None) == (state in NO_STUDENT)
    assert (account.course is None) == (state == S.COOLING_DOWN)
    if account.membership:
        assert account.membership.course == account.course
    assert (account.aws_account_id is None) == (state in NO_ACCOUNT_ID)
    if account.origin == AccountOrigin.INVITED:
        assert account.brought_by is not None
        assert account.brought_by.course == account.course
    assert (account.create_submitted_at is not None) == bool(account.create_request_id)
    assert (account.close_submitted_at is not None) == (state in {S.CLOSING, S.CLOSED})
    assert (account.available_from is not None) == (state == S.COOLING_DOWN)


@pytest.mark.django_db
def test_a_member_account_takes_its_students_course():
    student = MembershipFactory()

    account = MemberAccountFactory(membership=student, state=S.FROZEN)

    assert account.course == student.course
    assert account.aws_account_id and account.create_submitted_at


@pytest.mark.django_db
def test_a_new_student_joins_the_course_given():
    course = MembershipFactory().course

    account = MemberAccountFactory(course=course, state=S.CREATING)

    assert account.membership.course == course
    assert account.create_request_id and account.aws_account_id is None
