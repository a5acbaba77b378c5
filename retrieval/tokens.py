"""Tokenizer helpers (cl100k_base) backed by the tiktoken encoding that LiteLLM bundles.

LiteLLM ships the cl100k_base BPE file inside the package and points ``TIKTOKEN_CACHE_DIR`` at
it, so this works fully offline.  Importing LiteLLM is slow (seconds), so the encoding is
loaded lazily on first use and cached for the life of the process.
"""

from __future__ import annotations

import threading
from typing import Any

_encoding: Any = None
_lock = threading.Lock()


def get_encoding() -> Any:
    """Return the shared ``tiktoken.Encoding`` for cl100k_base (loaded on first call)."""
    global _encoding
    enc = _encoding
    if enc is None:
        with _lock:
            if _encoding is None:
                from litellm.litellm_core_utils.default_encoding import encoding

                _encoding = encoding
            enc = _encoding
    return enc


def encode(text: str) -> list[int]:
    """Encode ``text`` to token ids.

    Special-token strings such as ``<|endoftext|>`` found in user documents are encoded as
    ordinary text (never as special tokens, and never raising).
    """
    if not text:
        return []
    return get_encoding().encode_ordinary(text)


def count_tokens(text: str) -> int:
    """Number of cl100k_base tokens in ``text``."""
    return len(encode(text))


def decode(tokens: list[int]) -> str:
    """Decode token ids back to text (partial UTF-8 sequences become U+FFFD)."""
    if not tokens:
        return ""
    return get_encoding().decode(list(tokens))


def decode_bytes(tokens: list[int]) -> bytes:
    """Decode token ids to the raw UTF-8 bytes they represent."""
    if not tokens:
        return b""
    return get_encoding().decode_bytes(list(tokens))


def token_bytes(token: int) -> bytes:
    """Raw bytes of a single token."""
    return get_encoding().decode_single_token_bytes(token)
