"""Unit tests for retrieval.parsing / retrieval.chunking / retrieval.tokens (no database)."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from retrieval import tokens
from retrieval.chunking import (
    Chunk,
    ChunkingStrategyError,
    chunk_pages,
    chunk_text,
    normalize_chunking_strategy,
)
from retrieval.parsing import Page, ParseError, parse_document
from retrieval.tests.docs import make_docx, make_pdf, make_pptx

# --------------------------------------------------------------------------------------------
# tokens
# --------------------------------------------------------------------------------------------


def test_tokens_roundtrip():
    text = "Hello, world! Héllo 世界 😀"
    ids = tokens.encode(text)
    assert ids and all(isinstance(i, int) for i in ids)
    assert tokens.count_tokens(text) == len(ids)
    assert tokens.decode(ids) == text
    assert tokens.count_tokens("") == 0
    assert tokens.encode("") == []
    assert tokens.decode([]) == ""
    # cl100k_base: "hello world" is two tokens.
    assert tokens.count_tokens("hello world") == 2


def test_tokens_special_token_text_is_ordinary():
    text = "before <|endoftext|> after"
    assert tokens.decode(tokens.encode(text)) == text


# --------------------------------------------------------------------------------------------
# parsing: text formats
# --------------------------------------------------------------------------------------------


def _one(pages: list[Page]) -> str:
    assert len(pages) == 1
    assert pages[0].page is None
    return pages[0].text


def test_plain_text_and_bom_and_crlf():
    assert _one(parse_document(b"\xef\xbb\xbfline one\r\nline two\r\n", "notes.txt")) == "line one\nline two"
    assert _one(parse_document("héllo wörld".encode(), "a.log")) == "héllo wörld"


def test_unknown_extension_text_is_accepted():
    assert _one(parse_document(b"just some text", "README")) == "just some text"
    assert _one(parse_document(b"key = value", "settings.weird")) == "key = value"


def test_latin1_fallback():
    data = "café naïve".encode("latin-1")
    assert _one(parse_document(data, "old.txt")) == "café naïve"


def test_utf16_with_bom():
    data = "utf sixteen text".encode("utf-16")
    assert _one(parse_document(data, "wide.txt")) == "utf sixteen text"


def test_markdown_kept_as_text():
    md = b"# Title\n\nSome *emphasis* and a [link](http://x).\n\n- item\n"
    assert _one(parse_document(md, "doc.md")) == md.decode().strip()


def test_source_code_keeps_indentation():
    code = b"def f(x):\n    return x + 1\n"
    assert _one(parse_document(code, "mod.py")) == "def f(x):\n    return x + 1"
    for name in ("a.js", "a.ts", "A.java", "a.c", "a.cpp", "a.h", "a.go", "a.rs", "a.rb", "a.php", "a.sh",
                 "a.css", "a.tex"):
        assert _one(parse_document(b"x = 1", name)) == "x = 1"


def test_html_strips_scripts_and_styles():
    html = b"""<!doctype html>
    <html><head><title>My Page</title>
      <style>body { color: red; }</style>
      <script>var secret = "do not index";</script>
    </head>
    <body>
      <h1>Heading</h1>
      <p>First &amp; <b>bold</b>
         paragraph.</p>
      <ul><li>alpha</li><li>beta</li></ul>
      <table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td>1</td></tr></table>
      <script type="text/javascript">alert("nope")</script>
      line<br>break
    </body></html>"""
    text = _one(parse_document(html, "page.html"))
    assert "secret" not in text and "alert" not in text and "color" not in text
    lines = text.split("\n")
    assert lines[0] == "My Page"
    assert "Heading" in lines
    assert "First & bold paragraph." in lines
    assert "- alpha" in lines and "- beta" in lines
    assert "k | v" in lines and "a | 1" in lines
    assert "line" in lines and "break" in lines
    # .htm and content-type detection
    assert _one(parse_document(b"<p>x</p>", "a.htm")) == "x"
    assert _one(parse_document(b"<p>y</p>", "upload", "text/html; charset=utf-8")) == "y"


def test_html_without_text_is_invalid():
    with pytest.raises(ParseError) as exc:
        parse_document(b"<html><script>x()</script></html>", "a.html")
    assert exc.value.code == "invalid_file"
    assert "No text could be extracted" in str(exc.value)


def test_json_pretty_printed():
    text = _one(parse_document(b'{"name":"Widget","tags":["a","b"],"n":1}', "data.json"))
    assert json.loads(text) == {"name": "Widget", "tags": ["a", "b"], "n": 1}
    assert '"name": "Widget"' in text
    assert "\n" in text


def test_invalid_json():
    with pytest.raises(ParseError) as exc:
        parse_document(b'{"name": ', "data.json")
    assert exc.value.code == "invalid_file"


def test_csv_rows_readable():
    data = b'name,age,city\nAlice,30,Paris\n"Smith, Bob",41,\n'
    text = _one(parse_document(data, "people.csv"))
    lines = text.split("\n")
    assert lines[0] == "name, age, city"
    assert "name: Alice; age: 30; city: Paris" in lines
    assert "name: Smith, Bob; age: 41" in lines


def test_csv_single_line_kept():
    assert _one(parse_document(b"just,one,row\n", "x.csv")) == "just,one,row"


# --------------------------------------------------------------------------------------------
# parsing: binary document formats
# --------------------------------------------------------------------------------------------


def test_pdf_pages():
    data = make_pdf(["page one text", "page two text"])
    assert data.startswith(b"%PDF-1.4")
    pages = parse_document(data, "doc.pdf")
    assert [p.page for p in pages] == [1, 2]
    assert "page one text" in pages[0].text
    assert "page two text" in pages[1].text


def test_pdf_escaping_multiline_and_blank_page_skipped():
    data = make_pdf(["first (paren) \\ line\nsecond line", "", "third page"])
    pages = parse_document(data, "doc.pdf")
    assert [p.page for p in pages] == [1, 3]
    assert "first (paren) \\ line" in pages[0].text
    assert "second line" in pages[0].text


def test_pdf_detected_by_magic_and_content_type():
    data = make_pdf(["magic bytes"])
    assert "magic bytes" in parse_document(data, "noext")[0].text
    assert "magic bytes" in parse_document(data, "blob", "application/pdf")[0].text


def test_pdf_without_text_is_invalid():
    data = make_pdf([""])
    with pytest.raises(ParseError) as exc:
        parse_document(data, "scan.pdf")
    assert exc.value.code == "invalid_file"


def test_corrupt_pdf():
    for data in (b"%PDF-1.4 garbage", b"not a pdf at all", make_pdf(["x"])[:60]):
        with pytest.raises(ParseError) as exc:
            parse_document(data, "bad.pdf")
        assert exc.value.code == "invalid_file"


def test_docx_paragraphs_and_table():
    data = make_docx(["First paragraph.", "Second paragraph."], table=[["Name", "Qty"], ["Apple", "3"]])
    text = _one(parse_document(data, "report.docx"))
    assert text.split("\n") == ["First paragraph.", "Second paragraph.", "Name | Qty", "Apple | 3"]
    # detected by zip content without extension
    assert _one(parse_document(data, "upload")) == text


def test_corrupt_docx():
    for data in (b"PK\x03\x04 broken zip", b"plain text, not a docx", make_pptx(["slide"])):
        with pytest.raises(ParseError) as exc:
            parse_document(data, "bad.docx")
        assert exc.value.code == "invalid_file"


def test_pptx_slides():
    data = make_pptx(["Slide one body", ("Second title", "Second body")])
    pages = parse_document(data, "deck.pptx")
    assert [p.page for p in pages] == [1, 2]
    assert pages[0].text == "Slide one body"
    assert "Second title" in pages[1].text and "Second body" in pages[1].text
    assert [p.page for p in parse_document(data, "noext")] == [1, 2]


def test_corrupt_pptx():
    with pytest.raises(ParseError) as exc:
        parse_document(b"PK\x03\x04 junk", "bad.pptx")
    assert exc.value.code == "invalid_file"


# --------------------------------------------------------------------------------------------
# parsing: errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["empty.txt", "empty.pdf", "empty.docx", "empty.json", "empty"])
def test_empty_file(name):
    with pytest.raises(ParseError) as exc:
        parse_document(b"", name)
    assert exc.value.code == "invalid_file"
    assert "empty" in exc.value.message


def test_whitespace_only_file():
    with pytest.raises(ParseError) as exc:
        parse_document(b"  \n\t\n  ", "blank.txt")
    assert exc.value.code == "invalid_file"


def test_binary_is_unsupported():
    rng = random.Random(42)
    data = bytes(rng.randrange(256) for _ in range(4096)) + b"\x00\x00"
    for name in ("blob.bin", "blob", "blob.txt", "photo.png"):
        with pytest.raises(ParseError) as exc:
            parse_document(data, name)
        assert exc.value.code == "unsupported_file", name


def test_known_binary_extension_unsupported_even_if_textual():
    with pytest.raises(ParseError) as exc:
        parse_document(b"looks like text", "legacy.doc")
    assert exc.value.code == "unsupported_file"


def test_png_magic_unsupported():
    with pytest.raises(ParseError) as exc:
        parse_document(b"\x89PNG\r\n\x1a\nrest", "image")
    assert exc.value.code == "unsupported_file"


def test_nul_and_control_characters_removed():
    text = _one(parse_document("a\x01b\x7fc\u200bd".encode(), "x.txt"))
    assert text == "abc\u200bd"


# --------------------------------------------------------------------------------------------
# chunking
# --------------------------------------------------------------------------------------------


def _ascii_text(min_tokens: int) -> str:
    sentence = "The quick brown fox jumps over the lazy dog. "
    per = tokens.count_tokens(sentence)
    return sentence * (min_tokens // per + 1)


def test_short_document_is_one_chunk():
    chunks = chunk_pages([Page("A short document.", None)])
    assert len(chunks) == 1
    c = chunks[0]
    assert isinstance(c, Chunk)
    assert c.text == "A short document."
    assert c.position == 0 and c.page is None and c.start_token == 0
    assert c.token_count == tokens.count_tokens("A short document.")


def test_exact_window_sizes_and_overlap():
    text = _ascii_text(2000)
    toks = tokens.encode(text)
    n = len(toks)
    chunks = chunk_text(text, max_tokens=200, overlap=50)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    starts = [c.start_token for c in chunks]
    assert starts == list(range(0, starts[-1] + 1, 150))
    for c in chunks[:-1]:
        assert c.token_count == 200
        assert tokens.encode(c.text) == toks[c.start_token:c.start_token + 200]
    last = chunks[-1]
    assert last.start_token + last.token_count == n
    assert 0 < last.token_count <= 200
    # consecutive chunks share exactly `overlap` tokens
    for a, b in itertools.pairwise(chunks):
        assert a.start_token + a.token_count - b.start_token == 50


def test_no_overlap_reconstructs_document():
    text = _ascii_text(1000).strip()
    chunks = chunk_text(text, max_tokens=100, overlap=0)
    assert "".join(c.text for c in chunks) == text
    assert all(c.token_count == 100 for c in chunks[:-1])


def test_default_parameters():
    text = _ascii_text(3000)
    n = tokens.count_tokens(text)
    chunks = chunk_text(text)
    assert all(c.token_count == 800 for c in chunks[:-1])
    assert [c.start_token for c in chunks] == [400 * i for i in range(len(chunks))]
    assert chunks[-1].start_token + chunks[-1].token_count == n


def test_exactly_max_tokens_is_one_chunk():
    text = _ascii_text(1000)
    toks = tokens.encode(text)[:150]
    exact = tokens.decode(toks)
    assert tokens.count_tokens(exact) == 150
    chunks = chunk_text(exact, max_tokens=150, overlap=10)
    assert len(chunks) == 1 and chunks[0].token_count == 150


def test_page_attribution():
    pages = [Page(_ascii_text(150).strip(), 1), Page("   ", 2), Page(_ascii_text(150).strip(), 3)]
    chunks = chunk_pages(pages, max_tokens=100, overlap=0)
    first_page_tokens = tokens.count_tokens(pages[0].text)
    for c in chunks:
        expected = 1 if c.start_token < first_page_tokens else 3
        assert c.page == expected
    assert {c.page for c in chunks} == {1, 3}
    full = "".join(c.text for c in chunks)
    assert full == pages[0].text + "\n\n" + pages[2].text


def test_chunk_page_from_parsed_pdf():
    pdf = make_pdf(["page one text", "page two text"])
    chunks = chunk_pages(parse_document(pdf, "d.pdf"))
    assert len(chunks) == 1 and chunks[0].page == 1
    assert "page one text" in chunks[0].text and "page two text" in chunks[0].text


def test_multibyte_text_never_split():
    rng = random.Random(7)
    pieces = ["世界", "😀", "ąčę", "naïve", " hello", "🇫🇷", "ééé", "\n"]
    text = "".join(rng.choice(pieces) for _ in range(5000))
    for max_tokens, overlap in ((100, 0), (101, 50), (137, 13)):
        chunks = chunk_text(text, max_tokens=max_tokens, overlap=overlap)
        assert chunks
        for c in chunks:
            assert "\ufffd" not in c.text
            assert c.text in text
            assert c.token_count <= max_tokens
        if overlap == 0:
            assert "".join(c.text for c in chunks) == text


def test_empty_and_whitespace_pages_produce_no_chunks():
    assert chunk_pages([]) == []
    assert chunk_pages([Page("", 1), Page("  \n ", 2)]) == []


def test_large_document():
    text = ("lorem ipsum dolor sit amet " * 40000)  # ~1 MB
    assert len(text) > 1_000_000
    chunks = chunk_text(text)
    n = tokens.count_tokens(text)
    assert len(chunks) == (n - 800 + 399) // 400 + 1
    assert chunks[-1].start_token + chunks[-1].token_count == n


@pytest.mark.parametrize(
    "max_tokens,overlap",
    [(99, 0), (4097, 0), (100, 51), (800, 401), (800, -1), (True, 0), (800.0, 0)],
)
def test_invalid_chunk_params(max_tokens, overlap):
    with pytest.raises(ValueError):
        chunk_text("text", max_tokens=max_tokens, overlap=overlap)


def test_boundary_chunk_params_ok():
    assert chunk_text("text", max_tokens=100, overlap=50)
    assert chunk_text("text", max_tokens=4096, overlap=2048)


# --------------------------------------------------------------------------------------------
# chunking strategy
# --------------------------------------------------------------------------------------------

DEFAULT = {"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}


def test_strategy_defaults():
    assert normalize_chunking_strategy(None) == DEFAULT
    assert normalize_chunking_strategy({"type": "auto"}) == DEFAULT


def test_strategy_static_valid():
    s = {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 50}}
    assert normalize_chunking_strategy(s) == s
    s = {"type": "static", "static": {"max_chunk_size_tokens": 4096, "chunk_overlap_tokens": 0}}
    assert normalize_chunking_strategy(s) == s


@pytest.mark.parametrize(
    "strategy,param",
    [
        ({"type": "bogus"}, "chunking_strategy.type"),
        ({}, "chunking_strategy.type"),
        ("auto", "chunking_strategy"),
        ({"type": "static"}, "chunking_strategy.static"),
        ({"type": "static", "static": "x"}, "chunking_strategy.static"),
        ({"type": "static", "static": {"chunk_overlap_tokens": 0}},
         "chunking_strategy.static.max_chunk_size_tokens"),
        ({"type": "static", "static": {"max_chunk_size_tokens": 800}},
         "chunking_strategy.static.chunk_overlap_tokens"),
        ({"type": "static", "static": {"max_chunk_size_tokens": "800", "chunk_overlap_tokens": 0}},
         "chunking_strategy.static.max_chunk_size_tokens"),
        ({"type": "static", "static": {"max_chunk_size_tokens": 99, "chunk_overlap_tokens": 0}},
         "chunking_strategy.static.max_chunk_size_tokens"),
        ({"type": "static", "static": {"max_chunk_size_tokens": 4097, "chunk_overlap_tokens": 0}},
         "chunking_strategy.static.max_chunk_size_tokens"),
        ({"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 401}},
         "chunking_strategy.static.chunk_overlap_tokens"),
        ({"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": -1}},
         "chunking_strategy.static.chunk_overlap_tokens"),
        ({"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 1.5}},
         "chunking_strategy.static.chunk_overlap_tokens"),
    ],
)
def test_strategy_invalid(strategy, param):
    with pytest.raises(ChunkingStrategyError) as exc:
        normalize_chunking_strategy(strategy)
    assert isinstance(exc.value, ValueError)
    assert exc.value.param == param
    assert str(exc.value)
