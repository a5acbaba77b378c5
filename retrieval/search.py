"""Hybrid search over vector stores: pgvector cosine similarity + Postgres full-text rank, fused by reciprocal rank
fusion (RRF). Used by ``POST /v1/vector_stores/{id}/search`` and by the runs' file_search tool.

- Scope: the project's own stores only (a store id of another project is "not found"), completed files only,
  attribute ``filters`` applied in SQL to the file rows before any chunk is read.
- Vector side: for small scopes an exact scan; otherwise the HNSW index (``hnsw.ef_search`` raised in proportion
  to how much of the table the scope covers, with an exact scan as the fallback when filtering leaves too few).
- Text side: chunks matching *all* query terms plus chunks matching *any* (each capped), ranked by ts_rank.
- Score: the RRF sum divided by its best possible value, so 1.0 means "ranked first by every retriever" and a
  chunk found by only one of two retrievers scores at most 0.5. ``score_threshold`` applies to this score.
- No embedding model, a provider failure, or files indexed keyword-only: the text side alone answers.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL

from assistants.models import Project
from assistants_project.api.errors import InvalidRequest, NotFoundError
from retrieval import embeddings
from retrieval.filters import filter_sql, validate_filter
from retrieval.indexes import HNSW_MAX_DIMENSIONS
from retrieval.models import TEXT_SEARCH_CONFIG, Chunk, VectorStore, VectorStoreFile

logger = logging.getLogger(__name__)

RRF_K = 60
MAX_NUM_RESULTS = 50
EXACT_SCAN_MAX_CHUNKS = 20_000  # below this many chunks in scope, scan exactly instead of using HNSW
HNSW_EF_SEARCH_MIN = 40
HNSW_EF_SEARCH_MAX = 1000
TEXT_CANDIDATES_CAP = 1000  # per text query and per (all terms / any term) side


@dataclass(frozen=True)
class SearchResult:
    file_id: str  # the File's public id
    filename: str
    score: float  # 0..1
    attributes: dict
    text: str
    position: int  # chunk index within the file
    page: int | None  # PDF page / slide the chunk starts on
    vector_store_id: str
    chunk_id: int

    def as_api(self) -> dict:
        return {"file_id": self.file_id, "filename": self.filename, "score": self.score,
                "attributes": self.attributes or {}, "content": [{"type": "text", "text": self.text}]}


@dataclass(frozen=True)
class _ScopeFile:
    pk: int
    chunk_count: int
    vector_ok: bool


def search(*, project: Project, vector_store_ids: list[str | VectorStore], query: str | list[str],
           max_num_results: int = 10, filters: dict | None = None,
           ranking_options: dict | None = None) -> list[SearchResult]:
    """Best chunks first. Raises NotFoundError (unknown store), InvalidRequest (bad arguments, expired store)."""
    queries = normalize_queries(query)
    if not isinstance(max_num_results, int) or not 1 <= max_num_results <= MAX_NUM_RESULTS:
        raise InvalidRequest(f"Invalid 'max_num_results': must be between 1 and {MAX_NUM_RESULTS}.",
                             param="max_num_results")
    spec = validate_filter(filters) if filters else None
    threshold = float((ranking_options or {}).get("score_threshold") or 0.0)
    stores = _stores(project, vector_store_ids)
    config = embeddings.current_config()
    scope = _scope(project, stores, spec, config)
    if not scope:
        return []
    candidates = min(100, max(20, 3 * max_num_results))
    lists = _vector_lists(scope, queries, config, candidates) + _text_lists(scope, queries, candidates)
    if not lists:
        return []
    best = len(lists) / (RRF_K + 1)
    fused: dict[int, float] = defaultdict(float)
    for ranked in lists:
        for rank, chunk_id in enumerate(ranked, start=1):
            fused[chunk_id] += 1.0 / (RRF_K + rank)
    ordered = sorted(((min(1.0, s / best), cid) for cid, s in fused.items()), key=lambda p: (-p[0], p[1]))
    top = [(score, cid) for score, cid in ordered if score >= threshold][:max_num_results]
    results = _results(project, stores, top)
    from retrieval.services import vector_stores_touch

    vector_stores_touch(stores=stores)
    return results


def normalize_queries(query: str | list[str]) -> list[str]:
    items = [query] if isinstance(query, str) else query
    if not isinstance(items, list) or not all(isinstance(q, str) for q in items):
        raise InvalidRequest("Invalid 'query': expected a string or an array of strings.", param="query")
    items = [q.strip() for q in items if q.strip()]
    if not items:
        raise InvalidRequest("Invalid 'query': the query must not be empty.", param="query")
    return list(dict.fromkeys(items))[:10]


def _stores(project: Project, refs: list[str | VectorStore]) -> list[VectorStore]:
    from retrieval.selectors import vector_store_get

    stores: dict[int, VectorStore] = {}
    for ref in refs:
        if isinstance(ref, VectorStore):
            if ref.project_id != project.pk:  # never trust an object from elsewhere
                raise NotFoundError(f"No vector store found with id '{ref.public_id}'.", param="vector_store_id")
            store = ref
        else:
            store = vector_store_get(project=project, vector_store_id=ref)
        if store.expired_at is not None:
            raise InvalidRequest(f"Vector store '{store.public_id}' has expired and can no longer be searched.",
                                 param="vector_store_id")
        stores[store.pk] = store
    return list(stores.values())


def _scope(project: Project, stores: list[VectorStore], spec: dict | None,
           config: embeddings.EmbeddingConfig | None) -> list[_ScopeFile]:
    qs = VectorStoreFile.objects.filter(project=project, vector_store__in=stores,
                                        status=VectorStoreFile.Status.COMPLETED)
    if spec:
        sql, params = filter_sql(spec, f'"{VectorStoreFile._meta.db_table}"."attributes"')
        qs = qs.filter(RawSQL(sql, params, output_field=BooleanField()))
    rows = qs.values_list("pk", "chunk_count", "keyword_only", "embedding_model", "embedding_dimensions")
    return [_ScopeFile(pk=pk, chunk_count=count, vector_ok=bool(
        config and not keyword_only and model == config.model and dims == config.dimensions))
        for pk, count, keyword_only, model, dims in rows]


# --- vector side ----------------------------------------------------------------------------------


def _vector_lists(scope: list[_ScopeFile], queries: list[str], config, candidates: int) -> list[list[int]]:
    files = [f for f in scope if f.vector_ok]
    if config is None or not files:
        return []
    try:
        vectors = embeddings.embed(queries, config=config, retries=1)  # fail fast: keywords still answer
    except embeddings.EmbeddingError as exc:
        logger.warning("Query embedding failed; searching by keywords only: %s", exc)
        return []
    pks = [f.pk for f in files]
    in_scope = sum(f.chunk_count for f in files)
    return [_nearest(pks, in_scope, vector, config.dimensions, candidates) for vector in vectors]


def _vector_literal(vector) -> str:
    return "[" + ",".join(map(repr, vector)) + "]"


def _nearest(pks: list[int], in_scope: int, vector, dims: int, limit: int) -> list[int]:
    literal = _vector_literal(vector)
    if in_scope > EXACT_SCAN_MAX_CHUNKS and dims <= HNSW_MAX_DIMENSIONS:
        total = _table_size_estimate()
        ef = math.ceil(limit * max(1.0, total / max(in_scope, 1)) * 1.5)
        ef = max(HNSW_EF_SEARCH_MIN, limit, min(HNSW_EF_SEARCH_MAX, ef))
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL hnsw.ef_search = {int(ef)}")
            # Exactly the index's expressions (indexes.py), so the planner can walk the HNSW graph.
            cursor.execute(
                f"SELECT id FROM retrieval_chunk WHERE vector_dims(embedding) = {dims} "
                f"AND vector_store_file_id = ANY(%s) "
                f"ORDER BY (embedding::vector({dims})) <=> %s::vector({dims}) LIMIT %s",
                [pks, literal, limit])
            found = [row[0] for row in cursor.fetchall()]
        if len(found) >= min(limit, in_scope):
            return found
        # Filtering after the graph walk left too few (a small scope in a big table): scan exactly.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM retrieval_chunk WHERE vector_store_file_id = ANY(%s) AND vector_dims(embedding) = %s "
            "ORDER BY embedding <=> %s::vector LIMIT %s", [pks, dims, literal, limit])
        return [row[0] for row in cursor.fetchall()]


def _table_size_estimate() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = 'retrieval_chunk'::regclass")
        row = cursor.fetchone()
    return max(int(row[0]) if row else 0, 1)


# --- text side ------------------------------------------------------------------------------------


def _tsquery_terms(queries: list[str]) -> list[list[str]]:
    """The stemmed lexemes of each query (stop words dropped), as Postgres' text search config sees them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT q.ord, array(SELECT lexeme FROM unnest(to_tsvector(%s::regconfig, q.text)) ORDER BY lexeme) "
            "FROM unnest(%s::text[]) WITH ORDINALITY AS q(text, ord) ORDER BY q.ord",
            [TEXT_SEARCH_CONFIG, queries])
        return [list(row[1] or []) for row in cursor.fetchall()]


def _tsquery(terms: list[str], op: str) -> str:
    return f" {op} ".join("'" + term.replace("\\", "\\\\").replace("'", "''") + "'" for term in terms)


def _text_lists(scope: list[_ScopeFile], queries: list[str], candidates: int) -> list[list[int]]:
    pks = [f.pk for f in scope]
    lists = []
    for terms in _tsquery_terms(queries):
        if not terms:
            continue  # only stop words: nothing for full-text search to match
        any_q, all_q = _tsquery(terms, "|"), _tsquery(terms, "&")
        pool = ("(SELECT id FROM retrieval_chunk WHERE vector_store_file_id = ANY(%(pks)s) "
                "AND tsv @@ %(all)s::tsquery LIMIT %(cap)s) UNION "
                "(SELECT id FROM retrieval_chunk WHERE vector_store_file_id = ANY(%(pks)s) "
                "AND tsv @@ %(any)s::tsquery LIMIT %(cap)s)") if len(terms) > 1 else (
                "SELECT id FROM retrieval_chunk WHERE vector_store_file_id = ANY(%(pks)s) "
                "AND tsv @@ %(any)s::tsquery LIMIT %(cap)s")
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH pool AS ({pool}) SELECT c.id FROM retrieval_chunk c JOIN pool USING (id) "
                "ORDER BY ts_rank(c.tsv, %(any)s::tsquery) + (c.tsv @@ %(all)s::tsquery)::int DESC, c.id "
                "LIMIT %(limit)s",
                {"pks": pks, "all": all_q, "any": any_q, "cap": TEXT_CANDIDATES_CAP, "limit": candidates})
            lists.append([row[0] for row in cursor.fetchall()])
    return lists


# --- results --------------------------------------------------------------------------------------


def _results(project: Project, stores: list[VectorStore], top: list[tuple[float, int]]) -> list[SearchResult]:
    rows = {row["id"]: row for row in Chunk.objects.filter(
        project=project, vector_store__in=stores, pk__in=[cid for _, cid in top]).values(
        "id", "text", "position", "page", "vector_store_file__attributes", "file__public_id", "file__filename",
        "vector_store__public_id")}
    return [SearchResult(file_id=row["file__public_id"], filename=row["file__filename"], score=round(score, 6),
                         attributes=row["vector_store_file__attributes"] or {}, text=row["text"],
                         position=row["position"], page=row["page"], vector_store_id=row["vector_store__public_id"],
                         chunk_id=cid)
            for score, cid in top if (row := rows.get(cid)) is not None]
