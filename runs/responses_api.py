"""Runs on Responses-backed models: our chat-style prompt as Responses input items, and the Responses stream
events as the deltas ``runs.llm`` yields for chat completions (TextDelta, ToolCallDelta, Finish).

The call is stateless towards the provider (``store: false``, the whole context every turn): nothing of a thread
lives there, and tool calls keep our own ids (``call_id``), so a later turn's ``function_call_output`` items
match. Pure translation; ``runs.llm`` makes the call.
"""

from __future__ import annotations

import json
from typing import Any

# OpenAI refuses a max_output_tokens below 16; a smaller remaining budget asks for 16 (the run still ends
# incomplete once its max_completion_tokens is spent).
MIN_OUTPUT_TOKENS = 16


def request(*, messages: list[dict], tools: list[dict] | None, tool_choice: Any, parallel_tool_calls: bool | None,
            response_format: Any, temperature: float | None, top_p: float | None, max_tokens: int | None,
            reasoning_effort: str | None) -> dict:
    """The Responses API arguments for one model turn."""
    kwargs: dict[str, Any] = {"input": input_items(messages), "store": False, "stream": True}
    if tools:
        kwargs["tools"] = [_tool(tool) for tool in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = _tool_choice(tool_choice)
        if parallel_tool_calls is False:
            kwargs["parallel_tool_calls"] = False
    if response_format:
        kwargs["text"] = {"format": _text_format(response_format)}
    if max_tokens is not None:
        kwargs["max_output_tokens"] = max(MIN_OUTPUT_TOKENS, max_tokens)
    if reasoning_effort:
        kwargs["reasoning"] = {"effort": reasoning_effort}
    for name, value in (("temperature", temperature), ("top_p", top_p)):
        if value is not None:
            kwargs[name] = value
    return kwargs


def input_items(messages: list[dict]) -> list[dict]:
    items: list[dict] = []
    for message in messages:
        role = message.get("role")
        if role == "tool":
            items.append({"type": "function_call_output", "call_id": message["tool_call_id"],
                          "output": _text(message.get("content"))})
            continue
        content = message.get("content")
        if role == "assistant":
            if content:
                items.append({"role": "assistant", "content": _text(content)})
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                items.append({"type": "function_call", "call_id": call["id"], "name": function.get("name", ""),
                              "arguments": function.get("arguments") or ""})
            continue
        if isinstance(content, list):
            content = [_part(part) for part in content]
        items.append({"role": role, "content": content if content is not None else ""})
    return items


def _text(content) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def _part(part: dict) -> dict:
    if part.get("type") == "text":
        return {"type": "input_text", "text": part.get("text", "")}
    if part.get("type") == "image_url":
        image = part.get("image_url") or {}
        return {"type": "input_image", "image_url": image.get("url"), "detail": image.get("detail") or "auto"}
    return part


def _tool(tool: dict) -> dict:
    if tool.get("type") != "function":
        return tool
    function = tool.get("function") or {}
    out = {"type": "function", "name": function["name"],
           "parameters": function.get("parameters") or {"type": "object", "properties": {}},
           "strict": bool(function.get("strict"))}  # the Responses API defaults to strict; Assistants does not
    if function.get("description"):
        out["description"] = function["description"]
    return out


def _tool_choice(choice):
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "name": (choice.get("function") or {}).get("name")}
    return choice


def _text_format(fmt):
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = fmt.get("json_schema") or {}
        return {"type": "json_schema", **{k: v for k, v in schema.items() if v is not None}}
    return fmt


# --- the stream back -------------------------------------------------------------------------------------------


def field(obj, name: str, default=None):
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def usage_of(response) -> dict:
    usage = field(response, "usage")
    if not usage:
        return {}
    # the Responses API's names; LiteLLM may hand them over already in chat completions' names
    prompt = field(usage, "input_tokens", None)
    completion = field(usage, "output_tokens", None)
    return {"prompt_tokens": (prompt if prompt is not None else field(usage, "prompt_tokens")) or 0,
            "completion_tokens": (completion if completion is not None else field(usage, "completion_tokens")) or 0}


def arguments_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value or {})
