"""Request bodies: the checks that give a clear 400 naming the parameter before any provider is called.
Detailed checks (message parts, tool schemas, ranges) are the provider's, whose 400 is passed on as is.
A null means "not provided" everywhere, as OpenAI treats it."""

from __future__ import annotations

import json

from assistants_project.api.errors import InvalidRequest

CHAT_FIELDS = frozenset({
    "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs", "max_completion_tokens",
    "max_tokens", "messages", "metadata", "modalities", "model", "moderation", "n", "parallel_tool_calls",
    "prediction", "presence_penalty", "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention",
    "reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier", "stop", "store", "stream",
    "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity",
    "web_search_options",
})
# Stored completions are not kept here: `store` and its `metadata` are accepted and not sent on.
CHAT_NOT_FORWARDED = frozenset({"store", "metadata"})
EMBEDDING_FIELDS = frozenset({"dimensions", "encoding_format", "input", "model", "user"})
MODERATION_FIELDS = frozenset({"input", "model"})


def parse(body: bytes, fields: frozenset) -> dict:
    try:
        data = json.loads(body or b"null")
    except ValueError as exc:
        raise InvalidRequest(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
            "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid "
            f"JSON.) {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    out = {}
    for key, value in data.items():
        if key not in fields:
            raise InvalidRequest(f"Unrecognized request argument supplied: {key}", param=key,
                                 code="unknown_parameter")
        if value is not None:
            out[key] = value
    return out


def _model(data: dict) -> str:
    model = data.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("you must provide a model parameter" if model is None
                             else "Invalid 'model': expected a string.", param="model")
    return model


def _int(data: dict, name: str, minimum: int) -> None:
    value = data.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
        raise InvalidRequest(f"Invalid '{name}': expected an integer of at least {minimum}.", param=name)


def chat(data: dict) -> str:
    model = _model(data)
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("Invalid 'messages': expected a non-empty array of messages." if messages is not None
                             else "Missing required parameter: 'messages'.", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest(f"Invalid 'messages[{index}]': expected an object with a 'role'.",
                                 param=f"messages[{index}]")
    for name, minimum in (("n", 1), ("max_tokens", 1), ("max_completion_tokens", 1), ("top_logprobs", 0)):
        _int(data, name, minimum)
    if "stream" in data and not isinstance(data["stream"], bool):
        raise InvalidRequest("Invalid 'stream': expected a boolean.", param="stream")
    options = data.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("Invalid 'stream_options': expected an object.", param="stream_options")
    if options is not None and not data.get("stream"):
        raise InvalidRequest("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                             param="stream_options")
    return model


def embedding(data: dict) -> tuple[str, bool]:
    model = _model(data)
    value = data.get("input")
    ok = (isinstance(value, str) and value) or (
        isinstance(value, list) and value and (
            all(isinstance(item, str) for item in value)
            or all(isinstance(item, int) and not isinstance(item, bool) for item in value)
            or all(isinstance(item, list) and item and all(isinstance(t, int) for t in item) for item in value)))
    if not ok:
        raise InvalidRequest("Invalid 'input': expected a non-empty string, array of strings, array of token ids "
                             "or array of token-id arrays.", param="input")
    fmt = data.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise InvalidRequest("Invalid 'encoding_format': expected 'float' or 'base64'.", param="encoding_format")
    _int(data, "dimensions", 1)
    return model, fmt == "base64"


def moderation(data: dict) -> str:
    value = data.get("input")
    if not value or not isinstance(value, str | list):
        raise InvalidRequest("Invalid 'input': expected a non-empty string or array.", param="input")
    model = data.get("model", "omni-moderation-latest")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("Invalid 'model': expected a string.", param="model")
    return model
