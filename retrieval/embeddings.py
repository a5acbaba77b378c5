"""The one module that talks to the embeddings provider (through LiteLLM).

LiteLLM reads OPENAI_API_BASE / OPENAI_API_KEY (and other providers' variables) from the environment.
``EMBEDDING_MODEL=""`` switches embeddings off: files are indexed for keyword search only.
"""

from __future__ import annotations

import base64
import logging
import sys
import warnings
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings

from assistants_project import providers
from tenancy import credentials as provider_credentials

logger = logging.getLogger(__name__)

MAX_INPUTS_PER_REQUEST = 512
MAX_TOKENS_PER_REQUEST = 250_000  # OpenAI allows 300k tokens per embeddings request

# Vectors travel as base64 float32 (as OpenAI's own SDK asks): turning 1536 JSON floats into typed Python
# objects costs the OpenAI client ~5 ms per vector, which would cap ingestion at ~200 chunks/s on our side.
# LiteLLM's response model then warns that a str is not list[float]; that is expected here.
warnings.filterwarnings("ignore", message="Pydantic serializer warnings", category=UserWarning)

Vector = array  # array('f'): float32, native byte order


class EmbeddingError(Exception):
    """The provider failed (after the retries) or answered something unusable."""


@dataclass(frozen=True)
class EmbeddingConfig:
    model: str
    dimensions: int


def current_config() -> EmbeddingConfig | None:
    """The model of the current request's ``embedding-model`` header (the credentials scope carries it, sealed to
    the worker like the rest of the request's credentials), else EMBEDDING_MODEL; None in keyword-only mode. A file
    records the model it was embedded with, and a search compares vectors only with files of its own model."""
    model = (provider_credentials.current_request().embedding_model or settings.EMBEDDING_MODEL or "").strip()
    return EmbeddingConfig(model=model, dimensions=int(settings.EMBEDDING_DIMENSIONS)) if model else None


def supports_dimensions(model: str) -> bool:
    """Only the text-embedding-3 family accepts ``dimensions`` (and shortens its vectors)."""
    return "text-embedding-3" in model


def _batches(texts: Sequence[str], token_counts: Sequence[int] | None) -> list[tuple[int, int]]:
    spans, start, tokens = [], 0, 0
    for i in range(len(texts)):
        cost = token_counts[i] if token_counts is not None else len(texts[i]) // 3 + 1
        if i > start and (i - start >= MAX_INPUTS_PER_REQUEST or tokens + cost > MAX_TOKENS_PER_REQUEST):
            spans.append((start, i))
            start, tokens = i, 0
        tokens += cost
    if start < len(texts):
        spans.append((start, len(texts)))
    return spans


def embed(texts: Sequence[str], *, config: EmbeddingConfig, token_counts: Sequence[int] | None = None,
          retries: int | None = None) -> list[Vector]:
    """One vector per text, in order. Raises EmbeddingError; never returns a partial answer.

    Transient failures are retried by the chat calls' policy (assistants_project.providers.retrying):
    ``retries`` or LLM_NUM_RETRIES more attempts; LiteLLM's and the OpenAI client's own retries are off."""
    if not texts:
        return []
    litellm = providers.configure_litellm()
    policy = providers.retrying(providers.is_transient, retries=retries)
    extra = {"dimensions": config.dimensions} if supports_dimensions(config.model) else {}
    # the request's header credentials, then the project's, over the environment (tenancy/credentials.py)
    extra = {**provider_credentials.embedding_params(config.model), **extra}
    vectors: list[Vector] = []
    for start, end in _batches(texts, token_counts):
        try:
            response = policy(litellm.embedding, **{
                **extra, "model": config.model, "input": list(texts[start:end]), "encoding_format": "base64",
                "drop_params": True, "num_retries": 0, "max_retries": 0, "timeout": settings.LLM_TIMEOUT_SECONDS})
        except Exception as exc:  # every provider failure means "no vectors"
            message = providers.scrub(str(exc))
            raise EmbeddingError(f"{type(exc).__name__}: {message[:300]}") from exc
        data = sorted(response.data, key=lambda item: _get(item, "index"))
        if len(data) != end - start:
            raise EmbeddingError(f"the provider returned {len(data)} embeddings for {end - start} inputs")
        for item in data:
            vector = _as_vector(_get(item, "embedding"))
            if len(vector) != config.dimensions:
                raise EmbeddingError(f"the provider returned vectors of size {len(vector)}; "
                                     f"EMBEDDING_DIMENSIONS is {config.dimensions}")
            vectors.append(vector)
    return vectors


def _as_vector(value) -> Vector:
    """base64 little-endian float32 (what OpenAI-compatible servers send for base64) or a list of floats."""
    if isinstance(value, str):
        try:
            vector = array("f", base64.b64decode(value, validate=True))
        except ValueError as exc:
            raise EmbeddingError(f"the provider returned an undecodable embedding: {exc}") from None
        if sys.byteorder == "big":
            vector.byteswap()
        return vector
    if isinstance(value, list) and all(isinstance(x, int | float) for x in value):
        return array("f", value)
    raise EmbeddingError(f"the provider returned an embedding of type {type(value).__name__}")


def _get(item, key: str):
    return item[key] if isinstance(item, dict) else getattr(item, key)
