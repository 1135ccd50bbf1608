from allauth.socialaccount.admin import SocialAppAdmin, SocialAppForm
from allauth.socialaccount.models import SocialApp
from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.template.response import TemplateResponse

from accounts_app.choices import WebhookTopic
from accounts_app.models import (
    AuditEvent,
    Course,
    IdentityCenterUser,
    Membership,
    User,
    WebhookDelivery,
    WebhookEndpoint,
)
from accounts_app.selectors import course_code_locked
from accounts_app.services.users import user_set_instructor
from accounts_app.services.webhooks import (
    WebhookError,
    webhook_create,
    webhook_remove,
    webhook_test_send,
    webhook_url_check,
)
from accounts_app.sso import SAML_PROVIDER, MetadataError, saml_idp_from_metadata
from accounts_app.webhook_formats import REPLAY_WINDOW_SECONDS


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    actions = ["grant_instructor", "revoke_instructor"]
    # Changed only through the actions below, so that every grant is audited.
    readonly_fields = ["is_instructor", "last_login", "date_joined"]
    ordering = ["email"]
    list_display = ["email", "name", "is_instructor", "is_staff", "is_active", "last_login"]
    list_filter = ["is_instructor", "is_staff", "is_active"]
    search_fields = ["email", "name"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Person", {"fields": ["name"]}),
        ("Site roles", {"fields": ["is_instructor", "is_staff", "is_superuser", "is_active"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]

    @admin.action(description="Let the selected people create courses")
    def grant_instructor(self, request, queryset) -> None:
        for user in queryset:
            user_set_instructor(actor=request.user, user=user, is_instructor=True)

    @admin.action(description="Stop the selected people from creating courses")
    def revoke_instructor(self, request, queryset) -> None:
        for user in queryset:
            user_set_instructor(actor=request.user, user=user, is_instructor=False)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ["email", "name", "role", "user", "invite_status"]
    raw_id_fields = ["user"]


@admin.register(Course)
class CourseAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "term", "start_date", "end_date", "archived_at"]
    search_fields = ["code", "name"]
    inlines = [MembershipInline]

    def get_readonly_fields(self, request, obj=None):
        # The code is in the AWS names and tags of the course's accounts once it has any.
        if obj is not None and course_code_locked(course=obj):
            return [*super().get_readonly_fields(request, obj), "code"]
        return super().get_readonly_fields(request, obj)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor_label", "course", "action", "summary"]
    list_filter = ["action"]
    search_fields = ["actor_label", "summary"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(IdentityCenterUser)
class IdentityCenterUserAdmin(admin.ModelAdmin):
    """The record that lets the portal delete a user: written by the portal only, when it creates
    the user, so that nobody can make it delete one it did not create."""

    list_display = ["email", "user_id", "identity_store_id", "created_by_portal_at"]
    search_fields = ["email", "user_id"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class WebhookTopicsField(forms.MultipleChoiceField):
    def __init__(self, **kwargs):
        super().__init__(
            choices=WebhookTopic.choices,
            initial=WebhookTopic.values,
            widget=forms.CheckboxSelectMultiple,
            **kwargs,
        )


class WebhookEndpointAddForm(forms.ModelForm):
    url = forms.CharField(
        label="Webhook address", max_length=2000, help_text="Stored encrypted; never shown again in full."
    )
    topics = WebhookTopicsField(label="Send")

    class Meta:
        model = WebhookEndpoint
        fields = ["course", "name", "kind", "url", "topics"]

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("kind") and cleaned.get("url"):
            try:
                cleaned["url"] = webhook_url_check(kind=cleaned["kind"], url=cleaned["url"])
            except WebhookError as error:
                self.add_error("url", str(error))
        return cleaned


class WebhookEndpointChangeForm(forms.ModelForm):
    topics = WebhookTopicsField(label="Send")

    class Meta:
        model = WebhookEndpoint
        fields = ["name", "topics", "enabled"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """Webhooks: the school's (no course), which receive every course's alerts, and the courses'.
    Adding and removing go through the service, which audits them and encrypts the address; the
    address and kind cannot be changed (remove the webhook and add it again)."""

    list_display = [
        "name",
        "course",
        "kind",
        "url_shown",
        "enabled",
        "last_attempt_at",
        "last_success_at",
        "last_error",
    ]
    list_filter = ["kind", "enabled", ("course", admin.EmptyFieldListFilter)]
    search_fields = ["name", "course__code"]
    actions = ["send_test_message"]
    readonly_fields = [
        "course",
        "kind",
        "url_shown",
        "created_by",
        "created_at",
        "last_attempt_at",
        "last_success_at",
        "last_error",
    ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = WebhookEndpointChangeForm if obj is not None else WebhookEndpointAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return WebhookEndpointAddForm.Meta.fields
        return ["name", "topics", "enabled", *self.readonly_fields]

    def save_model(self, request, obj, form, change) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        data = form.cleaned_data
        endpoint, secret = webhook_create(
            actor=request.user,
            course=data["course"],
            name=data["name"],
            kind=data["kind"],
            url=data["url"],
            topics=data["topics"],
        )
        obj.pk, obj._state.adding = endpoint.pk, False
        obj.new_secret = secret

    def response_add(self, request, obj, post_url_continue=None):
        secret = getattr(obj, "new_secret", "")
        if not secret:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "endpoint": WebhookEndpoint.objects.get(pk=obj.pk),
            "secret": secret,
            "replay_window_minutes": REPLAY_WINDOW_SECONDS // 60,
            "title": "The webhook's signing secret",
        }
        response = TemplateResponse(request, "admin/accounts_app/webhookendpoint/secret.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def delete_model(self, request, obj) -> None:
        webhook_remove(actor=request.user, endpoint=obj)

    def delete_queryset(self, request, queryset) -> None:
        for endpoint in queryset:
            webhook_remove(actor=request.user, endpoint=endpoint)

    @admin.action(description="Send a test message to the selected webhooks")
    def send_test_message(self, request, queryset) -> None:
        for endpoint in queryset.select_related("course"):
            webhook_test_send(endpoint=endpoint)
        self.message_user(
            request, "Sending the test messages… see how they went under Webhook deliveries.", messages.INFO
        )


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """Every webhook message and what came of its attempts: written by the delivery task only."""

    list_display = ["created_at", "endpoint", "event", "status", "attempts", "last_status_code", "last_error"]
    list_filter = ["status", "event"]
    search_fields = ["endpoint__name", "message_id"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class CampusProviderForm(SocialAppForm):
    """allauth's form for a provider, and for a SAML IdP its metadata XML, pasted: the IdP's entity
    id, single sign-on URL and certificate are read from it into the settings' `idp` (docs/SSO.md)."""

    idp_metadata_xml = forms.CharField(
        label="SAML IdP metadata (XML)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 100}),
        help_text="For a SAML IdP without a metadata URL: paste its metadata. It fills settings' idp.",
    )

    def clean(self) -> dict:
        cleaned = super().clean()
        xml = cleaned.get("idp_metadata_xml", "").strip()
        if not xml:
            return cleaned
        if cleaned.get("provider") != SAML_PROVIDER:
            self.add_error("idp_metadata_xml", "IdP metadata is for a SAML provider only.")
            return cleaned
        try:
            idp = saml_idp_from_metadata(xml)
        except MetadataError as error:
            self.add_error("idp_metadata_xml", str(error))
            return cleaned
        cleaned["settings"] = {**(cleaned.get("settings") or {}), "idp": idp}
        return cleaned


admin.site.unregister(SocialApp)


@admin.register(SocialApp)
class CampusProviderAdmin(SocialAppAdmin):
    form = CampusProviderForm
