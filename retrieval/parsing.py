"""Turn uploaded file bytes into plain text pages for the vector-store ingestion pipeline.

Pure Python (no Django).  ``parse_document`` never lets a third-party library exception
escape: every failure is reported as a :class:`ParseError` with a stable ``code``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser

__all__ = ["SUPPORTED_EXTENSIONS", "Page", "ParseError", "parse_document"]

UNSUPPORTED_FILE = "unsupported_file"
INVALID_FILE = "invalid_file"


class ParseError(Exception):
    """A file could not be turned into text.

    ``code`` is ``"unsupported_file"`` (we do not handle this kind of file) or
    ``"invalid_file"`` (the file claims a supported type but is empty, corrupt or has no text).
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"ParseError({self.code!r}, {self.message!r})"


@dataclass
class Page:
    text: str
    page: int | None = None


# --------------------------------------------------------------------------------------------
# File type detection
# --------------------------------------------------------------------------------------------

_PLAIN_EXTENSIONS = {".txt", ".text", ".log", ".md", ".markdown", ".rst", ".tex"}
_CODE_EXTENSIONS = {
    ".py", ".pyi", ".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".java", ".kt", ".kts", ".scala",
    ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx", ".cs", ".go", ".rs", ".rb", ".php",
    ".sh", ".bash", ".zsh", ".ps1", ".bat", ".css", ".scss", ".sass", ".less", ".swift", ".m",
    ".mm", ".pl", ".pm", ".r", ".lua", ".sql", ".dart", ".ex", ".exs", ".erl", ".hs", ".clj",
    ".groovy", ".vue", ".svelte", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".conf", ".xml",
    ".proto", ".graphql", ".dockerfile", ".makefile", ".mk", ".cmake", ".gradle", ".env",
}
_HTML_EXTENSIONS = {".html", ".htm", ".xhtml"}
_JSON_EXTENSIONS = {".json"}
_CSV_EXTENSIONS = {".csv", ".tsv"}
_PDF_EXTENSIONS = {".pdf"}
_DOCX_EXTENSIONS = {".docx"}
_PPTX_EXTENSIONS = {".pptx"}

SUPPORTED_EXTENSIONS = frozenset(
    _PLAIN_EXTENSIONS | _CODE_EXTENSIONS | _HTML_EXTENSIONS | _JSON_EXTENSIONS | _CSV_EXTENSIONS
    | _PDF_EXTENSIONS | _DOCX_EXTENSIONS | _PPTX_EXTENSIONS
)

# Binary formats we recognise but cannot extract text from.
_KNOWN_UNSUPPORTED_EXTENSIONS = {
    ".doc", ".xls", ".xlsx", ".ppt", ".odt", ".ods", ".odp", ".rtf", ".epub", ".zip", ".gz", ".tgz",
    ".bz2", ".xz", ".7z", ".rar", ".tar", ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif",
    ".tiff", ".ico", ".mp3", ".mp4", ".wav", ".ogg", ".mov", ".avi", ".mkv", ".exe", ".dll", ".so",
    ".bin", ".dat", ".o", ".a", ".class", ".jar", ".pyc", ".whl", ".sqlite", ".db", ".parquet",
}

_CONTENT_TYPE_KINDS = {
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/json": "json",
    "text/json": "json",
    "text/csv": "csv",
    "text/tab-separated-values": "csv",
}

_BINARY_MAGIC = (
    b"\x89PNG", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"\x1f\x8b", b"BZh", b"\xfd7zXZ",
    b"7z\xbc\xaf", b"Rar!", b"\x7fELF", b"MZ", b"\xd0\xcf\x11\xe0", b"OggS", b"ID3", b"RIFF",
)


def _extension(filename: str) -> str:
    name = os.path.basename((filename or "").strip().replace("\\", "/")).lower()
    if name in {"dockerfile", "makefile"}:
        return "." + name
    return os.path.splitext(name)[1]


def _detect_kind(data: bytes, ext: str, content_type: str | None) -> str:
    """Return one of: pdf, docx, pptx, html, json, csv, text, zip-unknown, unsupported."""
    if ext in _PDF_EXTENSIONS:
        return "pdf"
    if ext in _DOCX_EXTENSIONS:
        return "docx"
    if ext in _PPTX_EXTENSIONS:
        return "pptx"
    if ext in _HTML_EXTENSIONS:
        return "html"
    if ext in _JSON_EXTENSIONS:
        return "json"
    if ext in _CSV_EXTENSIONS:
        return "csv"
    if ext in _PLAIN_EXTENSIONS or ext in _CODE_EXTENSIONS:
        return "text"
    if ext in _KNOWN_UNSUPPORTED_EXTENSIONS:
        return "unsupported"

    # Unknown / missing extension: sniff the content, then fall back to the content type.
    head = data[:8].lstrip()
    if data.lstrip()[:5] == b"%PDF-":
        return "pdf"
    if data[:4] == b"PK\x03\x04":
        return _sniff_ooxml(data)
    if any(head.startswith(m) for m in _BINARY_MAGIC):
        return "unsupported"
    ctype = (content_type or "").split(";")[0].strip().lower()
    kind = _CONTENT_TYPE_KINDS.get(ctype)
    if kind in {"pdf", "docx", "pptx"}:
        # Content type says binary office/PDF but the magic bytes did not match.
        return kind
    if kind:
        return kind
    if ctype == "text/markdown" or ctype.startswith("text/"):
        return "text"
    return "text"  # decided later: decodes as text -> text, else unsupported


def _sniff_ooxml(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
    except Exception:
        return "unsupported"
    if "word/document.xml" in names:
        return "docx"
    if "ppt/presentation.xml" in names:
        return "pptx"
    return "unsupported"


# --------------------------------------------------------------------------------------------
# Text helpers
# --------------------------------------------------------------------------------------------

# C0/C1 control characters other than tab, newline, carriage return and form feed.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_LEADING_BLANK_RE = re.compile(r"\A(?:[ \t\f\v]*\n)+")
_TRAILING_WS_RE = re.compile(r"[ \t\f\v]+\n")
_MANY_BLANK_LINES_RE = re.compile(r"\n{3,}")


def _clean_text(text: str) -> str:
    """Normalise newlines, drop control characters (and NULs, which Postgres rejects)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL_RE.sub("", text)
    text = text.replace("\ufeff", "")
    # Lone surrogates cannot be encoded as UTF-8 (can come from PDF text extraction).
    text = text.encode("utf-8", "replace").decode("utf-8") if _has_surrogates(text) else text
    # Drop leading blank lines and trailing whitespace, keep the first line's indentation.
    return _LEADING_BLANK_RE.sub("", text).rstrip()


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _tidy_lines(text: str) -> str:
    text = _TRAILING_WS_RE.sub("\n", text)
    return _MANY_BLANK_LINES_RE.sub("\n\n", text)


def _decode_text(data: bytes) -> str:
    """Decode bytes as text or raise ``unsupported_file`` if they look binary."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise ParseError(INVALID_FILE, "The file could not be decoded as UTF-16 text.") from None
    if b"\x00" in data:
        raise ParseError(UNSUPPORTED_FILE, "The file appears to be binary and its type is not supported.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1252")  # the usual legacy encoding; a superset of printable latin-1
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    # latin-1 decodes anything; reject content that is mostly control characters.
    sample = text[:65536]
    controls = len(_CONTROL_RE.findall(sample))
    if sample and controls / len(sample) > 0.05:
        raise ParseError(UNSUPPORTED_FILE, "The file appears to be binary and its type is not supported.")
    return text


def _no_text_error(detail: str = "") -> ParseError:
    msg = "No text could be extracted from the file."
    if detail:
        msg = f"{msg} {detail}"
    return ParseError(INVALID_FILE, msg)


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_HTML_SKIP = {"script", "style", "noscript", "template", "svg", "math", "iframe", "object"}
# Block elements that end a line.
_HTML_LINE = {
    "address", "body", "caption", "dd", "dialog", "div", "dt", "fieldset", "figcaption", "html",
    "legend", "li", "summary", "tr", "hgroup",
}
# Block elements that are separated from their surroundings by a blank line.
_HTML_PARAGRAPH = {
    "article", "aside", "blockquote", "details", "dl", "figure", "footer", "form", "h1", "h2", "h3",
    "h4", "h5", "h6", "header", "hr", "main", "nav", "ol", "p", "pre", "section", "table", "ul",
}


class _HTMLTextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_stack: list[str] = []
        self.pre_depth = 0
        self.title_parts: list[str] = []
        self.in_title = False
        self.pending_break = 0  # 0: none, 1: newline, 2: blank line

    def _break(self, level: int) -> None:
        self.pending_break = max(self.pending_break, level)

    def _block(self, tag: str) -> None:
        if tag in _HTML_PARAGRAPH:
            self._break(2)
        elif tag in _HTML_LINE or tag == "br":
            self._break(1)

    def _emit(self, text: str) -> None:
        if self.pending_break and self.parts:
            self.parts.append("\n" * self.pending_break)
        self.pending_break = 0
        self.parts.append(text)

    def handle_starttag(self, tag: str, attrs) -> None:
        tag = tag.lower()
        if tag == "title":
            self.in_title = True
            return
        if self.skip_stack:
            if tag in _HTML_SKIP:
                self.skip_stack.append(tag)
            return
        if tag in _HTML_SKIP:
            self.skip_stack.append(tag)
            return
        if tag == "br":
            # A <br> always produces a line break, even several in a row.
            self._emit("")
            self._break(1)
            return
        self._block(tag)
        if tag in ("td", "th"):
            self._emit("\t")
        elif tag == "li":
            self._emit("- ")
        if tag == "pre":
            self.pre_depth += 1

    def handle_startendtag(self, tag: str, attrs) -> None:
        tag = tag.lower()
        if not self.skip_stack and tag not in _HTML_SKIP:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        tag = tag.lower()
        if tag == "title":
            self.in_title = False
            return
        if self.skip_stack:
            if tag in self.skip_stack:
                # Pop up to and including the matching tag (tolerates unclosed inner tags).
                while self.skip_stack:
                    if self.skip_stack.pop() == tag:
                        break
            return
        if tag == "pre" and self.pre_depth:
            self.pre_depth -= 1
        self._block(tag)

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title_parts.append(data)
            return
        if self.skip_stack:
            return
        if self.pre_depth:
            self._emit(data)
        else:
            collapsed = re.sub(r"\s+", " ", data)
            if collapsed.startswith(" ") and not self.pending_break and self.parts and \
                    self.parts[-1].endswith(" "):
                collapsed = collapsed[1:]
            if collapsed.strip() or (self.parts and not self.pending_break):
                self._emit(collapsed)

    def text(self) -> str:
        body = "".join(self.parts)
        lines = [_html_cells(line) if "\t" in line else line.rstrip() for line in body.split("\n")]
        lines = [line if self._keeps_indent(line) else line.strip() for line in lines]
        out = _tidy_lines("\n".join(lines)).strip("\n")
        title = " ".join("".join(self.title_parts).split())
        if title and not out.lstrip().startswith(title):
            out = f"{title}\n\n{out}" if out.strip() else title
        return out

    @staticmethod
    def _keeps_indent(line: str) -> bool:
        # Indentation only survives whitespace collapsing inside <pre>, where it is meaningful.
        return line.startswith("  ") or line.startswith("\t")


def _html_cells(line: str) -> str:
    cells = [" ".join(cell.split()) for cell in line.split("\t")]
    return " | ".join(cell for cell in cells if cell)


def _parse_html(text: str) -> str:
    parser = _HTMLTextExtractor()
    try:
        parser.feed(text)
        parser.close()
    except Exception as exc:  # html.parser is lenient, but be defensive.
        raise ParseError(INVALID_FILE, f"The HTML file could not be parsed: {exc}") from None
    return parser.text()


# --------------------------------------------------------------------------------------------
# JSON / CSV
# --------------------------------------------------------------------------------------------


def _parse_json(text: str) -> str:
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ParseError(INVALID_FILE, f"The file is not valid JSON: {exc}") from None
    try:
        return json.dumps(obj, indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):
        return text


def _parse_csv(text: str, ext: str) -> str:
    if ext == ".tsv":
        delimiter = "\t"
    else:
        try:
            delimiter = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error:
        return text  # keep the raw CSV text; it is still readable
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if len(rows) < 2:
        return text
    header = [cell.strip() or f"column {i + 1}" for i, cell in enumerate(rows[0])]
    lines = [", ".join(h for h in header)]
    for row in rows[1:]:
        pairs = []
        for i, value in enumerate(row):
            value = " ".join(value.split())
            if not value:
                continue
            name = header[i] if i < len(header) else f"column {i + 1}"
            pairs.append(f"{name}: {value}")
        if pairs:
            lines.append("; ".join(pairs))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# PDF / DOCX / PPTX
# --------------------------------------------------------------------------------------------


def _parse_pdf(data: bytes) -> list[Page]:
    if b"%PDF-" not in data[:1024]:
        raise ParseError(INVALID_FILE, "The file is not a valid PDF document.")
    try:
        from pypdf import PdfReader

        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            ok: int  # a PasswordType (an IntEnum): 0 is NOT_DECRYPTED
            try:
                ok = reader.decrypt("")
            except Exception:
                ok = 0
            if not ok:
                raise ParseError(INVALID_FILE, "The PDF is encrypted and cannot be read.")
        pages: list[Page] = []
        for number, pdf_page in enumerate(reader.pages, start=1):
            text = _clean_text(pdf_page.extract_text() or "")
            if text:
                pages.append(Page(text=_tidy_lines(text), page=number))
    except ParseError:
        raise
    except Exception as exc:
        raise ParseError(INVALID_FILE, f"The PDF file could not be read: {_short(exc)}") from None
    if not pages:
        raise _no_text_error("The PDF has no text layer (it may contain only scanned images).")
    return pages


def _parse_docx(data: bytes) -> str:
    try:
        import docx

        document = docx.Document(io.BytesIO(data))
        blocks: list[str] = []
        _docx_blocks(document, blocks)
    except ParseError:
        raise
    except Exception as exc:
        raise ParseError(INVALID_FILE, f"The DOCX file could not be read: {_short(exc)}") from None
    return "\n".join(blocks)


def _docx_blocks(container, blocks: list[str]) -> None:
    from docx.table import Table

    for item in container.iter_inner_content():
        if isinstance(item, Table):
            _docx_table(item, blocks)
        else:
            text = item.text
            if text and text.strip():
                blocks.append(text)


def _docx_table(table, blocks: list[str]) -> None:
    for row in table.rows:
        cells: list[str] = []
        seen: set[int] = set()
        for cell in row.cells:
            # Merged cells are returned repeatedly; emit each underlying cell once.
            key = id(cell._tc)
            if key in seen:
                continue
            seen.add(key)
            inner: list[str] = []
            _docx_blocks(cell, inner)
            cell_text = " ".join(" ".join(t.split()) for t in inner).strip()
            if cell_text:
                cells.append(cell_text)
        if cells:
            blocks.append(" | ".join(cells))


def _parse_pptx(data: bytes) -> list[Page]:
    try:
        from pptx import Presentation

        presentation = Presentation(io.BytesIO(data))
        pages: list[Page] = []
        for number, slide in enumerate(presentation.slides, start=1):
            parts: list[str] = []
            for shape in slide.shapes:
                _pptx_shape_text(shape, parts)
            if slide.has_notes_slide:
                notes_frame = slide.notes_slide.notes_text_frame
                notes = notes_frame.text if notes_frame is not None else ""
                if notes and notes.strip():
                    parts.append(f"Notes: {notes}")
            text = _clean_text("\n".join(parts))
            if text:
                pages.append(Page(text=_tidy_lines(text), page=number))
    except ParseError:
        raise
    except Exception as exc:
        raise ParseError(INVALID_FILE, f"The PPTX file could not be read: {_short(exc)}") from None
    return pages


def _pptx_shape_text(shape, parts: list[str]) -> None:
    from pptx.shapes.group import GroupShape

    if isinstance(shape, GroupShape):
        for sub in shape.shapes:
            _pptx_shape_text(sub, parts)
        return
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        text = shape.text_frame.text
        if text and text.strip():
            parts.append(text)
    if getattr(shape, "has_table", False) and shape.has_table:
        for row in shape.table.rows:
            cells = [" ".join(c.text.split()) for c in row.cells]
            cells = [c for c in cells if c]
            if cells:
                parts.append(" | ".join(cells))


def _short(exc: BaseException) -> str:
    msg = str(exc).strip() or type(exc).__name__
    return msg[:200]


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def _check_archive(data: bytes, *, max_bytes: int | None, max_xml_bytes: int | None) -> None:
    """Refuse an OOXML file whose parts inflate past the limits before any parser inflates them (the sizes are the
    zip's declared ones; zipfile never inflates a part past its declared size)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except Exception as exc:
        raise ParseError(INVALID_FILE, f"The file is not a valid archive: {_short(exc)}") from None
    total = sum(i.file_size for i in infos)
    xml = sum(i.file_size for i in infos if i.filename.lower().endswith((".xml", ".rels")))
    if max_xml_bytes is not None and xml > max_xml_bytes:
        raise ParseError(INVALID_FILE, f"The file's XML inflates to {xml:,} bytes; the limit is {max_xml_bytes:,}.")
    if max_bytes is not None and total > max_bytes:
        raise ParseError(INVALID_FILE, f"The file inflates to {total:,} bytes; the limit is {max_bytes:,}.")


def parse_document(data: bytes, filename: str, content_type: str | None = None, *,
                   max_archive_bytes: int | None = None, max_archive_xml_bytes: int | None = None) -> list[Page]:
    """Extract text from an uploaded file.

    Returns a non-empty list of :class:`Page`.  PDF and PPTX produce one page per PDF
    page / slide (1-based ``page``; pages without text are skipped); every other format
    produces a single page with ``page=None``.

    Raises :class:`ParseError` (``unsupported_file`` or ``invalid_file``) on any failure, and for a DOCX/PPTX
    whose parts inflate past ``max_archive_bytes`` (all) or ``max_archive_xml_bytes`` (XML) before parsing it.
    """
    if data is None or len(data) == 0:
        raise ParseError(INVALID_FILE, "The file is empty.")
    data = bytes(data)
    ext = _extension(filename)
    kind = _detect_kind(data, ext, content_type)

    if kind == "unsupported":
        if ext:
            raise ParseError(UNSUPPORTED_FILE, f"Files of type '{ext}' are not supported for retrieval.")
        raise ParseError(UNSUPPORTED_FILE, "This file type is not supported for retrieval.")

    if kind in ("docx", "pptx"):
        _check_archive(data, max_bytes=max_archive_bytes, max_xml_bytes=max_archive_xml_bytes)
    if kind == "pdf":
        pages = _parse_pdf(data)
    elif kind == "pptx":
        pages = _parse_pptx(data)
        if not pages:
            raise _no_text_error()
    elif kind == "docx":
        text = _tidy_lines(_clean_text(_parse_docx(data)))
        if not text:
            raise _no_text_error()
        pages = [Page(text=text, page=None)]
    else:
        raw = _decode_text(data)
        if not raw.strip():
            raise ParseError(INVALID_FILE, "The file is empty (it contains only whitespace).")
        if kind == "html":
            text = _parse_html(raw.replace("\r\n", "\n"))
        elif kind == "json":
            text = _parse_json(raw)
        elif kind == "csv":
            text = _parse_csv(raw, ext)
        else:
            text = raw
        text = _clean_text(text)
        if not text:
            raise _no_text_error()
        pages = [Page(text=text, page=None)]
    return pages
