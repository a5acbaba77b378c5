"""What the two provider modules (runs/llm.py for chat, retrieval/embeddings.py) share: one retry policy for
transient provider failures, and the scrubbing of secrets out of provider error text before it is stored,
streamed or logged."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from typing import cast

import tenacity
from django.conf import settings

from tenancy import credentials as provider_credentials

logger = logging.getLogger(__name__)


def retrying(is_transient: Callable[[BaseException], bool], *, retries: int | None = None,
             before: Callable[[], None] | None = None,
             on_retry: Callable[[], None] | None = None) -> tenacity.Retrying:
    """The policy: ``retries`` (default LLM_NUM_RETRIES) more attempts after a transient failure, exponential
    backoff from LLM_RETRY_BACKOFF_SECONDS (capped at 30 s); the last error is raised as is. LiteLLM's and
    the OpenAI client's own retries must be off (see ``configure_litellm``), so one attempt is one request."""
    retries = settings.LLM_NUM_RETRIES if retries is None else retries

    def log(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        logger.warning("provider call failed (%s), retry %d in %.1fs", scrub(str(error))[:300],
                       state.attempt_number, state.next_action.sleep if state.next_action else 0)
        if on_retry:
            on_retry()

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        stop=tenacity.stop_after_attempt(retries + 1),
        wait=tenacity.wait_exponential(multiplier=settings.LLM_RETRY_BACKOFF_SECONDS, max=30),
        before=(lambda state: before()) if before else tenacity.before_nothing,
        before_sleep=log, reraise=True)


def configure_litellm():
    """LiteLLM, imported and set up once for both modules."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    if not getattr(litellm, "_assistants_configured", False):
        litellm.suppress_debug_info = True
        # LiteLLM aborts a stream that repeats one chunk 100 times; real output ("-----", "token token …") can.
        litellm.REPEATED_STREAMING_CHUNK_LIMIT = 10**9  # type: ignore[misc]  # Final in LiteLLM, yet read at call time
        # Its OpenAI embeddings path reads max_retries=0 as "the default": make that default 0 too, so
        # `retrying` is the only retry layer.
        litellm.DEFAULT_MAX_RETRIES = 0  # type: ignore[misc]  # Final in LiteLLM, yet read at call time
        # Per streamed chunk LiteLLM hands its logging callbacks a job on a thread pool, each running a new event
        # loop (asyncio.run): most of its per-chunk CPU. We register no callbacks (usage comes with the stream).
        litellm.disable_streaming_logging = True
        litellm._assistants_configured = True
    return litellm


def is_credential_error(exc: BaseException) -> bool:
    """The provider refused (or was never given) this server's credentials: a setup problem, never transient."""
    import litellm

    if isinstance(exc, litellm.AuthenticationError | litellm.PermissionDeniedError):
        return True
    text = str(exc).lower()  # the OpenAI client's own check, which LiteLLM reports as a 500
    return "missing credentials" in text or "api_key client option must be set" in text


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt: rate limits, timeouts, connection failures, the provider's 5xx."""
    import litellm

    if is_credential_error(exc):
        return False
    if isinstance(exc, litellm.RateLimitError | litellm.Timeout | litellm.APIConnectionError
                  | litellm.InternalServerError | litellm.ServiceUnavailableError):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(exc, litellm.APIError) and isinstance(status, int) and status >= 500


_SECRET_PATTERNS = (
    # OpenAI / Anthropic / most vendors' key shapes: sk-…, sk-proj-…, sk-ant-…, pk-…, rk-…
    (re.compile(r"\b((?:sk|pk|rk)-)[A-Za-z0-9_\-]{6,}"), r"\1[redacted]"),
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{20,}"), "[redacted]"),  # Google API keys
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{6,}"), r"\1 [redacted]"),
    # key=… in URLs and query strings (Azure, Gemini, signed URLs)
    (re.compile(r"(?i)([?&;](?:api[_-]?key|key|token|access_token|sig|signature|secret|code)=)[^&\s\"'#]+"),
     r"\1[redacted]"),
    # "api_key": "…", x-api-key: …, authorization=…
    (re.compile(r"(?i)((?:api[_-]?key|x-api-key|authorization|access[_-]?token|secret)[\"']?\s*[:=]\s*[\"']?)"
                r"[^\s\"',;}]{6,}"), r"\1[redacted]"),
)
_SECRET_ENV_SUFFIXES = ("_API_KEY", "_KEY", "_TOKEN", "_SECRET", "_PASSWORD")


def scrub(text: str, also: Iterable[str] = ()) -> str:
    """``text`` without credentials, the one scrubber of provider text (errors stored, streamed, logged or
    answered): the values of the server's key variables (``*_API_KEY``, ``*_TOKEN``, …), of the current provider
    credentials scope (the request's header credentials, the project's stored ones: ``tenancy.credentials``),
    ``also`` (what a caller without a scope knows, e.g. the gateway's), then anything shaped like a key, a bearer
    token or a ``key=`` parameter. The rest of the message (status, reason) stays readable."""
    if not text:
        return text
    values = {value for name, value in os.environ.items()
              if len(value) >= 8 and name.upper().endswith(_SECRET_ENV_SUFFIXES)}
    values.update(provider_credentials.scope_secrets(), also)
    for value in sorted(values, key=len, reverse=True):  # a longer secret before any secret inside it
        if value and value in text:
            text = text.replace(value, "[redacted]")
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# --- OpenAI-SDK-backed streams, read without LiteLLM's per-chunk wrapper ------------------------------------------
# Where LiteLLM reaches a provider through the OpenAI SDK (OpenAI, Azure, the OpenAI-compatible providers it routes
# the same way), the chunks are OpenAI's already. Read through LiteLLM's stream wrapper, each is parsed into the
# SDK's objects, then rebuilt into LiteLLM's, and the stream's end rebuilds the whole response, prices it and
# deep-copies it for logging callbacks nobody here registers (the async wrapper does that in a worker thread): most
# of a short answer's CPU. ``chunks`` (runs/llm.py) and ``achunks`` (gateway/provider.py) read the SDK's server-sent
# events as JSON instead, as the SDK reads them (``[DONE]`` ends the stream, an ``error`` member is the provider's
# failure) and as the wrapper then reads them (finish reasons mapped to OpenAI's; a finish reason "error" is a
# failure).
# They read ``Stream._iter_events``, a private name of the SDK: without it they fall back to the wrapper.

class StreamIncomplete(Exception):
    """The provider's answer ended without a finish reason: incomplete, whatever it streamed (a connection closed
    cleanly mid-answer, a 200 whose body was no stream at all)."""

    def __init__(self) -> None:
        super().__init__("The model provider's response ended before it was complete (the stream closed without a "
                         "finish reason).")


class _Done:
    pass


def sdk_stream(stream):
    """The OpenAI SDK's stream (sync or async) under LiteLLM's wrapper ``stream``, or None for any other provider
    (whose chunks the wrapper translates)."""
    import openai

    inner = getattr(stream, "completion_stream", None)
    if isinstance(inner, openai.Stream | openai.AsyncStream) and callable(getattr(inner, "_iter_events", None)) \
            and hasattr(inner, "response"):
        return inner
    return None


class _Reading:
    """One stream's reading, for ``chunks`` and ``achunks``: what to iterate, each item as a chunk dict, the last
    finish reason, and failures mapped as LiteLLM's wrapper maps them."""

    def __init__(self, wrapper) -> None:
        self.wrapper, self.sdk, self.finish = wrapper, sdk_stream(wrapper), None
        self.source = self.sdk._iter_events() if self.sdk is not None else wrapper

    def chunk(self, item) -> dict | type[_Done] | None:
        """A server-sent event of the SDK (``_Done`` at the end, None for nothing), or a chunk of the wrapper."""
        chunk = self._sdk_chunk(item) if self.sdk is not None else item.model_dump()
        if isinstance(chunk, dict):
            for choice in chunk.get("choices") or []:
                self.finish = choice.get("finish_reason") or self.finish
        return chunk

    def _sdk_chunk(self, event) -> dict | type[_Done] | None:
        import openai
        from litellm.litellm_core_utils.core_helpers import map_finish_reason

        if event.data.startswith("[DONE]"):
            return _Done
        chunk = event.json()
        if not isinstance(chunk, dict):
            return None
        if chunk.get("error"):  # as the SDK raises it
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else None
            raise openai.APIError(message=message if isinstance(message, str) and message else
                                  "An error occurred during streaming", request=self.sdk.response.request, body=error)
        for choice in chunk.get("choices") or []:
            reason = choice.get("finish_reason")
            if reason:
                if reason == "error":  # the wrapper's own words for it
                    raise Exception(f"{self.wrapper.custom_llm_provider} raised a streaming error - finish_reason: "
                                    "error, no content string given.")
                choice["finish_reason"] = map_finish_reason(reason)
        return chunk

    def error(self, exc: Exception) -> Exception:
        """A failure while reading the SDK's stream directly, mapped as the wrapper maps it (its own are mapped)."""
        handle = getattr(self.wrapper, "_handle_stream_fallback_error", None)
        if self.sdk is not None and callable(handle):
            try:
                handle(exc)
            except Exception as mapped:
                return mapped
        return exc

    def check_finished(self) -> None:
        """Through the wrapper, which ends every stream with a chunk that carries a finish reason (inventing "stop"
        when the provider sent none), what it recorded the provider sent; read directly, the last one seen."""
        wrapper = self.wrapper
        if self.sdk is None and hasattr(wrapper, "received_finish_reason"):
            finished = bool(wrapper.received_finish_reason or getattr(wrapper, "intermittent_finish_reason", None))
        else:
            finished = self.finish is not None
        if not finished:
            raise StreamIncomplete()


def chunks(wrapper) -> Iterator[dict]:
    """The chunks of a LiteLLM stream (``completion(stream=True)``) as OpenAI's JSON, with the finish reasons mapped
    to OpenAI's: an OpenAI-SDK-backed provider's read directly, any other's through the wrapper. Failures are
    LiteLLM's exceptions; an answer that ends without the provider's finish reason raises StreamIncomplete."""
    reading = _Reading(wrapper)
    try:
        for item in reading.source:
            chunk = reading.chunk(item)
            if chunk is _Done:
                break
            if chunk is not None:
                yield cast(dict, chunk)
    except Exception as exc:
        raise reading.error(exc) from exc
    reading.check_finished()


async def achunks(wrapper) -> AsyncGenerator[dict, None]:
    """``chunks`` of an async LiteLLM stream (``acompletion(stream=True)``)."""
    reading = _Reading(wrapper)
    try:
        async for item in reading.source:
            chunk = reading.chunk(item)
            if chunk is _Done:
                break
            if chunk is not None:
                yield cast(dict, chunk)
    except Exception as exc:
        raise reading.error(exc) from exc
    reading.check_finished()
