"""Operators' view of runs: find one by id, read its timeline and steps, replay its events, cancel it; token usage
per project, model and day. Read-only apart from the cancel action, which goes through ``runs.services``."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import BigIntegerField, Count, F, Q, QuerySet, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce, TruncDate
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from assistants.admin import ReadOnlyMixin, TenantAdmin, message_text, pretty_json
from assistants.models import Message
from assistants_project.api.errors import OpenAIError
from runs.models import Run, RunStep

MODEL_FILTER_SAMPLE = 5000  # the model filter offers the models of this many latest runs
EVENTS_SHOWN = 2000  # the event replay page shows at most this many of a run's stored events
PUBLIC_ID = re.compile(r"^(run|thread|asst|step|msg)_[A-Za-z0-9]+$")
TOKEN_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


# --- rendering helpers (shared with the thread page) ------------------------------------------------


def run_url(run: Run) -> str:
    return reverse("admin:runs_run_change", args=[run.pk])


def run_link(run: Run) -> str:
    return format_html('<a href="{}">{}</a>', run_url(run), run.public_id)


def run_by_id_url(public_id: str) -> str:
    return reverse("admin:runs_run_by_id", args=[public_id])


def error_text(error: dict | None) -> str:
    return f"{error.get('code')}: {error.get('message')}" if error else ""


def usage_text(usage: dict | None) -> str:
    if not usage:
        return "-"
    return (f"{usage.get('total_tokens', 0)} tokens ({usage.get('prompt_tokens', 0)} prompt, "
            f"{usage.get('completion_tokens', 0)} completion)")


def _pre(text: str) -> str:
    return format_html("<pre class='ops-pre'>{}</pre>", text)


def _json_or_text(raw: str | None) -> str:
    """Function arguments and outputs are strings; JSON ones are shown indented."""
    if raw is None:
        return format_html("<em>{}</em>", "no output yet")
    try:
        return _pre(json.dumps(json.loads(raw), indent=2, ensure_ascii=False))
    except (TypeError, ValueError):
        return _pre(raw)


def tool_call_html(call: dict) -> str:
    kind = call.get("type")
    if kind == "function":
        function = call.get("function") or {}
        return format_html(
            "<div class='ops-call'><strong>function {}</strong> <small>{}</small>"
            "<div>arguments</div>{}<div>output</div>{}</div>",
            function.get("name"), call.get("id"), _json_or_text(function.get("arguments")),
            _json_or_text(function.get("output")))
    if kind == "file_search":
        body = call.get("file_search") or {}
        results = body.get("results") or []
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", (
            (i, f"{r.get('file_name', '')} ({r.get('file_id')})", r.get("score"),
             "".join(part.get("text", "") for part in r.get("content") or [])[:500])
            for i, r in enumerate(results)))
        return format_html(
            "<div class='ops-call'><strong>file_search</strong> <small>{}</small> ranking {}"
            "<table class='ops-table'><thead><tr><th>#</th><th>file</th><th>score</th><th>content</th></tr></thead>"
            "<tbody>{}</tbody></table>{}</div>",
            call.get("id"), json.dumps(body.get("ranking_options")), rows,
            "" if results else format_html("<em>{}</em>", "no results"))
    return format_html("<div class='ops-call'><strong>{}</strong>{}</div>", kind, pretty_json(call))


def step_html(step: RunStep, messages_by_id: dict[str, Message]) -> str:
    details = step.step_details or {}
    if step.type == RunStep.Type.MESSAGE_CREATION:
        message_id = (details.get("message_creation") or {}).get("message_id")
        message = messages_by_id.get(message_id) if message_id else None
        body = format_html("<div>message {}</div><div class='ops-text'>{}</div>", message_id,
                           message_text(message) if message else "(message deleted)")
    else:
        body = mark_safe("".join(tool_call_html(call) for call in details.get("tool_calls") or []))
    ended = next(((name, value) for name in ("completed_at", "failed_at", "cancelled_at", "expired_at")
                  if (value := getattr(step, name))), None)
    return format_html(
        "<div class='ops-step ops-{}'><div class='ops-step-head'><strong>{}</strong> {} · <b>{}</b> · created {}{}"
        " · usage: {}</div>{}{}</div>",
        step.status, step.type, step.public_id, step.status, _time(step.created_at),
        format_html(" · {} {}", ended[0].removesuffix("_at"), _time(ended[1])) if ended else "",
        usage_text(step.usage), body,
        format_html("<div class='ops-error'>last_error: {}</div>", error_text(step.last_error))
        if step.last_error else "")


def tool_calls_summary(run: Run) -> str:
    """One line per tool call of a run (for the thread page): name(arguments) → output."""
    lines = []
    for step in run.steps.all():
        for call in (step.step_details or {}).get("tool_calls") or []:
            if call.get("type") == "function":
                fn = call["function"]
                lines.append(f"{fn.get('name')}({fn.get('arguments')}) → {fn.get('output')}")
            elif call.get("type") == "file_search":
                results = (call.get("file_search") or {}).get("results") or []
                lines.append(f"file_search → {len(results)} result(s): "
                             + ", ".join(r.get("file_name", "") for r in results[:5]))
            else:
                lines.append(str(call.get("type")))
    return "\n".join(lines)


def _time(value: datetime | None) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if value else "-"


# --- the event stream (Redis) ------------------------------------------------------------------------


def stored_events(run: Run, limit: int = EVENTS_SHOWN) -> list[dict] | None:
    """The run's events still in its Redis Stream (kept an hour after the run ends), oldest first, each with the
    time its stream id carries. None when Redis cannot be read."""
    from assistants_project.redis import redis_client, stream_entries
    from runs.events import stream_key

    try:
        entries = stream_entries(redis_client().xrange(stream_key(run.public_id), count=limit))
    except Exception:
        return None
    out = []
    for raw_id, fields in entries:
        entry_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
        at = datetime.fromtimestamp(int(entry_id.split("-")[0]) / 1000, tz=UTC)
        out.append({
            "id": entry_id,
            "at": at,
            "time": _time(at),
            "event": fields[b"event"].decode(),
            "data": fields[b"data"].decode(),
        })
    return out


# --- filters -------------------------------------------------------------------------------------------


class ModelFilter(admin.SimpleListFilter):
    title = "model"
    parameter_name = "model"

    def lookups(self, request, model_admin):
        # The models of the latest runs (read through the pk index: no scan of a big table on every list view);
        # ?model=… filters by any model.
        names = sorted(set(Run.objects.order_by("-pk").values_list("model", flat=True)[:MODEL_FILTER_SAMPLE]))
        return [(name, name) for name in names]

    def queryset(self, request, queryset):
        return queryset.filter(model=self.value()) if self.value() else queryset


class OutcomeFilter(admin.SimpleListFilter):
    """Failed runs first of all: everything that did not end well, in one click."""

    title = "outcome"
    parameter_name = "outcome"
    GROUPS = {
        "problem": ("did not end well (failed, expired, incomplete, cancelled)",
                    [Run.Status.FAILED, Run.Status.EXPIRED, Run.Status.INCOMPLETE, Run.Status.CANCELLED]),
        "active": ("still active", list(Run.ACTIVE)),
    }

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _) in self.GROUPS.items()]

    def queryset(self, request, queryset):
        group = self.GROUPS.get(self.value() or "")
        return queryset.filter(status__in=group[1]) if group else queryset


# --- runs ------------------------------------------------------------------------------------------------


@admin.register(Run)
class RunAdmin(ReadOnlyMixin, TenantAdmin):
    list_display = ["public_id", "status_badge", "error_short", "model", "project", "created_at", "ended_at",
                    "tokens", "thread_link"]
    list_filter = [OutcomeFilter, "status", ModelFilter, "project", "created_at"]
    search_fields = ["public_id", "thread__public_id", "assistant_public_id", "metadata"]
    list_select_related = ["project", "thread"]
    actions = ["cancel_runs"]
    fields = ("public_id", "status_badge", "thread_link", "assistant_public_id", "project", "model", "timeline",
              "last_error_text", "usage_text", "steps", "produced_messages", "required_action_json",
              "incomplete_details", "instructions", "additional_instructions", "tools_json", "metadata_json",
              "temperature", "top_p", "max_prompt_tokens", "max_completion_tokens", "truncation_strategy",
              "tool_choice", "parallel_tool_calls", "response_format", "reasoning_effort", "include", "attempts",
              "claimed_by", "heartbeat_at")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-pk")

    def get_search_results(self, request, queryset, search_term):
        """A public id (run_…, thread_…, asst_…, step_…, msg_…) is looked up exactly, through the unique indexes,
        not by a substring scan of the whole table."""
        term = search_term.strip()
        if PUBLIC_ID.match(term):
            kind = term.split("_", 1)[0]
            if kind == "step":
                return queryset.filter(pk__in=RunStep.objects.filter(public_id=term).values("run_id")), False
            if kind == "msg":
                run_ids = Message.objects.filter(public_id=term).values_list("run_public_id", flat=True)
                return queryset.filter(public_id__in=[r for r in run_ids if r]), False
            return queryset.filter(Q(public_id=term) | Q(thread__public_id=term) | Q(assistant_public_id=term)), False
        return super().get_search_results(request, queryset, search_term)

    # --- columns ---
    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Run) -> str:
        return format_html("<span class='ops-status ops-{}'>{}</span>", obj.status, obj.status)

    @admin.display(description="thread", ordering="thread")
    def thread_link(self, obj: Run) -> str:
        return format_html('<a href="{}">{}</a>', reverse("admin:assistants_thread_change", args=[obj.thread_id]),
                           obj.thread.public_id)

    @admin.display(description="ended")
    def ended_at(self, obj: Run) -> str:
        value = obj.completed_at or obj.failed_at or obj.cancelled_at
        return _time(value) if value else "-"

    @admin.display(description="tokens")
    def tokens(self, obj: Run) -> str:
        return str((obj.usage or {}).get("total_tokens", "-"))

    @admin.display(description="last error")
    def error_short(self, obj: Run) -> str:
        text = error_text(obj.last_error)
        text = text if len(text) <= 100 else text[:99] + "…"
        return format_html("<span class='ops-error'>{}</span>", text) if text else "-"

    # --- the run page ---
    @admin.display(description="timeline")
    def timeline(self, obj: Run) -> str:
        """Status changes with their times: from the run's event stream while Redis keeps it (every change,
        requires_action and re-queues included), else from the run's own timestamps; then each step's."""
        rows: list[tuple[datetime, str, str]] = []
        events = stored_events(obj) or []
        status_events = [e for e in events if re.fullmatch(r"thread\.run\.[a-z_]+", e["event"])]
        if status_events:
            rows += [(e["at"], e["event"].removeprefix("thread.run."), "event stream") for e in status_events]
        else:
            stamps = [("created (queued)", obj.created_at), ("started (in_progress)", obj.started_at),
                      ("cancelled", obj.cancelled_at), ("failed", obj.failed_at), ("completed", obj.completed_at)]
            rows += [(value, label, "run") for label, value in stamps if value]
            # neither end stamps a time of its own: show the nearest recorded one, saying which
            if obj.status == Run.Status.EXPIRED and obj.expires_at:
                rows.append((obj.expires_at, "expired (its expires_at deadline; swept soon after)", "run"))
            elif obj.status == Run.Status.INCOMPLETE and obj.heartbeat_at:
                rows.append((obj.heartbeat_at, "incomplete (by the last worker heartbeat)", "run"))
        for step in obj.steps.all():
            rows.append((step.created_at, f"step {step.public_id} ({step.type}) created", "step"))
            for name in ("completed_at", "failed_at", "cancelled_at", "expired_at"):
                if value := getattr(step, name):
                    rows.append((value, f"step {step.public_id} {name.removesuffix('_at')}", "step"))
        rows.sort(key=lambda row: row[0])
        table = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                                 ((_time(at), what, source) for at, what, source in rows))
        expiry = ""
        if obj.status in Run.ACTIVE and obj.expires_at:
            expiry = format_html("<div>expires at {}</div>", _time(obj.expires_at))
        return format_html(
            "<table class='ops-table ops-timeline'><thead><tr><th>time</th><th>what</th><th>from</th></tr>"
            "</thead><tbody>{}</tbody></table>{}<div><a href='{}'>replay the event stream</a></div>",
            table, expiry, reverse("admin:runs_run_events", args=[obj.pk]))

    @admin.display(description="last error")
    def last_error_text(self, obj: Run) -> str:
        if not obj.last_error:
            return "-"
        return format_html("<span class='ops-error'>{}</span>", error_text(obj.last_error))

    @admin.display(description="usage")
    def usage_text(self, obj: Run) -> str:
        return usage_text(obj.usage)

    @admin.display(description="steps")
    def steps(self, obj: Run) -> str:
        steps = list(obj.steps.order_by("pk"))
        if not steps:
            return "-"
        message_ids = [(s.step_details.get("message_creation") or {}).get("message_id") for s in steps
                       if s.type == RunStep.Type.MESSAGE_CREATION]
        by_id = {m.public_id: m for m in Message.objects.filter(thread_id=obj.thread_id, public_id__in=message_ids)}
        return mark_safe("".join(step_html(step, by_id) for step in steps))

    @admin.display(description="messages of this run")
    def produced_messages(self, obj: Run) -> str:
        rows = Message.objects.filter(thread_id=obj.thread_id, run_public_id=obj.public_id).order_by("pk")
        return format_html_join("", "<div><a href='{}'>{}</a> ({}, {}): <span class='ops-text'>{}</span></div>", (
            (reverse("admin:assistants_message_change", args=[m.pk]), m.public_id, m.role, m.status,
             message_text(m)) for m in rows)) or "-"

    @admin.display(description="required action")
    def required_action_json(self, obj: Run) -> str:
        return pretty_json(obj.required_action) if obj.required_action else "-"

    @admin.display(description="tools")
    def tools_json(self, obj: Run) -> str:
        return pretty_json(obj.tools)

    @admin.display(description="metadata")
    def metadata_json(self, obj: Run) -> str:
        return pretty_json(obj.metadata)

    # --- actions and extra pages ---
    def has_cancel_permission(self, request) -> bool:
        """Cancelling acts on a tenant's run: it takes the change permission, not just view."""
        return request.user.has_perm("runs.change_run")

    @admin.action(description="Cancel the selected runs", permissions=["cancel"])
    def cancel_runs(self, request, queryset: QuerySet[Run]) -> None:
        for run in queryset:
            self._cancel(request, run)

    def _cancel(self, request, run: Run) -> None:
        from runs import services

        try:
            services.run_cancel(run=run)
        except OpenAIError as exc:
            self.message_user(request, f"{run.public_id}: {exc.detail}", messages.ERROR)
            return
        status = Run.objects.filter(pk=run.pk).values_list("status", flat=True).first()
        self.message_user(request, f"{run.public_id}: cancel requested (now {status}).")

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("by-id/<str:public_id>/", wrap(self.by_id_view), name="runs_run_by_id"),
            path("usage/", wrap(self.usage_view), name="runs_run_usage"),
            path("<int:pk>/events/", wrap(self.events_view), name="runs_run_events"),
            path("<int:pk>/cancel/", wrap(self.cancel_view), name="runs_run_cancel"),
            *super().get_urls(),
        ]

    def _check_view(self, request) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied

    def by_id_view(self, request: HttpRequest, public_id: str):
        self._check_view(request)
        return HttpResponseRedirect(run_url(get_object_or_404(Run, public_id=public_id)))

    def events_view(self, request: HttpRequest, pk: int):
        self._check_view(request)
        run = get_object_or_404(Run.objects.select_related("thread"), pk=pk)
        events = stored_events(run)
        context = {**self.admin_site.each_context(request), "opts": self.opts, "run": run, "events": events,
                   "title": f"Events of {run.public_id}", "limit": EVENTS_SHOWN,
                   "truncated": events is not None and len(events) >= EVENTS_SHOWN}
        return TemplateResponse(request, "admin/runs/run/events.html", context)

    def cancel_view(self, request: HttpRequest, pk: int):
        if not self.has_cancel_permission(request):
            raise PermissionDenied
        run = get_object_or_404(Run.objects.select_related("thread"), pk=pk)
        if request.method == "POST":
            self._cancel(request, run)
            return HttpResponseRedirect(run_url(run))
        context = {**self.admin_site.each_context(request), "opts": self.opts, "run": run,
                   "title": f"Cancel {run.public_id}?", "cancellable": run.status in Run.ACTIVE
                   and run.status != Run.Status.CANCELLING}
        return TemplateResponse(request, "admin/runs/run/cancel.html", context)

    def usage_view(self, request: HttpRequest):
        """Tokens by project, model and day (runs' ``usage``, by the day they were created)."""
        self._check_view(request)
        try:
            days = min(max(int(request.GET.get("days", 30)), 1), 366)
        except ValueError:
            days = 30
        since = timezone.now() - timedelta(days=days)
        runs = Run.objects.filter(created_at__gte=since)
        project = request.GET.get("project")
        if project and project.isdigit():
            runs = runs.filter(project_id=int(project))
        sums = {key: Coalesce(Sum(Cast(KT(f"usage__{key}"), BigIntegerField())), 0) for key in TOKEN_KEYS}
        by_day = list(runs.annotate(day=TruncDate("created_at"))
                      .values("project_id", "project__name", "model", "day")
                      .annotate(runs=Count("id"), failed=Count("id", filter=Q(status=Run.Status.FAILED)), **sums)
                      .order_by("-day", "project__name", "model"))
        totals = list(runs.values("project_id", "project__name", "model")
                      .annotate(runs=Count("id"), failed=Count("id", filter=Q(status=Run.Status.FAILED)), **sums)
                      .order_by("project__name", F("total_tokens").desc()))  # F(): mypy cannot see **sums
        from tenancy.models import Project

        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": "Token usage",
                   "days": days, "by_day": by_day, "totals": totals, "projects": Project.objects.order_by("name"),
                   "project": int(project) if project and project.isdigit() else None}
        return TemplateResponse(request, "admin/runs/run/usage.html", context)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        cancellable = obj is not None and obj.status in Run.ACTIVE and obj.status != Run.Status.CANCELLING
        context["can_cancel_run"] = cancellable and self.has_cancel_permission(request)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)


@admin.register(RunStep)
class RunStepAdmin(ReadOnlyMixin, TenantAdmin):
    list_display = ["public_id", "type", "status", "run_link", "project", "created_at", "tokens"]
    list_filter = ["type", "status", "project", "created_at"]
    search_fields = ["public_id", "run__public_id"]
    list_select_related = ["project", "run"]
    fields = ("public_id", "run_link", "project", "type", "status", "created_at", "details", "usage_text",
              "last_error_text", "completed_at", "failed_at", "cancelled_at", "expired_at")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-pk")

    @admin.display(description="run")
    def run_link(self, obj: RunStep) -> str:
        return run_link(obj.run)

    @admin.display(description="tokens")
    def tokens(self, obj: RunStep) -> str:
        return str((obj.usage or {}).get("total_tokens", "-"))

    @admin.display(description="details")
    def details(self, obj: RunStep) -> str:
        by_id = {}
        if obj.type == RunStep.Type.MESSAGE_CREATION:
            message_id = (obj.step_details.get("message_creation") or {}).get("message_id")
            by_id = {m.public_id: m for m in Message.objects.filter(thread_id=obj.thread_id, public_id=message_id)}
        return step_html(obj, by_id)

    @admin.display(description="usage")
    def usage_text(self, obj: RunStep) -> str:
        return usage_text(obj.usage)

    @admin.display(description="last error")
    def last_error_text(self, obj: RunStep) -> str:
        return error_text(obj.last_error) or "-"
