"""The course's billing and usage contacts become the student account's alternate contacts."""

import pytest

from accounts_app.choices import AccountState
from accounts_app.models import MemberAccount, Membership
from accounts_app.services.account_requests import account_request
from portal.aws import account_mgmt


@pytest.mark.django_db(transaction=True)
def test_a_ready_account_has_the_courses_contacts(personas, aws, settings):
    settings.PORTAL_CONTACT_PHONE = "+1 555 0100"
    student = Membership.objects.get(user=personas.student)

    account_request(actor=personas.student, membership=student)

    account = MemberAccount.objects.get(membership=student)
    assert account.state == AccountState.READY
    billing = account_mgmt.alternate_contact(account.aws_account_id, "BILLING")
    operations = account_mgmt.alternate_contact(account.aws_account_id, "OPERATIONS")
    assert billing["EmailAddress"] == personas.course.billing_contact_email
    assert operations["EmailAddress"] == personas.course.usage_alert_email
    assert billing["PhoneNumber"] == "+1 555 0100"
    assert billing["Title"] == "Cloud Computing (cs101)"


@pytest.mark.django_db(transaction=True)
def test_without_a_school_phone_the_contacts_are_left_alone(personas, aws, settings):
    settings.PORTAL_CONTACT_PHONE = ""
    student = Membership.objects.get(user=personas.student)

    account_request(actor=personas.student, membership=student)

    account = MemberAccount.objects.get(membership=student)
    assert account.state == AccountState.READY
    assert account_mgmt.alternate_contact(account.aws_account_id, "BILLING") is None


@pytest.mark.django_db
def test_setting_the_same_contact_twice_writes_once(aws):
    account_id = aws.client("organizations").create_account(Email="a@school.example", AccountName="a")[
        "CreateAccountStatus"
    ]["AccountId"]
    writes = []
    aws.add_hook("before-call.account.PutAlternateContact", lambda **kwargs: writes.append(1))
    contact = {"kind": "BILLING", "name": "Billing", "email": "b@school.example", "phone": "+1 555 0100", "title": "T"}

    account_mgmt.set_alternate_contact(account_id, **contact)
    account_mgmt.set_alternate_contact(account_id, **contact)

    assert len(writes) == 1
    assert account_mgmt.alternate_contact(account_id, "BILLING")["Name"] == "Billing"
