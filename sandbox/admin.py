from __future__ import annotations

from django.contrib import admin

from sandbox.models import Container


@admin.register(Container)
class ContainerAdmin(admin.ModelAdmin):
    """Read-only: records of code_interpreter sessions (the sessions themselves live in worker processes)."""

    list_display = ["public_id", "thread_id", "status", "project", "worker", "memory_limit", "last_active_at"]
    list_filter = ["status", "project"]
    search_fields = ["public_id", "thread_id"]
    list_select_related = ["project"]
    show_full_result_count = False
    fields = ("public_id", "project", "thread_id", "status", "worker", "memory_limit", "expires_after_minutes",
              "created_at", "last_active_at", "files")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
