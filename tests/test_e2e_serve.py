"""`manage.py serve` (what `make run` runs): prints a first key once, stops every child on SIGTERM, and a
second start (with two worker processes) reuses the same data."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.live import ROOT, free_port, wait_ready

pytestmark = pytest.mark.e2e


def start(data_dir: Path, port: int, log: Path, **extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "ASSISTANTS_API_KEY", "MODEL_ALIASES_FILE")}
    env.update(ASSISTANTS_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="assistants_project.settings",
               PYTHONUNBUFFERED="1", **extra)
    return subprocess.Popen([sys.executable, "manage.py", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> list[int]:
    children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    return children


def wait_for_worker_ready(data_dir: Path, nodes: int = 2) -> None:
    """Until ``nodes`` workers answer Celery's ping (they have logged their start by then)."""
    env = {**os.environ, "ASSISTANTS_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "assistants_project.settings"}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = subprocess.run([sys.executable, "-m", "celery", "-A", "assistants_project", "inspect", "ping",
                              "--timeout", "2"], cwd=ROOT, env=env, capture_output=True, text=True).stdout
        if f"{nodes} nodes online" in out:
            return
    raise AssertionError(f"fewer than {nodes} workers answered: {out}")


def test_first_key_printed_once_clean_stop_and_restart_keeps_data(tmp_path_factory):
    data_dir = Path(f"/tmp/asst-serve-{os.getpid()}")
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}/v1"
    proc = start(data_dir, port, log)
    try:
        wait_ready(base, proc, log)
        keys = re.findall(r"Your API key \(shown once, keep it\): (sk-\S+)", log.read_text())
        assert len(keys) == 1
        headers = {"Authorization": f"Bearer {keys[0]}"}
        created = httpx.post(f"{base}/assistants", json={"model": "gpt-4o-mini", "name": "kept"},
                             headers=headers).json()
        children = stop(proc)
        assert len(children) >= 3  # web, worker, beat
        time.sleep(0.5)
        assert not [pid for pid in children if psutil.pid_exists(pid)
                    and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]

        logged = len(log.read_bytes())
        # a second worker process beside the first; LOG_LEVEL holds for every process (Celery's too)
        proc = start(data_dir, port, log, WORKER_PROCESSES="2", LOG_LEVEL="WARNING")
        wait_ready(base, proc, log)
        assert len(re.findall(r"Your API key", log.read_text())) == 1  # not printed again
        fetched = httpx.get(f"{base}/assistants/{created['id']}", headers=headers)
        assert fetched.status_code == 200 and fetched.json()["name"] == "kept"
        workers = [" ".join(c.cmdline()) for c in psutil.Process(proc.pid).children()
                   if "celery" in " ".join(c.cmdline()) and " worker " in " ".join(c.cmdline())]
        assert len(workers) == 2 and sum("--hostname worker2@%h" in cmd for cmd in workers) == 1  # own node names
        wait_for_worker_ready(data_dir)
        children = stop(proc)
        second = log.read_bytes()[logged:].decode()
        assert not [line for line in second.splitlines() if " INFO " in line]
        time.sleep(0.5)
        assert not [pid for pid in children if psutil.pid_exists(pid)
                    and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
        # serve started the embedded Postgres and Redis, so it stopped them too.
        assert not (data_dir / "postgres" / "postmaster.pid").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
        from assistants_project import embedded

        embedded.stop_redis(data_dir)
        embedded.stop_postgres(data_dir)
        subprocess.run(["rm", "-rf", str(data_dir)], check=False)
