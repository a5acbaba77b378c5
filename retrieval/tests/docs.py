"""Builders for small fixture documents (PDF / DOCX / PPTX) used by the retrieval tests.

Reusable from other test modules (e.g. end-to-end vector store tests)::

    from retrieval.tests.docs import make_docx, make_pdf, make_pptx
"""

from __future__ import annotations

import io


def _pdf_escape(text: str) -> bytes:
    """Escape text for a PDF literal string (WinAnsi / latin-1; other characters become '?')."""
    raw = text.encode("latin-1", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def make_pdf(pages: list[str]) -> bytes:
    """Build a minimal valid PDF with one page per string, drawn in Helvetica 12pt.

    Newlines in a page string start a new text line.  The PDF has a correct xref table so
    pypdf (and other readers) extract the text without repairs.
    """
    if not pages:
        raise ValueError("make_pdf needs at least one page")
    n = len(pages)
    # Object numbers: 1 catalog, 2 pages, 3 font, then (page, content) pairs.
    page_ids = [4 + 2 * i for i in range(n)]
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % pid for pid in page_ids)
        + b"] /Count %d >>" % n,
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    }
    for i, text in enumerate(pages):
        page_id, content_id = page_ids[i], page_ids[i] + 1
        lines = text.split("\n") or [""]
        ops = [b"BT", b"/F1 12 Tf", b"14 TL", b"72 720 Td"]
        for j, line in enumerate(lines):
            if j:
                ops.append(b"T*")
            ops.append(b"(" + _pdf_escape(line) + b") Tj")
        ops.append(b"ET")
        stream = b"\n".join(ops) + b"\n"
        objects[page_id] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % content_id
        )
        objects[content_id] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream"

    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    size = max(objects) + 1
    offsets = [0] * size
    for num in range(1, size):
        offsets[num] = out.tell()
        out.write(b"%d 0 obj\n" % num + objects[num] + b"\nendobj\n")
    xref_pos = out.tell()
    out.write(b"xref\n0 %d\n" % size)
    out.write(b"0000000000 65535 f \n")
    for num in range(1, size):
        out.write(b"%010d 00000 n \n" % offsets[num])
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref_pos))
    return out.getvalue()


def make_docx(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    """Build a DOCX with the given paragraphs, followed by an optional table (rows of cells)."""
    import docx

    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        cols = max(len(row) for row in table)
        tbl = document.add_table(rows=len(table), cols=cols)
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                tbl.cell(r, c).text = value
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def make_pptx(slides: list[str | tuple[str, str]]) -> bytes:
    """Build a PPTX with one slide per item.

    An item is either body text (placed in a text box) or a ``(title, body)`` tuple using the
    "Title and Content" layout.
    """
    from pptx import Presentation
    from pptx.util import Inches

    presentation = Presentation()
    for item in slides:
        if isinstance(item, tuple):
            title, body = item
            slide = presentation.slides.add_slide(presentation.slide_layouts[1])
            slide.shapes.title.text = title
            slide.placeholders[1].text = body
        else:
            slide = presentation.slides.add_slide(presentation.slide_layouts[6])  # blank
            box = slide.shapes.add_textbox(Inches(1), Inches(1), Inches(8), Inches(4))
            box.text_frame.text = item
    buf = io.BytesIO()
    presentation.save(buf)
    return buf.getvalue()


def make_docx_bomb(xml_bytes: int, paragraph: str = "All work and no play makes Jack a dull boy. ") -> bytes:
    """A real DOCX whose word/document.xml inflates to about ``xml_bytes`` (highly repetitive, so the file
    itself stays small: the shape of a zip bomb)."""
    import zipfile

    one = f"<w:p><w:r><w:t>{paragraph * 20}</w:t></w:r></w:p>".encode()
    source = zipfile.ZipFile(io.BytesIO(make_docx(["seed"])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "word/document.xml":
                head, tail = data.split(b"<w:body>", 1)
                data = head + b"<w:body>" + one * (xml_bytes // len(one)) + tail
            target.writestr(info.filename, data)
    return out.getvalue()
