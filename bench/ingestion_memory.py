"""Memory a worker keeps after parsing a big file: RSS of this process before and after, parsing in a child
process (what ingestion does for DOCX/PPTX/PDF and large files) and, for comparison, in-process.

    python bench/ingestion_memory.py [--xml-mb 18]

The document is a DOCX whose XML inflates to ``--xml-mb`` MB (the default stays under
INGESTION_MAX_ARCHIVE_XML_BYTES; the archive cap is lifted here so larger sizes can be measured too).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--xml-mb", type=int, default=18)
    options = parser.parse_args()
    from retrieval import extract
    from retrieval.tests.docs import make_docx_bomb
    from retrieval.tokens import get_encoding

    get_encoding()  # the worker preloads it too
    doc = make_docx_bomb(options.xml_mb * 1024 * 1024)
    big = 1 << 40
    limits = extract.Limits(max_archive_bytes=big, max_archive_xml_bytes=big, max_chunks=big, max_tokens=big)
    args = dict(max_chunk_tokens=800, overlap_tokens=400, limits=limits, timeout=600)
    print(f"DOCX: {len(doc) / 1e3:.0f} kB on disk, {options.xml_mb} MB of XML inflated")
    base = rss_mb()
    chunks = extract.extract_chunks(doc, "big.docx", None, **args)
    n = len(chunks)
    del chunks
    extract.release_memory()
    child = rss_mb()
    print(f"parsed in a child process: {n} chunks; worker RSS {base:.0f} MB -> {child:.0f} MB "
          f"(+{child - base:.0f} MB kept)")
    chunks = extract._extract(doc, "big.docx", None, 800, 400, limits)
    peak = rss_mb()
    del chunks
    extract.release_memory()
    inline = rss_mb()
    print(f"parsed in-process (before this change): worker RSS {child:.0f} MB -> peak {peak:.0f} MB -> "
          f"{inline:.0f} MB after freeing and malloc_trim (+{inline - child:.0f} MB kept)")


if __name__ == "__main__":
    main()
