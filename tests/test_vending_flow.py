"""The whole vending path against the emulator, with Celery tasks run as they are queued."""

import pytest

from accounts_app.choices import AccountState, CourseRole
from accounts_app.models import AwsOrganization, MemberAccount, Membership
from accounts_app.services.account_requests import account_request
from portal.aws import identity_center, organizations


@pytest.mark.django_db(transaction=True)
def test_a_student_request_ends_with_a_ready_account_in_the_course_ou(personas, aws):
    student = Membership.objects.get(user=personas.student)

    account_request(actor=personas.student, membership=student)

    account = MemberAccount.objects.get(membership=student)
    assert account.state == AccountState.READY
    personas.course.refresh_from_db()
    assert organizations.parent_id(account.aws_account_id) == personas.course.aws_ou_id
    assert organizations.account_tags(account.aws_account_id)["student"] == student.email
    assert [e.to_state for e in account.events.all()] == ["creating", "configuring", "ready"]
    instance = identity_center.instance()
    permission_sets = AwsOrganization.load().permission_sets
    assert identity_center.has_assignment(
        instance.arn,
        account_id=account.aws_account_id,
        permission_set_arn=permission_sets["student"],
        user_id=account.identity_store_user_id,
    )
    ta = Membership.objects.get(course=personas.course, role=CourseRole.TA)
    ta_user = identity_center.find_user(instance.identity_store_id, ta.email)
    assert identity_center.has_assignment(
        instance.arn, account_id=account.aws_account_id, permission_set_arn=permission_sets["ta"], user_id=ta_user
    )
