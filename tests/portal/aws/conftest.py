import pytest


@pytest.fixture
def member(aws) -> str:
    """A new member account of the organization: its id."""
    status = aws.client("organizations").create_account(Email="student@school.example", AccountName="student")[
        "CreateAccountStatus"
    ]
    return status["AccountId"]
