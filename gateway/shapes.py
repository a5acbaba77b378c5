"""LiteLLM's response objects → OpenAI's JSON shapes (gateway-openapi.yaml), with LiteLLM's own extras
(``provider_specific_fields``, ``citations``, null ``function_call``/``audio``…) left out. Every answer names the
model the client asked for (an alias stays an alias), as runs do."""

from __future__ import annotations

import base64
import struct
from typing import Any

_USAGE = ("prompt_tokens", "completion_tokens", "total_tokens")


def _dump(obj) -> dict:
    return obj if isinstance(obj, dict) else obj.model_dump()


def _usage(raw: dict | None) -> dict | None:
    if not raw:
        return None
    out: dict[str, Any] = {key: int(raw.get(key) or 0) for key in _USAGE}
    for key in ("prompt_tokens_details", "completion_tokens_details"):
        details = raw.get(key)
        if details:
            out[key] = {k: v for k, v in details.items() if v is not None and k != "text_tokens"}
    return out


def _tool_calls(calls: list | None, *, chunk: bool) -> list | None:
    if not calls:
        return None
    out = []
    for position, call in enumerate(calls):
        function = call.get("function") or {}
        if chunk:
            item = {"index": call.get("index", position)}
            if call.get("id"):
                item["id"] = call["id"]
                item["type"] = call.get("type") or "function"
            fn = {k: function[k] for k in ("name", "arguments") if function.get(k) is not None}
            if fn:
                item["function"] = fn
        else:
            item = {"id": call.get("id"), "type": call.get("type") or "function",
                    "function": {"name": function.get("name"), "arguments": function.get("arguments") or ""}}
        out.append(item)
    return out


def _refusal(message: dict):
    return message.get("refusal") or (message.get("provider_specific_fields") or {}).get("refusal")


def completion(response, model: str) -> dict:
    raw = _dump(response)
    choices = []
    for choice in raw.get("choices") or []:
        message = choice.get("message") or {}
        out_message = {"role": "assistant", "content": message.get("content"), "refusal": _refusal(message)}
        calls = _tool_calls(message.get("tool_calls"), chunk=False)
        if calls:
            out_message["tool_calls"] = calls
        if message.get("annotations"):
            out_message["annotations"] = message["annotations"]
        if message.get("audio"):
            out_message["audio"] = message["audio"]
        choices.append({"index": choice.get("index", 0), "message": out_message,
                        "logprobs": choice.get("logprobs"), "finish_reason": choice.get("finish_reason") or "stop"})
    out = {"id": raw.get("id"), "object": "chat.completion", "created": raw.get("created"), "model": model,
           "choices": choices, "usage": _usage(raw.get("usage"))}
    if out["usage"] is None:
        del out["usage"]
    for key in ("system_fingerprint", "service_tier"):
        if raw.get(key):
            out[key] = raw[key]
    return out


def chunk(response, model: str, *, include_usage: bool) -> dict | None:
    """One stream chunk, or None for a chunk that carries nothing (LiteLLM emits some)."""
    raw = _dump(response)
    usage = _usage(raw.get("usage")) if include_usage else None
    choices = []
    for choice in raw.get("choices") or []:
        delta = choice.get("delta") or {}
        out_delta = {}
        if delta.get("role"):
            out_delta["role"] = delta["role"]
        if delta.get("content") is not None:
            out_delta["content"] = delta["content"]
        refusal = _refusal(delta)
        if refusal is not None:
            out_delta["refusal"] = refusal
        calls = _tool_calls(delta.get("tool_calls"), chunk=True)
        if calls:
            out_delta["tool_calls"] = calls
        finish = choice.get("finish_reason")
        logprobs = choice.get("logprobs")
        if out_delta or finish or logprobs:
            choices.append({"index": choice.get("index", 0), "delta": out_delta, "logprobs": logprobs,
                            "finish_reason": finish})
    if not choices and usage is None:
        return None
    out = {"id": raw.get("id"), "object": "chat.completion.chunk", "created": raw.get("created"), "model": model,
           "choices": choices}
    for key in ("system_fingerprint", "service_tier"):
        if raw.get(key):
            out[key] = raw[key]
    if include_usage:
        out["usage"] = usage  # null on every chunk but the last, as OpenAI sends it
    return out


def embeddings(response, model: str, *, base64_format: bool) -> dict:
    raw = _dump(response)
    data = []
    for position, item in enumerate(raw.get("data") or []):
        vector = item.get("embedding") if isinstance(item, dict) else item
        if base64_format and isinstance(vector, list):
            vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
        elif not base64_format and isinstance(vector, str):
            packed = base64.b64decode(vector)
            vector = list(struct.unpack(f"<{len(packed) // 4}f", packed))
        data.append({"object": "embedding", "index": item.get("index", position) if isinstance(item, dict)
                     else position, "embedding": vector})
    usage = raw.get("usage") or {}
    prompt = int(usage.get("prompt_tokens") or 0)
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": prompt, "total_tokens": int(usage.get("total_tokens") or prompt)}}


def moderation(response, model: str) -> dict:
    raw = _dump(response)
    results = [{k: v for k, v in result.items() if v is not None} for result in raw.get("results") or []]
    return {"id": raw.get("id"), "model": model, "results": results}
