"""The portal's side of LTI 1.3: which LMS course a portal course follows, and the launches seen.

The platforms themselves (issuer, client id, deployments, their keys' address) and the LMS's
contexts, users and memberships are django-lti's models (`lti_tool`).
"""

from django.conf import settings
from django.db import models
from lti_tool.models import LtiContext, LtiRegistration

from accounts_app.models import Course


class PlatformTrust(models.Model):
    """What the portal takes from a registered LMS on its word: the email domains it speaks for.

    A launch signs in the portal user who holds the launch's email address only at one of these
    domains, as a campus identity provider does (accounts_app/sso.py): the LMS's administrator
    could otherwise launch as anyone, the portal's own administrators included.
    """

    registration = models.OneToOneField(LtiRegistration, on_delete=models.CASCADE, related_name="trust")
    email_domains = models.JSONField(
        default=list, blank=True, help_text='e.g. ["example.edu"]: launches sign in people at these domains only.'
    )

    def __str__(self) -> str:
        return f"{self.registration}: {', '.join(self.email_domains) or 'no domain'}"


class LmsCourseLink(models.Model):
    """A portal course that follows an LMS course (an LTI context): its launches land in it,
    and the LMS's names and roles service keeps its roster."""

    course = models.OneToOneField(Course, on_delete=models.CASCADE, related_name="lms_link")
    context = models.OneToOneField(LtiContext, on_delete=models.PROTECT, related_name="portal_link")
    linked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    linked_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.course.code} ← {self.context.title or self.context.id_on_platform}"


class UsedLaunchNonce(models.Model):
    """A launch's nonce, kept once the launch was accepted so that the same signed launch
    cannot be played again (PyLTI1p3 checks that the nonce was issued, not that it is unused)."""

    issuer = models.CharField(max_length=255)
    nonce = models.CharField(max_length=255)
    used_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "nonce"], name="lti_nonce_used_once")]

    def __str__(self) -> str:
        return f"{self.issuer} {self.nonce}"


class RosterFetchTrigger(models.TextChoices):
    LAUNCH = "launch", "The sync at a launch"
    NIGHTLY = "nightly", "The nightly sync"
    ON_DEMAND = "on_demand", "Sync now"


class RosterFetchStatus(models.TextChoices):
    PENDING = "pending", "Asking the LMS"
    FETCHED = "fetched", "Waiting for an instructor"
    APPLIED = "applied", "Applied"
    FAILED = "failed", "Failed"
    SUPERSEDED = "superseded", "Replaced by a newer list"


class LmsRosterFetch(models.Model):
    """One ask of the LMS's names and roles service for a linked course's members, and what
    became of the list: applied at once (an automatic sync), or kept for an instructor to look at
    (their own Sync now, or an automatic sync that would remove too many students)."""

    link = models.ForeignKey(LmsCourseLink, on_delete=models.CASCADE, related_name="roster_fetches")
    trigger = models.CharField(max_length=20, choices=RosterFetchTrigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=20, choices=RosterFetchStatus.choices, default=RosterFetchStatus.PENDING)
    # The people the LMS lists, as the roster takes them: [{"email", "name", "role"}].
    members = models.JSONField(default=list, blank=True)
    # Members the roster cannot take, and why (no email address, no role the portal uses).
    skipped = models.JSONField(default=list, blank=True)
    # What the list would do or did: how many people are added, updated, removed, unchanged.
    summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    fetched_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    applied_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.link.course.code}: {self.get_trigger_display()} ({self.get_status_display()})"
