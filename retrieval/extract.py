"""File bytes → chunks, within the limits one file may cost (pure Python, no Django).

Parsing a DOCX, PPTX or PDF, or any large file, happens in a child process forked from a small forkserver that has
the parsers and the tokenizer loaded already: the memory a big file takes (a DOM of tens of megabytes of XML, the
token list of millions of tokens) goes back to the system when the child exits, instead of staying in the
long-lived worker. Small text files are parsed in-process (a fork costs more than parsing them).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import sys
from dataclasses import dataclass

from retrieval.chunking import Chunk, chunk_pages
from retrieval.parsing import INVALID_FILE, ParseError, parse_document

ISOLATE_ABOVE_BYTES = 1024 * 1024
MAX_FILE_CHARS = 20_000_000  # ~5M tokens: checked before tokenizing, so a huge text never reaches the tokenizer
_PRELOAD = "retrieval.extract_preload"
_context = None


@dataclass(frozen=True)
class Limits:
    max_archive_bytes: int
    max_archive_xml_bytes: int
    max_chunks: int
    max_tokens: int


class ExtractCrashed(Exception):
    """The child died (killed for memory, a crash in a C parser) or ran out of time."""


def extract_chunks(data: bytes, filename: str, content_type: str | None, *, max_chunk_tokens: int,
                   overlap_tokens: int, limits: Limits, timeout: float) -> list[Chunk]:
    """Raises ParseError (the file is unusable or over a limit) or ExtractCrashed."""
    args = (data, filename, content_type, max_chunk_tokens, overlap_tokens, limits)
    if not _isolate(data):
        return _extract(*args)
    return _in_child(args, timeout=timeout)


def _isolate(data: bytes) -> bool:
    return len(data) > ISOLATE_ABOVE_BYTES or data[:4] == b"PK\x03\x04" or data.lstrip()[:5] == b"%PDF-"


def _extract(data, filename, content_type, max_chunk_tokens, overlap_tokens, limits: Limits) -> list[Chunk]:
    pages = parse_document(data, filename, content_type, max_archive_bytes=limits.max_archive_bytes,
                           max_archive_xml_bytes=limits.max_archive_xml_bytes)
    if sum(len(p.text) for p in pages) > MAX_FILE_CHARS:
        raise ParseError(INVALID_FILE, f"The file has more than {MAX_FILE_CHARS:,} characters of text.")
    chunks = chunk_pages(pages, max_tokens=max_chunk_tokens, overlap=overlap_tokens)
    if not chunks:
        raise ParseError(INVALID_FILE, "No text could be extracted from the file.")
    if len(chunks) > limits.max_chunks:
        raise ParseError(INVALID_FILE, f"The file would make {len(chunks):,} chunks; the limit is "
                                       f"{limits.max_chunks:,} per file.")
    tokens = sum(c.token_count for c in chunks)
    if tokens > limits.max_tokens:
        raise ParseError(INVALID_FILE, f"The file's chunks hold {tokens:,} tokens; the limit is "
                                       f"{limits.max_tokens:,} per file.")
    return chunks


def _get_context():
    global _context
    if _context is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([_PRELOAD])
        _context = context
    return _context


def _child(conn, args) -> None:
    try:
        conn.send(("ok", _extract(*args)))
    except ParseError as exc:
        conn.send(("parse_error", (exc.code, exc.message)))
    except MemoryError:
        conn.send(("crashed", "it needed more memory than the worker has"))
    finally:
        conn.close()


def _in_child(args, *, timeout: float) -> list[Chunk]:
    context = _get_context()
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(send, args), daemon=True)
    process.start()
    send.close()
    try:
        if not receive.poll(timeout):
            raise ExtractCrashed(f"it took longer than {timeout:.0f} seconds")
        try:
            kind, value = receive.recv()
        except EOFError:
            raise ExtractCrashed("its parser stopped unexpectedly") from None
    finally:
        receive.close()
        if process.is_alive():
            process.kill()
        process.join(5)
        process.close()
    if kind == "parse_error":
        raise ParseError(*value)
    if kind == "crashed":
        raise ExtractCrashed(value)
    return value


_LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if sys.platform.startswith("linux") else None


def release_memory() -> None:
    """Hand the heap's free pages back to the system after a file (glibc keeps them otherwise: a worker that
    embedded one big file would hold that much for its whole life)."""
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)
