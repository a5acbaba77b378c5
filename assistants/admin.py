"""Operators' view: per project, its assistants and threads (read as conversations, with their runs and tool
calls); projects and keys are in ``tenancy.admin``, runs in ``runs.admin``.

Read-mostly: conversation content is shown, never edited, here."""

from __future__ import annotations

import json

from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from assistants.models import Assistant, Message, Thread
from runs.models import Run

CONVERSATION_TAIL = 200  # the thread page shows this many latest messages; the message list has them all
RUNS_TAIL = 50  # and this many latest runs; the run list has them all


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


def compact_time(value) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def citations(message: Message) -> list[str]:
    """Each annotation of the message's text parts, as "[marker] file_citation file-…" lines."""
    out = []
    for part in message.content or []:
        if part.get("type") != "text":
            continue
        for note in part["text"].get("annotations") or []:
            kind = note.get("type")
            target = (note.get(kind) or {}).get("file_id", "")
            out.append(f"{note.get('text', '')} → {kind} {target}".strip())
    return out


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
    fields = ("public_id", "project", "created_at", "name", "description", "model", "instructions", "tools_json",
              "tool_resources_json", "metadata_json", "temperature", "top_p", "response_format", "reasoning_effort")
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


class ThreadInline(ReadOnlyMixin, admin.TabularInline):
    """What a thread page lists under it, read-only, oldest first."""

    fk_name = "thread"
    ordering = ["pk"]
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False


class MessageInline(ThreadInline):
    """The conversation, oldest first and newest last (the latest CONVERSATION_TAIL messages)."""

    model = Message
    fields = ("created", "role_label", "text", "attachment_ids", "citation_list", "run_link", "status", "message_link")
    readonly_fields = fields
    verbose_name_plural = f"conversation (latest {CONVERSATION_TAIL} messages, newest last)"

    @admin.display(description="text")
    def text(self, obj: Message) -> str:
        return format_html("<div style='white-space:pre-wrap;min-width:20em;max-width:60em'>{}</div>",
                           message_text(obj))

    @admin.display(description="created")
    def created(self, obj: Message) -> str:
        return compact_time(obj.created_at)

    @admin.display(description="role")
    def role_label(self, obj: Message) -> str:
        return format_html("<span class='ops-role'>{}</span>", obj.role)

    @admin.display(description="attachments")
    def attachment_ids(self, obj: Message) -> str:
        return format_html_join(mark_safe("<br>"), "{} ({})", (
            (a["file_id"], ", ".join(t.get("type", "") for t in a.get("tools") or []) or "no tools")
            for a in obj.attachments or [])) or "-"

    @admin.display(description="citations")
    def citation_list(self, obj: Message) -> str:
        return format_html_join(mark_safe("<br>"), "<span class='ops-citation'>{}</span>",
                                ((c,) for c in citations(obj))) or "-"

    @admin.display(description="run")
    def run_link(self, obj: Message) -> str:
        if not obj.run_public_id:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("admin:runs_run_by_id", args=[obj.run_public_id]),
                           obj.run_public_id)

    @admin.display(description="id")
    def message_link(self, obj: Message) -> str:
        return format_html('<a href="{}">{}</a>', reverse("admin:assistants_message_change", args=[obj.pk]),
                           obj.public_id)


class RunInline(ThreadInline):
    """The thread's runs (the latest RUNS_TAIL, oldest first), each with its tool calls and any error."""

    model = Run
    fields = ("run_link", "status_label", "model", "created", "ended", "calls", "tokens", "error")
    readonly_fields = fields
    verbose_name_plural = f"runs (latest {RUNS_TAIL}, newest last)"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("steps")

    @admin.display(description="run")
    def run_link(self, obj: Run) -> str:
        return format_html('<a href="{}">{}</a>', reverse("admin:runs_run_change", args=[obj.pk]), obj.public_id)

    @admin.display(description="status")
    def status_label(self, obj: Run) -> str:
        return format_html("<span class='ops-status ops-{}'>{}</span>", obj.status, obj.status)

    @admin.display(description="created")
    def created(self, obj: Run) -> str:
        return compact_time(obj.created_at)

    @admin.display(description="ended")
    def ended(self, obj: Run) -> str:
        return compact_time(obj.completed_at or obj.failed_at or obj.cancelled_at)

    @admin.display(description="tool calls")
    def calls(self, obj: Run) -> str:
        from runs.admin import tool_calls_summary

        return format_html("<div class='ops-text'>{}</div>", tool_calls_summary(obj) or "-")

    @admin.display(description="tokens")
    def tokens(self, obj: Run) -> str:
        return str((obj.usage or {}).get("total_tokens", "-"))

    @admin.display(description="last error")
    def error(self, obj: Run) -> str:
        if not obj.last_error:
            return "-"
        return format_html("<span class='ops-error'>{}: {}</span>", obj.last_error.get("code"),
                           obj.last_error.get("message"))


def _tail_cutoff(queryset, count: int):
    """The pk of the ``count``-th newest row (formsets refuse sliced querysets), or None when there are fewer."""
    return queryset.order_by("-pk").values_list("pk", flat=True)[count - 1:count].first()


@admin.register(Thread)
class ThreadAdmin(ReadOnlyMixin, TenantAdmin):
    list_display = ["public_id", "project", "created_at", "metadata"]
    fields = ("public_id", "project", "created_at", "tool_resources_json", "metadata_json", "all_messages", "all_runs")
    readonly_fields = fields
    inlines = [MessageInline, RunInline]

    def get_formset_kwargs(self, request, obj, inline, prefix):
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if obj is not None and obj.pk and isinstance(inline, MessageInline | RunInline):
            model, tail = (Message, CONVERSATION_TAIL) if isinstance(inline, MessageInline) else (Run, RUNS_TAIL)
            cutoff = _tail_cutoff(model.objects.filter(thread=obj), tail)
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

    @admin.display(description="runs")
    def all_runs(self, obj: Thread) -> str:
        url = reverse("admin:runs_run_changelist") + f"?q={obj.public_id}"
        return format_html('<a href="{}">every run of this thread</a>', url)


@admin.register(Message)
class MessageAdmin(ReadOnlyMixin, TenantAdmin):
    list_display = ["public_id", "thread", "role", "short_text", "status", "project", "created_at"]
    list_filter = ["project", "role", "status", "created_at"]
    search_fields = ["public_id", "thread__public_id", "run_public_id", "metadata"]
    list_select_related = ["project", "thread"]
    fields = ("public_id", "thread", "project", "created_at", "role", "status", "text", "content_json",
              "attachments_json", "assistant_public_id", "run_public_id", "incomplete_details", "completed_at",
              "incomplete_at", "metadata_json")
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

