"""Vector stores through the official SDK against the live stack (server, Celery worker, Postgres, Redis) with
the fake provider's deterministic embeddings."""

from __future__ import annotations

import subprocess
import sys
import time

import openai
import pytest

from retrieval.tests.docs import make_docx, make_pdf
from tests.live import ROOT, e2e_db, e2e_env
from tests.schema import assert_schema

pytestmark = pytest.mark.e2e

POLL_MS = 200

HANDBOOK_PDF = make_pdf([
    "Employee Handbook\nWelcome to Northwind Traders.",
    "Vacation policy\nEvery employee receives twenty-five vacation days per calendar year.",
    "Expenses\nSubmit receipts within thirty days through the finance portal.",
])
POLICIES_DOCX = make_docx(["Security policy", "Laptops must use full-disk encryption and a screen lock."],
                          table=[["Device", "Rule"], ["Phone", "Six digit passcode"]])
FAQ_MD = (b"# FAQ\n\n## Parking\n\nThe garage under building B has forty spaces for visitors.\n\n"
          b"## Lunch\n\nThe cafeteria serves lunch from noon until two.\n")


def upload_batch(client, store_id: str, files: list[tuple]):
    return client.vector_stores.file_batches.upload_and_poll(store_id, files=files, poll_interval_ms=POLL_MS)


def test_upload_and_poll_a_pdf_a_docx_and_markdown_then_search(live):
    client = live.client()
    store = client.vector_stores.create(name="handbook", metadata={"team": "hr"})
    batch = upload_batch(client, store.id, [("handbook.pdf", HANDBOOK_PDF, "application/pdf"),
                                            ("policies.docx", POLICIES_DOCX), ("faq.md", FAQ_MD)])
    assert batch.object == "vector_store.files_batch" and batch.status == "completed"
    assert batch.file_counts.model_dump() == {"in_progress": 0, "completed": 3, "failed": 0, "cancelled": 0,
                                              "total": 3}
    store = client.vector_stores.retrieve(store.id)
    assert store.status == "completed" and store.file_counts.completed == 3 and store.usage_bytes > 0

    page = client.vector_stores.search(store.id, query="How many vacation days does an employee get?")
    top = page.data[0]
    assert top.filename == "handbook.pdf" and "twenty-five vacation days" in top.content[0].text
    assert 0 < top.score <= 1
    with live.http() as http:
        raw = http.post(f"/vector_stores/{store.id}/search", json={"query": "visitor parking garage"}).json()
    assert_schema(raw, "VectorStoreSearchResultsPage")
    assert raw["data"][0]["filename"] == "faq.md"
    docx_hit = client.vector_stores.search(store.id, query="laptop disk encryption", max_num_results=1).data
    assert [h.filename for h in docx_hit] == ["policies.docx"]

    files = list(client.vector_stores.files.list(store.id))
    assert {f.status for f in files} == {"completed"} and len(files) == 3
    pdf = next(f for f in files if f.id == top.file_id)
    content = client.vector_stores.files.content(pdf.id, vector_store_id=store.id)
    assert any("Expenses" in part.text for part in content)


def _vector_rows(store_id: str) -> tuple[int, int, int]:
    """(chunks, pending vectors, indexed vectors) of a store, read straight from the live server's database."""
    with e2e_db() as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM retrieval_chunk WHERE vector_store_id = s.id), "
            "(SELECT count(*) FROM retrieval_pendingchunkvector WHERE vector_store_id = s.id), "
            "(SELECT count(*) FROM retrieval_chunkvector WHERE vector_store_id = s.id) "
            "FROM retrieval_vectorstore s WHERE s.public_id = %s", [store_id]).fetchone()


def test_the_worker_moves_new_vectors_into_the_hnsw_index(live):
    """A completed file is searchable at once (its vectors still pending, scanned exactly); the worker's indexer
    then moves every vector into the HNSW table, and search answers the same."""
    client = live.client()
    store = client.vector_stores.create(name="indexing")
    upload_batch(client, store.id, [("faq.md", FAQ_MD), ("policies.docx", POLICIES_DOCX)])
    first = client.vector_stores.search(store.id, query="visitor parking garage").data
    assert first[0].filename == "faq.md"
    deadline = time.monotonic() + 60
    while (rows := _vector_rows(store.id))[1] and time.monotonic() < deadline:
        time.sleep(0.2)
    chunks, pending, indexed = rows
    assert chunks > 0 and pending == 0 and indexed == chunks
    again = client.vector_stores.search(store.id, query="visitor parking garage").data
    assert [(r.file_id, r.content[0].text) for r in again] == [(r.file_id, r.content[0].text) for r in first]


def test_corrupt_and_blank_files_fail_with_a_reason_while_the_rest_complete(live):
    client = live.client()
    store = client.vector_stores.create(name="mixed")
    batch = upload_batch(client, store.id, [("ok.md", FAQ_MD), ("corrupt.pdf", b"%PDF-1.7\nthis is not a pdf"),
                                            ("blank.txt", b"   \n\n   \n")])
    assert batch.status == "completed"
    assert batch.file_counts.model_dump() == {"in_progress": 0, "completed": 1, "failed": 2, "cancelled": 0,
                                              "total": 3}
    failed = list(client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id, filter="failed"))
    assert len(failed) == 2
    assert all(f.last_error and f.last_error.code == "invalid_file" and f.last_error.message for f in failed)
    assert client.vector_stores.search(store.id, query="cafeteria lunch").data[0].filename == "ok.md"


def test_single_file_upload_and_poll_with_attributes_and_filters(live):
    client = live.client()
    store = client.vector_stores.create(name="attrs")
    for name, year in (("2023.md", 2023), ("2024.md", 2024)):
        vsf = client.vector_stores.files.upload_and_poll(
            vector_store_id=store.id, file=(name, f"Revenue report for {year}: revenue grew strongly.".encode()),
            poll_interval_ms=POLL_MS)
        assert vsf.status == "completed"
        client.vector_stores.files.update(vsf.id, vector_store_id=store.id, attributes={"year": year})
    hits = client.vector_stores.search(store.id, query="revenue report",
                                       filters={"type": "gte", "key": "year", "value": 2024}).data
    assert [h.filename for h in hits] == ["2024.md"] and hits[0].attributes == {"year": 2024}
    with pytest.raises(openai.BadRequestError) as info:
        client.vector_stores.search(store.id, query="x", filters={"type": "gte", "key": "year"})
    assert info.value.param == "filters.value"


def test_embedding_outage_indexes_for_keywords_and_search_degrades(live):
    client = live.client()
    store = client.vector_stores.create(name="outage")
    live.fake.embedding_error = (503, "embeddings unavailable")
    batch = upload_batch(client, store.id, [("faq.md", FAQ_MD)])
    assert batch.status == "completed" and batch.file_counts.completed == 1
    hits = client.vector_stores.search(store.id, query="Where can visitors park?").data
    assert hits and hits[0].filename == "faq.md" and "forty spaces" in hits[0].content[0].text


def _other_project_client(live) -> openai.OpenAI:
    out = subprocess.run([sys.executable, "manage.py", "createapikey", "--project", "e2e-other-tenant"],
                         cwd=ROOT, env=e2e_env(live.fake.base_url), capture_output=True, text=True, check=True)
    key = out.stdout.strip().splitlines()[-1]
    return openai.OpenAI(base_url=live.base_url, api_key=key, max_retries=0, timeout=60)


def test_tenant_isolation(live):
    mine, theirs = live.client(), _other_project_client(live)
    my_store = mine.vector_stores.create(name="mine")
    upload_batch(mine, my_store.id, [("mine.md", b"The vault combination is orange-seven-lemon.")])
    their_store = theirs.vector_stores.create(name="theirs")
    upload_batch(theirs, their_store.id, [("theirs.md", b"Our vault combination is blue-nine-cherry.")])

    with pytest.raises(openai.NotFoundError):
        theirs.vector_stores.search(my_store.id, query="vault combination")
    with pytest.raises(openai.NotFoundError):
        theirs.vector_stores.retrieve(my_store.id)
    with pytest.raises(openai.NotFoundError):
        theirs.vector_stores.files.list(my_store.id)
    hits = theirs.vector_stores.search(their_store.id, query="vault combination orange seven lemon").data
    assert [h.filename for h in hits] == ["theirs.md"]
    assert all("orange" not in h.content[0].text for h in hits)


def test_deleting_the_file_detaches_it_and_deleting_the_store_keeps_files(live):
    client = live.client()
    store = client.vector_stores.create(name="lifecycle")
    batch = upload_batch(client, store.id, [("a.md", b"alpha document"), ("b.md", b"beta document")])
    assert batch.file_counts.completed == 2
    [first, second] = list(client.vector_stores.files.list(store.id, order="asc"))
    client.files.delete(first.id)
    assert client.vector_stores.retrieve(store.id).file_counts.total == 1
    assert [h.file_id for h in client.vector_stores.search(store.id, query="alpha beta document").data] == [second.id]
    detached = client.vector_stores.files.delete(second.id, vector_store_id=store.id)
    assert detached.deleted and client.files.retrieve(second.id).id == second.id
    assert client.vector_stores.delete(store.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(store.id)
