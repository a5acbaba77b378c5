"""The stateless gateway: /v1/chat/completions, /v1/embeddings, /v1/models, /v1/moderations.

Async views without DRF (no thread hop per request): the same API keys, tenancy (the key's project), error
envelope, request ids and model aliases as the rest of the API. Provider credentials may come per request in
headers (gateway/credentials.py).
"""

from __future__ import annotations

import functools
import logging

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import JsonResponse
from redis.exceptions import RedisError

from assistants_project.api.errors import InvalidRequest, NotFoundError, OpenAIError, error_body, error_response
from gateway import catalog, credentials, provider, shapes, validation
from gateway.auth import project_for
from gateway.sse import ClosingStreamingResponse, chat_events

logger = logging.getLogger(__name__)


def _envelope(exc: OpenAIError) -> JsonResponse:
    body = error_body(str(exc.detail), status=exc.status_code, param=exc.param, code=exc.error_code,
                      error_type=exc.error_type)
    return JsonResponse(body, status=exc.status_code)


def gateway_view(*methods: str):
    """Method check, API key → project, header credentials, and every failure as an envelope."""

    def decorate(view):
        @functools.wraps(view)
        async def wrapper(request, **kwargs):
            if request.method not in methods:
                return error_response(f"Invalid method for this URL ({request.method} {request.path}).",
                                      status=405)
            try:
                project = await project_for(request)
                creds = credentials.from_headers(request.headers)
                return await view(request, project=project, creds=creds, **kwargs)
            except OpenAIError as exc:
                return _envelope(exc)
            except provider.ProviderError as exc:
                logger.info("provider answered %s for %s", exc.status, request.path)
                return error_response(exc.message, status=exc.status, param=exc.param, code=exc.code)
            except RequestDataTooBig:
                return error_response("The request body is too large.", status=413)
            except (DatabaseError, RedisError):
                logger.exception("storage unavailable during %s", request.path)
                return error_response("The service is temporarily unavailable. Please retry.", status=503)
            except Exception:
                logger.exception("gateway request %s failed", request.path)
                return error_response("The server had an error while processing your request. Sorry about that!",
                                      status=500)

        return wrapper

    return decorate


@gateway_view("POST", "GET")
async def chat_completions(request, *, project, creds):
    if request.method == "GET":
        raise NotFoundError("Stored chat completions are not kept by this server ('store' is accepted and "
                            "ignored).")
    data = validation.parse(request.body, validation.CHAT_FIELDS)
    model = validation.chat(data)
    target, params = await provider.target(model, creds.llm_kwargs(), project=project)
    kwargs = {**params, **{k: v for k, v in data.items() if k not in validation.CHAT_NOT_FORWARDED}, "model": target}
    secrets = provider.secrets(creds, params)
    if not data.get("stream"):
        return JsonResponse(shapes.completion(await provider.chat(kwargs, secrets), model))
    include_usage = bool((data.get("stream_options") or {}).get("include_usage"))
    stream = provider.chunks(await provider.chat(kwargs, secrets), secrets)
    try:  # an error before the first chunk is still a plain JSON envelope with the provider's status
        first = await anext(stream)
    except StopAsyncIteration:
        first = None
    except BaseException:  # a ProviderError, or cancelled: the client went away
        await stream.aclose()
        raise
    return ClosingStreamingResponse(chat_events(stream, first, model=model, include_usage=include_usage,
                                                secrets=secrets))


@gateway_view("GET", "POST", "DELETE")
async def stored_completion(request, *, project, creds, completion_id: str, rest: str = ""):
    raise NotFoundError(f"No chat completion found with id '{completion_id}': this server does not store chat "
                        "completions ('store' is accepted and ignored).", param="completion_id")


@gateway_view("POST")
async def embeddings(request, *, project, creds):
    data = validation.parse(request.body, validation.EMBEDDING_FIELDS)
    model, base64_format = validation.embedding(data)
    target, params = await provider.target(model, creds.embedding_kwargs(), project=project)
    response = await provider.embed({**params, **data, "model": target}, provider.secrets(creds, params))
    return JsonResponse(shapes.embeddings(response, model, base64_format=base64_format))


@gateway_view("GET")
async def model_list(request, *, project, creds):
    return JsonResponse(catalog.model_list())


@gateway_view("GET")
async def model_retrieve(request, *, project, creds, model: str):
    found = catalog.model_get(model)
    if found is None:
        raise NotFoundError(f"The model '{model}' does not exist or you do not have access to it.", param="model",
                            code="model_not_found")
    return JsonResponse(found)


@gateway_view("POST")
async def moderations(request, *, project, creds):
    data = validation.parse(request.body, validation.MODERATION_FIELDS)
    model = validation.moderation(data)
    target, params = await provider.target(model, creds.llm_kwargs(), project=project)
    name = provider.moderation_provider(target, params)
    if name != "openai":
        raise InvalidRequest(f"The model '{model}' has no moderations endpoint: moderations go through LiteLLM, "
                             f"which offers them for OpenAI models only (this model's provider: {name or 'unknown'}).",
                             param="model", code="moderations_not_supported")
    params = {k: v for k, v in params.items() if k != "custom_llm_provider"}
    kwargs = {**params, "input": data["input"], "model": target.removeprefix("openai/")}
    return JsonResponse(shapes.moderation(await provider.moderate(kwargs, provider.secrets(creds, params)), model))
