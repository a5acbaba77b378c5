"""Run everything: web (uvicorn, ASGI), a Celery worker and Celery beat, until Ctrl-C / SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from assistants_project import embedded
from assistants_project.bootstrap import BootstrapError, prepare


def process_commands(*, host: str, port: int, web_workers: int, worker_processes: int = 1) -> dict[str, list[str]]:
    """The three kinds of process, as run here side by side or one per container (deploy/entrypoint.sh);
    ``worker_processes`` > 1 adds workers beside the first (``worker2``, …), each its own node on the broker."""
    python = sys.executable
    web = [python, "-m", "uvicorn", "assistants_project.asgi:application", "--host", host, "--port", str(port),
           "--lifespan", "off", "--timeout-graceful-shutdown", "5"]
    if web_workers > 1:
        web += ["--workers", str(web_workers)]
    # Celery sets the root logger to its --loglevel: LOG_LEVEL, or its processes would log at INFO whatever it says
    worker = [python, "-m", "celery", "-A", "assistants_project", "worker",
              "--pool", os.environ.get("WORKER_POOL", "threads"),
              "--concurrency", os.environ.get("WORKER_CONCURRENCY", "16"),
              "--loglevel", settings.LOG_LEVEL, "--without-mingle", "--without-gossip"]
    commands = {
        "web": web,
        # the node name is unique per worker on one broker (containers differ by hostname; processes on one host do not)
        "worker": [*worker, *(["--hostname", os.environ["WORKER_NAME"]] if os.environ.get("WORKER_NAME") else [])],
        "beat": [python, "-m", "celery", "-A", "assistants_project", "beat", "--loglevel", settings.LOG_LEVEL,
                 "-s", settings.CELERY_BEAT_SCHEDULE_FILENAME],
    }
    for n in range(2, worker_processes + 1):
        commands[f"worker{n}"] = [*worker, "--hostname", f"worker{n}@%h"]
    return commands


class Command(BaseCommand):
    help = "Serve the API on HOST:PORT with a Celery worker and beat beside it."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "1")),
                            help="uvicorn worker processes (default: WEB_CONCURRENCY or 1)")
        parser.add_argument("--worker-processes", type=int, default=int(os.environ.get("WORKER_PROCESSES", "1")),
                            help="Celery worker processes (default: WORKER_PROCESSES or 1)")
        parser.add_argument("--no-worker", action="store_true", help="web only")
        parser.add_argument("--no-beat", action="store_true", help="no periodic tasks")
        parser.add_argument("--no-prepare", action="store_true",
                            help="skip the database check and migrations (`manage.py prepare` ran them)")
        parser.add_argument("--exec", dest="exec_role", choices=["web", "worker", "beat"],
                            help="become this one process (no migrations, no supervisor): one role per container")

    def handle(self, *args, host: str, port: int, web_workers: int, worker_processes: int, no_worker: bool,
               no_beat: bool, no_prepare: bool, exec_role: str | None, **options):
        if worker_processes < 1:
            raise CommandError("WORKER_PROCESSES (--worker-processes) must be at least 1.")
        commands = process_commands(host=host, port=port, web_workers=web_workers, worker_processes=worker_processes)
        metrics_dir(clean_all=not exec_role)
        if exec_role:
            self.stdout.flush()
            os.execv(commands[exec_role][0], commands[exec_role])
        if not no_prepare:
            try:
                prepare(self.stdout)
            except BootstrapError as exc:
                raise CommandError(str(exc)) from None
        if no_worker:
            commands = {name: cmd for name, cmd in commands.items() if not name.startswith("worker")}
        if no_beat:
            del commands["beat"]
        children = {name: subprocess.Popen(cmd) for name, cmd in commands.items()}
        self.stdout.write(f"Serving http://{host}:{port}/v1 ({', '.join(children)}); Ctrl-C stops.")
        self.stdout.flush()
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        restarts: list[float] = []
        code = 0
        try:
            while not stopping:
                for name, child in list(children.items()):
                    if child.poll() is None:
                        continue
                    # A crashed child is restarted (runs it held are recovered by the sweeper); one that keeps
                    # crashing stops everything.
                    now = time.monotonic()
                    restarts = [t for t in restarts if now - t < 60] + [now]
                    if len(restarts) > 5:
                        self.stderr.write(f"{name} keeps exiting (code {child.returncode}); stopping.")
                        stopping, code = True, 1
                        break
                    self.stderr.write(f"{name} exited with code {child.returncode}; restarting it.")
                    children[name] = subprocess.Popen(commands[name])
                time.sleep(0.2)
        finally:
            _terminate(children.values())
            from django.db import connections

            connections.close_all()
            if "redis" in embedded.STARTED:
                embedded.stop_redis(settings.DATA_DIR)
            if "postgres" in embedded.STARTED:
                embedded.stop_postgres(settings.DATA_DIR)
        if code:
            raise CommandError("a child process failed")


def metrics_dir(*, clean_all: bool) -> Path:
    """The directory where every process this starts keeps its Prometheus values (PROMETHEUS_MULTIPROC_DIR,
    inherited by the children), emptied at start: all of it when this command supervises every process; when it
    becomes one process (containers may share the directory through a volume), the files of this host's processes
    that are gone."""
    path = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(settings.DATA_DIR / "metrics")))
    path.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().replace("_", "-") + "-"
    for file in path.glob("*.db"):
        owner = file.stem.rsplit("_", 1)[-1]
        if clean_all or (owner.startswith(host) and not _alive(owner[len(host):])):
            file.unlink(missing_ok=True)
    return path


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        pass
    return True


def _terminate(children, timeout: float = 15.0) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
