"""The one module that talks to the embeddings provider (through LiteLLM).

LiteLLM reads OPENAI_API_BASE / OPENAI_API_KEY (and other providers' variables) from the environment.
``EMBEDDING_MODEL=""`` switches embeddings off: files are indexed for keyword search only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings

logger = logging.getLogger(__name__)

MAX_INPUTS_PER_REQUEST = 512
MAX_TOKENS_PER_REQUEST = 250_000  # OpenAI allows 300k tokens per embeddings request


class EmbeddingError(Exception):
    """The provider failed (after the retries) or answered something unusable."""


@dataclass(frozen=True)
class EmbeddingConfig:
    model: str
    dimensions: int


def current_config() -> EmbeddingConfig | None:
    """The configured model, or None in keyword-only mode."""
    model = (settings.EMBEDDING_MODEL or "").strip()
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
          retries: int | None = None) -> list[list[float]]:
    """One vector per text, in order. Raises EmbeddingError; never returns a partial answer.

    Retries are the OpenAI client's (backoff, Retry-After): ``retries`` or LLM_NUM_RETRIES, at least 1 because
    LiteLLM reads ``max_retries=0`` as "use the default (2)". LiteLLM's own retry layer is off."""
    retries = max(1, settings.LLM_NUM_RETRIES if retries is None else retries)
    if not texts:
        return []
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    extra = {"dimensions": config.dimensions} if supports_dimensions(config.model) else {}
    vectors: list[list[float]] = []
    for start, end in _batches(texts, token_counts):
        try:
            response = litellm.embedding(model=config.model, input=list(texts[start:end]),
                                         num_retries=0, max_retries=retries,
                                         timeout=settings.LLM_TIMEOUT_SECONDS, **extra)
        except Exception as exc:  # every provider failure means "no vectors"
            raise EmbeddingError(f"{type(exc).__name__}: {str(exc)[:300]}") from exc
        data = sorted(response.data, key=lambda item: _get(item, "index"))
        if len(data) != end - start:
            raise EmbeddingError(f"the provider returned {len(data)} embeddings for {end - start} inputs")
        for item in data:
            vector = _get(item, "embedding")
            if not isinstance(vector, list) or len(vector) != config.dimensions:
                size = len(vector) if isinstance(vector, list) else type(vector).__name__
                raise EmbeddingError(f"the provider returned vectors of size {size}; "
                                     f"EMBEDDING_DIMENSIONS is {config.dimensions}")
            vectors.append(vector)
    return vectors


def _get(item, key: str):
    return item[key] if isinstance(item, dict) else getattr(item, key)
