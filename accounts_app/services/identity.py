"""Whose is this AWS account, OU or policy? The portal's names and tags.

A name or a root email proves nothing: anyone who may create accounts, OUs or policies in the
organization can choose them, two portals in one organization compute the same ones, and a course
code can be freed and reused. So everything the portal creates carries its tags, and the portal
takes nothing it finds by name or email for its own unless AWS shows them:

- `managed-by: classroom-cloud-portal`;
- `portal-ou`: the id of the portal's OU, which marks this installation of the portal;
- `course-id`: the course's database id, which never changes and is never reused (codes are);
- on an account, `record-key`: a hash of the root email its record asked for, which binds the
  tags to that one record (a record, and a course's, root email holds the course's id).

Course OUs and SCPs are named after the course's id, not its code, in a form no course code can
take (codes are slugs, these names hold spaces).
"""

from __future__ import annotations

import hashlib

from accounts_app.models import AwsOrganization, Course, MemberAccount
from accounts_app.services.ownership import MANAGED_BY_TAG
from portal.aws import organizations

PORTAL_OU_TAG = "portal-ou"
COURSE_ID_TAG = "course-id"
RECORD_TAG = "record-key"
# For people reading the Organizations console; never used to find or trust anything.
COURSE_CODE_TAG = "course"
STUDENT_TAG = "student"
# An account in the organization's pool belongs to no course and no record yet.
POOL = "pool"
# Every tag that ties an account to the school: a handover removes them all.
# The course's tags go before the account leaves; the portal's own tag stays until it has left:
# the portal's IAM role removes from the organization only accounts that carry it.
SCHOOL_TAG_KEYS = [PORTAL_OU_TAG, COURSE_ID_TAG, RECORD_TAG, COURSE_CODE_TAG, STUDENT_TAG]


class NotThePortals(Exception):
    """AWS does not show the thing found as the portal's; the message, for staff, says why."""


def portal_marker() -> str:
    return AwsOrganization.load().parent_ou_id


def record_key(account: MemberAccount) -> str:
    # Not the record's database id: a demo reset or a restored backup makes new records for the
    # same course and student, which should find the accounts the portal made for them.
    return hashlib.sha256(account.root_email.lower().encode()).hexdigest()[:16]


def record_tags(account: MemberAccount) -> dict[str, str]:
    """The tags that make an account this record's: the portal's, this portal's, the course's
    and the record's own."""
    return {
        **MANAGED_BY_TAG,
        PORTAL_OU_TAG: portal_marker(),
        COURSE_ID_TAG: str(account.course_id) if account.course_id else POOL,
        RECORD_TAG: record_key(account),
    }


def account_tags(account: MemberAccount) -> dict[str, str]:
    """The tags of a member account: CreateAccount sends them, configuring puts them back."""
    return {
        **record_tags(account),
        COURSE_CODE_TAG: account.course.code if account.course_id else POOL,
        STUDENT_TAG: account.membership.email if account.membership_id else POOL,
    }


def pool_tags(account: MemberAccount) -> dict[str, str]:
    """The tags of an account returned to the organization's pool: no course, no student, and
    the same record key, as its pool record keeps the account's root email."""
    return {
        **MANAGED_BY_TAG,
        PORTAL_OU_TAG: portal_marker(),
        COURSE_ID_TAG: POOL,
        RECORD_TAG: record_key(account),
        COURSE_CODE_TAG: POOL,
        STUDENT_TAG: POOL,
    }


def course_tags(course: Course, organization: AwsOrganization) -> dict[str, str]:
    """The tags of a course's OU and SCP."""
    return {**MANAGED_BY_TAG, PORTAL_OU_TAG: organization.parent_ou_id, COURSE_ID_TAG: str(course.pk)}


def course_ou_name(course: Course) -> str:
    return f"Course {course.pk}"


def course_policy_name(course: Course, organization: AwsOrganization) -> str:
    # SCP names are unique in the whole organization: the portal's OU id keeps two portals apart.
    return f"Classroom Cloud course {course.pk} in {organization.parent_ou_id}"


def _mismatches(found: dict[str, str], wanted: dict[str, str]) -> list[str]:
    return [
        f"{key}={found.get(key, '(none)')} instead of {value}"
        for key, value in wanted.items()
        if found.get(key) != value
    ]


def account_adoption_check(account: MemberAccount, aws_account_id: str) -> None:
    """Raise NotThePortals unless the account AWS found (by this record's root email or account
    name, or as the outcome of a creation request found by name) carries the tags the portal
    gave this very record when it asked for it. Nothing is moved or tagged before this passes."""
    wanted = record_tags(account)
    found = organizations.account_tags(aws_account_id)
    wrong = _mismatches(found, wanted)
    if not wrong:
        return
    key, value = next(iter(MANAGED_BY_TAG.items()))
    found_as = (
        f"AWS account {aws_account_id} has this record's root email (or came from a creation request with its name)"
    )
    fix = f"Find out whose it is; if it is this record's, give it the tags {_tag_text(wanted)} and retry."
    if found.get(key) != value:
        raise NotThePortals(
            f"{found_as} but is not the portal's: it lacks the tag {key}={value}, and the portal adopts only "
            f"accounts it created for the record. {fix}"
        )
    raise NotThePortals(
        f"{found_as} but its tags do not say it is this record's ({'; '.join(wrong)}): it is not adopted. {fix}"
    )


def account_claim_check(account: MemberAccount) -> dict[str, str]:
    """Raise NotThePortals unless the record's account carries the record's own tags (the
    portal's, this portal's and the record's key), checked before configuring moves and tags it.
    The course tag may differ: an account taken from the pool moves on to a student's course.
    Returns the tags AWS showed."""
    wanted = {key: value for key, value in record_tags(account).items() if key != COURSE_ID_TAG}
    found = organizations.account_tags(account.aws_account_id)
    wrong = _mismatches(found, wanted)
    if wrong:
        raise NotThePortals(
            f"AWS account {account.aws_account_id} does not carry this record's tags ({'; '.join(wrong)}): the "
            f"portal moves and sets up only the accounts it created or invited for the record. Find out whose "
            f"it is; if it is this record's, give it the tags {_tag_text(wanted)} and retry."
        )
    return found


def course_resource_check(kind: str, resource_id: str, course: Course, organization: AwsOrganization) -> None:
    """Raise NotThePortals unless an OU or SCP found by its name carries this course's tags."""
    wanted = course_tags(course, organization)
    wrong = _mismatches(organizations.resource_tags(resource_id), wanted)
    if wrong:
        raise NotThePortals(
            f"The {kind} {resource_id} has the name the portal gives course {course.pk} ({course.code}) but "
            f"not its tags ({'; '.join(wrong)}): the portal neither uses nor changes it. Rename or delete "
            f"it if it is not the course's; if it is, tag it with {_tag_text(wanted)}."
        )


def _tag_text(tags: dict[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in tags.items())
