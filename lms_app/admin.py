"""Registering an LMS by hand (docs/LMS.md): django-lti's registration admin, with the email
domains the LMS is trusted for, its deployments to activate, and the portal's addresses the LMS's
administrator types in."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, Q
from django.utils.html import format_html, format_html_join
from lti_tool.admin import LtiRegistrationAdmin
from lti_tool.models import LtiDeployment, LtiRegistration

from lms_app.forms import PlatformTrustForm
from lms_app.models import PlatformTrust
from lms_app.services.keys import lti_key_ensure
from lms_app.tool_configuration import ToolUrls


class PlatformTrustInline(admin.StackedInline):
    model = PlatformTrust
    form = PlatformTrustForm
    can_delete = False
    verbose_name = verbose_name_plural = "Trusted for"


class DeploymentInline(admin.TabularInline):
    """django-lti adds a deployment it has not seen at its first launch, inactive: a launch of an
    inactive deployment is refused until an administrator ticks it here."""

    model = LtiDeployment
    extra = 0
    fields = ["deployment_id", "is_active", "platform_instance", "datetime_created"]
    readonly_fields = ["platform_instance", "datetime_created"]


admin.site.unregister(LtiRegistration)


@admin.register(LtiRegistration)
class PlatformRegistrationAdmin(LtiRegistrationAdmin):
    list_display = ["name", "issuer", "client_id", "is_active", "deployments_waiting", "datetime_created"]
    search_fields = ["name", "issuer", "client_id"]
    inlines = [PlatformTrustInline, DeploymentInline]
    readonly_fields = ["uuid", "addresses_for_the_lms"]
    fieldsets = [
        *LtiRegistrationAdmin.fieldsets,
        (
            "The portal's addresses, for the LMS's administrator",
            {
                "fields": ["addresses_for_the_lms"],
                "description": "Typed into the LMS where it registers a tool (docs/LMS.md).",
            },
        ),
    ]

    def get_object(self, request, object_id, from_field=None):
        registration = super().get_object(request, object_id, from_field)
        if registration is not None:
            # Read-only fields see only the object: it carries the portal's address as this
            # request reached it, as canvas.json's addresses are built.
            registration.tool_urls = ToolUrls.from_request(request)
        return registration

    @admin.display(description="Addresses")
    def addresses_for_the_lms(self, registration: LtiRegistration) -> str:
        urls: ToolUrls | None = getattr(registration, "tool_urls", None)
        if urls is None:  # the add form
            return "Shown once the registration is saved."
        rows = [
            ("OpenID Connect login initiation URL (an LMS that sends its client id: Canvas, Moodle)", urls.login_init),
            ("Login initiation URL of this registration alone", urls.login_init_for(registration.uuid)),
            ("Target link URI, redirect URI (launch URL)", urls.launch),
            ("Public keyset (JWKS) URL", urls.jwks),
            ("Canvas developer key configuration (Enter URL)", urls.canvas_config),
        ]
        return format_html("<dl>{}</dl>", format_html_join("", "<dt>{}</dt><dd><code>{}</code></dd>", rows))

    def get_queryset(self, request):
        waiting = Count("deployments", filter=Q(deployments__is_active=False))
        return super().get_queryset(request).annotate(deployments_waiting=waiting)

    @admin.display(description="Deployments to activate", ordering="deployments_waiting")
    def deployments_waiting(self, registration: LtiRegistration) -> int:
        return registration.deployments_waiting  # type: ignore[attr-defined]

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        # A registered LMS is of no use until the portal can sign: make sure it can.
        lti_key_ensure(actor=request.user)


@admin.register(LtiDeployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ["deployment_id", "registration", "is_active", "datetime_created"]
    list_filter = ["is_active", "registration"]
    search_fields = ["deployment_id", "registration__name"]
    actions = ["activate"]

    @admin.action(description="Activate the selected deployments (their launches are accepted)")
    def activate(self, request, queryset) -> None:
        activated = queryset.filter(is_active=False).update(is_active=True)
        self.message_user(request, f"{activated} deployment(s) activated.")
