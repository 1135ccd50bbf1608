"""What runs next: the task queued for an account in each state, with its argument, once the
change that put it there commits; and a whole class asking for accounts wakes the vending queue
once."""

from __future__ import annotations

import pytest

from accounts_app import next_step, tasks
from accounts_app.choices import AccountState as S
from accounts_app.choices import CourseRole, MembershipSource
from accounts_app.lifecycle import WORKING_STATES
from accounts_app.models import Handover, MemberAccount, Membership
from accounts_app.services.account_requests import course_provision_all
from tests.factories import CourseFactory

# The task each state queues, and what it is given: nothing (the queue's run), the account's id or
# its handover's id.
EXPECTED = {
    S.REQUESTED: (tasks.vending_dispatch_task, None),
    S.CREATING: (tasks.vending_dispatch_task, None),
    S.INVITING: (tasks.account_invite_task, "account"),
    S.INVITED: (tasks.account_check_invitation_task, "account"),
    S.CONFIGURING: (tasks.account_configure_task, "account"),
    S.CLEANING: (tasks.account_cleanup_task, "account"),
    S.CLOSE_QUEUED: (tasks.close_dispatch_task, None),
    S.CLOSING: (tasks.account_poll_closure_task, "account"),
    S.HANDOVER: (tasks.handover_advance_task, "handover"),
}


def test_every_working_state_has_the_task_that_moves_it_on():
    assert set(next_step.NEXT_STEPS) >= WORKING_STATES


@pytest.mark.django_db
@pytest.mark.parametrize("state", list(S))
def test_the_next_step_of_each_state_is_queued_on_commit(state, django_capture_on_commit_callbacks):
    account = MemberAccount.objects.create(
        course=CourseFactory(), state=state, root_email="aws+x@school.example", account_name="x"
    )
    handover = Handover.objects.create(
        account=account,
        new_root_email="own@example.com",
        contact_name="Sam Student",
        contact_phone="+1 555 0100",
        previous_state=S.READY,
    )

    with django_capture_on_commit_callbacks() as queued:
        next_step.next_step_enqueue(account)

    if state not in EXPECTED:
        assert queued == []
        return
    task, given = EXPECTED[state]
    arguments = {None: (), "account": (account.pk,), "handover": (handover.pk,)}[given]
    assert [(callback.func, callback.args) for callback in queued] == [(task.delay, arguments)]


@pytest.mark.django_db
def test_provisioning_a_class_of_300_queues_one_vending_dispatch(personas, django_capture_on_commit_callbacks):
    """Each dispatch sends as many CreateAccount requests as AWS's quotas allow and schedules its
    own follow-up: 300 dispatches for 300 students would only wait on the same lock."""
    course = personas.course
    Membership.objects.bulk_create(
        Membership(
            course=course,
            email=f"student{n:03d}@school.example",
            name=f"Student {n:03d}",
            role=CourseRole.STUDENT,
            source=MembershipSource.IMPORT,
        )
        for n in range(299)
    )

    with django_capture_on_commit_callbacks() as queued:
        provisioned = course_provision_all(actor=personas.instructor, course=course)

    assert provisioned == 300  # the 299 and the course's own student
    assert MemberAccount.objects.filter(course=course, state=S.REQUESTED).count() == 300
    assert [callback.func for callback in queued] == [tasks.vending_dispatch_task.delay]


@pytest.mark.django_db
def test_provisioning_a_class_whose_students_all_have_accounts_queues_nothing(
    personas, django_capture_on_commit_callbacks
):
    course_provision_all(actor=personas.instructor, course=personas.course)

    with django_capture_on_commit_callbacks() as queued:
        provisioned = course_provision_all(actor=personas.instructor, course=personas.course)

    assert provisioned == 0
    assert queued == []
