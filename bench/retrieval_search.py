"""Benchmark: hybrid search latency (p50/p99) over 100,000 or 1,000,000 chunks.

    python bench/retrieval_search.py --chunks 100000 [--dimensions 1536] [--queries 300] [--small-stores 10]
        [--small-store-chunks 10000] [--words 300] [--reuse]

Loads (server-side, INSERT ... SELECT, no per-row Python) one project with a big vector store of ``--chunks``
chunks and ``--small-stores`` stores of ``--small-store-chunks`` chunks each in the same table, every chunk of
``--words`` words: texts drawn from a Zipf-distributed vocabulary (so common terms match most chunks and rare
ones a handful), vectors the sum of two random pool vectors (all distinct). Then builds the GIN and HNSW indexes
(maintenance_work_mem raised for the build) and times ``retrieval.search.search()`` end to end, in-process: the
query embedding through LiteLLM against tests/fake_llm.py (in its own process), the vector and full-text queries,
fusion and the result rows. Then the vector side's recall@30 against an exact scan, for query vectors near stored
ones. Searches hit the big store, then a small one inside the table of all the others. ``--reuse`` skips the load
when the same data is already there. Uses its own data dir (var/bench-retrieval) unless ASSISTANTS_DATA_DIR is set.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistants_project.settings")
os.environ.setdefault("ASSISTANTS_DATA_DIR", str(ROOT / "var" / "bench-retrieval"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

PROJECT = "bench-retrieval-search"
CHUNKS_PER_FILE = 1000
TEXT_POOL = 20_000
VOCABULARY = 30_000
SYLLABLES = ["ka", "lo", "mi", "ren", "to", "sa", "vel", "dor", "qui", "ne", "bra", "fin", "gal", "hu", "jes", "pe",
             "ro", "tur", "zi", "mon", "ar", "el", "is", "un", "cor", "dan", "ve", "sol", "tri", "ba"]


def vocabulary() -> list[str]:
    words = ("".join(p) for n in (2, 3, 4) for p in itertools.product(SYLLABLES, repeat=n))
    rng = random.Random(3)
    pool = list(itertools.islice(words, VOCABULARY * 2))
    rng.shuffle(pool)
    return pool[:VOCABULARY]


def zipf_sampler(words: list[str], rng: random.Random):
    cumulative = list(itertools.accumulate(1.0 / (rank + 1) ** 1.05 for rank in range(len(words))))
    total = cumulative[-1]
    return lambda k: [words[bisect.bisect_left(cumulative, rng.random() * total)] for _ in range(k)]


def setup_django(dims: int) -> None:
    os.environ["EMBEDDING_DIMENSIONS"] = str(dims)
    os.environ["EMBEDDING_MODEL"] = "text-embedding-3-small"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def sql(statement: str, params=None, fetch: bool = False):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if fetch else None


def bench_signature(args) -> str:
    return f"{args.chunks}/{args.dimensions}/{args.small_stores}x{args.small_store_chunks}/{args.words}"


def loaded_signature() -> str | None:
    from retrieval.models import VectorStore

    store = VectorStore.objects.filter(project__name=PROJECT).order_by("pk").first()
    return (store.metadata or {}).get("bench") if store else None


def load(args) -> None:
    from django.db import connection

    from files.models import File
    from retrieval import indexes
    from retrieval.ingestion import CHUNKER_VERSION
    from retrieval.models import VectorStore, VectorStoreFile
    from tenancy.services import project_get_or_create

    t0 = time.perf_counter()
    print("resetting the retrieval tables of the bench database ...", flush=True)
    sql("TRUNCATE retrieval_chunkvector, retrieval_pendingchunkvector, retrieval_chunk, retrieval_vectorstorefile, "
        "retrieval_filebatch, retrieval_vectorstore")
    project = project_get_or_create(name=PROJECT)
    File.objects.filter(project=project).delete()
    signature = bench_signature(args)
    stores = [VectorStore.objects.create(project=project, name=f"bench-{s}", metadata={"bench": signature})
              for s in range(1 + args.small_stores)]
    layout = [(0, min(CHUNKS_PER_FILE, args.chunks - start)) for start in range(0, args.chunks, CHUNKS_PER_FILE)]
    for s in range(1, 1 + args.small_stores):
        layout += [(s, min(CHUNKS_PER_FILE, args.small_store_chunks - start))
                   for start in range(0, args.small_store_chunks, CHUNKS_PER_FILE)]
    files = File.objects.bulk_create([File(project=project, filename=f"doc-{i:05d}.txt", purpose="assistants",
                                           bytes=0, storage_name=f"bench/{i}", public_id=f"file-bench{i:07d}")
                                      for i in range(len(layout))], batch_size=1000)
    vsfs = VectorStoreFile.objects.bulk_create([VectorStoreFile(
        project=project, vector_store=stores[store], file=f, status="completed",
        chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}},
        chunk_count=count, embedding_model="text-embedding-3-small", embedding_dimensions=args.dimensions,
        chunker_version=CHUNKER_VERSION) for f, (store, count) in zip(files, layout, strict=True)], batch_size=1000)
    total = sum(count for _, count in layout)

    print(f"generating {TEXT_POOL:,} texts of {args.words} words and 2,000 pool vectors ...", flush=True)
    rng = random.Random(11)
    sample = zipf_sampler(vocabulary(), rng)
    sql("DROP TABLE IF EXISTS bench_text_pool, bench_vector_pool, bench_files")
    sql("CREATE UNLOGGED TABLE bench_text_pool (id int PRIMARY KEY, t text)")
    sql("CREATE UNLOGGED TABLE bench_vector_pool (id int PRIMARY KEY, v vector)")
    sql("CREATE UNLOGGED TABLE bench_files (n int PRIMARY KEY, vsf bigint, store bigint, file bigint)")
    with connection.cursor() as cursor, cursor.cursor.copy("COPY bench_text_pool FROM STDIN") as copy:
        for i in range(TEXT_POOL):
            copy.write_row((i, " ".join(sample(args.words))))
    with connection.cursor() as cursor, cursor.cursor.copy("COPY bench_vector_pool FROM STDIN") as copy:
        for i in range(2000):
            copy.write_row((i, "[" + ",".join(f"{rng.gauss(0, 1):.5f}" for _ in range(args.dimensions)) + "]"))
    with connection.cursor() as cursor, cursor.cursor.copy("COPY bench_files FROM STDIN") as copy:
        for n, vsf in enumerate(vsfs):  # every file holds CHUNKS_PER_FILE chunks but the big store's last one
            copy.write_row((n, vsf.pk, vsf.vector_store_id, vsf.file_id))

    dims = args.dimensions
    indexes.drop_hnsw_index(dims)
    sql("DROP INDEX IF EXISTS retrieval_chunk_tsv_gin")
    step = 100_000
    # chunk i belongs to file i // CHUNKS_PER_FILE; the big store's last file may be short, so number the small
    # stores' chunks from the next whole file on
    first_small = -(-args.chunks // CHUNKS_PER_FILE) * CHUNKS_PER_FILE
    spans = [(0, args.chunks), (first_small, first_small + total - args.chunks)]
    for start, end in ((a, min(b, a + step)) for lo, hi in spans for a in range(lo, hi, step) for b in [hi]):
        t = time.perf_counter()
        # chunk id i + 1, so that its vector (inserted as already indexed: the HNSW index is built after the load)
        # can be derived from the id
        sql(f"""
            INSERT INTO retrieval_chunk (id, project_id, vector_store_id, vector_store_file_id, file_id, position,
                                         page, text, token_count)
            SELECT i + 1, %s, f.store, f.vsf, f.file, i %% {CHUNKS_PER_FILE}, NULL,
                   p.t || ' doc' || i, {int(args.words * 1.4)}
            FROM generate_series(%s::bigint, %s::bigint) AS i
            JOIN bench_files f ON f.n = i / {CHUNKS_PER_FILE}
            JOIN bench_text_pool p ON p.id = (i * 7919) %% {TEXT_POOL}
        """, [project.pk, start, end - 1])
        sql("""
            INSERT INTO retrieval_chunkvector (chunk_id, vector_store_id, vector_store_file_id, embedding)
            SELECT c.id, c.vector_store_id, c.vector_store_file_id, a.v + b.v
            FROM retrieval_chunk c
            JOIN bench_vector_pool a ON a.id = (c.id - 1) %% 1000
            JOIN bench_vector_pool b ON b.id = 1000 + ((c.id - 1) / 1000) %% 1000
            WHERE c.id BETWEEN %s AND %s
        """, [start + 1, end])
        print(f"  chunks {start:,}..{end:,} of {total:,} ({time.perf_counter() - t:.0f}s)", flush=True)
    sql("SELECT setval(pg_get_serial_sequence('retrieval_chunk', 'id'), (SELECT max(id) FROM retrieval_chunk))")
    sql("DROP TABLE bench_text_pool, bench_vector_pool, bench_files")
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = %s", [args.maintenance_work_mem])
        cursor.execute("SET max_parallel_maintenance_workers = %s", [max(0, (os.cpu_count() or 1) - 1)])
        t = time.perf_counter()
        cursor.execute("CREATE INDEX retrieval_chunk_tsv_gin ON retrieval_chunk USING gin (tsv)")
        print(f"GIN index: {time.perf_counter() - t:.0f}s", flush=True)
        t = time.perf_counter()
        indexes.ensure_hnsw_index(dims)
        print(f"HNSW index ({dims} dimensions): {time.perf_counter() - t:.0f}s", flush=True)
    sql("VACUUM ANALYZE retrieval_chunk")
    sql("VACUUM ANALYZE retrieval_chunkvector")
    sql("VACUUM ANALYZE retrieval_vectorstorefile")
    print(f"loaded in {time.perf_counter() - t0:.0f}s", flush=True)


def queries(n: int, seed: int = 5) -> list[str]:
    """Questions mixing a rare term, a mid-frequency term and a common one, with stop words around them."""
    words = vocabulary()
    rng = random.Random(seed)
    templates = ["What does the {a} say about {b} and {c}?", "How is {b} related to the {a} {c}?",
                 "{c} {a} {b}", "Where can I find the {b} policy for {a}?", "Explain {a} in the context of {c}."]
    return [rng.choice(templates).format(a=words[rng.randint(2_000, 20_000)], b=words[rng.randint(100, 2_000)],
                                         c=words[rng.randint(0, 100)]) for _ in range(n)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--dimensions", type=int, default=1536)
    parser.add_argument("--small-stores", type=int, default=10)
    parser.add_argument("--small-store-chunks", type=int, default=10_000)
    parser.add_argument("--words", type=int, default=300)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--max-num-results", type=int, default=10)
    parser.add_argument("--maintenance-work-mem", default="8GB")
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()

    # The fake provider runs in its own process, as a real one would: it must not compete for this one's GIL.
    fake = subprocess.Popen([sys.executable, "-m", "tests.fake_llm", "--port", "0", "--embedding-dim",
                             str(args.dimensions)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    os.environ.update(OPENAI_API_BASE=fake.stdout.readline().strip(), OPENAI_API_KEY="sk-bench")
    setup_django(args.dimensions)
    if not (args.reuse and loaded_signature() == bench_signature(args)):
        load(args)

    from retrieval.models import VectorStore
    from tenancy.models import Project

    project = Project.objects.get(name=PROJECT)
    stores = list(VectorStore.objects.filter(project=project).order_by("pk"))
    print(f"\nload average {os.getloadavg()[0]:.1f}, {len(qs := queries(args.queries + 30))} queries per store")
    for store in stores[:2]:  # the big store, then a small one
        measure(project, store, qs, args)
    fake.terminate()


def measure(project, store, qs: list[str], args) -> None:
    from retrieval import embeddings, search

    timings: dict[str, list[float]] = {"embed": [], "vector": [], "text": []}

    def timed(name, func):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return func(*a, **k)
            finally:
                timings[name].append(time.perf_counter() - t)
        return wrapper

    originals = (embeddings.embed, search._nearest, search._text_lists)
    embeddings.embed, search._nearest, search._text_lists = (
        timed("embed", originals[0]), timed("vector", originals[1]), timed("text", originals[2]))
    try:
        for q in qs[:30]:  # warm-up: caches, LiteLLM, connections
            search.search(project=project, vector_store_ids=[store], query=q, max_num_results=args.max_num_results)
        for values in timings.values():
            values.clear()
        latencies, found = [], 0
        for q in qs[30:]:
            t = time.perf_counter()
            results = search.search(project=project, vector_store_ids=[store], query=q,
                                    max_num_results=args.max_num_results)
            latencies.append(time.perf_counter() - t)
            found += bool(results)
    finally:
        embeddings.embed, search._nearest, search._text_lists = originals

    def ms(values: list[float]) -> str:
        return (f"p50 {1000 * statistics.median(values):.1f} ms, p99 {1000 * percentile(values, 0.99):.1f} ms"
                if values else "-")

    in_scope = sum(store.files.values_list("chunk_count", flat=True))
    table = sum(type(store).objects.filter(project=project).values_list("files__chunk_count", flat=True))
    path = "HNSW" if in_scope > search.EXACT_SCAN_MAX_CHUNKS else "exact scan"
    print(f"\nstore of {in_scope:,} chunks ({path}) in a table of {table:,}; dims={args.dimensions} "
          f"words/chunk={args.words} max_num_results={args.max_num_results}")
    print(f"search() end to end: {ms(latencies)}  (queries with results: {found}/{len(latencies)})")
    print(f"  query embedding (LiteLLM -> fake; overlaps the full-text side): {ms(timings['embed'])}")
    print(f"  vector query: {ms(timings['vector'])}")
    print(f"  full-text queries: {ms(timings['text'])}")
    if path == "HNSW":
        print(f"  vector recall vs an exact scan: {recall(store, in_scope, args.dimensions)}")
        explain(store, args.dimensions)


def recall(store, in_scope: int, dims: int, samples: int = 20) -> str:
    """How many of the exact nearest chunks the vector side's index walk returns (the candidates fusion gets), for
    query vectors that have near neighbours as real ones do: stored chunks' vectors plus noise. (The fake's query
    embeddings are unrelated to the synthetic vectors; every distance from them is about the same.)"""
    from django.db import connection

    from retrieval import search

    k = 30  # search()'s candidate count at max_num_results=10
    scope = search._Scope([store.pk], chunks=in_scope, excluded=[], included=None)
    rng = random.Random(5)
    with connection.cursor() as cursor:
        cursor.execute("SELECT embedding::text FROM retrieval_chunkvector WHERE vector_store_id = %s "
                       "AND chunk_id %% 97 = 0 LIMIT %s", [store.pk, samples])
        bases = [[float(x) for x in row[0].strip("[]").split(",")] for row in cursor.fetchall()]
    shares = []
    for base in bases:
        scale = max(abs(x) for x in base) / 4
        vector = [x + rng.gauss(0, scale) for x in base]
        found = search._nearest(scope, vector, dims, k)
        with connection.cursor() as cursor:  # no cast: an expression the HNSW index does not cover
            cursor.execute("SELECT chunk_id FROM retrieval_chunkvector WHERE vector_store_id = %s "
                           "AND vector_dims(embedding) = %s ORDER BY embedding <=> %s::vector LIMIT %s",
                           [store.pk, dims, search._vector_literal(vector), k])
            exact = {row[0] for row in cursor.fetchall()}
        shares.append(len(exact.intersection(found)) / max(1, len(exact)))
    return f"recall@{k} mean {statistics.mean(shares):.3f}, min {min(shares):.3f} ({len(shares)} queries)"


def explain(store, dims: int) -> None:
    from django.db import connection, transaction

    from retrieval import search

    scope = search._Scope([store.pk], chunks=search.EXACT_SCAN_MAX_CHUNKS + 1, excluded=[], included=None)
    params = {**scope.sql()[1], "vector": "[" + ",".join(["0.01"] * dims) + "]", "limit": 30}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL hnsw.ef_search = 50")
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + search.nearest_sql(scope, dims, exact=False), params)
        lines = [row[0] if len(row[0]) < 150 else row[0][:147] + "..." for row in cursor.fetchall()]
        print("vector query plan:\n  " + "\n  ".join(lines))


if __name__ == "__main__":
    main()
