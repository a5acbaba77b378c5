"""Operators' view of projects and API keys."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.utils import timezone

from tenancy.models import ApiKey, Project, hash_key
from tenancy.services import api_key_create


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "public_id", "created_at", "requests_per_minute", "concurrent_runs", "tokens_per_day"]
    search_fields = ["name", "public_id"]
    readonly_fields = ["public_id", "created_at"]
    fieldsets = [(None, {"fields": ["name", "public_id", "created_at"]}),
                 ("Limits (empty: the deployment's RATE_LIMIT_* default; 0: unlimited)",
                  {"fields": ["requests_per_minute", "concurrent_runs", "tokens_per_day"]})]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Only the hash is stored: the raw key is shown once, in a message right after it is created."""

    list_display = ["prefix", "name", "project", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["project", ("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["name", "prefix", "project__name", "project__public_id"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        return ["project", "name"] if obj is None else ["project", "name", "prefix", "created_at", "last_used_at",
                                                        "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["project", "prefix", "created_at", "last_used_at"]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        raw = api_key_create(project=obj.project, name=obj.name)
        obj.pk = ApiKey.objects.only("pk").get(key_hash=hash_key(raw)).pk
        obj.refresh_from_db()
        self.message_user(request, f"The new API key (shown only this once; copy it now): {raw}", messages.WARNING)

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset: QuerySet[ApiKey]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} key(s).")
