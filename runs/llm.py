"""The one module that talks to model providers, through LiteLLM.

Provider keys and base URLs come from LiteLLM's usual environment variables (OPENAI_API_KEY,
OPENAI_API_BASE, ANTHROPIC_API_KEY, …). An optional alias file maps public model names to LiteLLM
targets and parameters; runs always echo the name the client sent.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import logging
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from django.conf import settings

from assistants_project import metrics, providers
from assistants_project.providers import scrub
from runs import heartbeat, responses_api
from tenancy import credentials as provider_credentials

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
    params.pop("api", None)  # how runs call the model (uses_responses_api), not a LiteLLM parameter
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
    message = scrub(message.splitlines()[0])[:500]  # a provider may echo the key
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
    # --- provider credentials (issue 16): the request's headers, then the project's stored ones, over the alias's
    params = provider_credentials.llm_params(target, params)
    if uses_responses_api(model):  # --- Responses-backed model (issue 16): its own call path, below
        yield from _stream_responses(target, params, responses_api.request(
            messages=messages, tools=tools, tool_choice=tool_choice, parallel_tool_calls=parallel_tool_calls,
            response_format=response_format, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
            reasoning_effort=reasoning_effort))
        return
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


def _litellm():
    return providers.configure_litellm()


_opening: contextvars.ContextVar[bool] = contextvars.ContextVar("opening_a_run_stream", default=False)


@functools.cache
def _without_open_cost() -> None:
    """LiteLLM prices a stream the moment it opens (nothing streamed yet: the price is of an empty response) and
    stamps it, with other metadata nobody here reads, on the stream wrapper: a cost-map lookup and a response
    rebuild per call. For the streams this module opens, only the timing is kept, as LiteLLM itself does for a
    result that cannot carry that metadata. Other callers (the gateway) are left as they are."""
    import litellm.utils as litellm_utils
    from litellm.litellm_core_utils.llm_response_utils import response_metadata

    original = getattr(litellm_utils, "update_response_metadata", None)
    timing = getattr(response_metadata, "response_timing_metrics", None)
    if original is None or timing is None:
        return

    @functools.wraps(original)
    def update_response_metadata(result, logging_obj, model, kwargs, start_time, end_time, include_overhead=True):
        if not _opening.get() or not hasattr(logging_obj, "set_response_timing_metrics"):
            return original(result, logging_obj, model, kwargs, start_time, end_time, include_overhead)
        logging_obj.set_response_timing_metrics(timing(start_time, end_time, logging_obj, include_overhead))
        return None

    litellm_utils.update_response_metadata = update_response_metadata


def _open_stream(kwargs: dict):
    litellm = _litellm()
    _without_open_cost()

    def call():
        opening = _opening.set(True)
        try:
            # _skip_mcp_handler: LiteLLM < 1.108.4 imports the optional `mcp` package whenever tools are
            # passed; 1.108.4+ needs a certifi newer than the registry mirror has. Accepted by 1.106–1.109.
            return litellm.completion(**kwargs, drop_params=True, _skip_mcp_handler=True)
        except Exception as exc:
            raise _classify(exc) from exc
        finally:
            _opening.reset(opening)

    policy = providers.retrying(lambda exc: isinstance(exc, ModelError) and exc.transient, before=heartbeat.progress,
                                on_retry=lambda: metrics.model_retry(kwargs["model"]))
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


def _normalize(stream) -> Iterator[TextDelta | ToolCallDelta | Finish]:
    """The provider's chunks (``providers.chunks``: OpenAI-SDK-backed providers read without LiteLLM's per-chunk
    wrapper, most of a short run's worker CPU) as deltas. Usage is the provider's own, from its last chunk
    (stream_options); a stream that ends without a finish reason is a provider failure."""
    finish_reason, usage = None, {}
    try:
        for chunk in providers.chunks(stream):
            heartbeat.progress()
            chunk_usage = chunk.get("usage")
            if chunk_usage:
                usage = {"prompt_tokens": chunk_usage.get("prompt_tokens") or 0,
                         "completion_tokens": chunk_usage.get("completion_tokens") or 0}
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta")
                if delta:
                    if delta.get("content"):
                        yield TextDelta(delta["content"])
                    for call in delta.get("tool_calls") or []:
                        function = call.get("function") or {}
                        yield ToolCallDelta(index=call.get("index") or 0, id=call.get("id"),
                                            name=function.get("name"), arguments=function.get("arguments") or "")
                if choice.get("finish_reason"):
                    finish_reason = choice["finish_reason"]
    except providers.StreamIncomplete as exc:
        raise ModelError("server_error", str(exc)) from exc
    except Exception as exc:
        raise _classify(exc) from exc
    finally:
        close_stream(stream)
    yield Finish(reason=finish_reason or "stop", usage=usage)


# --- Responses-backed models (issue 16) ------------------------------------------------------------------------
# A model marked ``api: responses`` in MODEL_ALIASES_FILE (``api: chat`` forces chat completions), or one LiteLLM's
# model map lists with mode "responses", runs through the provider's Responses API: stateless (store: false, the
# whole context each turn), translated to and from our chat-style turn by runs.responses_api.


@functools.lru_cache(maxsize=256)
def uses_responses_api(model: str) -> bool:
    api = (_aliases().get(model) or {}).get("api")
    if api is not None:
        return api == "responses"
    target, _ = resolve(model)
    try:
        return _litellm().get_model_info(target).get("mode") == "responses"
    except Exception:
        return False


def _stream_responses(target: str, params: dict, request: dict) -> Iterator[TextDelta | ToolCallDelta | Finish]:
    litellm = _litellm()
    kwargs = {**params, **request, "model": target, "num_retries": 0, "max_retries": 0,
              "timeout": settings.LLM_TIMEOUT_SECONDS, "_skip_mcp_handler": True}  # as in _open_stream
    _without_mcp_gateway()

    def call():
        try:
            return litellm.responses(**kwargs)
        except Exception as exc:
            raise _classify(exc) from exc

    # transient failures before the first event are retried with the chat calls' policy
    policy = providers.retrying(lambda exc: isinstance(exc, ModelError) and exc.transient, before=heartbeat.progress)
    stream = policy(call)
    try:
        yield from _normalize_responses(stream)
    finally:  # every exit (done, cancel, error) stops reading from the provider at once
        for closer in (getattr(stream, "close", None), getattr(getattr(stream, "response", None), "close", None)):
            if callable(closer):
                try:
                    closer()
                except Exception:
                    logger.debug("closing a Responses stream failed", exc_info=True)


@functools.cache
def _without_mcp_gateway() -> None:
    """LiteLLM 1.106 imports its proxy's MCP gateway on every Responses call, even with _skip_mcp_handler, and
    that needs the optional ``mcp`` and proxy packages. Where the import fails, a stand-in that declines the
    gateway (runs never use it) takes the module's place, so the call goes straight to the provider."""
    name = "litellm.responses.mcp.litellm_proxy_mcp_handler"
    try:
        importlib.import_module(name)
    except ImportError:
        class Declined:
            @staticmethod
            def should_use_litellm_mcp_gateway(*args, **kwargs) -> bool:
                return False

        stand_in = types.ModuleType(name)
        vars(stand_in)["LiteLLM_Proxy_MCP_Handler"] = Declined  # (a module attribute mypy cannot know)
        sys.modules[name] = stand_in


def _normalize_responses(stream) -> Iterator[TextDelta | ToolCallDelta | Finish]:
    """Responses events → our deltas. A stream that ends without response.completed/incomplete is an error."""
    field = responses_api.field
    calls: set[int] = set()
    try:
        for event in stream:
            kind = field(event, "type") or ""
            kind = str(getattr(kind, "value", kind))  # LiteLLM's events carry an enum
            if kind == "response.output_text.delta":
                if field(event, "delta"):
                    yield TextDelta(field(event, "delta"))
            elif kind == "response.output_item.added":
                item = field(event, "item")
                if field(item, "type") == "function_call":
                    index = field(event, "output_index") or 0
                    calls.add(index)
                    yield ToolCallDelta(index=index, id=field(item, "call_id"), name=field(item, "name"),
                                        arguments=responses_api.arguments_text(field(item, "arguments")) if
                                        field(item, "arguments") else "")
            elif kind == "response.function_call_arguments.delta":
                if field(event, "delta"):
                    yield ToolCallDelta(index=field(event, "output_index") or 0, arguments=field(event, "delta"))
            elif kind == "response.completed":
                yield Finish(reason="tool_calls" if calls else "stop",
                             usage=responses_api.usage_of(field(event, "response")))
                return
            elif kind == "response.incomplete":
                response = field(event, "response")
                reason = field(field(response, "incomplete_details"), "reason")
                yield Finish(reason="content_filter" if reason == "content_filter" else "length",
                             usage=responses_api.usage_of(response))
                return
            elif kind in ("response.failed", "error"):
                error = field(field(event, "response"), "error") or event
                raise ModelError("server_error", scrub(
                    str(field(error, "message") or "The model provider reported a failure."))[:500])
    except ModelError:
        raise
    except Exception as exc:
        raise _classify(exc) from exc
    raise ModelError("server_error", "The model provider's response stream ended before the response completed.",
                     transient=True)
