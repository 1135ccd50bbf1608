from django.db import models


class CourseRole(models.TextChoices):
    INSTRUCTOR = "instructor", "Instructor"
    TA = "ta", "TA"
    STUDENT = "student", "Student"


# Roles that may see the whole roster; only instructors may change it.
STAFF_ROLES = frozenset({CourseRole.INSTRUCTOR, CourseRole.TA})


class AccessMode(models.TextChoices):
    IDENTITY_CENTER = "identity_center", "IAM Identity Center (single sign-on)"
    IAM_USER = "iam_user", "IAM user in the student's account"


class EndPolicy(models.TextChoices):
    CLOSE = "close", "Close the accounts"
    RECYCLE = "recycle", "Clean the accounts and return them to a pool"
    KEEP = "keep", "Let students keep their accounts"


class InviteStatus(models.TextChoices):
    NOT_SENT = "not_sent", "Not invited yet"
    SENT = "sent", "Invited"
    ACCEPTED = "accepted", "Joined"


class MembershipSource(models.TextChoices):
    IMPORT = "import", "Roster import"
    JOIN_CODE = "join_code", "Join code"
    MANUAL = "manual", "Added by hand"


class AuditAction(models.TextChoices):
    COURSE_CREATED = "course.created", "Course created"
    COURSE_UPDATED = "course.updated", "Course edited"
    COURSE_ARCHIVED = "course.archived", "Course archived"
    COURSE_UNARCHIVED = "course.unarchived", "Course restored"
    ROSTER_IMPORTED = "roster.imported", "Roster imported"
    MEMBER_ADDED = "member.added", "Person added"
    MEMBER_ROLE_CHANGED = "member.role_changed", "Role changed"
    MEMBER_REMOVED = "member.removed", "Person removed"
    INVITATIONS_SENT = "invite.sent", "Invitations sent"
    INVITE_ACCEPTED = "invite.accepted", "Invitation accepted"
    JOIN_CODE_ENABLED = "join_code.enabled", "Join code turned on"
    JOIN_CODE_ROTATED = "join_code.rotated", "Join code changed"
    JOIN_CODE_DISABLED = "join_code.disabled", "Join code turned off"
    JOINED_WITH_CODE = "member.joined", "Joined with the course code"
    INSTRUCTOR_GRANTED = "user.instructor_granted", "Instructor rights granted"
    INSTRUCTOR_REVOKED = "user.instructor_revoked", "Instructor rights taken away"
    ACCOUNT_REQUESTED = "account.requested", "AWS account requested"
    ACCOUNT_RETRIED = "account.retried", "AWS account retried"
    ACCOUNTS_PRECREATED = "account.precreated", "AWS accounts pre-created"
    ACCOUNT_PASSWORD_REVEALED = "account.password_revealed", "First password shown"
    GUARDRAILS_APPLIED = "course.guardrails_applied", "Guardrails applied"
    AWS_BOOTSTRAPPED = "aws.bootstrapped", "AWS organization set up"
    ACCOUNT_FROZEN = "account.frozen", "AWS account frozen"
    ACCOUNT_UNFROZEN = "account.unfrozen", "AWS account unfrozen"
    BUDGET_RAISED = "budget.raised", "Budget raised"


class AccountState(models.TextChoices):
    """Where a student's AWS account is in its life; see accounts_app/lifecycle.py."""

    REQUESTED = "requested", "Waiting in the queue"
    CREATING = "creating", "AWS is creating the account"
    INVITING = "inviting", "Inviting your existing account"
    INVITED = "invited", "Waiting for you to accept the invitation"
    AWAITING_ACCESS_ROLE = "awaiting_access_role", "Waiting for you to create the access role"
    CONFIGURING = "configuring", "Setting up guardrails and sign-in"
    WAITING_FOR_DIRECTORY = "waiting_for_directory", "Waiting for the school directory"
    WAITING_FOR_QUOTA = "waiting_for_quota", "Waiting for the organization's account quota"
    POOLED = "pooled", "Ready in the pool"
    READY = "ready", "Ready"
    FROZEN = "frozen", "Frozen: budget used up"
    FAILED = "failed", "Needs attention"


class BudgetPeriod(models.TextChoices):
    MONTHLY = "monthly", "Every month"
    COURSE = "course", "The whole course"


class AccountOrigin(models.TextChoices):
    CREATED = "created", "Created by the portal"
    INVITED = "invited", "Existing account, invited"
