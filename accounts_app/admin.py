from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts_app.models import AuditEvent, Course, IdentityCenterUser, Membership, User
from accounts_app.selectors import course_code_locked
from accounts_app.services.users import user_set_instructor


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
