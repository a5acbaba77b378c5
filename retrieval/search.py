"""Hybrid search over vector stores: pgvector cosine similarity + Postgres full-text rank, fused by reciprocal rank
fusion (RRF). Used by ``POST /v1/vector_stores/{id}/search`` and by the runs' file_search tool.

- Scope: the project's own stores only (a store id of another project is "not found"), completed files only,
  attribute ``filters`` evaluated in SQL on the file rows, then pushed into the chunk queries as a store/file
  condition (see _Scope).
- Vector side: for small scopes an exact scan; otherwise the HNSW index, ``hnsw.ef_search`` raised in proportion
  to how little of the table the scope covers and again (up to 1000) when the filter leaves too few rows. With
  pgvector < 0.8 (no iterative scans) a small store inside a huge table can therefore get fewer vector
  candidates than asked; the full-text side is unaffected. Vectors not yet in the HNSW index (vector_index.py)
  are scanned exactly in the same query. This side runs in a thread, beside the other.
- Text side: candidates from the query's selective terms (Postgres' own lexeme statistics say which), chunks with
  all of them first, then chunks with any, each side capped; ranked by ts_rank.
- Score: the RRF sum divided by its best possible value over the retrievers that ran, so 1.0 means "ranked first
  by every retriever" and a chunk found by one of two scores at most 0.5. ``score_threshold`` applies to it.
- No embedding model, a provider failure, or files indexed keyword-only: the text side alone answers.
"""

from __future__ import annotations

import contextvars
import json
import logging
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.db import connection

from assistants_project.api.errors import InvalidRequest, NotFoundError
from retrieval import embeddings
from retrieval.filters import filter_sql, validate_filter
from retrieval.indexes import HNSW_MAX_DIMENSIONS
from retrieval.models import TEXT_SEARCH_CONFIG, VectorStore
from retrieval.selectors import vector_store_get
from tenancy.models import Project

logger = logging.getLogger(__name__)

RRF_K = 60
MAX_NUM_RESULTS = 50
EXACT_SCAN_MAX_CHUNKS = 3_000  # up to this many chunks in scope, scan exactly (~13 µs a chunk at 1536-d)
HNSW_EF_SEARCH_MIN = 40
HNSW_EF_SEARCH_MAX = 1000
TEXT_CANDIDATES_CAP = 500  # per text query and per side (chunks with all selective terms / with any)
SELECTIVE_MAX_ROWS = 5_000  # a term expected in more chunks than this does not pick candidates
STATS_TTL_SECONDS = 300


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


@dataclass
class _Scope:
    """The chunks a query may read, as the cheapest SQL condition: the stores, minus (or only) some of their files.
    A file's chunks are out of scope when the file is not completed, fails the attribute filters or (vector side)
    was embedded with another model."""

    store_pks: list[int]
    chunks: int  # chunks in scope
    excluded: list[int]  # out-of-scope files that have chunks
    included: list[int] | None  # the in-scope files, when that list is the shorter one
    pending: int = 0  # (vector side) of the chunks, those whose vectors are not in the HNSW index yet

    def sql(self, *, indexed: bool = True) -> tuple[str, dict]:
        """``indexed=False`` keeps the planner from intersecting with the store/file btree: cheaper when the rows
        come from another index and the scope is a big part of the table."""
        store, file = ("vector_store_id", "vector_store_file_id") if indexed else (
            "(vector_store_id + 0)", "(vector_store_file_id + 0)")
        if not self.excluded:
            return f"{store} = ANY(%(stores)s)", {"stores": self.store_pks}
        if self.included is None:
            return (f"{store} = ANY(%(stores)s) AND vector_store_file_id <> ALL(%(files)s)",
                    {"stores": self.store_pks, "files": self.excluded})
        return f"{file} = ANY(%(files)s)", {"files": self.included}


def search(*, project: Project, vector_store_ids: Sequence[str | VectorStore], query: str | list[str],
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
    text_scope, vector_scope, terms = _scopes(project, stores, spec, config, queries)
    if not text_scope.chunks:
        return []
    candidates = min(100, max(20, 3 * max_num_results))
    # The vector side (the query's embedding, a network call, then the nearest-neighbour queries) runs in another
    # thread while this one asks Postgres for the full-text side. Its queries use that thread's own connection,
    # unless a transaction is open here (whose rows would be invisible there): then they run here, after.
    own_connection = not connection.in_atomic_block
    # (copy_context: the provider credentials of this request or run apply there too)
    pending = _VECTOR_SIDE.submit(contextvars.copy_context().run, _vector_lists, vector_scope, queries, config,
                                  candidates, query=own_connection) if (config and vector_scope.chunks) else None
    lists = _text_lists(text_scope, terms, candidates)
    if pending is not None and config is not None:  # (pending only exists with a config)
        vectors, nearest = pending.result()
        if vectors is not None and nearest is None:
            nearest = [_nearest(vector_scope, vector, config.dimensions, candidates) for vector in vectors]
        lists += nearest or []
    if not lists:
        return []
    best = len(lists) / (RRF_K + 1)
    fused: dict[int, float] = defaultdict(float)
    for ranked in lists:
        for rank, chunk_id in enumerate(ranked, start=1):
            fused[chunk_id] += 1.0 / (RRF_K + rank)
    ordered = sorted(((min(1.0, s / best), cid) for cid, s in fused.items()), key=lambda p: (-p[0], p[1]))
    top = [(score, cid) for score, cid in ordered if score >= threshold][:max_num_results]
    return _results(project, stores, top)


_VECTOR_SIDE = ThreadPoolExecutor(max_workers=4, thread_name_prefix="search-vector-side")


def _vector_lists(scope: _Scope, queries: list[str], config: embeddings.EmbeddingConfig, candidates: int, *,
                  query: bool) -> tuple[list | None, list[list[int]] | None]:
    """(the queries' vectors, and with ``query`` their nearest chunks); (None, None) if embedding failed."""
    try:
        vectors = embeddings.embed(queries, config=config, retries=1)
    except embeddings.EmbeddingError as exc:
        logger.warning("Query embedding failed; searching by keywords only: %s", exc)
        return None, None
    if not query:
        return vectors, None
    try:
        return vectors, [_nearest(scope, vector, config.dimensions, candidates) for vector in vectors]
    finally:
        connection.close()  # this thread's connection, back to the pool


def normalize_queries(query: str | list[str]) -> list[str]:
    items = [query] if isinstance(query, str) else query
    if not isinstance(items, list) or not all(isinstance(q, str) for q in items):
        raise InvalidRequest("Invalid 'query': expected a string or an array of strings.", param="query")
    items = [q.strip() for q in items if q.strip()]
    if not items:
        raise InvalidRequest("Invalid 'query': the query must not be empty.", param="query")
    return list(dict.fromkeys(items))[:10]


def _stores(project: Project, refs: Sequence[str | VectorStore]) -> list[VectorStore]:
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


def _scopes(project: Project, stores: list[VectorStore], spec: dict | None,
            config: embeddings.EmbeddingConfig | None, queries: list[str]) -> tuple[_Scope, _Scope, list[list[str]]]:
    """(full-text scope, vector scope, each query's lexemes) in one round trip, aggregated in SQL: a store with
    thousands of files costs no more than one with a few. The vector scope's pending vectors are counted without a
    size check: a file in scope has the configured size (its vectors and their size are written together)."""
    match, params = filter_sql(spec, "attributes") if spec else ("true", [])
    store_pks = [s.pk for s in stores]
    model, dims = (config.model, config.dimensions) if config else ("", 0)
    sides = []
    for flag in ("readable", "embedded"):
        sides.append(
            f"count(*) FILTER (WHERE {flag}), coalesce(sum(chunk_count) FILTER (WHERE {flag}), 0), "
            f"array_agg(id) FILTER (WHERE NOT {flag} AND chunk_count > 0), "
            f"CASE WHEN count(*) FILTER (WHERE NOT {flag} AND chunk_count > 0) < count(*) FILTER (WHERE {flag}) "
            f"THEN NULL ELSE array_agg(id) FILTER (WHERE {flag}) END")
    with connection.cursor() as cursor:
        cursor.execute(
            # COALESCE: a NULL flag would put a file in neither list, i.e. in scope under the store condition.
            f"WITH f AS (SELECT id, chunk_count, COALESCE(status = 'completed' AND ({match}), false) AS readable, "
            f"COALESCE(status = 'completed' AND ({match}) AND embedding_model = %s AND embedding_dimensions = %s, "
            "false) AS embedded "
            f"FROM retrieval_vectorstorefile WHERE project_id = %s AND vector_store_id = ANY(%s)) "
            f"SELECT {', '.join(sides)}, "
            "(SELECT json_agg(array(SELECT lexeme FROM unnest(to_tsvector(%s::regconfig, q.text)) ORDER BY lexeme) "
            " ORDER BY q.ord) FROM unnest(%s::text[]) WITH ORDINALITY AS q(text, ord)), "
            "(SELECT count(*) FROM retrieval_pendingchunkvector p WHERE p.vector_store_id = ANY(%s) "
            " AND p.vector_store_file_id IN (SELECT id FROM f WHERE embedded)) FROM f",
            [*params, *params, model, dims, project.pk, store_pks, TEXT_SEARCH_CONFIG, queries, store_pks])
        row = cursor.fetchone()
    text = _Scope(store_pks, chunks=row[1], excluded=row[2] or [], included=row[3])
    vector = _Scope(store_pks, chunks=row[5], excluded=row[6] or [], included=row[7], pending=row[9])
    if text.included is not None and not text.included:
        text.chunks = 0
    if vector.included is not None and not vector.included:
        vector.chunks = 0
    return text, vector, _json(row[8]) or [[] for _ in queries]


# --- vector side ----------------------------------------------------------------------------------


def _vector_literal(vector) -> str:
    return "[" + ",".join(map(repr, vector)) + "]"


def _nearest(scope: _Scope, vector, dims: int, limit: int) -> list[int]:
    params = {**scope.sql()[1], "vector": _vector_literal(vector), "limit": limit}
    # Only the vectors already in the HNSW index count for the graph walk: for a store whose vectors are all still
    # pending it would search the whole graph in vain.
    indexed = max(0, scope.chunks - scope.pending)
    with connection.cursor() as cursor:
        if indexed <= EXACT_SCAN_MAX_CHUNKS or dims > HNSW_MAX_DIMENSIONS:
            cursor.execute(nearest_sql(scope, dims, exact=True), params)
            return _closest(cursor.fetchall(), limit)
        # The graph walk returns ef_search nearest rows of the whole table and the scope filter applies after
        # it, so ef_search grows with how little of the table the scope is (and again if too few survive).
        # Kept with pgvector 0.8's iterative scans too: the bench's recall@30 fell by about 0.1 at ef_search 40.
        _, _, table = _lexeme_stats()
        ef = math.ceil(limit * 1.5 * max(1.0, table / indexed))
        ef = max(HNSW_EF_SEARCH_MIN, limit, min(HNSW_EF_SEARCH_MAX, ef))
        scope_local = "LOCAL " if connection.in_atomic_block else ""  # else for the session: always set first
        if _iterative_scan_supported():
            cursor.execute(f"SET {scope_local}hnsw.iterative_scan = relaxed_order")
        while True:
            cursor.execute(f"SET {scope_local}hnsw.ef_search = {int(ef)}")
            cursor.execute(nearest_sql(scope, dims, exact=False), params)
            rows = cursor.fetchall()
            if sum(1 for row in rows if row[2]) >= min(limit, indexed) or ef >= HNSW_EF_SEARCH_MAX:
                return _closest(rows, limit)  # at the ceiling, a small scope in a huge table may get fewer (< 0.8)
            ef = min(HNSW_EF_SEARCH_MAX, ef * 4)


def nearest_sql(scope: _Scope, dims: int, *, exact: bool) -> str:
    """Rows (chunk id, cosine distance, indexed?) of the nearest indexed vectors and, scanned exactly, the nearest
    pending ones (vector_index.py), each side ``%(limit)s`` long. With ``exact=False`` the indexed side uses exactly
    the HNSW index's expressions (indexes.py), so the planner walks the graph; ``exact=True`` uses an expression the
    index does not cover, so it scans the scope exactly."""
    where, _ = scope.sql()
    pending = (f"(SELECT chunk_id, embedding <=> %(vector)s::vector, false FROM retrieval_pendingchunkvector "
               f"WHERE {where} AND vector_dims(embedding) = {dims} ORDER BY 2 LIMIT %(limit)s)")
    distance = "embedding <=> %(vector)s::vector" if exact else (
        f"(embedding::vector({dims})) <=> %(vector)s::vector({dims})")
    indexed = (f"(SELECT chunk_id, {distance}, true FROM retrieval_chunkvector "
               f"WHERE vector_dims(embedding) = {dims} AND {where} ORDER BY {distance} LIMIT %(limit)s)")
    return f"{indexed} UNION ALL {pending}"


def _closest(rows: list[tuple], limit: int) -> list[int]:
    """By distance: the two sides interleave, and an iterative scan in relaxed order may return rows slightly out
    of order."""
    return [row[0] for row in sorted(rows, key=lambda row: (row[1], row[0]))[:limit]]


_ITERATIVE: dict = {}


def _iterative_scan_supported() -> bool:
    """pgvector 0.8+ keeps walking the graph until enough rows pass the filter (hnsw.iterative_scan)."""
    if connection.alias not in _ITERATIVE:
        with connection.cursor() as cursor:
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            row = cursor.fetchone()
        version = tuple(int(p) for p in row[0].split(".")[:2] if p.isdigit()) if row else (0, 0)
        _ITERATIVE[connection.alias] = version >= (0, 8)
    return _ITERATIVE[connection.alias]


# --- text side ------------------------------------------------------------------------------------


def _tsquery(terms: list[str], op: str) -> str:
    return f" {op} ".join("'" + term.replace("\\", "\\\\").replace("'", "''") + "'" for term in terms)


def _text_lists(scope: _Scope, query_terms: list[list[str]], candidates: int) -> list[list[int]]:
    """Candidates come from the query's *selective* terms only (a term in most chunks discriminates nothing and
    would make the pool huge): chunks holding all of them first, then chunks holding any, each side capped."""
    _, _, table = _lexeme_stats()
    where, params = scope.sql(indexed=scope.chunks < 0.2 * table)
    lists = []
    for terms in query_terms:
        if not terms:
            continue  # only stop words: nothing for full-text search to match
        selective = _selective(terms)
        any_q, all_q = _tsquery(selective, "|"), _tsquery(selective, "&")
        side = ("SELECT id, {hit} AS all_terms, ts_rank(tsv, %(any)s::tsquery) AS rank FROM retrieval_chunk "
                f"WHERE {where} AND tsv @@ {{query}}::tsquery LIMIT %(cap)s")
        pool = f"({side.format(hit=0, query='%(any)s')})"
        if len(selective) > 1:
            pool = f"({side.format(hit=1, query='%(all)s')}) UNION ALL {pool}"
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id FROM ({pool}) hits GROUP BY id "
                "ORDER BY max(all_terms) DESC, max(rank) DESC, id LIMIT %(limit)s",
                {**params, "all": all_q, "any": any_q, "cap": TEXT_CANDIDATES_CAP, "limit": candidates})
            lists.append([row[0] for row in cursor.fetchall()])
    return lists


def _selective(terms: list[str]) -> list[str]:
    """The terms expected in at most SELECTIVE_MAX_ROWS chunks, or else the rarest one (Postgres' own statistics
    of the tsv column give each lexeme's frequency)."""
    freqs, floor, rows = _lexeme_stats()
    estimate = {t: freqs.get(t, floor) * rows for t in terms}
    return [t for t in terms if estimate[t] <= SELECTIVE_MAX_ROWS] or [min(terms, key=lambda t: estimate[t])]


_STATS: dict = {}


def _lexeme_stats() -> tuple[dict[str, float], float, float]:
    """(frequency of the most common lexemes, frequency assumed for the others, table rows), cached a while."""
    now = time.monotonic()
    cached = _STATS.get(connection.alias)
    if cached and now - cached[0] < STATS_TTL_SECONDS:
        return cached[1]
    with connection.cursor() as cursor:
        cursor.execute("SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats "
                       "WHERE schemaname = current_schema() AND tablename = 'retrieval_chunk' AND attname = 'tsv'")
        row = cursor.fetchone()
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'retrieval_chunk'::regclass")
        rows = max(float(cursor.fetchone()[0]), 0.0)
    if row and row[0] and row[1]:
        elems, freqs = row[0], row[1]
        # the frequency list ends with: the minimum, the maximum and the null frequency (pg_stats docs)
        stats = (dict(zip(elems, freqs[: len(elems)], strict=True)), freqs[len(elems)] / 2, rows)
    else:
        stats = ({}, 0.0, rows)  # never analysed (a small table): every term counts as selective
    _STATS[connection.alias] = (now, stats)
    return stats


# --- results --------------------------------------------------------------------------------------


def _json(value):
    """Django's connection hands json/jsonb columns of raw SQL over as text."""
    return json.loads(value) if isinstance(value, str) else value


def _results(project: Project, stores: list[VectorStore], top: list[tuple[float, int]]) -> list[SearchResult]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.id, c.text, c.position, c.page, v.attributes, f.public_id, f.filename, s.public_id "
            "FROM retrieval_chunk c JOIN retrieval_vectorstorefile v ON v.id = c.vector_store_file_id "
            "JOIN files_file f ON f.id = c.file_id JOIN retrieval_vectorstore s ON s.id = c.vector_store_id "
            "WHERE c.id = ANY(%s) AND c.project_id = %s AND c.vector_store_id = ANY(%s)",
            [[cid for _, cid in top], project.pk, [s.pk for s in stores]])
        rows = {row[0]: row for row in cursor.fetchall()}
    return [SearchResult(file_id=row[5], filename=row[6], score=round(score, 6), attributes=_json(row[4]) or {},
                         text=row[1], position=row[2], page=row[3], vector_store_id=row[7], chunk_id=cid)
            for score, cid in top if (row := rows.get(cid)) is not None]
