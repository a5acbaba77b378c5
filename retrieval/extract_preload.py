"""Imported once by the forkserver that extract.py forks parsing children from: what every child would otherwise
load for itself (the tokenizer's tables take seconds; the DOCX/PPTX/PDF libraries a few hundred milliseconds)."""

import contextlib

import retrieval.chunking
import retrieval.parsing  # noqa: F401
from retrieval.tokens import get_encoding

get_encoding()
for _module in ("docx", "pptx", "pypdf"):
    with contextlib.suppress(ImportError):
        __import__(_module)
