"""A student's account on its way out of the course (accounts_app/services/handover.py): the
account as the database or moto has it, a handover at each step, and what tests read of AWS,
the emails and the pages along the way."""

from __future__ import annotations

import html
from typing import cast

from django.core import mail

from accounts_app.choices import AccountOrigin, AccountState
from accounts_app.models import AuditEvent, AwsOrganization, Handover, MemberAccount, Membership
from accounts_app.services.account_requests import account_request
from accounts_app.services.handover import (
    handover_advance,
    handover_approve,
    handover_code_check,
    handover_request,
    handover_submit_code,
)
from billing_app.services.budgets import budget_ensure
from portal.aws import account_mgmt
from tests.factories import MemberAccountFactory
from tests.support.account_api import AccountApi
from tests.support.aws_calls import place_as_configured

OWN_EMAIL = "ada.lovelace@home.example"
CONTACT = {
    "new_root_email": OWN_EMAIL,
    "contact_name": "Ada Lovelace",
    "contact_phone": "+44 20 7946 0958",
}
CONTACT_TYPES = ("BILLING", "OPERATIONS", "SECURITY")
PAYMENT = "MEMBER_ACCOUNT_PAYMENT_INSTRUMENT_REQUIRED"


def membership_of(user) -> Membership:
    return Membership.objects.get(user=user)


def db_account(personas, *, state: str = AccountState.READY) -> MemberAccount:
    """The student's account as the database knows it; nothing in AWS (for what calls no AWS)."""
    account = MemberAccountFactory(course=personas.course, membership=membership_of(personas.student), state=state)
    return cast(MemberAccount, account)  # factory_boy returns the model's instance, typed as the factory


def moto_account(personas, aws, *, origin: str = AccountOrigin.CREATED) -> MemberAccount:
    """The student's READY account, created in moto's organization, in the course's OU with the
    portal's tags and its AWS Budget (not vended through the queue: quicker, and no task runs)."""
    email = "aws+cs101-student@school.example"
    created = aws.client("organizations").create_account(Email=email, AccountName="cs101-student")
    account = cast(
        MemberAccount,
        MemberAccountFactory(
            course=personas.course,  # the OU it is placed in is set on this very course
            membership=membership_of(personas.student),
            origin=origin,
            root_email=email,
            account_name="cs101-student",
            aws_account_id=created["CreateAccountStatus"]["AccountId"],
        ),
    )
    place_as_configured(account)
    budget_ensure(account_id=account.pk)
    return account


def vended_account(personas) -> MemberAccount:
    """The student's account through the whole vending (only with `moto_db`)."""
    account = account_request(actor=personas.student, membership=membership_of(personas.student))
    account.refresh_from_db()
    assert account.state == AccountState.READY
    return account


def approved(personas, account: MemberAccount, account_api: AccountApi) -> Handover:
    """Asked and approved, the code sent (the advance task's first run, done by hand)."""
    record = handover_request(actor=personas.student, account=account, **CONTACT)
    assert handover_approve(actor=personas.instructor, handover=record)
    handover_advance(handover_id=record.pk)
    record.refresh_from_db()
    assert record.code_sent_at is not None
    return record


def code_given(personas, record: Handover, code: str) -> None:
    """The student types the code; the task gives it to AWS (its run, done by hand)."""
    handover_submit_code(actor=personas.student, handover=record, code=code)
    handover_code_check(actor_id=personas.student.pk, handover_id=record.pk)
    record.refresh_from_db()


def detached(personas, account: MemberAccount, account_api: AccountApi) -> Handover:
    """Up to the student's turn: root email moved, contacts set, the school's access gone."""
    record = approved(personas, account, account_api)
    code_given(personas, record, account_api.code(account.aws_account_id))
    handover_advance(handover_id=record.pk)
    record.refresh_from_db()
    assert record.access_removed_at is not None
    return record


def sent(subject_part: str) -> list[list[str]]:
    """Recipients of each email sent so far whose subject contains `subject_part`."""
    return [message.to for message in mail.outbox if subject_part in message.subject]


def handover_audit(account: MemberAccount) -> list[tuple[str, str]]:
    events = AuditEvent.objects.filter(
        object_type="memberaccount", object_id=str(account.pk), action__startswith="handover."
    )
    return [(event.action, event.actor_label) for event in events.order_by("id")]


def text(response) -> str:
    return html.unescape(response.content.decode())


def organization_account_ids(aws) -> set[str]:
    return {a["Id"] for a in aws.client("organizations").list_accounts()["Accounts"]}


def tags_of(aws, account_id: str) -> dict[str, str]:
    tags = aws.client("organizations").list_tags_for_resource(ResourceId=account_id)["Tags"]
    return {tag["Key"]: tag["Value"] for tag in tags}


def parent_of(aws, account_id: str) -> str:
    return aws.client("organizations").list_parents(ChildId=account_id)["Parents"][0]["Id"]


def budget_names(aws) -> set[str]:
    organization = AwsOrganization.load()
    budgets = aws.client("budgets").describe_budgets(AccountId=organization.management_account_id)
    return {budget["BudgetName"] for budget in budgets.get("Budgets", [])}


def assignments_of_account(aws, account_id: str) -> list[dict]:
    organization = AwsOrganization.load()
    return [
        assignment
        for arn in organization.permission_sets.values()
        for assignment in aws.client("sso-admin").list_account_assignments(
            InstanceArn=organization.sso_instance_arn, AccountId=account_id, PermissionSetArn=arn
        )["AccountAssignments"]
    ]


def identity_user_names(aws) -> set[str]:
    store = AwsOrganization.load().identity_store_id
    return {user["UserName"] for user in aws.client("identitystore").list_users(IdentityStoreId=store)["Users"]}


def attached_policy_ids(aws, account_id: str) -> set[str]:
    found = aws.client("organizations").list_policies_for_target(TargetId=account_id, Filter="SERVICE_CONTROL_POLICY")
    return {policy["Id"] for policy in found["Policies"]}


def contacts_of(account_id: str) -> dict[str, dict | None]:
    return {kind: account_mgmt.alternate_contact(account_id, kind) for kind in CONTACT_TYPES}
