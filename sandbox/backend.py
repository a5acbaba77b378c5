"""The interface every sandbox backend implements, and the values that cross it.

A backend starts isolated, stateful Python sessions; bubblewrap (sandbox/bwrap.py) is the default. An operator can
plug in another (gVisor, Docker, a Kubernetes job) by implementing these two classes and naming the backend class in
CODE_INTERPRETER_BACKEND.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field

WORKDIR = "/mnt/data"  # where the session's files are, inside the sandbox (OpenAI's models expect this path)


@dataclass(frozen=True)
class Limits:
    cpu_seconds: float = 30.0  # CPU time of one call (all its processes)
    wall_seconds: float = 30.0  # wall time of one call
    memory_bytes: int = 1024**3  # address space of each process and resident memory of the session
    disk_bytes: int = 512 * 1024**2  # the working directory's size
    output_bytes: int = 64 * 1024  # logs kept per call; the rest is dropped with a note
    processes: int = 64  # processes and threads in the session
    open_files: int = 256  # per process


@dataclass(frozen=True)
class Output:
    """One output of a call, as OpenAI's code_interpreter outputs: ``logs`` text or an ``image`` (PNG bytes)."""

    type: str  # "logs" | "image"
    logs: str = ""
    png: bytes = b""


@dataclass(frozen=True)
class FileInfo:
    path: str  # relative to WORKDIR
    bytes: int
    mtime: float


@dataclass
class Execution:
    logs: str = ""  # stdout, stderr and the traceback, in order, cut at Limits.output_bytes
    images: list[bytes] = field(default_factory=list)  # PNG bytes of the figures and images displayed
    error: str | None = None  # None, or: exception, timeout, cpu_time, memory, cancelled, died
    restarted: bool = False  # the session was killed and started again: its variables and files are gone
    files: list[FileInfo] = field(default_factory=list)  # files in WORKDIR created or changed by this call
    state_lost: bool = False  # (manager) a fresh session replaced one the thread had: earlier state is gone


OnOutput = Callable[[Output], None]
ShouldCancel = Callable[[], bool]


class Session(abc.ABC):
    """One live Python interpreter with a private working directory. Not thread-safe, except ``cancel``."""

    @abc.abstractmethod
    def execute(self, code: str, *, on_output: OnOutput | None = None,
                should_cancel: ShouldCancel | None = None) -> Execution:
        """Run ``code``; stream outputs to ``on_output`` as they come; a call over a limit is killed and the session
        restarted (``restarted``), a cancelled one interrupted (or restarted if it does not stop)."""

    @abc.abstractmethod
    def cancel(self) -> None:
        """From any thread: stop the call in flight, as ``should_cancel`` returning true would."""

    @abc.abstractmethod
    def upload(self, path: str, data: bytes) -> None:
        """Write a file into the working directory (``path`` relative to it)."""

    @abc.abstractmethod
    def download(self, path: str, *, max_bytes: int | None = None) -> bytes:
        """Read a regular file of the working directory; FileNotFoundError if it is not one."""

    @abc.abstractmethod
    def files(self) -> list[FileInfo]:
        """Regular files of the working directory, recursively."""

    @abc.abstractmethod
    def alive(self) -> bool: ...

    def check_idle(self) -> str | None:
        """Between calls: if what the code left running (threads, processes) went over the CPU or memory limit,
        stop the session and say why (``cpu_time`` / ``memory``). A backend whose limits hold anyway may keep this."""
        return None

    @abc.abstractmethod
    def stop(self) -> None:
        """Kill every process of the session and free its working directory. Idempotent."""


class Backend(abc.ABC):
    @abc.abstractmethod
    def start(self, limits: Limits) -> Session:
        """A fresh session, ready to execute; raises SandboxUnavailable if none can start."""


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot start here (missing OS package, broken environment): a clear one-sentence message."""
