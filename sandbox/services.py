"""code_interpreter sessions: one live sandbox per thread in this worker process, with a Container record each.

The run engine calls ``execute`` (and ``file_put`` / ``file_get``); everything else here is bookkeeping:
sessions are kept per thread until idle for CODE_INTERPRETER_IDLE_SECONDS (a reaper thread stops them), at most
CODE_INTERPRETER_MAX_SESSIONS live at once (the least recently used goes first), and all die with the process.
A thread whose session this process does not have (first call, idle expiry, a restarted or another worker) gets a
fresh one with the thread's files; ``Execution.state_lost`` then tells the caller that earlier state is gone.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from sandbox.backend import WORKDIR, Backend, Execution, Limits, OnOutput, Session, ShouldCancel
from sandbox.models import Container

log = logging.getLogger(__name__)

ThreadFiles = Callable[[], Iterable[tuple[str, bytes]]]
WATCH_EVERY_SECONDS = 1.0  # how often sessions between calls are checked for leftovers over the limits


def limits_from_settings() -> Limits:
    return Limits(
        cpu_seconds=settings.CODE_INTERPRETER_CPU_SECONDS,
        wall_seconds=settings.CODE_INTERPRETER_WALL_SECONDS,
        memory_bytes=settings.CODE_INTERPRETER_MEMORY_MB * 1024**2,
        disk_bytes=settings.CODE_INTERPRETER_DISK_MB * 1024**2,
        output_bytes=settings.CODE_INTERPRETER_MAX_OUTPUT_BYTES,
        processes=settings.CODE_INTERPRETER_MAX_PROCESSES,
    )


def backend_from_settings() -> Backend:
    return import_string(settings.CODE_INTERPRETER_BACKEND)()


def _memory_limit(limits: Limits) -> str:
    mb = limits.memory_bytes // 1024**2
    return f"{mb // 1024}g" if mb % 1024 == 0 else f"{mb}m"


@dataclass
class _Live:
    session: Session
    container_id: int
    last_used: float
    lock: threading.Lock = field(default_factory=threading.Lock)  # one call at a time per thread


class SessionManager:
    def __init__(self, backend: Backend, limits: Limits, *, idle_seconds: float, max_sessions: int,
                 spares: int = 0, reap: bool = True):
        """``spares``: sessions kept started and empty once this process has used one, so that a new thread's
        first call does not wait for a sandbox to start. ``reap``: stop idle sessions from a background thread
        (tests call ``sweep`` themselves)."""
        self.backend, self.limits, self.reap, self.spares = backend, limits, reap, spares
        self._spare: list[Session] = []
        self._want_spare = threading.Event()
        self._spare_thread: threading.Thread | None = None
        self.idle_seconds, self.max_sessions = idle_seconds, max_sessions
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._live: dict[str, _Live] = {}
        self._starting: dict[str, tuple[threading.Lock, list[int]]] = {}  # thread id -> its start lock, users
        self._lock = threading.Lock()
        self._reaper: threading.Thread | None = None
        self._closed = threading.Event()

    # --- what the run engine calls ------------------------------------------------------------------------------
    def execute(self, *, project, thread_id: str, code: str, files: ThreadFiles | None = None,
                on_output: OnOutput | None = None, should_cancel: ShouldCancel | None = None) -> Execution:
        """Run ``code`` in the thread's session (started, with ``files()`` in /mnt/data, when there is none)."""
        with self._locked_session(project, thread_id, files) as (live, state_lost):
            result = live.session.execute(code, on_output=on_output, should_cancel=should_cancel)
            if result.restarted:
                self._container_replace(live, project, thread_id, files)
            live.last_used = time.monotonic()
            self._container_touch(live)
        result.state_lost = state_lost
        return result

    def cancel(self, thread_id: str) -> None:
        """From any thread: stop the thread's call in flight (the call returns error="cancelled")."""
        live = self._live.get(thread_id)
        if live is not None:
            live.session.cancel()

    def file_put(self, *, project, thread_id: str, path: str, data: bytes, files: ThreadFiles | None = None) -> None:
        with self._locked_session(project, thread_id, files) as (live, _):
            live.session.upload(_relative(path), data)

    def file_get(self, *, thread_id: str, path: str, max_bytes: int | None = None) -> bytes:
        """A file of the thread's live session (``path`` relative to /mnt/data or absolute under it)."""
        live = self._live.get(thread_id)
        if live is None:
            raise FileNotFoundError(path)
        with live.lock:
            return live.session.download(_relative(path), max_bytes=max_bytes)

    def stop(self, thread_id: str) -> None:
        with self._lock:
            live = self._live.pop(thread_id, None)
        if live is not None:
            self._retire(live)

    def close(self) -> None:
        self._closed.set()
        self._want_spare.set()
        with self._lock:
            lives, self._live = list(self._live.values()), {}
            spares, self._spare = self._spare, []
        for live in lives:
            self._retire(live, record=False)
        for session in spares:
            session.stop()
        if self._spare_thread is not None:
            self._spare_thread.join(timeout=30)
        with self._lock:  # one the filler started while closing
            spares, self._spare = self._spare, []
        for session in spares:
            session.stop()

    def watch(self) -> int:
        """Stop sessions whose leftovers (background threads or processes) went over the CPU or memory limit
        between calls; returns how many."""
        with self._lock:
            idle = [(tid, live) for tid, live in self._live.items() if not live.lock.locked()]
        stopped = 0
        for tid, live in idle:
            if not live.lock.acquire(blocking=False):
                continue  # a call started meanwhile: it watches itself
            try:
                reason = live.session.check_idle()
            finally:
                live.lock.release()
            if reason:
                log.warning("sandbox of %s stopped between calls: %s over the limit", tid, reason)
                with self._lock:
                    if self._live.get(tid) is live:
                        del self._live[tid]
                self._retire(live)
                stopped += 1
        return stopped

    def sweep(self) -> int:
        """Stop sessions idle longer than the idle timeout; returns how many."""
        cutoff = time.monotonic() - self.idle_seconds
        with self._lock:
            idle = [(tid, live) for tid, live in self._live.items()
                    if live.last_used < cutoff and not live.lock.locked()]
            for tid, _ in idle:
                del self._live[tid]
        for _, live in idle:
            self._retire(live)
        return len(idle)

    # --- internals ----------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked_session(self, project, thread_id: str, files: ThreadFiles | None):
        """The thread's session (``_session``: it and whether state was lost), its lock held for the block."""
        while True:
            live, state_lost = self._session(project, thread_id, files)
            with live.lock:
                with self._lock:
                    held = self._live.get(thread_id) is live
                if held:  # else stopped (idle, room, leftovers) between being found and being locked: find again
                    yield live, state_lost
                    return

    def _session(self, project, thread_id: str, files: ThreadFiles | None) -> tuple[_Live, bool]:
        """The thread's live session, else a new one (a spare or a fresh start) with one new Container record.
        Starts for one thread are serialized: a second first call waits for the first's session and shares it,
        where both used to start one (and record two containers, the loser's expired)."""
        with self._start_lock(thread_id):
            with self._lock:
                live = self._live.get(thread_id)
                # a call in flight holds the lock and may be restarting its session (not alive meanwhile): still ours
                if live is not None and (live.session.alive() or live.lock.locked()):
                    live.last_used = time.monotonic()
                    return live, False
            # Start outside the manager lock (about a second): other threads' calls go on meanwhile.
            self._make_room()
            had_one = Container.objects.filter(project=project, thread_id=thread_id).exists()
            session = self._start(files)
            try:
                container = self._container_create(project, thread_id)
            except BaseException:
                session.stop()
                raise
            fresh = _Live(session, container.pk, time.monotonic())
            with self._lock:
                dead = self._live.get(thread_id)
                self._live[thread_id] = fresh
            if dead is not None:
                self._retire(dead, record=False)  # its record was expired by _container_create
        self._ensure_reaper()
        return fresh, had_one

    @contextlib.contextmanager
    def _start_lock(self, thread_id: str):
        with self._lock:
            lock, users = self._starting.setdefault(thread_id, (threading.Lock(), [0]))
            users[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._lock:
                users[0] -= 1
                if not users[0]:
                    del self._starting[thread_id]

    def _start(self, files: ThreadFiles | None) -> Session:
        session = self._spare_take()
        self._spare_fill()
        if session is None:
            session = self.backend.start(self.limits)
        try:
            for name, data in (files() if files else ()):
                session.upload(_relative(name), data)
        except BaseException:
            session.stop()
            raise
        return session

    def _spare_take(self) -> Session | None:
        while True:
            with self._lock:
                if not self._spare:
                    return None
                session = self._spare.pop()
            if session.alive():
                return session
            session.stop()

    def _spare_fill(self) -> None:
        if self.spares <= 0 or self._closed.is_set():
            return
        with self._lock:
            if self._spare_thread is None:
                self._spare_thread = threading.Thread(target=self._spare_loop, name="sandbox-spares", daemon=True)
                self._spare_thread.start()
        self._want_spare.set()

    def _spare_loop(self) -> None:
        while not self._closed.is_set():
            self._want_spare.wait()
            self._want_spare.clear()
            while not self._closed.is_set():
                with self._lock:
                    if len(self._spare) >= self.spares:
                        break
                try:
                    session = self.backend.start(self.limits)
                except Exception:
                    log.exception("could not start a spare sandbox session")
                    break
                with self._lock:
                    closed = self._closed.is_set()
                    if not closed:
                        self._spare.append(session)
                if closed:
                    session.stop()

    def _make_room(self) -> None:
        with self._lock:
            if len(self._live) < self.max_sessions:
                return
            tid, live = min(((t, lv) for t, lv in self._live.items() if not lv.lock.locked()),
                            key=lambda item: item[1].last_used, default=(None, None))
            if tid is None or live is None:
                return
            del self._live[tid]
        self._retire(live)

    def _retire(self, live: _Live, *, record: bool = True) -> None:
        live.session.stop()
        if record:
            Container.objects.filter(pk=live.container_id).update(status=Container.Status.EXPIRED)

    def _container_create(self, project, thread_id: str) -> Container:
        """The thread's one running record: any other running one (an earlier session here or on another worker)
        is expired in the same transaction. A unique constraint holds it across workers: of two racing inserts the
        second fails and tries again, expiring the first's."""
        for attempt in range(5):
            try:
                with transaction.atomic():
                    Container.objects.filter(project=project, thread_id=thread_id,
                                             status=Container.Status.RUNNING).update(status=Container.Status.EXPIRED)
                    return Container.objects.create(
                        project=project, thread_id=thread_id, last_active_at=timezone.now(),
                        expires_after_minutes=max(1, round(self.idle_seconds / 60)),
                        memory_limit=_memory_limit(self.limits), worker=self.worker)
            except IntegrityError:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def _container_replace(self, live: _Live, project, thread_id: str, files: ThreadFiles | None) -> None:
        """After a kill the session restarted empty: it is a new container, with the thread's files again."""
        Container.objects.filter(pk=live.container_id).update(status=Container.Status.EXPIRED)
        live.container_id = self._container_create(project, thread_id).pk
        for name, data in (files() if files else ()):
            live.session.upload(_relative(name), data)

    def _container_touch(self, live: _Live) -> None:
        listing = [{"path": f"{WORKDIR}/{f.path}", "bytes": f.bytes} for f in live.session.files()]
        Container.objects.filter(pk=live.container_id).update(last_active_at=timezone.now(), files=listing)

    def _ensure_reaper(self) -> None:
        with self._lock:
            if self._reaper is not None or not self.reap:
                return
            self._reaper = threading.Thread(target=self._reap, name="sandbox-reaper", daemon=True)
            self._reaper.start()

    def _reap(self) -> None:
        sweep_every = min(60.0, max(1.0, self.idle_seconds / 4))
        next_sweep = time.monotonic() + sweep_every
        while not self._closed.wait(WATCH_EVERY_SECONDS):
            try:
                self.watch()
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + sweep_every
                    self.sweep()
            except Exception:
                log.exception("sandbox sweep failed")
            finally:
                connection.close()  # this thread's connection, back to the pool


def _relative(path: str) -> str:
    return path[len(WORKDIR) + 1:] if path.startswith(WORKDIR + "/") else path


def containers_expire() -> int:
    """Beat: records of sessions no worker can still hold (idle past their expiry) are expired."""
    cutoff = timezone.now() - timedelta(seconds=settings.CODE_INTERPRETER_IDLE_SECONDS + 60)
    return Container.objects.filter(status=Container.Status.RUNNING, last_active_at__lt=cutoff).update(
        status=Container.Status.EXPIRED)


_manager: SessionManager | None = None
_manager_pid: int | None = None
_manager_lock = threading.Lock()


def manager() -> SessionManager:
    """This process's session manager, made from the settings on first use (a forked child makes its own: the
    parent's sandboxes are the parent's)."""
    global _manager, _manager_pid
    with _manager_lock:
        if _manager is None or _manager_pid != os.getpid():
            _manager_pid = os.getpid()
            _manager = SessionManager(backend_from_settings(), limits_from_settings(),
                                      idle_seconds=settings.CODE_INTERPRETER_IDLE_SECONDS,
                                      max_sessions=settings.CODE_INTERPRETER_MAX_SESSIONS,
                                      spares=settings.CODE_INTERPRETER_SPARE_SESSIONS)
            atexit.register(_manager.close)
        return _manager


def execute(*, project, thread_id: str, code: str, files: ThreadFiles | None = None, on_output: OnOutput | None = None,
            should_cancel: ShouldCancel | None = None) -> Execution:
    return manager().execute(project=project, thread_id=thread_id, code=code, files=files, on_output=on_output,
                             should_cancel=should_cancel)


def cancel(*, thread_id: str) -> None:
    manager().cancel(thread_id)


def file_put(*, project, thread_id: str, path: str, data: bytes, files: ThreadFiles | None = None) -> None:
    manager().file_put(project=project, thread_id=thread_id, path=path, data=data, files=files)


def file_get(*, thread_id: str, path: str, max_bytes: int | None = None) -> bytes:
    return manager().file_get(thread_id=thread_id, path=path, max_bytes=max_bytes)
