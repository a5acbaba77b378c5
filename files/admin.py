from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils.html import format_html

from files import services
from files.models import File
from files.views import file_download_response


@admin.register(File)
class FileAdmin(admin.ModelAdmin):
    """Read-only metadata plus a download link; deleting here removes the stored bytes too."""

    list_display = ["public_id", "filename", "size", "purpose", "project", "created_at", "expires_at", "download"]
    list_filter = ["project", "purpose", "created_at"]
    search_fields = ["public_id", "filename"]
    date_hierarchy = "created_at"
    list_select_related = ["project"]
    show_full_result_count = False
    fields = ("public_id", "project", "filename", "purpose", "size", "content_type", "storage_name", "status",
              "status_details", "created_at", "expires_at", "download")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="size", ordering="bytes")
    def size(self, obj: File) -> str:
        return f"{filesizeformat(obj.bytes)} ({obj.bytes} bytes)"

    @admin.display(description="download")
    def download(self, obj: File) -> str:
        return format_html('<a href="{}">download</a>', reverse("admin:files_file_download", args=[obj.pk]))

    def get_urls(self):
        download = path("<int:pk>/download/", self.admin_site.admin_view(self.download_view),
                        name="files_file_download")
        return [download, *super().get_urls()]

    def download_view(self, request, pk: int):
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        return file_download_response(get_object_or_404(File, pk=pk), request)  # admin: every project is visible

    def delete_model(self, request, obj: File) -> None:
        services.file_delete(file=obj)

    def delete_queryset(self, request, queryset: QuerySet[File]) -> None:
        for file in queryset:
            services.file_delete(file=file)
