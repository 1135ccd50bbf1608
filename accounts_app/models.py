from __future__ import annotations

import functools
import secrets
import uuid
from datetime import date, datetime, time, timedelta
from typing import ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import OuterRef, Q, Subquery
from django.db.models.sql import Query
from django.utils import timezone

from accounts_app.choices import (
    AccessMode,
    AccountOrigin,
    AccountState,
    AuditAction,
    BudgetPeriod,
    CourseRole,
    EndPolicy,
    HandoverStatus,
    InviteStatus,
    MembershipSource,
    WebhookDeliveryStatus,
    WebhookKind,
    WebhookTopic,
)
from accounts_app.crypto import WEBHOOK_PURPOSE, decrypt


def normalize_email(email: str) -> str:
    """One spelling per mailbox: surrounding blanks dropped, lower case throughout."""
    return email.strip().lower()


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **fields) -> User:
        user = self.model(email=normalize_email(email), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields) -> User:
        fields.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **fields)


class SignedInUserManager(UserManager):
    """The default manager, which Django's and allauth's sign-in backends load a session's user
    with: each user comes with what the middleware checks of every request
    (`permissions.request_user_facts`), in the same query. `User.objects` reads users plainly."""

    use_in_migrations = False

    def get_queryset(self) -> models.QuerySet[User]:
        from accounts_app.permissions import instructor_email_domains  # it reads these models

        users = super().get_queryset()
        # Annotating with the facts' subqueries anew cost every request about a millisecond of
        # Python (each subquery is copied and its aliases renamed); the annotated query is built
        # once per set of instructor domains, and each queryset gets a copy of it (the way
        # Django restores a pickled query).
        users.query = _signed_in_users_query(tuple(sorted(instructor_email_domains()))).chain()
        return users


@functools.lru_cache(maxsize=8)
def _signed_in_users_query(domains: tuple[str, ...]) -> Query:
    from accounts_app.permissions import request_user_facts  # it reads these models

    return User.objects.annotate(**request_user_facts(domains)).query


class User(AbstractUser):
    """A person who signs in. The email address is the login; there is no user name."""

    username = None  # type: ignore[assignment]
    first_name = None  # type: ignore[assignment]
    last_name = None  # type: ignore[assignment]
    email = models.EmailField("email address", unique=True)
    name = models.CharField(max_length=200, blank=True)
    is_instructor = models.BooleanField(
        default=False, help_text="May create courses. Administrators may always create courses."
    )

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    objects = UserManager()  # type: ignore[misc, assignment]
    signed_in = SignedInUserManager()

    class Meta(AbstractUser.Meta):
        default_manager_name = "signed_in"

    def __str__(self) -> str:
        return self.name or self.email

    def get_full_name(self) -> str:
        return self.name

    def get_short_name(self) -> str:
        return self.name or self.email


class CourseQuerySet(models.QuerySet["Course"]):
    def for_user(self, user) -> CourseQuerySet:
        """The courses `user` may see, each annotated with `viewer_role` (None for administrators
        who are not members)."""
        if not user.is_authenticated:
            return self.none()
        role = Membership.objects.filter(course=OuterRef("pk"), user=user).values("role")[:1]
        courses = self.annotate(viewer_role=Subquery(role))
        if user.is_staff:
            return courses
        return courses.filter(viewer_role__isnull=False)

    def active(self) -> CourseQuerySet:
        return self.filter(archived_at__isnull=True)


class Course(models.Model):
    name = models.CharField(max_length=200)
    code = models.SlugField(
        max_length=50,
        unique=True,
        help_text="Short unique code, e.g. cs101-fall26. Letters, digits and hyphens.",
    )
    term = models.CharField(max_length=50, help_text="e.g. Fall 2026")
    start_date = models.DateField()
    end_date = models.DateField()
    description = models.TextField(blank=True)
    budget_per_student = models.DecimalField("budget per student (USD)", max_digits=10, decimal_places=2)
    budget_period = models.CharField(
        "budget applies to", max_length=10, choices=BudgetPeriod.choices, default=BudgetPeriod.COURSE
    )
    freeze_at_percent = models.PositiveSmallIntegerField(
        "freeze at (% of budget)",
        default=100,
        help_text="An account is frozen when its spend reaches this share of its budget. 0 never freezes.",
    )
    budget_action_enabled = models.BooleanField(
        "AWS Budget action as a second line of defence",
        default=False,
        help_text="AWS itself attaches the freeze policy at 100% of the budget, even if the portal is down.",
    )
    spike_multiple = models.DecimalField(
        "daily spike alert (× recent median)",
        max_digits=5,
        decimal_places=2,
        default=3,
        help_text="Alert when a day's spend exceeds this multiple of the account's recent median.",
    )
    cost_tag_key = models.CharField(
        "cost allocation tag",
        max_length=128,
        blank=True,
        help_text="A tag key students put on their resources (e.g. project) to break spend down by.",
    )
    access_mode = models.CharField(max_length=20, choices=AccessMode.choices, default=AccessMode.IDENTITY_CENTER)
    end_policy = models.CharField(
        "end-of-course policy", max_length=20, choices=EndPolicy.choices, default=EndPolicy.CLOSE
    )
    allowed_regions = models.JSONField(default=list, help_text="AWS region codes students may use.")
    allowed_services = models.JSONField(
        default=list, help_text="AWS service prefixes students may use, e.g. ec2, s3, lambda."
    )
    allowed_instance_families = models.JSONField(
        "allowed EC2 instance families",
        default=list,
        blank=True,
        help_text="e.g. t3, t4g. Empty allows every instance type.",
    )
    bedrock_model_families = models.JSONField(
        "allowed Bedrock model families",
        default=list,
        blank=True,
        help_text="Bedrock model families students may invoke, e.g. anthropic.claude. Empty allows every "
        "model where Bedrock is an allowed service.",
    )
    billing_contact_email = models.EmailField()
    usage_alert_email = models.EmailField("usage-alert contact email")
    aws_ou_id = models.CharField("AWS OU id", max_length=100, blank=True)
    aws_scp_id = models.CharField("AWS SCP id", max_length=100, blank=True)
    guardrails_applied_at = models.DateTimeField(null=True, blank=True)
    guardrails_error = models.TextField(blank=True)
    # When the reconciler last compared the staff's Identity Center access with the roster.
    staff_access_checked_at = models.DateTimeField(null=True, blank=True)
    end_notice_days = models.PositiveSmallIntegerField(
        "warn students (days before the end)",
        default=7,
        help_text="Students are emailed this many days before the end date with what will happen to their account.",
    )
    grace_days = models.PositiveSmallIntegerField(
        "grace period (days)",
        default=14,
        help_text="Accounts are frozen at the end date; the end-of-course policy runs this many days later.",
    )
    handover_allowed = models.BooleanField(
        "students may ask to keep their account",
        default=True,
        help_text="Offers a “keep my account” button; an instructor approves each request.",
    )
    ended_at = models.DateTimeField(null=True, blank=True, help_text="When the accounts were frozen for the end.")
    end_notice_sent_for = models.DateField(
        null=True, blank=True, help_text="The end date students were last warned about."
    )
    join_code = models.CharField(max_length=20, unique=True, null=True, blank=True)
    join_code_enabled = models.BooleanField(default=False)
    join_code_expires_at = models.DateTimeField(
        "code works until", null=True, blank=True, help_text="Empty: until you turn it off."
    )
    join_code_max_joins = models.PositiveIntegerField(
        "most people who can join with the code",
        null=True,
        blank=True,
        help_text="Counted from when the code was made. Empty: no limit.",
    )
    join_code_joins = models.PositiveIntegerField(default=0, help_text="People who joined with the current code.")
    join_email_domains = models.JSONField(
        "email domains allowed to join",
        default=list,
        blank=True,
        help_text="e.g. school.edu: only people with a verified address there (or at a subdomain) "
        "can join with the code. Empty: any address.",
    )
    # A roster an outside system keeps (an LMS, through lms_app): which one, when its list was
    # last applied, why the last sync failed, and whether a list it sent waits for an instructor.
    roster_managed_by = models.CharField(
        max_length=300, blank=True, help_text="e.g. Canvas: CS 101. Empty: nobody outside the portal keeps the roster."
    )
    roster_synced_at = models.DateTimeField(null=True, blank=True)
    roster_sync_error = models.TextField(blank=True)
    roster_sync_awaiting_review = models.BooleanField(default=False)
    archived_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CourseQuerySet.as_manager()
    # The viewer's role, on the courses Course.objects.for_user() returns (None for administrators).
    viewer_role: str | None

    class Meta:
        ordering = ["-start_date", "code"]
        constraints = [
            models.CheckConstraint(condition=Q(end_date__gte=models.F("start_date")), name="course_dates_in_order"),
            models.CheckConstraint(condition=Q(budget_per_student__gt=0), name="course_budget_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.code}: {self.name}"

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None

    @property
    def is_ended(self) -> bool:
        return self.ended_at is not None

    @property
    def end_moment(self) -> datetime:
        """The end date is the last day of the course: accounts freeze as it is over."""
        day_after = self.end_date + timedelta(days=1)
        return timezone.make_aware(datetime.combine(day_after, time.min))

    @property
    def notice_date(self) -> date:
        return self.end_date - timedelta(days=self.end_notice_days)

    @property
    def grace_ends_at(self) -> datetime:
        return (self.ended_at or self.end_moment) + timedelta(days=self.grace_days)

    @property
    def join_is_open(self) -> bool:
        return self.join_code_enabled and bool(self.join_code) and not self.is_archived

    @staticmethod
    def normalize_join_code(raw: str) -> str:
        """Accept the code however it was typed: any case, with or without the hyphen."""
        letters = "".join(ch for ch in raw.upper() if ch.isalnum())
        return f"{letters[:4]}-{letters[4:]}" if len(letters) == 8 else letters

    @staticmethod
    def new_join_code() -> str:
        # Unambiguous characters only: the code is read aloud in class and typed on phones.
        alphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
        raw = "".join(secrets.choice(alphabet) for _ in range(8))
        return f"{raw[:4]}-{raw[4:]}"


class MembershipQuerySet(models.QuerySet["Membership"]):
    def visible_to(self, user, course: Course) -> MembershipQuerySet:
        """Roster entries of `course` that `user` may see: all of them for course staff and
        administrators, only their own for a student."""
        entries = self.filter(course=course)
        if user.is_staff or course.viewer_role in (CourseRole.INSTRUCTOR, CourseRole.TA):
            return entries
        return entries.filter(user=user)


class Membership(models.Model):
    """A person on a course roster, with their role. `user` is set once they sign in."""

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="memberships")
    email = models.EmailField()
    name = models.CharField(max_length=200, blank=True)
    role = models.CharField(max_length=20, choices=CourseRole.choices, default=CourseRole.STUDENT)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="memberships",
    )
    source = models.CharField(max_length=20, choices=MembershipSource.choices)
    invite_status = models.CharField(max_length=20, choices=InviteStatus.choices, default=InviteStatus.NOT_SENT)
    invited_at = models.DateTimeField(null=True, blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        ordering = ["role", "name", "email"]
        constraints = [
            models.UniqueConstraint(fields=["course", "email"], name="membership_unique_email"),
            models.UniqueConstraint(
                fields=["course", "user"],
                condition=Q(user__isnull=False),
                name="membership_unique_user",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.display_name} ({self.get_role_display()}, {self.course.code})"

    @property
    def display_name(self) -> str:
        return self.name or self.email


class RosterUpload(models.Model):
    """A CSV file waiting for the instructor to confirm its preview."""

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="roster_uploads")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    filename = models.CharField(max_length=255)
    content = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    applied_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.filename} for {self.course.code}"


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs):
        raise ValidationError("The audit log is append-only.")

    def delete(self):
        raise ValidationError("The audit log is append-only.")


class AuditEvent(models.Model):
    """One line of the append-only audit log: who did what, when, to which object."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text so the log still names the person after their user is deleted.
    actor_label = models.CharField(max_length=254)
    course = models.ForeignKey(Course, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events")
    action = models.CharField(max_length=40, choices=AuditAction.choices)
    object_type = models.CharField(max_length=50)
    object_id = models.CharField(max_length=50, blank=True)
    summary = models.CharField(max_length=500)
    data = models.JSONField(default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label}: {self.summary}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValidationError("The audit log is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError("The audit log is append-only.")


class AwsOrganization(models.Model):
    """What `aws_bootstrap` found and set up in the school's organization. One row."""

    organization_id = models.CharField(max_length=50, blank=True)
    management_account_id = models.CharField(max_length=12, blank=True)
    root_id = models.CharField(max_length=50, blank=True)
    parent_ou_id = models.CharField("portal OU id", max_length=100, blank=True)
    pool_ou_id = models.CharField("pool OU id", max_length=100, blank=True)
    # Directly under the organization's root: where an account waits to leave the organization.
    leaving_ou_id = models.CharField("leaving OU id", max_length=100, blank=True)
    leaving_policy_id = models.CharField("leaving OU SCP id", max_length=100, blank=True)
    sso_instance_arn = models.CharField(max_length=200, blank=True)
    identity_store_id = models.CharField(max_length=50, blank=True)
    access_portal_url = models.URLField(blank=True)
    permission_sets = models.JSONField(default=dict, blank=True, help_text="role → ARN")
    baseline_policies = models.JSONField(default=dict, blank=True, help_text="name → SCP id")
    freeze_policy_id = models.CharField(
        "freeze SCP id", max_length=100, blank=True, help_text="attached to frozen accounts, never to an OU"
    )
    trusted_services = models.JSONField(default=list, blank=True)
    account_limit = models.PositiveIntegerField(null=True, blank=True)
    # Every account in the organization counts against the quota, not only the portal's.
    accounts_in_organization = models.PositiveIntegerField(null=True, blank=True)
    bootstrapped_at = models.DateTimeField(null=True, blank=True)
    last_reconciled_at = models.DateTimeField(null=True, blank=True)
    drift = models.JSONField(default=list, blank=True, help_text="the reconciler's last findings")
    # Tag keys courses name that AWS would not activate as cost allocation tags, as of the last try.
    refused_cost_tags = models.JSONField(default=dict, blank=True, help_text="tag key → AWS's reason")
    # AWS's closure quota said no: the close queue waits until then (back pressure, not failure).
    close_paused_until = models.DateTimeField(null=True, blank=True)
    close_pause_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        verbose_name = "AWS organization"

    def __str__(self) -> str:
        return self.organization_id or "AWS organization (not set up)"

    @classmethod
    def load(cls) -> AwsOrganization:
        organization, _ = cls.objects.get_or_create(pk=1)
        return organization


class IdentityCenterUser(models.Model):
    """An IAM Identity Center user the portal created itself (PORTAL_IDENTITY_SOURCE=portal).

    The portal deletes no other user: not one synced from the school's directory, made by an
    administrator, or found already there when the portal first needed it.
    """

    identity_store_id = models.CharField(max_length=50)
    user_id = models.CharField(max_length=100)
    email = models.EmailField()
    created_by_portal_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "Identity Center user created by the portal"
        constraints = [
            models.UniqueConstraint(fields=["identity_store_id", "user_id"], name="identity_center_user_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.email} ({self.user_id})"


class MemberAccount(models.Model):
    """A student's AWS account (or a pre-created one waiting in a course's pool).

    One AWS account may have several records over its life: a recycled account's record stays
    with its course, its student and its costs (state RECYCLED), and a new record, without a
    course, takes the account back into the organization's pool.
    """

    # None for the organization's pool of recycled accounts, which belongs to no course.
    course = models.ForeignKey(Course, null=True, blank=True, on_delete=models.PROTECT, related_name="aws_accounts")
    membership = models.OneToOneField(
        Membership,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="aws_account",
    )
    state = models.CharField(max_length=30, choices=AccountState.choices, default=AccountState.REQUESTED, db_index=True)
    origin = models.CharField(max_length=20, choices=AccountOrigin.choices, default=AccountOrigin.CREATED)
    root_email = models.EmailField()
    account_name = models.CharField(max_length=50)
    # NULL, not "", until AWS gives the id: the unique constraint below must not see the records
    # without one as duplicates.
    aws_account_id = models.CharField("AWS account id", max_length=12, null=True, blank=True)  # noqa: DJ001
    create_request_id = models.CharField(max_length=100, blank=True)
    # Set, and committed, by the vending queue's run that takes the account (under the queue's
    # advisory lock) before its CreateAccount leaves: the next run counts it against AWS's rate,
    # and the record says that the request may have reached AWS. A worker that dies on the way
    # leaves it CREATING without a request id: its first look finds the creation by name (or the
    # account by root email), or, once AWS has had the time to list it, sends it again. It stays
    # set when the record goes back to the queue, whose next run then looks before sending.
    create_submitted_at = models.DateTimeField(null=True, blank=True, db_index=True)
    handshake_id = models.CharField(max_length=100, blank=True)
    # A student's own account: the roster entry that asked to bring it. Unlike `membership`, it
    # stays on a declined request, so that every request counts against the student's cap.
    brought_by = models.ForeignKey(
        Membership, null=True, blank=True, on_delete=models.SET_NULL, related_name="brought_accounts"
    )
    # A brought account's access role trusts only the portal from this moment on: older sessions
    # of the role, which the student may have opened before, are refused from then.
    access_role_secured_at = models.DateTimeField(null=True, blank=True)
    identity_store_user_id = models.CharField(max_length=100, blank=True)
    iam_user_name = models.CharField("IAM user name", max_length=64, blank=True)
    account_alias = models.CharField(max_length=63, blank=True)
    one_time_password = models.TextField(blank=True, help_text="Encrypted; erased once shown to the student.")
    last_error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # Set with a transition that changes whether the freeze SCP belongs on the account (frozen,
    # ended, ready again); cleared by the task that made AWS match (services/freezing.py).
    freeze_sync_pending = models.BooleanField(default=False)
    end_excluded = models.BooleanField(
        "kept out of the end of course",
        default=False,
        help_text="The end-of-course workflow leaves this account alone until an instructor decides.",
    )
    # Costs of days before this date belong to the account's previous record (recycling).
    costs_since = models.DateField(null=True, blank=True)
    # A recycled account is not given to anyone before this moment (the billing cool-down).
    available_from = models.DateTimeField(null=True, blank=True)
    # Set with the move to CLOSING, before CloseAccount is sent, in the close dispatcher's
    # transaction (the organization row is its lock), and committed with it after the request:
    # the closure quota and the interval between requests count it. Cleared when AWS refuses the
    # request or never got it. A round that dies before its commit leaves the account
    # CLOSE_QUEUED: the next round finds it PENDING_CLOSURE in AWS and follows it, without asking
    # again.
    close_submitted_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # When the portal works on the account next: a creation's poll, a retry, a cleanup pass, or the
    # step just queued (if the broker loses that message, beat's due tick queues the step again
    # then). Written in the database with the change that schedules the work, so that a lost
    # countdown, a dead worker or an emptied broker delays the step by a tick, never forever.
    # None while the account waits for nothing the portal schedules (lifecycle.SCHEDULED_STATES).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    cleanup_report = models.JSONField(default=dict, blank=True)
    # What a freeze stopped in the account (and an unfreeze brought back): services/spending.py.
    spending_report = models.JSONField(default=dict, blank=True)
    state_changed_at = models.DateTimeField(auto_now_add=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["course", "created_at"]
        constraints = [
            # A recycled record keeps the account's id and root email as history; every other
            # record names a different account.
            models.UniqueConstraint(
                fields=["aws_account_id"],
                condition=~Q(state=AccountState.RECYCLED),
                name="member_account_unique_aws_id",
            ),
            models.UniqueConstraint(
                fields=["root_email"],
                condition=~Q(state=AccountState.RECYCLED),
                name="member_account_unique_root_email",
            ),
        ]
        indexes = [
            # The due tick reads the few accounts due now among many that wait for nothing.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(next_attempt_at__isnull=False),
                name="member_account_due",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_name} ({self.get_state_display()})"

    @property
    def is_pooled(self) -> bool:
        return self.membership_id is None

    # Groups of states the pages test, named in accounts_app/lifecycle.py (which imports this
    # module, hence the imports inside).
    @property
    def is_under_freeze(self) -> bool:
        """Frozen for its budget or for the end of the course."""
        from accounts_app.lifecycle import FROZEN_STATES

        return self.state in FROZEN_STATES

    @property
    def is_in_handover(self) -> bool:
        from accounts_app.lifecycle import HANDOVER_STATES

        return self.state in HANDOVER_STATES

    @property
    def is_retiring(self) -> bool:
        """The end policy runs on it: cleanup, then closure."""
        from accounts_app.lifecycle import RETIRING_STATES

        return self.state in RETIRING_STATES

    @property
    def is_retired(self) -> bool:
        """Closed, or returned to the organization's pool."""
        from accounts_app.lifecycle import RETIRED_STATES

        return self.state in RETIRED_STATES

    @property
    def bring_declinable(self) -> bool:
        """A request to bring a student's own account that an instructor may still turn down: one
        waiting for approval, or one that failed before the account joined the organization (a
        record keeps its handshake id from the accepted invitation on)."""
        if self.origin != AccountOrigin.INVITED:
            return False
        return self.state == AccountState.AWAITING_APPROVAL or (
            self.state == AccountState.FAILED and not self.handshake_id
        )


class OrganizationInvitation(models.Model):
    """One invitation (an AWS handshake) the portal sent to a student's own account.

    Saved before InviteAccountToOrganization is sent: the organization's daily invitation quota
    counts these rows, and a handshake is the portal's own only when its id is stored here or its
    notes carry this row's `reference` (after a lost answer).
    """

    account = models.ForeignKey(MemberAccount, on_delete=models.CASCADE, related_name="invitations")
    reference = models.CharField(max_length=32, unique=True)
    handshake_id = models.CharField(max_length=100, blank=True)
    sent_at = models.DateTimeField(db_index=True)
    # AWS answered HANDSHAKE_RATE_LIMIT_EXCEEDED: no handshake was made, and none counted.
    rate_limited = models.BooleanField(default=False)

    class Meta:
        ordering = ["sent_at", "id"]

    def __str__(self) -> str:
        return f"{self.account_id}: {self.handshake_id or self.reference}"


class AccountEvent(models.Model):
    """One transition of a member account, written by lifecycle.transition() only."""

    account = models.ForeignKey(MemberAccount, on_delete=models.CASCADE, related_name="events")
    from_state = models.CharField(max_length=30, choices=AccountState.choices)
    to_state = models.CharField(max_length=30, choices=AccountState.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.account_id}: {self.from_state} → {self.to_state}"


class Handover(models.Model):
    """A student's request to keep their AWS account, and how far its handover has got.

    Each step stamps its own time, so a crash or a retried task resumes where it stopped.
    """

    account = models.OneToOneField(MemberAccount, on_delete=models.CASCADE, related_name="handover")
    status = models.CharField(max_length=20, choices=HandoverStatus.choices, default=HandoverStatus.REQUESTED)
    new_root_email = models.EmailField("your own email address")
    contact_name = models.CharField("your full name", max_length=64)
    contact_phone = models.CharField(
        "your phone number", max_length=25, help_text="With the country code, e.g. +1 555 0100. AWS may call it."
    )
    # The account's state before the request, restored if the request is declined.
    previous_state = models.CharField(max_length=30, choices=AccountState.choices)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    requested_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decline_reason = models.TextField(blank=True)
    code_sent_at = models.DateTimeField(null=True, blank=True)
    root_email_moved_at = models.DateTimeField(null=True, blank=True)
    contacts_set_at = models.DateTimeField(null=True, blank=True)
    access_removed_at = models.DateTimeField(null=True, blank=True)
    student_ready_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    # Cancelled by the student or an instructor, or timed out: why, for both to read.
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.TextField(blank=True)
    # The account is back in its course's OU, in its previous state (after a cancellation).
    returned_at = models.DateTimeField(null=True, blank=True)
    # What AWS said stops the account from leaving: [{"reason": …, "message": …}].
    blockers = models.JSONField(default=list, blank=True)
    last_error = models.TextField(blank=True)
    # The one-time code the student typed (encrypted), until the task that gives it to AWS takes it.
    pending_code = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Handover of {self.account.account_name} ({self.get_status_display()})"


def all_webhook_topics() -> list[str]:
    return list(WebhookTopic.values)


class WebhookEndpoint(models.Model):
    """Where alerts about money are posted besides email: a course's, set by its instructors on
    the course's settings, or the whole school's (no course), set by administrators in the
    Django admin. The address and the signing secret are encrypted: a Slack or Teams address is
    itself the key to post in the channel."""

    course = models.ForeignKey(
        Course,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="webhooks",
        help_text="Empty: the whole school's alerts.",
    )
    name = models.CharField(max_length=100, help_text="e.g. #cs101-staff")
    kind = models.CharField(max_length=20, choices=WebhookKind.choices)
    topics = models.JSONField(default=all_webhook_topics, help_text="WebhookTopic values it is sent.")
    url_encrypted = models.TextField()
    url_shown = models.CharField(max_length=300, help_text="The address without its secret part.")
    secret_encrypted = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # The last attempt of any message, for the settings page.
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # Not a column: the settings page's last few messages, set by selectors.course_webhooks.
    recent: list[WebhookDelivery]

    class Meta:
        ordering = ["course_id", "name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def url(self) -> str | None:
        """None when it cannot be decrypted (DJANGO_SECRET_KEY changed without a fallback)."""
        return decrypt(self.url_encrypted, purpose=WEBHOOK_PURPOSE)

    @property
    def secret(self) -> str | None:
        if not self.secret_encrypted:
            return ""
        return decrypt(self.secret_encrypted, purpose=WEBHOOK_PURPOSE)

    @property
    def topic_labels(self) -> list[str]:
        return [WebhookTopic(topic).label for topic in self.topics if topic in WebhookTopic.values]

    @property
    def is_failing(self) -> bool:
        """Its last attempt failed (a message may still be retried)."""
        if self.last_attempt_at is None:
            return False
        return self.last_success_at is None or self.last_success_at < self.last_attempt_at


def new_webhook_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


class WebhookDelivery(models.Model):
    """One message to one endpoint, with what came of its attempts. The body is made when the
    alert is decided; the message id stays the same across attempts, so that a receiver can
    drop a message it already has."""

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    message_id = models.CharField(max_length=40, unique=True, default=new_webhook_message_id)
    event = models.CharField(max_length=50)
    payload = models.JSONField()
    status = models.CharField(
        max_length=20, choices=WebhookDeliveryStatus.choices, default=WebhookDeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["endpoint", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.event} to {self.endpoint}: {self.get_status_display()}"
