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
