"""Hybrid search: the answering chunk comes first, keyword-only degradation, filters, thresholds, isolation."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from assistants_project.api.errors import InvalidRequest, NotFoundError
from retrieval import search as search_module
from retrieval.models import Chunk, ChunkVector, PendingChunkVector, VectorStore
from retrieval.search import search
from retrieval.services import vector_store_create
from retrieval.tests.docs import make_pdf
from retrieval.tests.test_api_vector_stores import error
from retrieval.vector_index import index_pending
from tests.fake_llm import embed_text
from tests.schema import assert_schema

pytestmark = pytest.mark.django_db

CORPUS = {
    "shipping.md": "# Shipping\n\nOrders ship from our Rotterdam warehouse. Delivery takes five business days.",
    "returns.txt": "Returns: unopened items can be sent back within 30 days for a full refund to the original card.",
    "warranty.txt": "Warranty: every espresso machine is covered for two years against manufacturing defects.",
    "careers.txt": "We are hiring baristas and engineers in Lisbon. Apply through the careers page.",
}


@pytest.fixture
def corpus(project, make_file, ingest):
    def build(attributes: dict | None = None, target=None):
        files = {name: make_file(project, name, text) for name, text in CORPUS.items()}
        store = target or vector_store_create(project=project, name="kb")
        from retrieval.services import vector_store_file_create

        for name, f in files.items():
            vector_store_file_create(vector_store=store, file_id=f.public_id,
                                     attributes=(attributes or {}).get(name, {}))
        assert set(ingest()) == {"completed"}
        return store, files

    return build


def test_the_answering_chunk_comes_first(project, corpus, fake_embeddings):
    store, files = corpus()
    results = search(project=project, vector_store_ids=[store.public_id], query="How long is the warranty?")
    assert results[0].file_id == files["warranty.txt"].public_id
    assert results[0].filename == "warranty.txt" and "two years" in results[0].text
    assert results[0].vector_store_id == store.public_id and results[0].position == 0
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert results[0].score == 1.0  # ranked first by both retrievers
    assert len(fake_embeddings.embedding_requests()) == len(CORPUS) + 1  # one per file, one for the query


def test_keyword_only_mode_still_finds_the_right_chunk(project, corpus, keyword_only):
    store, files = corpus()
    results = search(project=project, vector_store_ids=[store.public_id], query="what is the refund window?")
    assert results[0].file_id == files["returns.txt"].public_id and results[0].score == 1.0
    assert len(results) == 1  # only chunks that match a query term
    assert keyword_only.embedding_requests() == []


def test_files_indexed_while_the_provider_was_down_are_found_by_keywords(project, corpus, fake_embeddings):
    fake_embeddings.embedding_error = (503, "unavailable")
    store, files = corpus()
    fake_embeddings.embedding_error = None
    results = search(project=project, vector_store_ids=[store.public_id], query="espresso machine defects")
    assert results[0].file_id == files["warranty.txt"].public_id


def test_a_failing_query_embedding_degrades_to_keywords(project, corpus, fake_embeddings):
    store, files = corpus()
    fake_embeddings.embedding_error = (500, "down")
    results = search(project=project, vector_store_ids=[store.public_id], query="Rotterdam warehouse")
    assert results[0].file_id == files["shipping.md"].public_id
    assert results[0].score == 1.0  # scores are relative to the retrievers that ran: here the text side only
    assert len(fake_embeddings.embedding_requests()) == len(CORPUS) + 2  # the query: one try, one retry


def test_stop_word_queries_use_the_vectors_only(project, corpus, fake_embeddings):
    store, _ = corpus()
    results = search(project=project, vector_store_ids=[store.public_id], query="what is it?")
    assert 0 < len(results) <= len(CORPUS)


def test_max_num_results_score_threshold_and_multiple_queries(project, corpus, fake_embeddings):
    store, files = corpus()
    assert len(search(project=project, vector_store_ids=[store], query="days", max_num_results=1)) == 1
    strict = search(project=project, vector_store_ids=[store], query="warranty espresso",
                    ranking_options={"score_threshold": 0.99})
    assert [r.file_id for r in strict] == [files["warranty.txt"].public_id]
    both = search(project=project, vector_store_ids=[store], query=["warranty years", "Lisbon baristas"])
    assert {files["warranty.txt"].public_id, files["careers.txt"].public_id} <= {r.file_id for r in both[:2]}
    with pytest.raises(InvalidRequest):
        search(project=project, vector_store_ids=[store], query="x", max_num_results=51)
    with pytest.raises(InvalidRequest):
        search(project=project, vector_store_ids=[store], query=["  "])


def test_pdf_results_carry_their_page(project, make_file, fake_embeddings, ingest):
    doc = make_file(project, "manual.pdf", make_pdf(["Introduction to the grinder.", "Descaling: use citric acid."]))
    store = vector_store_create(project=project, file_ids=[doc.public_id], chunking_strategy={
        "type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0}})
    ingest()
    [hit, *_] = search(project=project, vector_store_ids=[store.public_id], query="descaling citric acid")
    assert hit.page == 1  # one small chunk holds both pages; it starts on page 1
    assert "citric" in hit.text


FILTER_ATTRS = {
    "shipping.md": {"team": "logistics", "year": 2023, "public": True},
    "returns.txt": {"team": "support", "year": 2024, "public": True},
    "warranty.txt": {"team": "support", "year": 2025, "public": False, "region": "eu"},
    "careers.txt": {"team": "people", "year": 2024.5},
}


@pytest.mark.parametrize(("filters", "expected"), [
    ({"type": "eq", "key": "team", "value": "support"}, {"returns.txt", "warranty.txt"}),
    ({"type": "ne", "key": "team", "value": "support"}, {"shipping.md", "careers.txt"}),
    ({"type": "eq", "key": "public", "value": False}, {"warranty.txt"}),
    ({"type": "eq", "key": "year", "value": 2024.0}, {"returns.txt"}),
    ({"type": "gt", "key": "year", "value": 2024}, {"warranty.txt", "careers.txt"}),
    ({"type": "gte", "key": "year", "value": 2024}, {"returns.txt", "warranty.txt", "careers.txt"}),
    ({"type": "lt", "key": "year", "value": 2024}, {"shipping.md"}),
    ({"type": "lte", "key": "year", "value": 2024}, {"shipping.md", "returns.txt"}),
    ({"type": "gt", "key": "team", "value": "people"}, {"returns.txt", "warranty.txt"}),
    ({"type": "in", "key": "team", "value": ["people", "logistics"]}, {"shipping.md", "careers.txt"}),
    ({"type": "in", "key": "year", "value": [2023, 2025]}, {"shipping.md", "warranty.txt"}),
    ({"type": "nin", "key": "region", "value": ["eu"]}, {"shipping.md", "returns.txt", "careers.txt"}),
    ({"type": "eq", "key": "missing", "value": "x"}, set()),
    ({"type": "and", "filters": [{"type": "eq", "key": "team", "value": "support"},
                                 {"type": "lt", "key": "year", "value": 2025}]}, {"returns.txt"}),
    ({"type": "or", "filters": [{"type": "eq", "key": "team", "value": "people"},
                                {"type": "and", "filters": [{"type": "eq", "key": "public", "value": True},
                                                            {"type": "gte", "key": "year", "value": 2024}]}]},
     {"careers.txt", "returns.txt"}),
])
def test_attribute_filters(project, corpus, keyword_only, filters, expected):
    store, _ = corpus(FILTER_ATTRS)
    # "days", "two", "Lisbon", "back": one word from every document, so the filter alone decides
    results = search(project=project, vector_store_ids=[store], query="days years Lisbon refund",
                     filters=filters, max_num_results=50)
    assert {r.filename for r in results} == expected
    for r in results:
        assert r.attributes == FILTER_ATTRS[r.filename]


@pytest.mark.parametrize(("filters", "param"), [
    ({"type": "like", "key": "a", "value": "b"}, "filters.type"),
    ({"type": "eq", "value": "b"}, "filters.key"),
    ({"type": "eq", "key": "a"}, "filters.value"),
    ({"type": "in", "key": "a", "value": "b"}, "filters.value"),
    ({"type": "gt", "key": "a", "value": True}, "filters.value"),
    ({"type": "eq", "key": "a", "value": {"x": 1}}, "filters.value"),
    ({"type": "and", "filters": []}, "filters.filters"),
    ({"type": "or", "filters": [{"type": "eq", "key": "a", "value": 1}, {"type": "eq", "key": "b"}]},
     "filters.filters[1].value"),
    ({"type": "eq", "key": "a", "value": 1, "extra": 2}, "filters.extra"),
])
def test_invalid_filters_are_400_with_the_param(api, project, filters, param):
    store = api.post("/v1/vector_stores", {}).json()["id"]
    error(api.post(f"/v1/vector_stores/{store}/search", {"query": "x", "filters": filters}), 400, param)


def test_search_endpoint_shape_and_validation(api, project, corpus, fake_embeddings):
    store, files = corpus({"warranty.txt": {"kind": "policy"}})
    response = api.post(f"/v1/vector_stores/{store.public_id}/search",
                        {"query": "warranty for espresso machines", "max_num_results": 2,
                         "ranking_options": {"ranker": "auto", "score_threshold": 0.1}, "rewrite_query": False})
    assert response.status_code == 200, response.content
    page = response.json()
    assert_schema(page, "VectorStoreSearchResultsPage")
    assert page["search_query"] == ["warranty for espresso machines"] and len(page["data"]) == 2
    assert page["data"][0] == {"file_id": files["warranty.txt"].public_id, "filename": "warranty.txt",
                               "score": 1.0, "attributes": {"kind": "policy"},
                               "content": [{"type": "text", "text": CORPUS["warranty.txt"]}]}
    url = f"/v1/vector_stores/{store.public_id}/search"
    error(api.post(url, {}), 400, "query")
    error(api.post(url, {"query": ""}), 400, "query")
    error(api.post(url, {"query": "x", "max_num_results": 0}), 400, "max_num_results")
    error(api.post(url, {"query": "x", "max_num_results": 51}), 400, "max_num_results")
    error(api.post(url, {"query": "x", "ranking_options": {"ranker": "best"}}), 400, "ranking_options.ranker")
    error(api.post(url, {"query": "x", "ranking_options": {"score_threshold": 2}}), 400,
          "ranking_options.score_threshold")


def test_searching_marks_the_store_active_and_search_itself_only_reads(project, corpus, fake_embeddings, api):
    store, _ = corpus()
    day_ago = timezone.now() - timedelta(days=1)
    VectorStore.objects.filter(pk=store.pk).update(last_active_at=day_ago, expires_after_days=3)
    store.refresh_from_db()
    assert search(project=project, vector_store_ids=[store], query="warranty")
    store.refresh_from_db()
    assert store.last_active_at == day_ago  # a read: its callers mark the store used
    assert api.post(f"/v1/vector_stores/{store.public_id}/search", {"query": "warranty"}).json()["data"]
    store.refresh_from_db()
    assert timezone.now() - store.last_active_at < timedelta(seconds=5)
    assert store.expires_at - store.last_active_at == timedelta(days=3)


def test_tenant_isolation(project, other_project, corpus, make_file, fake_embeddings, ingest):
    """The same text in another project's store: a search never returns it, whatever ids are passed."""
    ours, _ = corpus()
    theirs = vector_store_create(project=other_project, file_ids=[
        make_file(other_project, "secret.txt", CORPUS["warranty.txt"] + " secret").public_id])
    ingest()
    results = search(project=project, vector_store_ids=[ours], query="warranty espresso secret", max_num_results=50)
    assert results and all(r.vector_store_id == ours.public_id for r in results)
    assert "secret.txt" not in {r.filename for r in results}
    with pytest.raises(NotFoundError):
        search(project=project, vector_store_ids=[theirs.public_id], query="warranty")
    with pytest.raises(NotFoundError):
        search(project=project, vector_store_ids=[ours.public_id, theirs], query="warranty")
    own = search(project=other_project, vector_store_ids=[theirs], query="warranty secret")
    assert [r.filename for r in own] == ["secret.txt"]


def test_several_stores_at_once(project, corpus, make_file, fake_embeddings, ingest):
    first, _ = corpus()
    extra = make_file(project, "x.txt", "warranty extension")
    second = vector_store_create(project=project, file_ids=[extra.public_id])
    ingest()
    results = search(project=project, vector_store_ids=[first.public_id, second.public_id], query="warranty")
    assert {r.vector_store_id for r in results[:2]} == {first.public_id, second.public_id}


@pytest.mark.parametrize("indexed", [False, True], ids=["vectors-pending", "vectors-indexed"])
def test_the_hnsw_path_finds_the_same_answer(project, corpus, fake_embeddings, monkeypatch, indexed):
    store, files = corpus()
    assert PendingChunkVector.objects.count() == 4 and not ChunkVector.objects.exists()  # ingestion: no graph work
    if indexed:
        assert index_pending(defer=False).moved == 4
        assert not PendingChunkVector.objects.exists() and ChunkVector.objects.count() == 4
    monkeypatch.setattr(search_module, "EXACT_SCAN_MAX_CHUNKS", 0)
    with CaptureQueriesContext(connection) as queries:
        results = search(project=project, vector_store_ids=[store], query="How long is the warranty?")
    assert results[0].file_id == files["warranty.txt"].public_id
    walked = any("::vector(1536)) <=>" in q["sql"] for q in queries.captured_queries)
    assert walked == indexed  # no graph walk for a store with nothing in the graph: it would search it all in vain


def test_pending_and_indexed_vectors_are_ranked_together(project, corpus, fake_embeddings, make_file, ingest,
                                                         monkeypatch):
    """Half the store indexed, half pending: the vector side merges both by distance."""
    store, _ = corpus()
    index_pending(defer=False)
    extra = make_file(project, "grinder.txt", "Warranty for the coffee grinder: two years, parts and labour.")
    from retrieval.services import vector_store_file_create

    vector_store_file_create(vector_store=store, file_id=extra.public_id)
    ingest()
    assert PendingChunkVector.objects.count() == 1 and ChunkVector.objects.count() == 4
    monkeypatch.setattr(search_module, "EXACT_SCAN_MAX_CHUNKS", 0)
    scope = search_module._Scope([store.pk], chunks=5, excluded=[], included=None)
    vector = embed_text("coffee grinder warranty parts labour", 1536)
    nearest = search_module._nearest(scope, vector, 1536, 2)
    assert nearest[0] == Chunk.objects.get(file=extra).pk  # the pending one is the closest
    assert nearest[1] in set(ChunkVector.objects.values_list("chunk_id", flat=True))


def test_the_vector_query_can_use_the_hnsw_index(project, corpus, fake_embeddings):
    """The query's expressions must match the partial expression index exactly, or the planner cannot use it."""
    corpus()
    scope = search_module._Scope([1], chunks=10_000, excluded=[], included=[1, 2, 3])
    params = {**scope.sql()[1], "vector": "[" + ",".join(["0.01"] * 1536) + "]", "limit": 10}
    with transaction.atomic(), connection.cursor() as cursor:
        for path in ("seqscan", "bitmapscan", "sort"):  # any other way to the nearest rows (on a tiny table)
            cursor.execute(f"SET LOCAL enable_{path} = off")
        cursor.execute("EXPLAIN " + search_module.nearest_sql(scope, 1536, exact=False), params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "retrieval_chunkvector_embedding_hnsw_1536" in plan, plan


def test_files_embedded_with_another_model_are_found_by_keywords_only(project, corpus, fake_embeddings):
    from retrieval.models import VectorStoreFile

    store, files = corpus()
    VectorStoreFile.objects.filter(file=files["warranty.txt"]).update(embedding_model="some-other-model")
    results = search(project=project, vector_store_ids=[store], query="espresso warranty", max_num_results=50)
    warranty = next(r for r in results if r.filename == "warranty.txt")
    assert warranty.score <= 0.5  # the text side only: its vectors are not comparable with the query's


def test_a_file_being_reingested_is_not_searchable(project, corpus, fake_embeddings):
    from retrieval.services import vector_store_file_create

    store, files = corpus()
    vector_store_file_create(vector_store=store, file_id=files["warranty.txt"].public_id)  # queued again
    results = search(project=project, vector_store_ids=[store], query="espresso warranty", max_num_results=50)
    assert "warranty.txt" not in {r.filename for r in results}


def test_an_empty_or_unprocessed_store_returns_nothing(project, make_file, fake_embeddings):
    empty = vector_store_create(project=project)
    assert search(project=project, vector_store_ids=[empty], query="anything") == []
    queued = vector_store_create(project=project, file_ids=[make_file(project, "a.txt", "anything").public_id])
    assert search(project=project, vector_store_ids=[queued], query="anything") == []


@pytest.mark.parametrize("exact_max", [0, 10_000])
def test_filters_hold_on_both_vector_paths(project, corpus, fake_embeddings, monkeypatch, exact_max):
    monkeypatch.setattr(search_module, "EXACT_SCAN_MAX_CHUNKS", exact_max)
    store, _ = corpus(FILTER_ATTRS)
    for filters, expected in [({"type": "eq", "key": "team", "value": "support"}, {"returns.txt", "warranty.txt"}),
                              ({"type": "eq", "key": "public", "value": False}, {"warranty.txt"})]:
        results = search(project=project, vector_store_ids=[store], query="what is it about?", filters=filters,
                         max_num_results=50)  # stop words only: the vector side alone answers
        assert {r.filename for r in results} == expected


@pytest.mark.django_db
def test_the_embedded_database_runs_pgvector_0_8_with_iterative_scans():
    """The embedded server ships pgvector 0.8 and migration 0005 brings a database's extension up to the installed
    version: HNSW inserts are about twice as cheap as on 0.6, and filtered searches use iterative index scans."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT e.extversion, a.default_version FROM pg_extension e "
                       "JOIN pg_available_extensions a ON a.name = e.extname WHERE e.extname = 'vector'")
        installed, available = cursor.fetchone()
    assert installed == available
    assert tuple(int(p) for p in installed.split(".")[:2]) >= (0, 8)
    search_module._ITERATIVE.clear()
    assert search_module._iterative_scan_supported()
