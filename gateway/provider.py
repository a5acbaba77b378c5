"""The gateway's calls to model providers, through LiteLLM's async API, and how their failures map to HTTP.

One client request is one provider request: LiteLLM's and the OpenAI client's retries are off (the caller's SDK
retries, and sees the provider's status to decide). Model aliases resolve as in runs (``runs.llm.resolve``).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncGenerator
from contextlib import aclosing

import openai
from django.conf import settings

from assistants_project import providers
from assistants_project.api import request_context
from assistants_project.providers import scrub
from runs.llm import resolve
from tenancy import credentials as provider_credentials

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

_NO_RETRY = {"num_retries": 0, "max_retries": 0}


class ProviderError(Exception):
    """A provider failure as the status and envelope fields the gateway answers with."""

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param


def _litellm():
    return providers.configure_litellm()  # as runs use it (its stream-logging and repeated-chunk settings)


async def target(model: str, overrides: dict, *, project) -> tuple[str, dict]:
    """(LiteLLM model, parameters): the alias's parameters, the project's stored credentials for the model's
    provider over them (tenancy/credentials.py), then the request's header parameters over those."""
    name, params = resolve(model)
    try:
        stored = await provider_credentials.astored_params(project.pk,
                                                           provider_credentials.provider_of(name, params))
    finally:  # a cache miss read the database: its connection goes back to the pool before the model call
        await request_context.release_connections()
    return name, {**params, **stored, **overrides}


async def chat(kwargs: dict, secrets: list[str]):
    litellm = _litellm()
    try:
        return await litellm.acompletion(**kwargs, **_NO_RETRY, timeout=settings.LLM_TIMEOUT_SECONDS,
                                         drop_params=True, _skip_mcp_handler=True)
    except Exception as exc:
        raise classify(exc, secrets) from exc


async def chunks(wrapper, secrets: list[str]) -> AsyncGenerator[dict, None]:
    """The chunks of a streamed answer (``chat``'s LiteLLM stream wrapper) as OpenAI's JSON
    (``providers.achunks``). Every failure is a ProviderError, an answer that ends without the provider's finish
    reason too (502): it is not complete. The provider stream is closed when this generator ends or is closed."""
    source = providers.achunks(wrapper)
    try:
        async with aclosing(source):
            async for chunk in source:
                yield chunk
    except Exception as exc:
        raise classify(exc, secrets) from exc
    finally:
        await wrapper.aclose()


async def embed(kwargs: dict, secrets: list[str]):
    litellm = _litellm()
    try:
        return await litellm.aembedding(**kwargs, **_NO_RETRY, timeout=settings.LLM_TIMEOUT_SECONDS,
                                        drop_params=True)
    except Exception as exc:
        raise classify(exc, secrets) from exc


def moderation_provider(model: str, params: dict) -> str | None:
    try:
        return _litellm().get_llm_provider(model, custom_llm_provider=params.get("custom_llm_provider"))[1]
    except Exception:
        return None


async def moderate(kwargs: dict, secrets: list[str]):
    litellm = _litellm()
    # LiteLLM's moderation builds an OpenAI client of its own, which does not read OPENAI_API_BASE as the rest does
    base = litellm.api_base or os.environ.get("OPENAI_API_BASE") or os.environ.get("OPENAI_BASE_URL")
    if base:
        kwargs = {"api_base": base, **kwargs}
    try:
        return await litellm.amoderation(**kwargs, timeout=settings.LLM_TIMEOUT_SECONDS, max_retries=0)
    except Exception as exc:
        raise classify(exc, secrets) from exc


def secrets(creds, params: dict) -> list[str]:
    """What must never appear in an answer beyond what ``scrub`` finds itself (the server's keys, key shapes):
    the request's credentials, the alias's and the project's (the string values of ``params``)."""
    return [*creds.secrets(), *provider_credentials.secret_values(params)]


_PREFIX = re.compile(r"^(litellm\.\w+:\s*)?(\w+Error:\s*)?(\w+Exception\s*-\s*)?")


def classify(exc: Exception, secrets: list[str]) -> ProviderError:
    """The provider's status where it gave one (400, 401, 403, 404, 409, 422, 429, 5xx); 504 for a timeout and 502
    for a provider that could not be reached or answered nonsense."""
    litellm = _litellm()
    if isinstance(exc, ProviderError):
        return exc
    message = (getattr(exc, "message", None) or str(exc) or type(exc).__name__).strip()
    message = _PREFIX.sub("", message.splitlines()[0] if message else "")[:1000] or type(exc).__name__
    message = scrub(message, also=secrets)  # a provider may echo the key it refused
    if isinstance(exc, litellm.Timeout | openai.APITimeoutError):
        return ProviderError(504, f"The model provider did not answer in time: {message}", code="timeout")
    if isinstance(exc, litellm.APIConnectionError | openai.APIConnectionError):
        return ProviderError(502, f"The model provider could not be reached: {message}")
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int) or not 400 <= status <= 599:
        status = 502
    code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
    if isinstance(exc, litellm.ContextWindowExceededError):
        code = "context_length_exceeded"
    return ProviderError(status, message, code=code)
