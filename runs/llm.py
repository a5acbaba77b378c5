"""The one module that talks to model providers, through LiteLLM.

Provider keys and base URLs come from LiteLLM's usual environment variables (OPENAI_API_KEY,
OPENAI_API_BASE, ANTHROPIC_API_KEY, …). An optional alias file maps public model names to LiteLLM
targets and parameters; runs always echo the name the client sent.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from django.conf import settings

from assistants_project import providers
from assistants_project.providers import scrub
from runs import heartbeat

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


# --- gateway (issue 16): the public names for GET /v1/models --------------------------------------
def alias_names() -> list[str]:
    """The public model names MODEL_ALIASES_FILE defines, in file order."""
    return list(_aliases())
# --- end gateway ----------------------------------------------------------------------------------


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
        # Our tools are plain dicts in OpenAI's tool shape; LiteLLM annotates them as its own TypedDict.
        return int(litellm.token_counter(model=target, messages=messages, tools=cast(Any, tools or None)))
    except Exception:
        return int(litellm.token_counter(messages=messages))


def _classify(exc: Exception) -> ModelError:
    """A LiteLLM/provider exception as a run error. Codes (OpenAI's run ``last_error.code`` has only three):
    rate_limit_exceeded for 429s; invalid_prompt where the request itself is refused (context window, content
    policy, bad request, unknown model); server_error for everything else, including a provider that rejects
    this server's credentials (a setup problem the user cannot fix by changing the prompt; not retried)."""
    import litellm

    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    message = scrub(message.splitlines()[0])[:500]
    if providers.is_credential_error(exc):
        return ModelError("server_error", "The model provider rejected the credentials this server is configured "
                                          f"with (check its provider API key): {message}")
    if isinstance(exc, litellm.RateLimitError):
        return ModelError("rate_limit_exceeded", message, transient=True)
    if isinstance(exc, litellm.ContextWindowExceededError | litellm.ContentPolicyViolationError):
        return ModelError("invalid_prompt", message)
    if isinstance(exc, litellm.BadRequestError | litellm.NotFoundError | litellm.UnprocessableEntityError):
        return ModelError("invalid_prompt", message)
    if providers.is_transient(exc):
        return ModelError("server_error", message, transient=True)
    return ModelError("server_error", message)  # not a provider hiccup (a bug, a bad setup): no retry


def stream_chat(*, model: str, messages: list[dict], tools: list[dict] | None = None, tool_choice: Any = None,
                parallel_tool_calls: bool | None = None, response_format: Any = None, temperature: float | None = None,
                top_p: float | None = None, max_tokens: int | None = None,
                reasoning_effort: str | None = None) -> Iterator[TextDelta | ToolCallDelta | Finish]:
    """Stream one chat completion as normalized deltas, ending with exactly one Finish.

    Transient failures before the first chunk are retried (assistants_project.providers.retrying); LiteLLM's
    and the OpenAI client's own retries are off, so one provider error is one request. The provider's stream is
    closed on every exit (end, error, or the caller closing this generator on cancel), and every chunk marks
    the run's progress for the heartbeat. A stream that ends without a finish reason raises ModelError.
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
    stream = _open_stream(kwargs)
    yield from _normalize(stream)


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


def _litellm():
    return providers.configure_litellm()


def _open_stream(kwargs: dict):
    litellm = _litellm()

    def call():
        try:
            # _skip_mcp_handler: LiteLLM < 1.108.4 imports the optional `mcp` package whenever tools are
            # passed; 1.108.4+ needs a certifi newer than the registry mirror has. Accepted by 1.106–1.109.
            return litellm.completion(**kwargs, drop_params=True, _skip_mcp_handler=True)
        except Exception as exc:
            raise _classify(exc) from exc

    policy = providers.retrying(lambda exc: isinstance(exc, ModelError) and exc.transient, before=heartbeat.progress)
    return policy(call)


def close_stream(stream) -> None:
    """Close a provider stream now, on this thread: LiteLLM's wrapper holds the provider SDK's stream, which
    holds the HTTP response. Left to the garbage collector, the response would be closed later on whatever
    thread allocates (it sits in a reference cycle), taking httpcore's pool lock where that thread may hold it
    already (encode/httpcore#996): the worker thread deadlocks. Closing twice is a no-op."""
    for part in (getattr(stream, "completion_stream", None), stream):
        close = getattr(part, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # a broken connection may fail to close; it is dropped either way
                logger.debug("closing a provider stream failed", exc_info=True)


def _provider_finished(stream, seen: str | None) -> bool:
    """Did the provider send a finish reason? LiteLLM's wrapper ends every stream with a chunk that carries
    one, inventing "stop" when the provider sent none (a connection closed cleanly mid-answer, a 200 whose body
    was no stream at all); what the provider really sent is in ``received_finish_reason``."""
    if hasattr(stream, "received_finish_reason"):
        return bool(stream.received_finish_reason or getattr(stream, "intermittent_finish_reason", None))
    return seen is not None


def _normalize(stream) -> Iterator[TextDelta | ToolCallDelta | Finish]:
    finish_reason, usage = None, {}
    try:
        for chunk in stream:
            heartbeat.progress()
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
        if not _provider_finished(stream, finish_reason):
            raise ModelError("server_error", "The model provider's response ended before it was complete (the "
                                             "stream closed without a finish reason).")
    except ModelError:
        raise
    except Exception as exc:
        raise _classify(exc) from exc
    finally:
        close_stream(stream)
    yield Finish(reason=finish_reason or "stop", usage=usage)
