"""The one module that talks to model providers, through LiteLLM.

Provider keys and base URLs come from LiteLLM's usual environment variables (OPENAI_API_KEY,
OPENAI_API_BASE, ANTHROPIC_API_KEY, …). An optional alias file maps public model names to LiteLLM
targets and parameters; runs always echo the name the client sent.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from assistants_project import metrics

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

logger = logging.getLogger(__name__)


class ModelError(Exception):
    """A provider failure, classified into OpenAI's run ``last_error.code`` values."""

    def __init__(self, code: str, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.code = code  # server_error | rate_limit_exceeded | invalid_prompt
        self.message = message
        self.transient = transient


@dataclass
class TextDelta:
    text: str


@dataclass
class ToolCallDelta:
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass
class Finish:
    reason: str  # stop | tool_calls | length | content_filter
    usage: dict = field(default_factory=dict)


@functools.cache
def _aliases() -> dict[str, dict]:
    path = settings.MODEL_ALIASES_FILE
    if not path:
        return {}
    import yaml

    with open(path) as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"MODEL_ALIASES_FILE {path}: expected a mapping of model names")
    out = {}
    for name, target in data.items():
        out[str(name)] = {"model": target} if isinstance(target, str) else dict(target)
    return out


def resolve(model: str) -> tuple[str, dict]:
    """Public model name → (LiteLLM model string, extra completion parameters)."""
    alias = _aliases().get(model)
    if alias is None:
        return model, {}
    params = dict(alias)
    return params.pop("model", model), params


def check_model(model: str) -> str | None:
    """None when LiteLLM can route ``model``; otherwise why not."""
    import litellm

    target, params = resolve(model)
    try:
        litellm.get_llm_provider(target, custom_llm_provider=params.get("custom_llm_provider"))
    except Exception as exc:
        return str(exc).splitlines()[0][:300]
    return None


@functools.lru_cache(maxsize=256)
def context_window(model: str) -> int | None:
    import litellm

    target, _ = resolve(model)
    try:
        info = litellm.get_model_info(target)
    except Exception:
        return None
    return info.get("max_input_tokens") or info.get("max_tokens")


def count_tokens(model: str, messages: list[dict], tools: list[dict] | None = None) -> int:
    import litellm

    target, _ = resolve(model)
    try:
        return int(litellm.token_counter(model=target, messages=messages, tools=tools or None))
    except Exception:
        return int(litellm.token_counter(messages=messages))


def _classify(exc: Exception) -> ModelError:
    import litellm

    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    message = message.splitlines()[0][:500]
    if isinstance(exc, litellm.RateLimitError):
        return ModelError("rate_limit_exceeded", message, transient=True)
    if isinstance(exc, litellm.ContextWindowExceededError | litellm.ContentPolicyViolationError):
        return ModelError("invalid_prompt", message)
    if isinstance(exc, litellm.BadRequestError | litellm.NotFoundError | litellm.AuthenticationError
                  | litellm.PermissionDeniedError | litellm.UnprocessableEntityError):
        return ModelError("invalid_prompt", message)
    if isinstance(exc, litellm.Timeout | litellm.APIConnectionError | litellm.InternalServerError
                  | litellm.ServiceUnavailableError):
        return ModelError("server_error", message, transient=True)
    status = getattr(exc, "status_code", None)
    if isinstance(exc, litellm.APIError) and status and status >= 500:
        return ModelError("server_error", message, transient=True)
    return ModelError("server_error", message)  # not a provider hiccup (a bug, a bad setup): no retry


def stream_chat(*, model: str, messages: list[dict], tools: list[dict] | None = None, tool_choice: Any = None,
                parallel_tool_calls: bool | None = None, response_format: Any = None, temperature: float | None = None,
                top_p: float | None = None, max_tokens: int | None = None,
                reasoning_effort: str | None = None) -> Iterator[TextDelta | ToolCallDelta | Finish]:
    """Stream one chat completion as normalized deltas, ending with exactly one Finish.

    Transient failures before the first chunk are retried (LLM_NUM_RETRIES, exponential backoff); LiteLLM's
    and the OpenAI client's own retries are off, so one provider error is one request.
    """
    target, params = resolve(model)
    kwargs: dict[str, Any] = {**params, "model": target, "messages": messages, "stream": True,
                              "stream_options": {"include_usage": True}, "num_retries": 0, "max_retries": 0,
                              "timeout": settings.LLM_TIMEOUT_SECONDS}
    if tools:
        kwargs["tools"] = tools
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        if parallel_tool_calls is False:
            kwargs["parallel_tool_calls"] = False
    for name, value in (("temperature", temperature), ("top_p", top_p), ("max_tokens", max_tokens),
                        ("reasoning_effort", reasoning_effort), ("response_format", response_format)):
        if value is not None:
            kwargs[name] = value
    _drop_unsupported(kwargs, params)
    with metrics.model_call(target) as first_token:  # latency, errors, the run's time to first token
        stream = _open_stream(kwargs)
        for delta in _normalize(stream):
            if first_token is not None and not isinstance(delta, Finish):
                first_token()
                first_token = None
            yield delta


_OPTIONAL = ("temperature", "top_p", "max_tokens", "reasoning_effort", "response_format", "tool_choice",
             "parallel_tool_calls")


def _drop_unsupported(kwargs: dict, params: dict) -> None:
    """A provider that cannot honour a parameter still runs; the mismatch is logged, never an error."""
    litellm = _litellm()
    try:
        supported = litellm.get_supported_openai_params(
            model=kwargs["model"], custom_llm_provider=params.get("custom_llm_provider"))
    except Exception:
        return
    if supported is None:
        return
    for name in _OPTIONAL:
        if name in kwargs and name not in supported:
            logger.warning("model %s does not support %s; sending the request without it", kwargs["model"], name)
            kwargs.pop(name)


@functools.cache
def _litellm():
    import litellm

    # LiteLLM aborts a stream that repeats one chunk 100 times; real output ("-----", "token token …") can.
    litellm.REPEATED_STREAMING_CHUNK_LIMIT = 10**9
    return litellm


def _open_stream(kwargs: dict):
    litellm = _litellm()

    attempt = 0
    while True:
        try:
            # _skip_mcp_handler: LiteLLM < 1.108.4 imports the optional `mcp` package whenever tools are
            # passed; 1.108.4+ needs a certifi newer than the registry mirror has. Accepted by 1.106–1.109.
            return litellm.completion(**kwargs, drop_params=True, _skip_mcp_handler=True)
        except Exception as exc:
            error = _classify(exc)
            if not error.transient or attempt >= settings.LLM_NUM_RETRIES:
                raise error from exc
            delay = settings.LLM_RETRY_BACKOFF_SECONDS * (2**attempt)
            metrics.model_retry(kwargs["model"])
            logger.warning("model call failed (%s), retry %d in %.1fs", error.message, attempt + 1, delay)
            time.sleep(delay)
            attempt += 1


def _normalize(stream) -> Iterator[TextDelta | ToolCallDelta | Finish]:
    finish_reason, usage = None, {}
    try:
        for chunk in stream:
            chunk_usage = getattr(chunk, "usage", None)
            if chunk_usage:
                usage = {"prompt_tokens": chunk_usage.prompt_tokens or 0,
                         "completion_tokens": chunk_usage.completion_tokens or 0}
            for choice in chunk.choices or []:
                delta = choice.delta
                if delta is not None:
                    if getattr(delta, "content", None):
                        yield TextDelta(delta.content)
                    for call in getattr(delta, "tool_calls", None) or []:
                        function = call.function
                        yield ToolCallDelta(index=call.index or 0, id=call.id,
                                            name=getattr(function, "name", None) if function else None,
                                            arguments=(getattr(function, "arguments", None) or "") if function else "")
                if choice.finish_reason:
                    finish_reason = choice.finish_reason
    except ModelError:
        raise
    except Exception as exc:
        raise _classify(exc) from exc
    yield Finish(reason=finish_reason or "stop", usage=usage)
