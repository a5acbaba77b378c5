"""Prompt assembly for one model turn: system instructions, the thread's messages (truncated as the run
asks), this run's earlier tool calls and their outputs, and the tools offered."""

from __future__ import annotations

import base64
import json
import logging
from collections import Counter
from dataclasses import dataclass

from django.db import connection

from assistants.models import Message
from assistants_project import rows
from runs import llm, tools
from runs.models import Run, RunStep

logger = logging.getLogger(__name__)

class PromptTooLong(Exception):
    """Even the newest message alone exceeds max_prompt_tokens."""


@dataclass
class Prompt:
    messages: list[dict]
    tools: list[dict]
    tool_choice: object


def model_tools(run: Run) -> list[dict]:
    """The run's tools as chat-completion tools, as each kind offers itself (some offer nothing)."""
    offered = (tools.get(tool["type"]).offered(tool) for tool in run.tools)
    return [tool for tool in offered if tool is not None]


def _tool_choice(run: Run, offered: list[dict]):
    choice = run.tool_choice
    if not offered or choice in (None, "auto"):
        return None
    if isinstance(choice, dict) and choice.get("type") in tools.REGISTRY:
        return tools.get(choice["type"]).choice_for_model(choice)
    return choice


def history_sql() -> str:
    """The thread's messages a prompt holds (all but the run's own), for the claim to read in its own round trip
    (``runs.lifecycle``); one parameter, the run's id. ``keep_history`` hands them to ``build_prompt``."""
    return (f"SELECT {rows.columns(Message, 'm')} FROM {Message._meta.db_table} m "
            f"JOIN {Run._meta.db_table} r ON r.id = %s "
            "WHERE m.thread_id = r.thread_id AND m.run_public_id IS DISTINCT FROM r.public_id ORDER BY m.id")


_HISTORY = "_claimed_history"


def keep_history(run: Run, history_rows) -> None:
    setattr(run, _HISTORY, [rows.from_row(Message, row) for row in history_rows])


def _history(run: Run) -> list[Message]:
    """What the claim read (once: nothing writes the thread's messages while its run is active, but a later
    turn reads afresh all the same), else the same query now."""
    if _HISTORY not in run.__dict__:
        with connection.cursor() as cursor:
            cursor.execute(history_sql(), [run.pk])
            keep_history(run, cursor.fetchall())
    return run.__dict__.pop(_HISTORY)


def _image_url_of_file(file_id: str, project) -> str | None:
    """An ``image_file`` part as a data URL (what chat-completion providers accept); None if the file is gone."""
    from assistants_project.api.errors import NotFoundError
    from files import storage
    from files.selectors import file_get

    try:
        file = file_get(project=project, file_id=file_id)
        data = storage.read_bytes(file.storage_name)
    except (NotFoundError, OSError):
        logger.warning("image file %s unavailable for the prompt", file_id)
        return None
    content_type = file.content_type if file.content_type.startswith("image/") else "image/png"
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


def _message_for_model(message: Message) -> dict:
    parts, has_image = [], False
    for part in message.content:
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": part["text"]["value"]})
        elif kind == "image_url":
            has_image = True
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]["url"],
                                                             "detail": part["image_url"].get("detail", "auto")}})
        elif kind == "image_file" and message.role == Message.Role.USER:  # providers take images from users only
            url = _image_url_of_file(part["image_file"]["file_id"], message.project)
            if url:
                has_image = True
                parts.append({"type": "image_url", "image_url": {"url": url,
                                                                 "detail": part["image_file"].get("detail", "auto")}})
    if not has_image:
        return {"role": message.role, "content": "\n".join(p["text"] for p in parts)}
    return {"role": message.role, "content": parts}


def _run_turns(run: Run) -> list[dict]:
    """This run's finished turns, replayed: assistant text and tool calls, then each tool's output."""
    out: list[dict] = []
    steps = list(RunStep.objects.filter(run=run).order_by("pk"))
    messages = {m.public_id: m for m in Message.objects.filter(thread=run.thread, run_public_id=run.public_id)}
    ordinals: Counter = Counter()  # each kind's calls so far (file_search numbers its sources by it)
    for turn in sorted({s.turn for s in steps}):
        turn_steps = [s for s in steps if s.turn == turn]
        calls = [s for s in turn_steps if s.type == RunStep.Type.TOOL_CALLS]
        if not calls or any(c.status != RunStep.Status.COMPLETED for c in calls):
            continue  # a message-only turn is in the thread already; an unfinished one is redone
        text = ""
        for step in turn_steps:
            if step.type == RunStep.Type.MESSAGE_CREATION:
                message = messages.get(step.step_details["message_creation"]["message_id"])
                if message is not None:
                    text += "".join(p["text"]["value"] for p in message.content if p.get("type") == "text")
        tool_calls, outputs = [], []
        for call in (c for step in calls for c in step.step_details["tool_calls"]):
            asked, output = tools.get(call["type"]).replay(call, ordinals[call["type"]])
            ordinals[call["type"]] += 1
            tool_calls.append(asked)
            outputs.append({"role": "tool", "tool_call_id": call["id"], "content": output})
        out.append({"role": "assistant", "content": text or None, "tool_calls": tool_calls})
        out.extend(outputs)
    return out


def _characters(messages: list[dict], offered: list[dict]) -> int:
    return len(json.dumps(messages)) + len(json.dumps(offered))


def build_prompt(run: Run, *, first_turn: bool = False) -> Prompt:
    tool_notes = [tools.get(tool["type"]).instructions(run) for tool in run.tools]
    system_text = "\n\n".join(t for t in (run.instructions, run.additional_instructions, *tool_notes) if t)
    system = [{"role": "system", "content": system_text}] if system_text else []
    history = [_message_for_model(m) for m in _history(run)]
    run_messages = [] if first_turn else _run_turns(run)
    strategy = run.truncation_strategy or {"type": "auto"}
    if strategy.get("type") == "last_messages":
        history = history[-strategy["last_messages"]:]
    offered = model_tools(run)
    budget = run.max_prompt_tokens or llm.context_window(run.model)
    # A token is at least one byte, and ASCII-escaped JSON is at least as long as the UTF-8 text, so a prompt
    # shorter than the budget fits: skip the tokenizer (the common case, on the path to the first token).
    if budget and _characters(system + history + run_messages, offered) > budget:
        # Keep the newest thread messages that fit; never cut the system message or this run's own turns.
        total = llm.count_tokens(run.model, system + run_messages, offered)
        kept: list[dict] = []
        for message in reversed(history):
            size = llm.count_tokens(run.model, [message])
            if total + size > budget:
                break
            total += size
            kept.append(message)
        if total > budget or (history and not kept):
            raise PromptTooLong
        history = kept[::-1]
    return Prompt(messages=system + history + run_messages, tools=offered, tool_choice=_tool_choice(run, offered))
