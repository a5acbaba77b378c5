"""Token-based chunking (OpenAI "static" chunking strategy semantics) for parsed documents.

Pure Python (no Django).  The whole document is encoded once with cl100k_base and a sliding
window is taken over the token list, so chunking a 1 MB file takes a fraction of a second.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from . import tokens as _tokens
from .parsing import Page

__all__ = [
    "DEFAULT_CHUNK_OVERLAP_TOKENS",
    "DEFAULT_MAX_CHUNK_SIZE_TOKENS",
    "MAX_CHUNK_SIZE_TOKENS",
    "MIN_CHUNK_SIZE_TOKENS",
    "Chunk",
    "ChunkingStrategyError",
    "chunk_pages",
    "chunk_text",
    "normalize_chunking_strategy",
]

DEFAULT_MAX_CHUNK_SIZE_TOKENS = 800
DEFAULT_CHUNK_OVERLAP_TOKENS = 400
MIN_CHUNK_SIZE_TOKENS = 100
MAX_CHUNK_SIZE_TOKENS = 4096

PAGE_SEPARATOR = "\n\n"

# A token boundary is snapped at most this many tokens to land on a UTF-8 character boundary.
_MAX_SNAP = 8


@dataclass
class Chunk:
    text: str
    position: int  # 0-based index of the chunk within the file
    page: int | None  # page (PDF page / slide) on which the chunk starts
    token_count: int
    start_token: int  # offset of the chunk's first token in the whole-document token list


# --------------------------------------------------------------------------------------------
# Chunking strategy validation
# --------------------------------------------------------------------------------------------


class ChunkingStrategyError(ValueError):
    """Invalid ``chunking_strategy``; ``param`` is the dotted path of the offending field."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param
        self.message = message

    def __str__(self) -> str:
        return self.message


def _default_strategy() -> dict:
    return {
        "type": "static",
        "static": {
            "max_chunk_size_tokens": DEFAULT_MAX_CHUNK_SIZE_TOKENS,
            "chunk_overlap_tokens": DEFAULT_CHUNK_OVERLAP_TOKENS,
        },
    }


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def normalize_chunking_strategy(strategy: dict | None) -> dict:
    """Validate an API ``chunking_strategy`` and return its resolved static form.

    ``None`` and ``{"type": "auto"}`` resolve to the default static strategy (800 / 400).
    Raises :class:`ChunkingStrategyError` with the offending parameter path.
    """
    if strategy is None:
        return _default_strategy()
    if not isinstance(strategy, dict):
        raise ChunkingStrategyError(
            "chunking_strategy", "Invalid type for 'chunking_strategy': expected an object."
        )
    stype = strategy.get("type")
    if stype is None:
        raise ChunkingStrategyError(
            "chunking_strategy.type", "Missing required parameter: 'chunking_strategy.type'."
        )
    if stype == "auto":
        return _default_strategy()
    if stype != "static":
        raise ChunkingStrategyError(
            "chunking_strategy.type",
            f"Invalid value: {stype!r}. Supported values are: 'auto' and 'static'.",
        )
    static = strategy.get("static")
    if static is None:
        raise ChunkingStrategyError(
            "chunking_strategy.static", "Missing required parameter: 'chunking_strategy.static'."
        )
    if not isinstance(static, dict):
        raise ChunkingStrategyError(
            "chunking_strategy.static", "Invalid type for 'chunking_strategy.static': expected an object."
        )
    values = {}
    for key in ("max_chunk_size_tokens", "chunk_overlap_tokens"):
        param = f"chunking_strategy.static.{key}"
        if key not in static or static[key] is None:
            raise ChunkingStrategyError(param, f"Missing required parameter: '{param}'.")
        if not _is_int(static[key]):
            raise ChunkingStrategyError(param, f"Invalid type for '{param}': expected an integer.")
        values[key] = static[key]
    max_tokens = values["max_chunk_size_tokens"]
    overlap = values["chunk_overlap_tokens"]
    if not MIN_CHUNK_SIZE_TOKENS <= max_tokens <= MAX_CHUNK_SIZE_TOKENS:
        raise ChunkingStrategyError(
            "chunking_strategy.static.max_chunk_size_tokens",
            f"Invalid 'chunking_strategy.static.max_chunk_size_tokens': must be between "
            f"{MIN_CHUNK_SIZE_TOKENS} and {MAX_CHUNK_SIZE_TOKENS} (got {max_tokens}).",
        )
    if overlap < 0:
        raise ChunkingStrategyError(
            "chunking_strategy.static.chunk_overlap_tokens",
            f"Invalid 'chunking_strategy.static.chunk_overlap_tokens': must be non-negative (got {overlap}).",
        )
    if overlap > max_tokens // 2:
        raise ChunkingStrategyError(
            "chunking_strategy.static.chunk_overlap_tokens",
            "Invalid 'chunking_strategy.static.chunk_overlap_tokens': must not exceed half of "
            f"max_chunk_size_tokens ({max_tokens // 2}) (got {overlap}).",
        )
    return {
        "type": "static",
        "static": {"max_chunk_size_tokens": max_tokens, "chunk_overlap_tokens": overlap},
    }


def _validate_params(max_tokens: int, overlap: int) -> None:
    if not _is_int(max_tokens) or not MIN_CHUNK_SIZE_TOKENS <= max_tokens <= MAX_CHUNK_SIZE_TOKENS:
        raise ValueError(
            f"max_tokens must be an integer between {MIN_CHUNK_SIZE_TOKENS} and {MAX_CHUNK_SIZE_TOKENS}"
        )
    if not _is_int(overlap) or not 0 <= overlap <= max_tokens // 2:
        raise ValueError("overlap must be an integer between 0 and max_tokens // 2")


# --------------------------------------------------------------------------------------------
# Chunking
# --------------------------------------------------------------------------------------------


def _is_continuation(token: int) -> bool:
    """True if the token's first byte is a UTF-8 continuation byte (it continues a character)."""
    first = _tokens.token_bytes(token)[:1]
    return bool(first) and (first[0] & 0xC0) == 0x80


def _clean_boundary(toks: list[int], i: int) -> bool:
    """True if splitting before ``toks[i]`` does not cut a UTF-8 character in two."""
    return i <= 0 or i >= len(toks) or not _is_continuation(toks[i])


def _snap_back(toks: list[int], i: int, floor: int) -> int:
    """Move boundary ``i`` backwards (not below ``floor``) onto a character boundary."""
    j = i
    while j > floor and i - j < _MAX_SNAP and not _clean_boundary(toks, j):
        j -= 1
    return j if _clean_boundary(toks, j) else i


def _snap_forward(toks: list[int], i: int, ceiling: int) -> int:
    j = i
    while j < ceiling and j - i < _MAX_SNAP and not _clean_boundary(toks, j):
        j += 1
    return j if _clean_boundary(toks, j) else i


def _decode_clean(toks: list[int]) -> str:
    """Decode tokens to text; any partial UTF-8 sequence at the edges is trimmed, never replaced."""
    data = _tokens.decode_bytes(toks)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # Fallback (boundaries could not be snapped): drop partial characters at both edges.
    start = 0
    while start < len(data) and start < 4 and (data[start] & 0xC0) == 0x80:
        start += 1
    end = len(data)
    for back in range(1, min(4, len(data)) + 1):
        byte = data[end - back]
        if (byte & 0xC0) == 0x80:
            continue
        if byte >= 0xC0:  # lead byte: keep the sequence only if it is complete
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            if back < need:
                end -= back
        break
    return data[start:end].decode("utf-8", errors="ignore")


def _encode_pages(pages: list[Page]) -> tuple[list[int], list[int], list[int | None]]:
    """Encode the document; return (tokens, page start offsets, page numbers).

    Pages are joined with a blank line.  Each page is encoded separately so page starts fall
    exactly on token (and character) boundaries; the separator belongs to the following page.
    """
    toks: list[int] = []
    starts: list[int] = []
    numbers: list[int | None] = []
    sep = _tokens.encode(PAGE_SEPARATOR)
    for page in pages:
        text = page.text or ""
        if not text.strip():
            continue
        starts.append(len(toks))
        numbers.append(page.page)
        if toks:
            toks.extend(sep)
        toks.extend(_tokens.encode(text))
    return toks, starts, numbers


def chunk_pages(
    pages: list[Page],
    *,
    max_tokens: int = DEFAULT_MAX_CHUNK_SIZE_TOKENS,
    overlap: int = DEFAULT_CHUNK_OVERLAP_TOKENS,
) -> list[Chunk]:
    """Split parsed pages into overlapping token windows.

    The pages are concatenated (separated by ``"\\n\\n"``) and encoded once.  Windows hold
    ``max_tokens`` tokens and advance by ``max_tokens - overlap``; the last window may be
    shorter, and a document shorter than ``max_tokens`` yields a single chunk.  Window edges
    are nudged by a token or two where needed so that no UTF-8 character is split.  Chunks
    that would contain only whitespace are dropped; ``position`` is sequential from 0.
    """
    _validate_params(max_tokens, overlap)
    toks, page_starts, page_numbers = _encode_pages(pages)
    n = len(toks)
    chunks: list[Chunk] = []
    if n == 0:
        return chunks
    stride = max_tokens - overlap
    start = 0
    while True:
        end = min(start + max_tokens, n)
        if end < n:
            snapped = _snap_back(toks, end, start + 1)
            if snapped <= start:
                snapped = _snap_forward(toks, end, n)
            end = snapped
        window = toks[start:end]
        text = _decode_clean(window)
        if text.strip():
            page_idx = bisect.bisect_right(page_starts, start) - 1
            chunks.append(
                Chunk(
                    text=text,
                    position=len(chunks),
                    page=page_numbers[page_idx] if page_idx >= 0 else None,
                    token_count=len(window),
                    start_token=start,
                )
            )
        if end >= n:
            break
        nxt = start + stride
        snapped = _snap_back(toks, nxt, start + 1)
        if snapped <= start:
            snapped = _snap_forward(toks, nxt, n)
        nxt = max(snapped, start + 1)
        if nxt >= n:
            break
        start = nxt
    return chunks


def chunk_text(
    text: str,
    *,
    max_tokens: int = DEFAULT_MAX_CHUNK_SIZE_TOKENS,
    overlap: int = DEFAULT_CHUNK_OVERLAP_TOKENS,
    page: int | None = None,
) -> list[Chunk]:
    """Convenience wrapper: chunk a single string."""
    return chunk_pages([Page(text=text, page=page)], max_tokens=max_tokens, overlap=overlap)
