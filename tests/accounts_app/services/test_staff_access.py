"""Staff access follows the roster, against moto: adding, promoting, demoting and removing a TA
or an instructor changes their Identity Center assignments on the course's accounts through one
task per change; the reconciler repairs what drifted; nothing is changed on an account AWS does
not show as the course's. Tasks run eagerly when the captured on-commit callbacks run."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts_app.choices import AccessMode, AuditAction, CourseRole
from accounts_app.choices import AccountState as S
from accounts_app.models import AuditEvent, AwsOrganization, Course, IdentityCenterUser, MemberAccount, Membership
from accounts_app.services import staff_access
from accounts_app.services.reconcile import reconcile
from accounts_app.services.rosters import member_add, member_change_role, member_remove, roster_import
from accounts_app.tasks import staff_access_sync_task
from portal.aws.errors import TransientAwsError
from tests.factories import MembershipFactory, UserFactory
from tests.support.accounts import ready_account
from tests.support.aws_script import Clock, Fault


def user_id_of(aws, email: str) -> str:
    return aws.client("identitystore").get_user_id(
        IdentityStoreId=AwsOrganization.load().identity_store_id,
        AlternateIdentifier={"UniqueAttribute": {"AttributePath": "userName", "AttributeValue": email}},
    )["UserId"]


def holders(aws, account: MemberAccount, role: str) -> set[str]:
    """The email addresses of the users who hold `role`'s permission set on the account."""
    organization = AwsOrganization.load()
    found = aws.client("sso-admin").list_account_assignments(
        InstanceArn=organization.sso_instance_arn,
        AccountId=account.aws_account_id,
        PermissionSetArn=organization.permission_sets[role],
    )["AccountAssignments"]
    store = aws.client("identitystore")
    return {
        store.describe_user(IdentityStoreId=organization.identity_store_id, UserId=a["PrincipalId"])["UserName"]
        for a in found
        if a["PrincipalType"] == "USER"
    }


def assign(aws, account: MemberAccount, role: str, principal_id: str, principal_type: str = "USER") -> None:
    organization = AwsOrganization.load()
    aws.client("sso-admin").create_account_assignment(
        InstanceArn=organization.sso_instance_arn,
        TargetId=account.aws_account_id,
        TargetType="AWS_ACCOUNT",
        PermissionSetArn=organization.permission_sets[role],
        PrincipalType=principal_type,
        PrincipalId=principal_id,
    )


def unassign(aws, account: MemberAccount, role: str, principal_id: str) -> None:
    organization = AwsOrganization.load()
    aws.client("sso-admin").delete_account_assignment(
        InstanceArn=organization.sso_instance_arn,
        TargetId=account.aws_account_id,
        TargetType="AWS_ACCOUNT",
        PermissionSetArn=organization.permission_sets[role],
        PrincipalType="USER",
        PrincipalId=principal_id,
    )


def staff_task_calls(callbacks) -> list[tuple]:
    """The staff_access_sync_task calls among captured on-commit callbacks (partials of the
    task's delay): (course id, email)."""
    task = staff_access_sync_task.name
    return [c.args for c in callbacks if getattr(getattr(c.func, "__self__", None), "name", None) == task]


@pytest.fixture
def committing(django_capture_on_commit_callbacks):
    """`with committing() as callbacks:` runs, as the block ends, what the code queued for after
    its commit (the tasks, eagerly), and lists it."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def account(personas, aws) -> MemberAccount:
    """The student's ready account, opened to the course's TA and instructor."""
    ready = ready_account(Membership.objects.get(user=personas.student))
    assert holders(aws, ready, "ta") == {"ta@school.example"}
    assert holders(aws, ready, "instructor") == {"instructor@school.example"}
    return ready


# --- Roster changes -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_removed_ta_loses_access_at_once_through_the_task(personas, aws, account, script, committing):
    ta = Membership.objects.get(user=personas.ta)

    with committing() as callbacks:
        member_remove(actor=personas.instructor, member=ta)

    assert staff_task_calls(callbacks) == [(personas.course.pk, "ta@school.example")]
    assert holders(aws, account, "ta") == set()
    assert holders(aws, account, "instructor") == {"instructor@school.example"}
    assert holders(aws, account, "student") == {"student@school.example"}
    assert script.calls["DeleteAccountAssignment"] == 1
    event = AuditEvent.objects.get(action=AuditAction.STAFF_ACCESS_CHANGED)
    assert event.summary == ("AWS access of ta@school.example (no staff role): granted on 0 account(s), removed from 1")
    assert event.data["revoked"] == [account.aws_account_id]


@pytest.mark.django_db
def test_a_student_promoted_to_ta_gains_access(personas, aws, account, committing):
    sam = MembershipFactory(course=personas.course, email="sam@school.example", role=CourseRole.STUDENT)

    with committing():
        member_change_role(actor=personas.instructor, member=sam, role=CourseRole.TA)

    assert holders(aws, account, "ta") == {"ta@school.example", "sam@school.example"}
    # The portal made Sam's Identity Center user, and says so.
    sam_user = user_id_of(aws, "sam@school.example")
    assert IdentityCenterUser.objects.filter(email="sam@school.example", user_id=sam_user).exists()


@pytest.mark.django_db
def test_a_demoted_instructor_ends_with_the_ta_set_only(personas, aws, committing):
    second = MembershipFactory(
        course=personas.course, user=UserFactory(email="ines2@school.example"), role=CourseRole.INSTRUCTOR
    )
    account = ready_account(Membership.objects.get(user=personas.student))
    assert holders(aws, account, "instructor") == {"instructor@school.example", "ines2@school.example"}

    with committing():
        member_change_role(actor=personas.instructor, member=second, role=CourseRole.TA)

    assert holders(aws, account, "instructor") == {"instructor@school.example"}
    assert holders(aws, account, "ta") == {"ta@school.example", "ines2@school.example"}


@pytest.mark.django_db
def test_people_added_by_hand_or_by_an_import_get_their_sets_on_every_account(personas, aws, account, committing):
    olaf = MembershipFactory(course=personas.course, email="olaf@school.example", role=CourseRole.STUDENT)
    other = ready_account(olaf)

    with committing() as callbacks:
        member_add(
            actor=personas.instructor,
            course=personas.course,
            email="ivy@school.example",
            name="Ivy",
            role=CourseRole.INSTRUCTOR,
        )
        roster_import(
            actor=personas.instructor,
            course=personas.course,
            text="email,role\nted@school.example,ta\nstudent@school.example,student\n",
            send_invitations=False,
        )

    # One task per person whose staff access changes, not one per account; none for the rest.
    queued = sorted(email for _, email in staff_task_calls(callbacks))
    assert queued == ["ivy@school.example", "ted@school.example"]
    for vended in (account, other):
        assert holders(aws, vended, "instructor") == {"instructor@school.example", "ivy@school.example"}
        assert holders(aws, vended, "ta") == {"ta@school.example", "ted@school.example"}


@pytest.mark.django_db
def test_no_account_of_another_course_or_outside_the_course_ou_is_touched(personas, aws, account, script, committing):
    # An account of the course that AWS shows elsewhere (moved by hand to the pool OU).
    aws.client("organizations").move_account(
        AccountId=account.aws_account_id,
        SourceParentId=Course.objects.get(pk=personas.course.pk).aws_ou_id,
        DestinationParentId=AwsOrganization.load().pool_ou_id,
    )
    other_course_account = ready_account(Membership.objects.get(user=personas.other_student))
    # The TA also holds the TA set on the other course's account (given there by hand).
    assign(aws, other_course_account, "ta", user_id_of(aws, "ta@school.example"))

    with committing():
        member_remove(actor=personas.instructor, member=Membership.objects.get(user=personas.ta))

    assert script.calls["DeleteAccountAssignment"] == 0
    assert holders(aws, account, "ta") == {"ta@school.example"}
    assert holders(aws, other_course_account, "ta") == {"ta@school.example"}
    event = AuditEvent.objects.get(action=AuditAction.STAFF_ACCESS_CHANGED)
    assert event.summary.endswith("removed from 0, 1 left for the reconciler")
    assert "not in" in event.data["left_alone"][0] and account.aws_account_id in event.data["left_alone"][0]


@pytest.mark.django_db
def test_a_course_without_accounts_or_in_iam_user_mode_queues_no_task(personas, django_capture_on_commit_callbacks):
    ta = Membership.objects.get(user=personas.ta)
    with django_capture_on_commit_callbacks() as callbacks:
        member_change_role(actor=personas.instructor, member=ta, role=CourseRole.STUDENT)
    assert staff_task_calls(callbacks) == []

    MemberAccount.objects.create(
        course=personas.course,
        root_email="aws+cs101-pool-001@school.example",
        account_name="cs101-pool-001",
        aws_account_id="111122223333",
        state=S.READY,
    )
    personas.course.access_mode = AccessMode.IAM_USER
    personas.course.save()
    with django_capture_on_commit_callbacks() as callbacks:
        member_change_role(actor=personas.instructor, member=ta, role=CourseRole.TA)
    assert staff_task_calls(callbacks) == []

    personas.course.access_mode = AccessMode.IDENTITY_CENTER
    personas.course.save()
    with django_capture_on_commit_callbacks() as callbacks:
        member_change_role(actor=personas.instructor, member=ta, role=CourseRole.STUDENT)
    assert staff_task_calls(callbacks) == [(personas.course.pk, "ta@school.example")]


# --- The reconciler -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_reconciler_repairs_a_missing_and_removes_an_extra_staff_assignment(personas, aws, account):
    store = AwsOrganization.load().identity_store_id
    identity = aws.client("identitystore")
    # Drift: the TA's assignment was lost; a former TA (removed while the portal was down) and a
    # group still hold the TA set.
    unassign(aws, account, "ta", user_id_of(aws, "ta@school.example"))
    former = identity.create_user(
        IdentityStoreId=store,
        UserName="former@school.example",
        DisplayName="Former TA",
        Name={"GivenName": "Former", "FamilyName": "TA"},
    )["UserId"]
    assign(aws, account, "ta", former)
    group = identity.create_group(IdentityStoreId=store, DisplayName="Department heads")["GroupId"]
    assign(aws, account, "ta", group, principal_type="GROUP")

    drift = reconcile()

    assert holders(aws, account, "ta") == {"ta@school.example"}
    assert holders(aws, account, "instructor") == {"instructor@school.example"}
    account_id = account.aws_account_id
    assert (
        f"cs101: gave ta@school.example the TA permission set on {account_id}, which the roster gives "
        "them and AWS lacked." in drift
    )
    assert (
        f"cs101: took the TA permission set on {account_id} from former@school.example, whom the roster "
        "does not give it." in drift
    )
    assert (
        f"cs101: group {group} has the TA permission set on {account_id}; groups are not the roster's, "
        "so the portal leaves it alone." in drift
    )
    assert AwsOrganization.load().drift == drift
    assert AuditEvent.objects.filter(action=AuditAction.STAFF_ACCESS_CHANGED, course=personas.course).count() == 1

    # Repaired: the next run changes nothing and reports only the group again.
    assert [line for line in reconcile() if line.startswith("cs101")] == [
        (
            f"cs101: group {group} has the TA permission set on {account_id}; groups are not the roster's, "
            "so the portal leaves it alone."
        )
    ]


@pytest.mark.django_db
def test_the_reconciler_checks_courses_in_turn_within_its_budget(personas, aws, account, monkeypatch, script):
    other = ready_account(Membership.objects.get(user=personas.other_student))
    monkeypatch.setattr(staff_access, "RECONCILE_ACCOUNTS_PER_RUN", 1)

    before = script.calls["ListAccountAssignments"]
    reconcile()
    first = script.calls["ListAccountAssignments"] - before
    reconcile()
    second = script.calls["ListAccountAssignments"] - before - first

    # Two staff permission sets listed on one account per run, and each course checked once.
    assert (first, second) == (2, 2)
    assert other.course.code == "bio200"
    assert all(Course.objects.values_list("staff_access_checked_at", flat=True))


# --- A brand-new account --------------------------------------------------------------------------
# moto assigns permission sets in a new account at once; AWS refuses for some minutes after
# CreateAccount succeeds. These tests script AWS's refusals of CreateAccountAssignment (AwsScript).

NEW_ACCOUNT_REFUSALS = {
    "AccessDeniedException": Fault("AccessDeniedException", "User is not authorized to perform this action."),
    "RegionDisabledException": Fault(
        "RegionDisabledException", "STS is not activated in this region for account:210987654321.", status=403
    ),
    "FAILED status": lambda params: {
        "AccountAssignmentCreationStatus": {
            "Status": "FAILED",
            "RequestId": str(uuid.uuid4()),
            "FailureReason": "Received a 404 status error: Not supported account.",
            "TargetId": params["TargetId"],
        }
    },
}


def after_the_grace_window(monkeypatch, settings) -> None:
    clock = Clock()
    clock.advance(timedelta(minutes=settings.PORTAL_AWS_NEW_ACCOUNT_GRACE_MINUTES + 1))
    monkeypatch.setattr(timezone, "now", clock)


@pytest.mark.django_db
@pytest.mark.parametrize("refusal", sorted(NEW_ACCOUNT_REFUSALS))
def test_a_new_account_refusing_a_new_tas_assignment_is_tried_again_not_left_alone(
    personas, aws, account, script, refusal
):
    MembershipFactory(course=personas.course, email="sam@school.example", role=CourseRole.TA)
    script.answer("sso-admin", "CreateAccountAssignment", NEW_ACCOUNT_REFUSALS[refusal])

    with pytest.raises(TransientAwsError, match="still being set up"):
        staff_access.staff_access_sync(course_id=personas.course.pk, email="sam@school.example")
    assert "sam@school.example" not in holders(aws, account, "ta")

    changes = staff_access.staff_access_sync(course_id=personas.course.pk, email="sam@school.example")  # the retry

    assert changes.granted == [account.aws_account_id] and changes.left_alone == []
    assert holders(aws, account, "ta") == {"ta@school.example", "sam@school.example"}


@pytest.mark.django_db
def test_an_account_refusing_past_the_grace_window_is_left_for_the_reconciler(
    personas, aws, account, script, monkeypatch, settings
):
    MembershipFactory(course=personas.course, email="sam@school.example", role=CourseRole.TA)
    script.always("sso-admin", "CreateAccountAssignment", NEW_ACCOUNT_REFUSALS["AccessDeniedException"])
    after_the_grace_window(monkeypatch, settings)

    changes = staff_access.staff_access_sync(course_id=personas.course.pk, email="sam@school.example")

    assert changes.granted == []
    assert changes.left_alone == [
        f"{account.account_name} ({account.aws_account_id}): User is not authorized to perform this action."
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("refusal", sorted(NEW_ACCOUNT_REFUSALS))
def test_the_reconciler_waits_for_a_new_account_and_repairs_it_at_the_next_run(personas, aws, account, script, refusal):
    unassign(aws, account, "ta", user_id_of(aws, "ta@school.example"))
    script.answer("sso-admin", "CreateAccountAssignment", NEW_ACCOUNT_REFUSALS[refusal])

    drift = [line for line in reconcile() if line.startswith("cs101")]

    [line] = drift
    assert line.startswith(
        f"cs101: staff access on {account.aws_account_id} waits for AWS, which is still setting up this new account"
    )
    assert line.endswith("the next run tries again.")
    # Not counted as checked: the course comes first again at the next run.
    assert Course.objects.get(pk=personas.course.pk).staff_access_checked_at is None

    drift = reconcile()

    assert holders(aws, account, "ta") == {"ta@school.example"}
    assert (
        f"cs101: gave ta@school.example the TA permission set on {account.aws_account_id}, which the roster "
        "gives them and AWS lacked." in drift
    )
    assert Course.objects.get(pk=personas.course.pk).staff_access_checked_at is not None


@pytest.mark.django_db
def test_the_reconciler_reports_an_old_accounts_refusal_as_before(
    personas, aws, account, script, monkeypatch, settings
):
    unassign(aws, account, "ta", user_id_of(aws, "ta@school.example"))
    script.always("sso-admin", "CreateAccountAssignment", NEW_ACCOUNT_REFUSALS["AccessDeniedException"])
    after_the_grace_window(monkeypatch, settings)

    drift = reconcile()

    assert (
        "cs101: staff access not checked this time: create_account_assignment: AccessDeniedException: User is "
        "not authorized to perform this action." in drift
    )
    assert Course.objects.get(pk=personas.course.pk).staff_access_checked_at is None
