"""Provider credentials for every model and embedding call: the request's headers, then the project's stored
credentials, then the server's own configuration (the alias's parameters, LiteLLM's environment variables).

- Stored per project and provider (``ProviderCredential``), the parameters are a Fernet token (keys:
  CREDENTIALS_ENCRYPTION_KEY); they are decrypted only to make a call.
- A request's header credentials (``gateway.credentials.RequestCredentials``) are sealed into the row of the run
  or vector-store file they start (``sealed_credentials``), so they reach the worker encrypted; the row forgets
  them when the run or the ingestion ends.
- A call finds what applies in the current ``scope`` (a context variable): the web sets it per request
  (``OpenAIViewSet``), the workers per run and per ingestion. ``runs.llm`` and ``retrieval.embeddings`` ask
  ``llm_params`` / ``embedding_params`` for the parameters to add to their LiteLLM call.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from gateway.credentials import NONE, RequestCredentials


# --- encryption ------------------------------------------------------------------------------------
@functools.cache
def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(key) for key in settings.CREDENTIALS_ENCRYPTION_KEYS])


def encrypt(data: dict) -> str:
    return _fernet().encrypt(json.dumps(data).encode()).decode()


def decrypt(token: str) -> dict:
    """Raises ValueError when no configured key opens the token (the key was changed without rotation)."""
    try:
        return json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken:
        raise ValueError("stored provider credentials cannot be decrypted with CREDENTIALS_ENCRYPTION_KEY "
                         "(was the key replaced instead of rotated?)") from None


def reencrypt(token: str) -> str:
    """The same secret under the first (newest) key."""
    return _fernet().rotate(token.encode()).decode()


def seal(creds: RequestCredentials) -> str | None:
    if not creds:
        return None
    return encrypt({"api_key": creds.api_key, "embedding_model": creds.embedding_model,
                    "llm_params": creds.llm_params, "embedding_params": creds.embedding_params})


def unseal(token: str | None) -> RequestCredentials:
    if not token:
        return NONE
    return RequestCredentials(**decrypt(token))


# --- the current scope ------------------------------------------------------------------------------
@dataclass
class Scope:
    project_id: int | None
    request: RequestCredentials = NONE
    stored: dict[str, dict] = field(default_factory=dict)  # provider → the project's parameters, read once
    # All the project's stored credentials (provider → sealed), when whoever opened the scope read them already
    # (a run's claim does, in its own round trip); None: each provider's are read on its first call.
    prefetched: dict[str, str] | None = None


_scope: ContextVar[Scope | None] = ContextVar("provider_credentials", default=None)


@contextmanager
def scope(*, project_id: int | None, request: RequestCredentials = NONE, sealed: str | None = None,
          prefetched: dict[str, str] | None = None) -> Iterator[Scope]:
    """Calls inside use the project's stored credentials and ``request`` (or the ``sealed`` request
    credentials of a run or an ingestion) over them. ``prefetched``: all the project's stored credentials
    (provider → sealed), read by the caller (``prefetch_sql``), so calls query nothing."""
    current = Scope(project_id=project_id, request=unseal(sealed) if sealed else request, prefetched=prefetched)
    token = _scope.set(current)
    try:
        yield current
    finally:
        _scope.reset(token)


def current_request() -> RequestCredentials:
    current = _scope.get()
    return current.request if current is not None else NONE


def sealed_request() -> str | None:
    """The current request's header credentials, encrypted for a row a worker reads (None: it has none)."""
    return seal(current_request())


def provider_of(model: str, params: dict) -> str:
    import litellm

    try:
        return litellm.get_llm_provider(model, custom_llm_provider=params.get("custom_llm_provider"))[1] or ""
    except Exception:
        return ""


def stored_params(project_id: int | None, provider: str) -> dict:
    """The project's stored parameters for ``provider`` (decrypted), or {}."""
    if project_id is None or not provider:
        return {}
    from tenancy.models import ProviderCredential

    sealed = (ProviderCredential.objects.filter(project_id=project_id, provider=provider)
              .values_list("sealed", flat=True).first())
    return decrypt(sealed) if sealed else {}


# The gateway's per-process cache of stored credentials: (project, provider) → (read at, sealed). A change made
# elsewhere applies here within STORED_CACHE_SECONDS, as for API keys (assistants_project/api/keycache.py).
STORED_CACHE_SECONDS = 1.0
_stored_cache: dict[tuple[int, str], tuple[float, str | None]] = {}


async def astored_params(project_id: int | None, provider: str) -> dict:
    """``stored_params`` for the async gateway, without a database round trip per call."""
    if project_id is None or not provider:
        return {}
    from assistants_project.api.request_context import shared_db_call
    from tenancy.models import ProviderCredential

    key = (project_id, provider)
    cached = _stored_cache.get(key)
    if cached is not None and time.monotonic() - cached[0] < STORED_CACHE_SECONDS:
        sealed = cached[1]
    else:
        def read() -> str | None:
            return (ProviderCredential.objects.filter(project_id=project_id, provider=provider)
                    .values_list("sealed", flat=True).first())

        sealed = await shared_db_call(("stored_credentials", *key), read)  # one read for a burst's requests
        if len(_stored_cache) > 10_000:
            _stored_cache.clear()
        _stored_cache[key] = (time.monotonic(), sealed)
    return decrypt(sealed) if sealed else {}


def prefetch_sql(project_id_column: str) -> str:
    """A scalar subquery for a statement that reads a row with a project (``project_id_column``, e.g. ``r.project_id``):
    all that project's stored credentials as one JSON object, provider → sealed (for ``scope(prefetched=…)``)."""
    from tenancy.models import ProviderCredential

    return (f"(SELECT COALESCE(json_object_agg(pc.provider, pc.sealed), '{{}}') "
            f"FROM {ProviderCredential._meta.db_table} pc WHERE pc.project_id = {project_id_column})")


def prefetched_from(value: str | dict) -> dict[str, str]:
    """``prefetch_sql``'s value as the driver hands it over (raw SQL: JSON may come as text)."""
    return json.loads(value) if isinstance(value, str) else value


def _stored(model: str, params: dict) -> dict:
    current = _scope.get()
    if current is None:
        return {}
    if current.prefetched is not None and not current.prefetched:
        return {}  # the project stores none (the common case): not even the provider to work out
    provider = provider_of(model, params)
    if provider not in current.stored:
        if current.prefetched is None:
            current.stored[provider] = stored_params(current.project_id, provider)
        else:
            sealed = current.prefetched.get(provider) if current.project_id is not None else None
            current.stored[provider] = decrypt(sealed) if sealed else {}
    return current.stored[provider]


def llm_params(model: str, params: dict) -> dict:
    """A model call's parameters: the alias's (``params``), the project's stored ones over them, the request's
    over those. The server's environment applies to whatever none of them sets."""
    return {**params, **_stored(model, params), **current_request().llm_kwargs()}


def embedding_params(model: str) -> dict:
    """The same for an embedding call of ``model`` (the server's EMBEDDING_MODEL: vectors of one store must come
    from one model, so a request's ``embedding-model`` header applies to the gateway's /v1/embeddings only)."""
    return {**_stored(model, {}), **current_request().embedding_kwargs()}


def scope_secrets() -> list[str]:
    """The secret values of the current scope (providers may echo a refused key): ``providers.scrub`` masks them."""
    current = _scope.get()
    if current is None:
        return []
    values = [*current.request.secrets()]
    for params in current.stored.values():
        values += secret_values(params)
    return values


def enter(*, project_id: int, request: RequestCredentials) -> None:
    """Fill in the current scope once the request's project is known (the web's scope opens before that)."""
    current = _scope.get()
    if current is None:
        raise RuntimeError("no provider credentials scope is open")
    current.project_id, current.request, current.stored, current.prefetched = project_id, request, {}, None


_SECRET_FRAGMENTS = ("key", "token", "secret", "password", "credential")


def secret_values(params: dict) -> list[str]:
    """The string values of parameters whose names say they are secrets (api_key, aws_secret_access_key, …)."""
    return [v for k, v in params.items()
            if isinstance(v, str) and len(v) >= 4 and any(f in k.lower() for f in _SECRET_FRAGMENTS)]
