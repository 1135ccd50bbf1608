"""An AWS account a student brings to the course: asked for, joined the organization, and the
member account moto makes to stand for it (tests/accounts_app/services/test_invited_accounts.py
and test_access_roles.py)."""

from __future__ import annotations

from accounts_app.choices import AccountOrigin
from accounts_app.choices import AccountState as S
from accounts_app.models import MemberAccount
from accounts_app.services.account_requests import account_bring_existing
from accounts_app.services.identity import account_tags
from tests.support.accounts import student_membership

EXISTING_ID = "111122223333"
ROLE = "OrganizationAccountAccessRole"  # the access role a student's account has for its organization


def bring(personas, aws_account_id: str = EXISTING_ID) -> MemberAccount:
    """The persona student asks to bring the account: it waits for an instructor's approval."""
    account = account_bring_existing(
        actor=personas.student, membership=student_membership(personas), aws_account_id=aws_account_id
    )
    assert (account.state, account.origin) == (S.AWAITING_APPROVAL, AccountOrigin.INVITED)
    return account


def joined(aws, account: MemberAccount) -> None:
    """The student accepted: AWS puts the tags the invitation carried on the account as it joins
    the organization, under its root (moto has no invitations: the test does what AWS does)."""
    aws.client("organizations").tag_resource(
        ResourceId=account.aws_account_id, Tags=[{"Key": k, "Value": v} for k, v in account_tags(account).items()]
    )


def students_own_account(aws) -> str:
    """A member account (made by moto's CreateAccount, with the access role) standing for a
    student's account that has just joined the organization."""
    status = aws.client("organizations").create_account(Email="stella@personal.example", AccountName="stella")
    return status["CreateAccountStatus"]["AccountId"]
