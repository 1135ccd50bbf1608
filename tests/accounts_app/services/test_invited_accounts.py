"""A student brings an AWS account they own (accounts_app/services/invited_accounts.py): the
instructor's approval, the cap on requests, the organization's daily invitation quota, which
handshakes the portal takes as its own, and the pages. The access role the portal makes its alone
once the account is in the course is in test_access_roles.py.

moto has no handshakes (InviteAccountToOrganization, ListHandshakesForOrganization,
DescribeHandshake): `AwsScript` answers those calls as AWS does, and moto answers the rest
(DescribeAccount, the OUs, IAM inside the member account). moto's CreateAccount makes the member
account whose access role stands for the one a student created before their account joined.
Services are called directly inside a rolled-back transaction: the tasks they queue on commit
never run unless a test says so.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ReadTimeoutError
from django.urls import reverse
from django.utils import timezone

from accounts_app.choices import AccountState as S
from accounts_app.choices import AuditAction
from accounts_app.lifecycle import transition
from accounts_app.models import (
    AccountEvent,
    AuditEvent,
    AwsOrganization,
    Course,
    MemberAccount,
    Membership,
    OrganizationInvitation,
)
from accounts_app.selectors import course_end_accounts
from accounts_app.services.account_requests import (
    VendingError,
    account_bring_approve,
    account_bring_decline,
    account_bring_existing,
    account_request,
    account_retry,
)
from accounts_app.services.account_setup import account_configure
from accounts_app.services.invited_accounts import account_check_invitation, account_invite, account_verify_access_role
from portal.aws.errors import UnknownOutcome
from tests.support.accounts import student_membership, transitions
from tests.support.aws_script import AwsScript, Fault
from tests.support.brought_accounts import EXISTING_ID, ROLE, bring, joined, students_own_account

NEW_HANDSHAKE = "h-0a1b2c3d4e5f6a7b"


# --- Helpers --------------------------------------------------------------------------------------


def handshake(
    state: str,
    *,
    notes: str = "",
    account_id: str = EXISTING_ID,
    handshake_id: str = NEW_HANDSHAKE,
    organization_id: str = "",
    sender: str = "",
) -> dict:
    """A handshake as AWS describes it; sent by the portal's organization unless told otherwise."""
    organization = AwsOrganization.load()
    organization_id = organization_id or organization.organization_id
    sender = sender or organization.management_account_id
    now = datetime.now(UTC)
    return {
        "Id": handshake_id,
        "Arn": f"arn:aws:organizations::{sender}:handshake/{organization_id}/invite/{handshake_id}",
        "Parties": [
            {"Id": account_id, "Type": "ACCOUNT"},
            {"Id": organization_id.removeprefix("o-"), "Type": "ORGANIZATION"},
        ],
        "State": state,
        "RequestedTimestamp": now,
        "ExpirationTimestamp": now + timedelta(days=15),
        "Action": "INVITE",
        "Resources": [{"Type": "NOTES", "Value": notes}, {"Type": "ACCOUNT", "Value": account_id}],
    }


def accepted_by_aws(params: dict) -> dict:
    """AWS's answer to InviteAccountToOrganization: an open handshake carrying the notes sent."""
    return {"Handshake": handshake("OPEN", notes=params["Notes"], account_id=params["Target"]["Id"])}


def sent_notes(script: AwsScript, index: int = 0) -> str:
    return script.params["InviteAccountToOrganization"][index]["Notes"]


def without_reference(notes: str) -> str:
    return notes.split(" Portal reference ")[0]


def approved(personas, aws_account_id: str = EXISTING_ID) -> MemberAccount:
    account = bring(personas, aws_account_id)
    assert account_bring_approve(actor=personas.instructor, account=account)
    return account


def invited_account(personas, script, aws_account_id: str = EXISTING_ID) -> MemberAccount:
    account = approved(personas, aws_account_id)
    if aws_account_id != EXISTING_ID:
        # moto holds only accounts of the organization: before the student accepts, AWS does not
        # know the account as a member.
        script.answer(
            "organizations",
            "DescribeAccount",
            Fault("AccountNotFoundException", "You specified an account that doesn't exist."),
        )
    script.answer("organizations", "InviteAccountToOrganization", accepted_by_aws)
    account_invite(account_id=account.pk)
    account.refresh_from_db()
    assert account.state == S.INVITED
    return account


# --- The instructor's approval --------------------------------------------------------------------


@pytest.mark.django_db
def test_a_brought_account_waits_for_an_instructor_before_anything_reaches_aws(
    personas, aws, script, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as queued:
        account = bring(personas)
    account_invite(account_id=account.pk)  # a stray task changes nothing
    account_configure(account_id=account.pk)

    account.refresh_from_db()
    assert queued == []
    assert account.state == S.AWAITING_APPROVAL
    assert script.log == []
    assert account.brought_by == student_membership(personas)

    with django_capture_on_commit_callbacks() as queued:
        assert account_bring_approve(actor=personas.instructor, account=account) is True
    assert account_bring_approve(actor=personas.instructor, account=account) is False  # decided

    account.refresh_from_db()
    assert account.state == S.INVITING
    assert len(queued) == 1  # the invitation task
    assert AccountEvent.objects.get(account=account, to_state=S.INVITING).actor == personas.instructor
    approval = AuditEvent.objects.get(action=AuditAction.ACCOUNT_BRING_APPROVED)
    assert (approval.actor, approval.course) == (personas.instructor, personas.course)
    assert approval.summary == f"Approved bringing AWS account {EXISTING_ID} for student@school.example"


@pytest.mark.django_db
def test_a_declined_request_frees_the_students_place_and_still_counts(personas):
    account = bring(personas)

    assert account_bring_decline(actor=personas.instructor, account=account) is True

    account.refresh_from_db()
    assert account.state == S.DECLINED
    assert (account.membership, account.aws_account_id) == (None, None)
    assert account.brought_by == student_membership(personas)
    assert AuditEvent.objects.get(action=AuditAction.ACCOUNT_BRING_DECLINED).summary == (
        f"Declined bringing AWS account {EXISTING_ID} for student@school.example"
    )
    assert account_bring_decline(actor=personas.instructor, account=account) is False
    assert account not in course_end_accounts(course=personas.course)  # never the course's account
    # The same account may be asked for again, and a new account requested instead.
    again = bring(personas)
    assert account_bring_decline(actor=personas.instructor, account=again) is True
    assert account_request(actor=personas.student, membership=student_membership(personas)).state == S.REQUESTED


@pytest.mark.django_db
def test_an_account_that_joined_the_organization_cannot_be_declined(personas):
    account = bring(personas)
    transition(account, expected=S.AWAITING_APPROVAL, to=S.INVITING)
    transition(account, expected=S.INVITING, to=S.INVITED, handshake_id=NEW_HANDSHAKE)
    transition(account, expected=S.INVITED, to=S.AWAITING_ACCESS_ROLE)
    transition(account, expected=S.AWAITING_ACCESS_ROLE, to=S.CONFIGURING)
    transition(account, expected=S.CONFIGURING, to=S.FAILED, last_error="AWS refused MoveAccount")

    assert account_bring_decline(actor=personas.instructor, account=account) is False

    account.refresh_from_db()
    assert account.state == S.FAILED
    assert account.membership == student_membership(personas)


# --- The cap on requests --------------------------------------------------------------------------


@pytest.mark.django_db
def test_bring_requests_are_capped_per_student_declined_and_failed_ones_included(personas, settings):
    settings.PORTAL_BRING_REQUESTS_PER_STUDENT = 2
    account_bring_decline(actor=personas.instructor, account=bring(personas, "111111111111"))
    failed = approved(personas, "222222222222")
    transition(failed, expected=S.INVITING, to=S.FAILED, last_error="The invitation was declined.")
    account_bring_decline(actor=personas.instructor, account=failed)

    with pytest.raises(VendingError) as refused:
        bring(personas, "333333333333")

    assert str(refused.value) == (
        "You have asked to bring an existing account 2 times in this course, the most the school allows. "
        "Request a new account instead, or ask your instructor."
    )
    assert MemberAccount.objects.filter(brought_by=student_membership(personas)).count() == 2
    # Other students have their own count.
    other = Membership.objects.get(user=personas.other_student)
    assert account_bring_existing(actor=personas.other_student, membership=other, aws_account_id="333333333333")


# --- Which handshakes are the portal's ------------------------------------------------------------


@pytest.mark.django_db
def test_an_existing_account_is_invited_once_with_a_reference_in_the_notes(personas, aws, script):
    account = approved(personas)
    script.answer("organizations", "InviteAccountToOrganization", accepted_by_aws)

    account_invite(account_id=account.pk)
    account_invite(account_id=account.pk)  # the message delivered again

    account.refresh_from_db()
    assert account.state == S.INVITED
    assert account.handshake_id == NEW_HANDSHAKE
    assert script.log == ["DescribeAccount", "InviteAccountToOrganization"]
    invitation = OrganizationInvitation.objects.get(account=account)
    assert invitation.handshake_id == NEW_HANDSHAKE
    assert sent_notes(script) == (
        "Cloud Computing (cs101) invites this account to the school's AWS organization. "
        f"Portal reference {invitation.reference}."
    )
    assert transitions(account) == [(S.AWAITING_APPROVAL, S.INVITING), (S.INVITING, S.INVITED)]


@pytest.mark.django_db
def test_an_accepted_or_foreign_handshake_of_the_same_account_is_never_taken(personas, aws, script):
    account = approved(personas)
    notes = "Cloud Computing (cs101) invites this account to the school's AWS organization."
    others = [
        handshake("ACCEPTED", notes=notes, handshake_id="h-accepted000001"),
        handshake("OPEN", notes=notes, handshake_id="h-otherorg000001", organization_id="o-someoneelse1"),
        handshake("OPEN", notes=notes, handshake_id="h-othersend00001", sender="444455556666"),
        handshake("OPEN", notes="An administrator's invitation", handshake_id="h-byhand00000001"),
    ]
    script.always("organizations", "ListHandshakesForOrganization", {"Handshakes": others})
    script.answer("organizations", "InviteAccountToOrganization", accepted_by_aws)

    account_invite(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.INVITED
    assert account.handshake_id == NEW_HANDSHAKE  # the invitation the portal sent itself
    assert script.calls["InviteAccountToOrganization"] == 1


@pytest.mark.django_db
def test_after_a_lost_answer_only_a_handshake_with_the_portals_reference_sent_by_its_organization_is_taken(
    personas, aws, script
):
    account = approved(personas)
    script.answer(
        "organizations",
        "InviteAccountToOrganization",
        ReadTimeoutError(endpoint_url="https://organizations.us-east-1.amazonaws.com/"),
    )
    # AWS lists handshakes that carry the very notes the portal sent, but not from its organization
    # or its management account, for another account, or closed; and an accepted one of the account
    # without the portal's reference: none of them is its invitation.
    lookalikes = lambda params: {  # noqa: E731
        "Handshakes": [
            handshake("OPEN", notes=sent_notes(script), handshake_id="h-otherorg000001", organization_id="o-someone1"),
            handshake("OPEN", notes=sent_notes(script), handshake_id="h-othersend00001", sender="444455556666"),
            handshake("OPEN", notes=sent_notes(script), handshake_id="h-otheracct00001", account_id="999988887777"),
            handshake("CANCELED", notes=sent_notes(script), handshake_id="h-canceled000001"),
            handshake("ACCEPTED", notes=without_reference(sent_notes(script)), handshake_id="h-accept00001"),
        ]
    }
    script.answer("organizations", "ListHandshakesForOrganization", lookalikes)

    with pytest.raises(UnknownOutcome):
        account_invite(account_id=account.pk)

    account.refresh_from_db()
    assert (account.state, account.handshake_id) == (S.INVITING, "")

    # The task's retry: AWS now lists the portal's own invitation, which is taken, not sent again.
    script.answer(
        "organizations",
        "ListHandshakesForOrganization",
        lambda params: {"Handshakes": [handshake("OPEN", notes=sent_notes(script))]},
    )
    account_invite(account_id=account.pk)

    account.refresh_from_db()
    assert (account.state, account.handshake_id) == (S.INVITED, NEW_HANDSHAKE)
    assert script.calls["InviteAccountToOrganization"] == 1
    assert OrganizationInvitation.objects.get(account=account).handshake_id == NEW_HANDSHAKE


@pytest.mark.django_db
def test_an_invitation_accepted_before_its_lost_answer_was_read_is_the_portals(personas, aws, script):
    account = approved(personas)
    script.answer(
        "organizations",
        "InviteAccountToOrganization",
        ReadTimeoutError(endpoint_url="https://organizations.us-east-1.amazonaws.com/"),
    )
    script.answer("organizations", "ListHandshakesForOrganization", {"Handshakes": []})
    with pytest.raises(UnknownOutcome):
        account_invite(account_id=account.pk)

    # Meanwhile the student accepted the invitation the portal sent for this request.
    script.answer(
        "organizations",
        "ListHandshakesForOrganization",
        lambda params: {"Handshakes": [handshake("ACCEPTED", notes=sent_notes(script))]},
    )
    account_invite(account_id=account.pk)

    account.refresh_from_db()
    assert (account.state, account.handshake_id) == (S.INVITED, NEW_HANDSHAKE)
    assert script.calls["InviteAccountToOrganization"] == 1


@pytest.mark.django_db
def test_a_worker_that_died_after_sending_leaves_an_invitation_found_by_its_reference(personas, aws, script):
    account = approved(personas)
    left_behind = OrganizationInvitation.objects.create(
        account=account, reference="0123456789abcdef", sent_at=timezone.now() - timedelta(minutes=3)
    )
    script.answer(
        "organizations",
        "ListHandshakesForOrganization",
        {
            "Handshakes": [
                handshake("DECLINED", notes="Portal reference 0123456789abcdef.", handshake_id="h-0000000000old0"),
                handshake("OPEN", notes="cs101 … Portal reference 0123456789abcdef."),
            ]
        },
    )

    account_invite(account_id=account.pk)

    account.refresh_from_db()
    assert (account.state, account.handshake_id) == (S.INVITED, NEW_HANDSHAKE)
    assert script.calls["InviteAccountToOrganization"] == 0
    left_behind.refresh_from_db()
    assert left_behind.handshake_id == NEW_HANDSHAKE


@pytest.mark.django_db
def test_a_retry_after_a_declined_invitation_sends_a_new_one(personas, aws, script):
    account = invited_account(personas, script)
    script.always("organizations", "DescribeHandshake", lambda params: {"Handshake": handshake("DECLINED")})
    account_check_invitation(account_id=account.pk)
    account.refresh_from_db()
    assert account.state == S.FAILED
    assert account.last_error == "The invitation was declined. Retry to send a new one."

    account_retry(actor=personas.instructor, account=account)
    script.answer(
        "organizations",
        "InviteAccountToOrganization",
        lambda params: {"Handshake": handshake("OPEN", notes=params["Notes"], handshake_id="h-second00000001")},
    )
    account_invite(account_id=account.pk)

    account.refresh_from_db()
    assert (account.state, account.handshake_id) == (S.INVITED, "h-second00000001")
    assert script.calls["InviteAccountToOrganization"] == 2


@pytest.mark.django_db
def test_someone_elses_open_invitation_of_the_account_fails_the_request_with_a_plain_message(personas, aws, script):
    account = approved(personas)
    script.answer(
        "organizations",
        "InviteAccountToOrganization",
        Fault("DuplicateHandshakeException", "A handshake with the same action and target already exists."),
    )

    account_invite(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.FAILED
    assert account.last_error.startswith(
        "The school's organization already has an open invitation for that account that the portal did not send."
    )
    assert not OrganizationInvitation.objects.exists()  # refused: nothing was sent
    assert account.bring_declinable


@pytest.mark.django_db
def test_an_invitation_refused_as_duplicate_fails_with_a_plain_message(personas, aws, script):
    account = approved(personas)
    script.answer(
        "organizations",
        "InviteAccountToOrganization",
        Fault("DuplicateAccountException", "That account is already present in the specified destination."),
    )

    account_invite(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.FAILED
    assert account.last_error == "That account is already in this organization."


@pytest.mark.django_db
@pytest.mark.parametrize("whose", ["another member", "the management account"])
def test_an_account_already_in_the_organization_is_refused_before_any_invitation(personas, aws, script, whose):
    organizations = aws.client("organizations")
    if whose == "another member":
        member_id = organizations.create_account(Email="other@school.example.edu", AccountName="other")[
            "CreateAccountStatus"
        ]["AccountId"]
    else:
        member_id = AwsOrganization.load().management_account_id
    account = approved(personas, member_id)

    account_invite(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.FAILED
    assert account.last_error == (
        "That AWS account is already in the school's organization: it cannot be brought into a course. "
        "Decline the request; the student can then request a new account."
    )
    assert script.calls["InviteAccountToOrganization"] == 0
    assert script.calls["ListHandshakesForOrganization"] == 0
    assert account.bring_declinable


# --- The daily invitation quota -------------------------------------------------------------------


def invitations_sent_at(personas, *moments: datetime) -> None:
    """Invitations the portal sent earlier, for another student's account."""
    other = Membership.objects.get(user=personas.other_student)
    account = account_bring_existing(actor=personas.other_student, membership=other, aws_account_id="555566667777")
    for i, moment in enumerate(moments):
        OrganizationInvitation.objects.create(
            account=account, reference=f"earlier{i:09d}", handshake_id=f"h-earlier{i:07d}", sent_at=moment
        )


@pytest.mark.django_db
def test_the_daily_invitation_quota_keeps_a_request_waiting_with_an_explanation(personas, aws, script, clock, settings):
    settings.PORTAL_AWS_INVITATIONS_PER_DAY = 2
    oldest = clock.now - timedelta(hours=20)
    invitations_sent_at(personas, oldest, clock.now - timedelta(hours=1), clock.now - timedelta(hours=30))
    account = approved(personas)
    script.answer("organizations", "InviteAccountToOrganization", accepted_by_aws)

    account_invite(account_id=account.pk)

    account.refresh_from_db()
    frees_at = oldest + timedelta(hours=24)
    assert account.state == S.INVITING
    assert account.last_error == (
        f"AWS lets the school send 2 invitations a day; yours goes out after {frees_at:%H:%M} (UTC)."
    )
    assert script.calls["InviteAccountToOrganization"] == 0

    clock.advance(timedelta(hours=4, seconds=1))  # the reconciler re-queues it
    account_invite(account_id=account.pk)

    account.refresh_from_db()
    assert (account.state, account.last_error) == (S.INVITED, "")
    assert script.calls["InviteAccountToOrganization"] == 1


@pytest.mark.django_db
def test_aws_refusing_for_its_daily_quota_is_a_wait_not_a_failure(personas, aws, script, clock):
    account = approved(personas)
    script.answer(
        "organizations",
        "InviteAccountToOrganization",
        Fault(
            "HandshakeConstraintViolationException",
            "You have sent too many invitations today.",
            Reason="HANDSHAKE_RATE_LIMIT_EXCEEDED",
        ),
        accepted_by_aws,
    )

    account_invite(account_id=account.pk)
    account_invite(account_id=account.pk)  # re-queued too soon: nothing is sent

    account.refresh_from_db()
    assert account.state == S.INVITING
    retry_at = clock.now + timedelta(hours=1)
    assert account.last_error.endswith(f"yours goes out after {retry_at:%H:%M} (UTC).")
    assert script.calls["InviteAccountToOrganization"] == 1
    assert OrganizationInvitation.objects.get(account=account).rate_limited

    clock.advance(timedelta(hours=1, seconds=1))
    account_invite(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.INVITED
    assert script.calls["InviteAccountToOrganization"] == 2


# --- After the invitation -------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_accepted_invitation_goes_on_to_configuring_when_the_access_role_works(personas, aws, script):
    account = invited_account(personas, script, students_own_account(aws))
    joined(aws, account)
    script.answer(
        "organizations", "DescribeHandshake", {"Handshake": handshake("ACCEPTED", account_id=account.aws_account_id)}
    )

    account_check_invitation(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.CONFIGURING
    # Into its course's OU, under the guardrails, before the portal assumes its role there.
    course = Course.objects.get(pk=personas.course.pk)
    assert (
        aws.client("organizations").list_parents(ChildId=account.aws_account_id)["Parents"][0]["Id"] == course.aws_ou_id
    )
    assert script.calls["GetCallerIdentity"] == 1  # moto's STS answers for the member role
    assert transitions(account)[-3:] == [
        (S.INVITING, S.INVITED),
        (S.INVITED, S.AWAITING_ACCESS_ROLE),
        (S.AWAITING_ACCESS_ROLE, S.CONFIGURING),
    ]


@pytest.mark.django_db
def test_an_accepted_account_without_the_records_tags_is_neither_moved_nor_entered(personas, aws, script):
    account = invited_account(personas, script, students_own_account(aws))
    script.answer(
        "organizations", "DescribeHandshake", {"Handshake": handshake("ACCEPTED", account_id=account.aws_account_id)}
    )

    account_check_invitation(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.FAILED
    assert "does not carry this record's tags" in account.last_error
    assert script.calls["MoveAccount"] == script.calls["AssumeRole"] == 0


@pytest.mark.django_db
def test_an_accepted_invitation_waits_for_the_access_role_until_the_student_creates_it(personas, aws, script):
    account = invited_account(personas, script, students_own_account(aws))
    joined(aws, account)
    refused = []

    def assume_role_refused(**kwargs):
        if not refused:
            refused.append(True)
            return Fault(
                "AccessDenied",
                "User is not authorized to perform: sts:AssumeRole on resource: "
                f"arn:aws:iam::{EXISTING_ID}:role/{ROLE}",
                status=403,
            ).response()
        return None

    # AssumeRole runs on a client the portal does not cache: hook the session it comes from.
    aws.base_session().events.register("before-call.sts.AssumeRole", assume_role_refused)
    script.answer(
        "organizations", "DescribeHandshake", {"Handshake": handshake("ACCEPTED", account_id=account.aws_account_id)}
    )

    account_check_invitation(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.AWAITING_ACCESS_ROLE
    assert account.last_error.startswith(f"The portal cannot use the role {ROLE} in your account yet: ")
    assert account_verify_access_role(actor_id=personas.student.pk, account_id=account.pk) is True
    account.refresh_from_db()
    assert (account.state, account.last_error) == (S.CONFIGURING, "")


@pytest.mark.django_db
@pytest.mark.parametrize("state", ["DECLINED", "EXPIRED", "CANCELED"])
def test_an_invitation_that_was_not_accepted_fails_with_a_message(personas, aws, script, state):
    account = invited_account(personas, script)
    script.answer("organizations", "DescribeHandshake", {"Handshake": handshake(state)})

    account_check_invitation(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.FAILED
    assert account.last_error == f"The invitation was {state.lower()}. Retry to send a new one."
    assert account.handshake_id == ""
    assert account.bring_declinable


@pytest.mark.django_db
def test_an_open_invitation_leaves_the_account_invited(personas, aws, script):
    account = invited_account(personas, script)
    script.answer("organizations", "DescribeHandshake", {"Handshake": handshake("OPEN")})

    account_check_invitation(account_id=account.pk)

    account.refresh_from_db()
    assert account.state == S.INVITED


@pytest.mark.django_db
@pytest.mark.parametrize("bad_id", ["12345", "1234567890123", "abcdefghijkl", "1234-5678-9012", " 111122223333"])
def test_a_malformed_account_id_is_refused_before_anything_is_recorded(personas, bad_id):
    with pytest.raises(VendingError, match="An AWS account id is 12 digits"):
        account_bring_existing(actor=personas.student, membership=student_membership(personas), aws_account_id=bad_id)

    assert not MemberAccount.objects.exists()


@pytest.mark.django_db
def test_an_account_already_registered_cannot_be_brought_twice(personas):
    bring(personas)
    other = Membership.objects.get(user=personas.other_student)

    with pytest.raises(VendingError, match="already registered"):
        account_bring_existing(actor=personas.other_student, membership=other, aws_account_id=EXISTING_ID)

    assert MemberAccount.objects.count() == 1


# --- Pages ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_roster_lists_requests_with_decisions_for_instructors_only(personas):
    account = bring(personas)

    as_instructor = personas.client("instructor").get(reverse("courses:roster", args=[personas.course.pk]))
    as_ta = personas.client("ta").get(reverse("courses:roster", args=[personas.course.pk]))

    approve = reverse("courses:account_bring_approve", args=[personas.course.pk, account.pk])
    decline = reverse("courses:account_bring_decline", args=[personas.course.pk, account.pk])
    for response in (as_instructor, as_ta):
        assert response.status_code == 200
        assert "Students who ask to bring their own AWS account" in response.content.decode()
        assert EXISTING_ID in response.content.decode()
    assert approve in as_instructor.content.decode() and decline in as_instructor.content.decode()
    assert approve not in as_ta.content.decode() and decline not in as_ta.content.decode()


@pytest.mark.django_db
def test_an_instructor_approves_from_the_roster(personas, django_capture_on_commit_callbacks):
    account = bring(personas)
    path = reverse("courses:account_bring_approve", args=[personas.course.pk, account.pk])

    with django_capture_on_commit_callbacks() as queued:
        response = personas.client("instructor").post(path)

    assert response.status_code == 302
    account.refresh_from_db()
    assert account.state == S.INVITING
    assert len(queued) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["courses:account_bring_approve", "courses:account_bring_decline"])
def test_another_courses_request_is_not_found_under_this_courses_url(personas, action):
    other = Membership.objects.get(user=personas.other_student)
    foreign = account_bring_existing(actor=personas.other_student, membership=other, aws_account_id=EXISTING_ID)

    response = personas.client("instructor").post(reverse(action, args=[personas.course.pk, foreign.pk]))

    assert response.status_code == 404
    foreign.refresh_from_db()
    assert foreign.state == S.AWAITING_APPROVAL


@pytest.mark.django_db
def test_the_student_sees_the_wait_and_later_the_decline(personas):
    account = bring(personas)
    panel = reverse("courses:my_account", args=[personas.course.pk])

    waiting = personas.client("student").get(panel).content.decode()
    account_bring_decline(actor=personas.instructor, account=account)
    declined = personas.client("student").get(panel).content.decode()

    assert "Waiting for your instructor to approve" in waiting
    assert "Your instructor declined your request to bring your own account." in declined
    assert "You can ask 2 more times in this course." in declined
