"""Benchmark: ingestion throughput (chunks/s) of a 100-file vector-store batch.

    python bench/retrieval_ingest.py [--files 100] [--words 6000]
        [--provider instant|fake_llm] [--mode worker|inline] [--concurrency 4] [--dimensions 1536]

Files are synthetic text (about ``--words`` words each, so ~20 chunks at the default 800/400 strategy).
``--provider instant`` answers embeddings from a pre-serialised pool (it costs next to nothing, so what is
measured is our code: parsing, chunking, the LiteLLM call, COPY); ``fake_llm`` is tests/fake_llm.py, whose
bag-of-words hashing in Python is the bottleneck. ``--mode worker`` starts a real Celery worker (threads pool)
and times from the batch's creation until no file is in progress (every file completed and searchable: the
throughput figure), then until the worker's indexer has moved every new vector into the HNSW index (see
retrieval/vector_index.py); ``inline`` ingests file by file in this process and prints where the time goes.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistants_project.settings")
os.environ.setdefault("ASSISTANTS_DATA_DIR", str(ROOT / "var" / "bench-retrieval"))  # its own: big, long runs
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

PROJECT = "bench-retrieval-ingest"


class InstantEmbeddings:
    """An OpenAI-compatible /v1/embeddings that answers from a pool of pre-serialised random vectors."""

    def __init__(self, pool: int = 256) -> None:
        # A new pool every run: vectors repeated from an earlier run would meet their own dead copies in the HNSW
        # graph, which pgvector stores as mere extra heap pointers, and make indexing look several times cheaper.
        rng = random.Random()
        self._pools: dict[int, list[str]] = {}
        self._rng, self._pool = rng, pool
        self._lock, self._served = threading.Lock(), 0
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
                vector = outer._vector_maker(int(body.get("dimensions") or 1536), body.get("encoding_format"))
                items = ",".join(f'{{"object":"embedding","index":{i},"embedding":{vector()}}}'
                                 for i in range(len(inputs)))
                data = (f'{{"object":"list","model":"{body.get("model")}","data":[{items}],'
                        f'"usage":{{"prompt_tokens":1,"total_tokens":1}}}}').encode()
                outer.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _vector_maker(self, dims: int, encoding: str | None):
        """Every vector distinct (as real embeddings are: HNSW stores an exact duplicate as a mere extra heap
        pointer, which would make indexing look far cheaper than it is), yet next to free: the first part of one
        pool vector joined to the rest of another, both pre-serialised (float arrays, or base64 float32 as the
        real API sends for base64). The split falls on a multiple of 3 floats, so base64 halves join cleanly."""
        key = (dims, encoding == "base64")
        if key not in self._pools:
            split = max(3, dims // 6 * 3)
            vectors = [[self._rng.uniform(-1, 1) for _ in range(dims)] for _ in range(self._pool)]
            if key[1]:
                parts = [(base64.b64encode(struct.pack(f"<{split}f", *v[:split])).decode(),
                          base64.b64encode(struct.pack(f"<{dims - split}f", *v[split:])).decode()) for v in vectors]
            else:
                parts = [(",".join(f"{x:.6f}" for x in v[:split]), ",".join(f"{x:.6f}" for x in v[split:]))
                         for v in vectors]
            self._pools[key] = parts
        parts, pool = self._pools[key], self._pool
        wrap = (lambda a, b: f'"{a}{b}"') if key[1] else (lambda a, b: f"[{a},{b}]")

        def vector() -> str:
            with self._lock:
                n = self._served
                self._served += 1
            return wrap(parts[n % pool][0], parts[(n // pool + n) % pool][1])
        return vector

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def stop(self) -> None:
        self.server.shutdown()


def synthetic_text(rng: random.Random, words: int) -> str:
    vocabulary = [f"term{i}" for i in range(5000)] + "the of and to in a is that for it as was with".split()
    sentences, count = [], 0
    while count < words:
        n = rng.randint(8, 20)
        sentences.append(" ".join(rng.choice(vocabulary) for _ in range(n)).capitalize() + ".")
        count += n
    return "\n".join(" ".join(sentences[i:i + 6]) for i in range(0, len(sentences), 6))


def setup(args):
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    settings.EMBEDDING_DIMENSIONS = args.dimensions
    from retrieval.indexes import ensure_hnsw_index

    ensure_hnsw_index(args.dimensions)


def vacuum_after_the_last_run() -> None:
    """The last run's deleted vectors stay in the HNSW graph until a vacuum, and new inserts walk past them: each
    run would index slower than the one before. Start every run from a vacuumed graph."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM retrieval_chunk, retrieval_chunkvector, retrieval_pendingchunkvector")
    print(f"(vacuumed the last run's deleted rows in {time.perf_counter() - started:.1f}s)")


def make_files(project, args) -> list:
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from files.models import File

    rng = random.Random(42)
    files = []
    for i in range(args.files):
        data = synthetic_text(rng, args.words).encode()
        name = default_storage.save(f"{project.public_id}/bench-{i}.txt", ContentFile(data))
        files.append(File.objects.create(project=project, filename=f"doc-{i}.txt", purpose="assistants",
                                         bytes=len(data), content_type="text/plain", storage_name=name))
    return files


def postgres_processes() -> list:
    """The embedded postmaster and its children (backends, WAL writer, checkpointer...)."""
    import psutil
    from django.conf import settings

    pid = int((Path(settings.DATA_DIR) / "postgres" / "postmaster.pid").read_text().split()[0])
    master = psutil.Process(pid)
    return [master, *master.children(recursive=True)]


def cpu_seconds(processes: list) -> float:
    """user+system CPU of these processes (and their threads) so far; vanished processes count as 0."""
    import psutil

    total = 0.0
    for proc in processes:  # children_*: exited children this process has reaped (Postgres backends)
        try:
            times = proc.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        except psutil.NoSuchProcess:
            pass
    return total


def run_worker(args, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "assistants_project", "worker", "--pool", "threads",
         "--concurrency", str(args.concurrency), "--loglevel", "WARNING", "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--words", type=int, default=6000)
    parser.add_argument("--provider", choices=["instant", "fake_llm"], default="instant")
    parser.add_argument("--mode", choices=["worker", "inline"], default="worker")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--dimensions", type=int, default=1536)
    args = parser.parse_args()

    if args.provider == "instant":
        provider = InstantEmbeddings()
    else:
        from tests.fake_llm import FakeLLM

        provider = FakeLLM()
        provider.start()
    os.environ.update(OPENAI_API_BASE=provider.base_url, OPENAI_API_KEY="sk-bench",
                      EMBEDDING_DIMENSIONS=str(args.dimensions), EMBEDDING_MODEL="text-embedding-3-small")
    setup(args)
    from django.db.models import Count, Q, Sum

    from retrieval import embeddings
    from retrieval.models import VectorStore, VectorStoreFile
    from retrieval.services import file_batch_create, vector_store_create
    from tenancy.services import project_get_or_create

    project = project_get_or_create(name=PROJECT)
    VectorStore.objects.filter(project=project).delete()
    vacuum_after_the_last_run()
    files = make_files(project, args)
    store = vector_store_create(project=project, name="bench")
    worker = None
    try:
        if args.mode == "worker":
            worker = run_worker(args, dict(os.environ))
            # Warm-up (worker boot, the LiteLLM import, the tokenizer): one small file, not part of the figures.
            warm = vector_store_create(project=project, name="warm-up", file_ids=[files[0].public_id])
            while VectorStoreFile.objects.filter(vector_store=warm, status="in_progress").exists():
                time.sleep(0.1)
        import psutil

        ours = [psutil.Process(worker.pid)] if worker else [psutil.Process()]
        pg_before, ours_before = cpu_seconds(postgres_processes()), cpu_seconds(ours)
        started = time.perf_counter()
        batch = file_batch_create(vector_store=store, file_ids=[f.public_id for f in files])
        if args.mode == "inline":
            phases = profile_inline(store)
        else:
            phases = None
            while VectorStoreFile.objects.filter(batch=batch, status="in_progress").exists():
                time.sleep(0.05)
        elapsed = time.perf_counter() - started
        pg_cpu = cpu_seconds(postgres_processes()) - pg_before  # backends may have come and gone: re-list
        our_cpu = cpu_seconds(ours) - ours_before
        indexed = wait_until_indexed(inline=args.mode == "inline")
        indexed_at = time.perf_counter() - started
        index_cpu = cpu_seconds(postgres_processes()) - pg_before - pg_cpu
        stats = VectorStoreFile.objects.filter(batch=batch).aggregate(
            chunks=Sum("chunk_count"), completed=Count("id", filter=Q(status="completed")),
            keyword_only=Count("id", filter=Q(keyword_only=True)))
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        provider.stop()
    chunks = stats["chunks"] or 0
    print(f"provider={args.provider} mode={args.mode} concurrency={args.concurrency} dims={args.dimensions}")
    print(f"files={args.files} completed={stats['completed']} keyword_only={stats['keyword_only']} "
          f"chunks={chunks} (batch size {embeddings.MAX_INPUTS_PER_REQUEST} inputs/request)")
    print(f"elapsed={elapsed:.2f}s  throughput={chunks / elapsed:,.0f} chunks/s  "
          f"({args.files / elapsed:.1f} files/s)")
    cores = os.cpu_count() or 1
    print(f"CPU: our process {our_cpu:.1f}s ({1000 * our_cpu / max(chunks, 1):.2f} ms/chunk), "
          f"Postgres {pg_cpu:.1f}s ({1000 * pg_cpu / max(chunks, 1):.2f} ms/chunk); "
          f"CPU-bound ceiling on {cores} cores: {chunks / max((our_cpu + pg_cpu) / cores, 1e-9):,.0f} chunks/s "
          f"(load average now {os.getloadavg()[0]:.1f})")
    print(f"HNSW: {'all' if indexed else 'NOT all'} vectors indexed {indexed_at:.2f}s after the batch was created "
          f"({indexed_at - elapsed:.2f}s after it completed; {chunks / indexed_at:,.0f} chunks/s including indexing); "
          f"Postgres CPU of the indexing {index_cpu:.1f}s ({1000 * index_cpu / max(chunks, 1):.2f} ms/chunk)")
    if phases:
        total = sum(phases.values())
        print("inline time by phase: " + ", ".join(f"{k} {v:.2f}s ({v / total:.0%})" for k, v in phases.items()))


def wait_until_indexed(*, inline: bool, timeout: float = 600) -> bool:
    """The worker's indexer task moves the new vectors into the HNSW table after the batch; inline, run it here."""
    from retrieval import vector_index

    if inline:
        vector_index.index_pending(defer=False)
    deadline = time.monotonic() + timeout
    while vector_index.pending_count() and time.monotonic() < deadline:
        time.sleep(0.1)
    return vector_index.pending_count() == 0


def profile_inline(store) -> dict:
    """Ingest every queued file in this process, timing parse+chunk, embed and store separately."""
    from files import storage
    from retrieval import embeddings, ingestion
    from retrieval.chunking import chunk_pages
    from retrieval.models import VectorStoreFile
    from retrieval.parsing import parse_document

    phases = {"read+parse+chunk": 0.0, "embed (LiteLLM + provider)": 0.0, "store (COPY + commit)": 0.0}
    config = embeddings.current_config()
    for vsf in VectorStoreFile.objects.select_related("file").filter(vector_store=store, status="in_progress"):
        t0 = time.perf_counter()
        pages = parse_document(storage.read_bytes(vsf.file.storage_name), vsf.file.filename, vsf.file.content_type)
        static = vsf.chunking_strategy["static"]
        chunks = chunk_pages(pages, max_tokens=static["max_chunk_size_tokens"], overlap=static["chunk_overlap_tokens"])
        t1 = time.perf_counter()
        vectors = embeddings.embed([c.text for c in chunks], config=config,
                                   token_counts=[c.token_count for c in chunks])
        t2 = time.perf_counter()
        ingestion._store(vsf, ingestion.Prepared(chunks=chunks, vectors=vectors, config=config), expect="in_progress")
        t3 = time.perf_counter()
        phases["read+parse+chunk"] += t1 - t0
        phases["embed (LiteLLM + provider)"] += t2 - t1
        phases["store (COPY + commit)"] += t3 - t2
    return phases


if __name__ == "__main__":
    main()
