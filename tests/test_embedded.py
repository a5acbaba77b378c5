"""The embedded stack: attach instead of starting twice, survive stale pid/socket files, and a clear
one-sentence failure when DATABASE_URL's server lacks pgvector."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import redis

from assistants_project import embedded

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def data_dir(tmp_path_factory):
    # Short path: AF_UNIX socket paths are limited in length.
    path = Path(f"/tmp/asst-emb-{os.getpid()}-{time.monotonic_ns() % 10**6}")
    path.mkdir()
    yield path
    embedded.stop_redis(path)
    embedded.stop_postgres(path)
    subprocess.run(["rm", "-rf", str(path)], check=False)


def test_redis_starts_once_then_attaches(data_dir):
    embedded.STARTED.discard("redis")
    url = embedded.ensure_redis(data_dir)
    assert "redis" in embedded.STARTED
    pid = redis.Redis.from_url(url).info()["process_id"]
    embedded.STARTED.discard("redis")
    assert embedded.ensure_redis(data_dir) == url
    assert "redis" not in embedded.STARTED  # attached, not started
    assert redis.Redis.from_url(url).info()["process_id"] == pid


def test_redis_survives_stale_pid_and_socket(data_dir):
    rdir = data_dir / "redis"
    rdir.mkdir()
    (rdir / "redis.pid").write_text("999999\n")
    stale = socket.socket(socket.AF_UNIX)  # a socket file nobody listens on, as a crash leaves it
    stale.bind(str(embedded.redis_socket(data_dir)))
    stale.close()
    url = embedded.ensure_redis(data_dir)
    client = redis.Redis.from_url(url)
    assert client.ping()
    assert client.set("k", "v") and client.get("k") == b"v"


def test_postgres_survives_a_crash(data_dir):
    params = embedded.ensure_postgres(data_dir)
    with psycopg.connect(dbname=params["NAME"], user="postgres", host=params["HOST"]) as conn:
        conn.execute("CREATE TABLE kept (v int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    pid = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)  # the postmaster dies; postmaster.pid stays behind
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            time.sleep(0.1)
        except ProcessLookupError:
            break
    assert (data_dir / "postgres" / "postmaster.pid").exists()
    params = embedded.ensure_postgres(data_dir)
    with psycopg.connect(dbname=params["NAME"], user="postgres", host=params["HOST"]) as conn:
        assert conn.execute("SELECT v FROM kept").fetchone() == (42,)
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        assert conn.execute("SELECT '[1,2]'::vector <=> '[2,4]'::vector").fetchone()[0] == pytest.approx(0)


def _serve_without_pgvector(database_url: str, data_dir: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL",)}
    env.update(DATABASE_URL=database_url, DJANGO_SECRET_KEY="test-secret", ASSISTANTS_DATA_DIR=str(data_dir),
               CREDENTIALS_ENCRYPTION_KEY="kBzbZ0ly0iEYuJS4J2nxUCH_vwCk2sDRfkTcFc8mkcE=",
               DJANGO_SETTINGS_MODULE="assistants_project.settings")
    return subprocess.run([sys.executable, "manage.py", "serve", "--port", "0"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_startup_fails_with_one_sentence_when_vector_cannot_be_created(data_dir):
    # A role that may not create extensions: CREATE EXTENSION vector fails exactly as on a server without it.
    params = embedded.ensure_postgres(data_dir)
    with psycopg.connect(dbname="postgres", user="postgres", host=params["HOST"], autocommit=True) as conn:
        conn.execute("CREATE ROLE plain LOGIN")
        conn.execute("CREATE DATABASE plaindb OWNER plain")
    result = _serve_without_pgvector(f"postgres://plain@/plaindb?host={params['HOST']}", data_dir)
    assert result.returncode != 0
    assert "cannot create the 'vector' extension" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def _system_postgres_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not _system_postgres_reachable(), reason="no PostgreSQL on 127.0.0.1:5432 to try")
def test_startup_fails_clearly_on_a_postgres_without_pgvector(data_dir):
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    if available:
        pytest.skip("this PostgreSQL has pgvector")
    result = _serve_without_pgvector("postgres://postgres@127.0.0.1:5432/postgres", data_dir)
    assert result.returncode != 0
    assert "cannot create the 'vector' extension" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
