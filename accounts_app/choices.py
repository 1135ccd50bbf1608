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
    LMS = "lms", "From the LMS"


class AuditAction(models.TextChoices):
    COURSE_CREATED = "course.created", "Course created"
    COURSE_UPDATED = "course.updated", "Course edited"
    COURSE_ARCHIVED = "course.archived", "Course archived"
    COURSE_UNARCHIVED = "course.unarchived", "Course restored"
    ROSTER_IMPORTED = "roster.imported", "Roster imported"
    ROSTER_SYNCED = "roster.synced", "Roster synced"
    ROSTER_SYNC_HELD = "roster.sync_held", "Roster sync held for review"
    ROSTER_SYNC_FAILED = "roster.sync_failed", "Roster sync failed"
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
    ACCOUNT_BRING_APPROVED = "account.bring_approved", "Existing AWS account approved"
    ACCOUNT_BRING_DECLINED = "account.bring_declined", "Existing AWS account declined"
    ACCESS_ROLE_SECURED = "account.access_role_secured", "Access role locked to the portal"
    ACCOUNTS_PRECREATED = "account.precreated", "AWS accounts pre-created"
    ACCOUNT_PASSWORD_REVEALED = "account.password_revealed", "First password shown"
    GUARDRAILS_APPLIED = "course.guardrails_applied", "Guardrails applied"
    AWS_BOOTSTRAPPED = "aws.bootstrapped", "AWS organization set up"
    ACCOUNT_FROZEN = "account.frozen", "AWS account frozen"
    ACCOUNT_UNFROZEN = "account.unfrozen", "AWS account unfrozen"
    SPENDING_STOPPED = "account.spending_stopped", "What bills in the account stopped"
    SPENDING_RESTORED = "account.spending_restored", "What the freeze stopped brought back"
    BUDGET_RAISED = "budget.raised", "Budget raised"
    COURSE_ENDING_NOTIFIED = "course.ending_notified", "Students told the course is ending"
    COURSE_ENDED = "course.ended", "Course ended"
    COURSE_EXTENDED = "course.extended", "Course extended"
    ACCOUNT_EXCLUDED = "account.excluded_from_end", "Kept out of the end of course"
    ACCOUNT_INCLUDED = "account.included_in_end", "Put back into the end of course"
    ACCOUNT_ENDED = "account.ended", "End-of-course policy started"
    ACCOUNT_CLEANED = "account.cleaned", "AWS account cleaned up"
    ACCOUNT_CLOSE_REQUESTED = "account.close_requested", "AWS account closure requested"
    ACCOUNT_CLOSED = "account.closed", "AWS account closed"
    ACCOUNT_RECYCLED = "account.recycled", "AWS account returned to the pool"
    HANDOVER_REQUESTED = "handover.requested", "Asked to keep the account"
    HANDOVER_APPROVED = "handover.approved", "Handover approved"
    HANDOVER_DECLINED = "handover.declined", "Handover declined"
    HANDOVER_STEP = "handover.step", "Handover step done"
    HANDOVER_COMPLETED = "handover.completed", "Account handed over"
    STAFF_ACCESS_CHANGED = "staff.access_changed", "Staff AWS access changed"
    WEBHOOK_ADDED = "webhook.added", "Webhook added"
    WEBHOOK_REMOVED = "webhook.removed", "Webhook removed"
    BUDGET_REQUESTED = "budget.requested", "Higher budget asked for"
    BUDGET_REQUEST_APPROVED = "budget.request_approved", "Higher budget approved"
    BUDGET_REQUEST_DECLINED = "budget.request_declined", "Higher budget declined"
    SCHEDULE_CHANGED = "course.schedule_changed", "Schedule changed"
    SCHEDULE_STOPPED = "account.schedule_stopped", "Stopped by the schedule"
    SCHEDULE_RESTART = "account.schedule_restart", "Started again after the schedule"
    LMS_PLATFORM_REGISTERED = "lms.platform_registered", "LMS registered with the portal"
    LTI_KEY_CREATED = "lms.key_created", "LTI signing key created"


class AccountState(models.TextChoices):
    """Where a student's AWS account is in its life; see accounts_app/lifecycle.py."""

    REQUESTED = "requested", "Waiting in the queue"
    AWAITING_APPROVAL = "awaiting_approval", "Waiting for your instructor to approve"
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
    HANDOVER_REQUESTED = "handover_requested", "Asked to keep the account"
    HANDOVER = "handover", "Being handed over to the student"
    HANDED_OVER = "handed_over", "Handed over to the student"
    ENDED = "ended", "Frozen: the course has ended"
    CLEANING = "cleaning", "Removing access and resources"
    CLOSE_QUEUED = "close_queued", "Waiting to be closed"
    CLOSING = "closing", "AWS is closing the account"
    CLOSED = "closed", "Closed"
    RECYCLED = "recycled", "Returned to the pool"
    COOLING_DOWN = "cooling_down", "Cooling down before reuse"
    FAILED = "failed", "Needs attention"
    DECLINED = "declined", "Declined by the instructor"


class BudgetPeriod(models.TextChoices):
    MONTHLY = "monthly", "Every month"
    COURSE = "course", "The whole course"


class AccountOrigin(models.TextChoices):
    CREATED = "created", "Created by the portal"
    INVITED = "invited", "Existing account, invited"


class HandoverStatus(models.TextChoices):
    REQUESTED = "requested", "Waiting for an instructor"
    APPROVED = "approved", "Approved: in progress"
    DECLINED = "declined", "Declined"
    COMPLETED = "completed", "Handed over"
    CANCELLED = "cancelled", "Cancelled"


class SpendingStatus(models.TextChoices):
    """What a freeze did to one resource in the account (MemberAccount.spending_report)."""

    STOPPING = "stopping", "Being stopped"  # written down before the call: it may be stopped
    STOPPED = "stopped", "Stopped"
    NOT_STOPPED = "not stopped", "Not stopped"
    RESTORED = "brought back", "Brought back"
    NOT_RESTORED = "not brought back", "Not brought back"


class WebhookKind(models.TextChoices):
    SLACK = "slack", "Slack incoming webhook"
    TEAMS = "teams", "Microsoft Teams incoming webhook"
    SIGNED_JSON = "signed_json", "JSON signed with HMAC-SHA256 (your own service)"


class WebhookTopic(models.TextChoices):
    """What a webhook endpoint is sent; each alert belongs to one topic."""

    BUDGET_ALERTS = "budget_alerts", "Budget thresholds crossed, forecasts and unusual days"
    FREEZES = "freezes", "Accounts frozen, and what each freeze stopped"
    BUDGET_REQUESTS = "budget_requests", "Students asking for a higher budget, and the answers"


class WebhookDeliveryStatus(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    RETRYING = "retrying", "Failed; trying again"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Not delivered"
