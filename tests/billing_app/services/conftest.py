import pytest

from accounts_app.choices import AccountState
from accounts_app.models import MemberAccount, Membership
from tests.support.aws_calls import place_as_configured


@pytest.fixture
def student_account(personas, aws):
    """The persona student's READY account, made in moto's organization (not vended: quicker)
    and placed where vending puts it: in the course's OU, with the portal's tags."""
    status = aws.client("organizations").create_account(
        Email="aws+cs101-student@school.example", AccountName="cs101-student"
    )
    account = MemberAccount.objects.create(
        course=personas.course,
        membership=Membership.objects.get(user=personas.student),
        state=AccountState.READY,
        root_email="aws+cs101-student@school.example",
        account_name="cs101-student",
        aws_account_id=status["CreateAccountStatus"]["AccountId"],
    )
    return place_as_configured(account)
