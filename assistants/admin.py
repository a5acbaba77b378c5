"""Operators' view: per project, its assistants and threads (read as conversations); projects and keys are in
``tenancy.admin``.

Read-mostly: conversation content is shown, never edited, here."""

from __future__ import annotations

import json

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from assistants.models import Assistant, Message, Thread

CONVERSATION_TAIL = 200  # the thread page shows this many latest messages; the message list has them all


def message_text(message: Message) -> str:
    """Content parts as plain reading text (images by reference)."""
    out = []
    for part in message.content or []:
        kind = part.get("type")
        if kind == "text":
            out.append(part["text"]["value"])
        elif kind == "image_file":
            out.append(f"[image file {part['image_file']['file_id']}]")
        elif kind == "image_url":
            out.append(f"[image {part['image_url']['url'][:200]}]")
        elif kind == "refusal":
            out.append(f"[refusal] {part['refusal']}")
    return "\n".join(out)


def pretty_json(value) -> str:
    return format_html("<pre style='margin:0'>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class TenantAdmin(admin.ModelAdmin):
    """Shared by every stored API object: browse per project, search by id or metadata, filter by date."""

    list_filter = ["project", "created_at"]
    search_fields = ["public_id", "metadata"]
    date_hierarchy = "created_at"
    list_select_related = ["project"]
    show_full_result_count = False  # counting a huge table on every page view is costly


@admin.register(Assistant)
class AssistantAdmin(ReadOnlyMixin, TenantAdmin):
    list_display = ["public_id", "name", "model", "project", "created_at"]
    search_fields = ["public_id", "name", "metadata"]
    fields = ["public_id", "project", "created_at", "name", "description", "model", "instructions", "tools_json",
              "tool_resources_json", "metadata_json", "temperature", "top_p", "response_format", "reasoning_effort"]
    readonly_fields = fields

    @admin.display(description="tools")
    def tools_json(self, obj: Assistant) -> str:
        return pretty_json(obj.tools)

    @admin.display(description="tool resources")
    def tool_resources_json(self, obj: Assistant) -> str:
        return pretty_json(obj.tool_resources)

    @admin.display(description="metadata")
    def metadata_json(self, obj: Assistant) -> str:
        return pretty_json(obj.metadata)


class MessageInline(admin.TabularInline):
    """The conversation, oldest first and newest last (the latest CONVERSATION_TAIL messages)."""

    model = Message
    fk_name = "thread"
    fields = ["created_at", "role", "text", "attachment_ids", "run_public_id", "status", "message_link"]
    readonly_fields = fields
    ordering = ["pk"]
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False
    verbose_name_plural = f"conversation (latest {CONVERSATION_TAIL} messages, newest last)"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="text")
    def text(self, obj: Message) -> str:
        return format_html("<div style='white-space:pre-wrap;max-width:60em'>{}</div>", message_text(obj))

    @admin.display(description="attachments")
    def attachment_ids(self, obj: Message) -> str:
        return ", ".join(a["file_id"] for a in obj.attachments or []) or "-"

    @admin.display(description="id")
    def message_link(self, obj: Message) -> str:
        return format_html('<a href="{}">{}</a>', reverse("admin:assistants_message_change", args=[obj.pk]),
                           obj.public_id)


@admin.register(Thread)
class ThreadAdmin(ReadOnlyMixin, TenantAdmin):
    list_display = ["public_id", "project", "created_at", "metadata"]
    fields = ["public_id", "project", "created_at", "tool_resources_json", "metadata_json", "all_messages"]
    readonly_fields = fields
    inlines = [MessageInline]

    def get_formset_kwargs(self, request, obj, inline, prefix):
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, MessageInline) and obj is not None and obj.pk:
            # Formsets refuse sliced querysets: cut at the pk of the CONVERSATION_TAIL-th newest message.
            cutoff = (Message.objects.filter(thread=obj).order_by("-pk")
                      .values_list("pk", flat=True)[CONVERSATION_TAIL - 1:CONVERSATION_TAIL].first())
            if cutoff is not None:
                kwargs["queryset"] = kwargs["queryset"].filter(pk__gte=cutoff)
        return kwargs

    @admin.display(description="tool resources")
    def tool_resources_json(self, obj: Thread) -> str:
        return pretty_json(obj.tool_resources)

    @admin.display(description="metadata")
    def metadata_json(self, obj: Thread) -> str:
        return pretty_json(obj.metadata)

    @admin.display(description="messages")
    def all_messages(self, obj: Thread) -> str:
        url = reverse("admin:assistants_message_changelist") + f"?thread__id__exact={obj.pk}"
        return format_html('<a href="{}">every message of this thread</a>', url)


@admin.register(Message)
class MessageAdmin(ReadOnlyMixin, TenantAdmin):
    list_display = ["public_id", "thread", "role", "short_text", "status", "project", "created_at"]
    list_filter = ["project", "role", "status", "created_at"]
    search_fields = ["public_id", "thread__public_id", "run_public_id", "metadata"]
    list_select_related = ["project", "thread"]
    fields = ["public_id", "thread", "project", "created_at", "role", "status", "text", "content_json",
              "attachments_json", "assistant_public_id", "run_public_id", "incomplete_details", "completed_at",
              "incomplete_at", "metadata_json"]
    readonly_fields = fields
    raw_id_fields = ["thread"]

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-pk")

    @admin.display(description="text")
    def short_text(self, obj: Message) -> str:
        text = message_text(obj)
        return text if len(text) <= 120 else text[:119] + "…"

    @admin.display(description="text")
    def text(self, obj: Message) -> str:
        return format_html("<div style='white-space:pre-wrap'>{}</div>", message_text(obj))

    @admin.display(description="content")
    def content_json(self, obj: Message) -> str:
        return pretty_json(obj.content)

    @admin.display(description="attachments")
    def attachments_json(self, obj: Message) -> str:
        return pretty_json(obj.attachments)

    @admin.display(description="metadata")
    def metadata_json(self, obj: Message) -> str:
        return pretty_json(obj.metadata)

