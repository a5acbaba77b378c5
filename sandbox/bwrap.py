"""The default sandbox: an IPython kernel inside bubblewrap (``bwrap``, Debian package ``bubblewrap``).

Each session is one ``bwrap`` process tree with its own user, PID, mount, network, IPC, UTS and cgroup namespaces,
uid 65534 inside, no capabilities, a read-only root that holds only /usr, the sandbox's Python and its venv, a fresh
/proc and a minimal /dev, and three size-limited tmpfs: /mnt/data (the working directory, the disk quota), /tmp and
/run/kernel (the kernel's IPC sockets). Nothing of the service (code, settings, environment, data dir) is mounted.
The kernel speaks the Jupyter protocol over those IPC sockets, which the worker reaches as
/proc/<sandbox pid>/root/run/kernel/…; files move the same way, never following a link the sandbox made.

Limits: a launcher inside sets rlimits before the kernel starts (address space, processes, open files, file size;
they cannot be raised from inside); the worker watches each call's wall time, the tree's CPU time and resident
memory every 0.1 s and kills the whole sandbox when one is over (the next session starts fresh).
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import logging
import os
import queue
import re
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

from jupyter_client.blocking.client import BlockingKernelClient

from sandbox.backend import WORKDIR, Backend, Execution, FileInfo, Limits, OnOutput, Output, SandboxUnavailable
from sandbox.backend import Session as SessionBase

if TYPE_CHECKING:
    from jupyter_client.connect import KernelConnectionInfo

log = logging.getLogger(__name__)

NOBODY = 65534
KERNEL_DIR = "/run/kernel"
VENV_DIR = "/opt/venv"
START_TIMEOUT_SECONDS = 30
CHECK_EVERY_SECONDS = 0.1
INTERRUPT_GRACE_SECONDS = 2.0
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# Runs inside the sandbox with its Python: rlimits first (they hold for every process the kernel starts and cannot be
# raised again), then the connection file, then the kernel in place of this process.
_LAUNCHER = """
import json, os, resource, sys
cfg = json.load(sys.stdin)
os.dup2(os.open("/dev/null", os.O_RDONLY), 0)
for name, value in cfg["rlimits"].items():
    resource.setrlimit(getattr(resource, name), (value, value))
with open(cfg["connection_file"], "w") as f:
    json.dump(cfg["connection"], f)
os.makedirs("/tmp/.ipython/profile_default/startup")
with open("/tmp/.ipython/profile_default/startup/00-sandbox.py", "w") as f:
    f.write(cfg["startup"])
os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", "-f", cfg["connection_file"], *cfg["args"]])
"""

# IPython startup code: drops a call's stdout/stderr past the output cap inside the kernel, so that printing 100 MB
# does not ship 100 MB to the worker (which cuts at the cap anyway: this is only to save the trip).
_STARTUP = """
def _sandbox_output_cap(limit):
    import sys
    left = [limit]
    get_ipython().events.register("pre_execute", lambda: left.__setitem__(0, limit))
    for stream in (sys.stdout, sys.stderr):
        def write(text, _write=stream.write):
            room = left[0]
            left[0] -= len(text)
            if room > 0:
                _write(text[:room])
            return len(text)
        stream.write = write
_sandbox_output_cap(%d)
del _sandbox_output_cap
"""

# bwrap's --die-with-parent is PR_SET_PDEATHSIG, which fires when the *thread* that started it ends: every sandbox is
# started from one long-lived thread per process, so it dies with the worker process and not with a passing worker
# thread. (Per process: a forked child would inherit the executor without its thread.)
_spawner: tuple[int, ThreadPoolExecutor] | None = None
_spawner_lock = threading.Lock()


def _spawn(argv: list[str], **kwargs) -> subprocess.Popen:
    global _spawner
    with _spawner_lock:
        if _spawner is None or _spawner[0] != os.getpid():
            _spawner = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-spawn"))
        executor = _spawner[1]
    return executor.submit(lambda: subprocess.Popen(argv, **kwargs)).result()


_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def _as_sandbox_user():
    """A root worker writes into the sandbox's tmpfs as uid/gid 65534 (root is not mapped in the sandbox's user
    namespace: files it creates there would fail with EOVERFLOW). fsuid/fsgid are per thread: only this one changes."""
    if os.geteuid() != 0:
        yield
        return
    _libc.setfsgid(NOBODY)
    _libc.setfsuid(NOBODY)
    try:
        yield
    finally:
        _libc.setfsuid(0)
        _libc.setfsgid(0)


def _world_readable(path: Path) -> bool:
    """Every directory from / down to ``path`` may be entered by anyone (what an unprivileged bwrap needs)."""
    path = path.resolve()
    return all(os.stat(p).st_mode & stat.S_IXOTH for p in (path, *path.parents))


def _sandbox_env() -> dict[str, str]:
    return {
        "PATH": f"{VENV_DIR}/bin:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "USER": "sandbox",
        "IPYTHONDIR": "/tmp/.ipython",
        "MPLCONFIGDIR": "/tmp/.matplotlib",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "PYTHONDONTWRITEBYTECODE": "1",
        # one BLAS/OpenMP thread: threads count against the process limit and address space
        "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "MALLOC_ARENA_MAX": "2",
    }


def _unprivileged() -> dict:
    """A root worker starts bwrap as uid 65534: the sandbox's own uid 65534 is then 65534 on the host too. (Started
    as root, bwrap maps it to host root, and a process without capabilities but owning root's files may still write
    /proc/sys or /proc/sysrq-trigger.) A non-root worker's sandboxes run as the worker's uid."""
    return {"user": NOBODY, "group": NOBODY, "extra_groups": []} if os.geteuid() == 0 else {}


class BwrapBackend(Backend):
    def __init__(self, python: str | os.PathLike | None = None):
        """``python``: the sandbox venv's interpreter (default CODE_INTERPRETER_PYTHON: ``.sandbox-venv/bin/python``,
        built by ``make install``)."""
        if python is None:
            from django.conf import settings

            python = settings.CODE_INTERPRETER_PYTHON
        self.venv = Path(python).absolute().parent.parent
        self.bwrap = shutil.which("bwrap")

    def check(self) -> None:
        if not self.bwrap:
            raise SandboxUnavailable("code_interpreter needs bubblewrap: install the OS package `bubblewrap` "
                                     "(apt-get install bubblewrap) so that `bwrap` is on PATH.")
        cfg = self.venv / "pyvenv.cfg"
        if not cfg.is_file():
            raise SandboxUnavailable(f"code_interpreter needs the sandbox venv at {self.venv}: run `make install`.")
        if os.geteuid() == 0:
            for path in (self.base_prefix(), self.venv):
                if not _world_readable(path):
                    raise SandboxUnavailable(
                        f"the sandbox runs as uid {NOBODY} and cannot read {path}: build the sandbox venv from an "
                        f"interpreter every user can read (`make install` uses /usr/bin/python3 when there is one).")

    def base_prefix(self) -> Path:
        """The interpreter the venv was made from (its ``home``), mounted read-only at the same path."""
        for line in (self.venv / "pyvenv.cfg").read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home":
                return Path(value.strip()).resolve().parent
        raise SandboxUnavailable(f"{self.venv}/pyvenv.cfg names no home interpreter: rebuild it with `make install`.")

    def argv(self, limits: Limits, info_fd: int) -> list[str]:
        assert self.bwrap is not None, "check() first"
        args = [self.bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
                "--info-fd", str(info_fd),
                "--uid", str(NOBODY), "--gid", str(NOBODY), "--hostname", "sandbox", "--cap-drop", "ALL",
                "--ro-bind", "/usr", "/usr"]
        for name in ("bin", "sbin", "lib", "lib32", "lib64"):
            path = Path("/") / name
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                args += ["--ro-bind", str(path), str(path)]
        base = self.base_prefix()
        if not str(base).startswith("/usr/"):
            args += ["--ro-bind", str(base), str(base)]
        args += ["--ro-bind", str(self.venv), VENV_DIR,
                 "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache", "--ro-bind-try", "/etc/fonts", "/etc/fonts",
                 "--proc", "/proc", "--dev", "/dev",
                 "--perms", "1777", "--size", str(64 * 1024**2), "--tmpfs", "/tmp",
                 "--perms", "0700", "--size", str(1024**2), "--tmpfs", KERNEL_DIR,
                 "--dir", "/mnt",
                 "--perms", "0777", "--size", str(limits.disk_bytes), "--tmpfs", WORKDIR,
                 "--remount-ro", "/",
                 "--chdir", WORKDIR, f"{VENV_DIR}/bin/python", "-I", "-c", _LAUNCHER]
        return args

    def start(self, limits: Limits) -> BwrapSession:
        self.check()
        return BwrapSession(self, limits)


class BwrapSession(SessionBase):
    def __init__(self, backend: BwrapBackend, limits: Limits):
        self.backend, self.limits = backend, limits
        self._cancel = threading.Event()
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        self._procfd: int | None = None
        self.client: BlockingKernelClient | None = None
        self._start()

    # --- life cycle ---------------------------------------------------------------------------------------------
    def _start(self) -> None:
        self.pid = None
        key = secrets.token_hex(32)
        connection: KernelConnectionInfo = {
            "transport": "ipc", "ip": f"{KERNEL_DIR}/k", "shell_port": 1, "iopub_port": 2, "stdin_port": 3,
            "control_port": 4, "hb_port": 5, "key": key, "signature_scheme": "hmac-sha256", "kernel_name": ""}
        limits = self.limits
        config = {
            "rlimits": {"RLIMIT_AS": limits.memory_bytes, "RLIMIT_NPROC": limits.processes,
                        "RLIMIT_NOFILE": limits.open_files, "RLIMIT_FSIZE": limits.disk_bytes, "RLIMIT_CORE": 0},
            "connection": connection, "connection_file": f"{KERNEL_DIR}/kernel.json",
            "startup": _STARTUP % (limits.output_bytes + 1),  # one more: the worker then notes the cut
            "args": ["--HistoryManager.enabled=False", "--IPKernelApp.log_level=WARN"],
        }
        self._stderr = tempfile.TemporaryFile()  # the kernel's own messages; user output goes over the protocol
        info_read, info_write = os.pipe()
        try:
            self.proc = _spawn(
                self.backend.argv(limits, info_write), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                stderr=self._stderr, env=_sandbox_env(), pass_fds=(info_write,), start_new_session=True, cwd="/",
                **_unprivileged())
        finally:
            os.close(info_write)
        try:
            with os.fdopen(info_read, "rb") as info:
                self.pid = json.loads(info.read() or b"{}").get("child-pid")  # bwrap closes it once written
            if not self.pid:
                raise SandboxUnavailable(f"bwrap could not start a sandbox: {self._kernel_log()}")
            self.root = f"/proc/{self.pid}/root"
            # This sandbox's /proc entry, held open: once its PID 1 is gone, paths under it fail instead of
            # reaching whatever process gets the number next.
            self._procfd = os.open(f"/proc/{self.pid}", os.O_RDONLY | os.O_DIRECTORY)
            stdin = cast(IO[bytes], self.proc.stdin)  # stdin=PIPE
            stdin.write(json.dumps(config).encode())
            stdin.close()
            client = BlockingKernelClient()
            client.load_connection_info({**connection, "ip": f"{self.root}{KERNEL_DIR}/k"})
            client.start_channels(hb=False)  # liveness is the bwrap process itself
            self.client = client
            self._wait_ready()
            self._idle_cpu_start = self._usage()[0]
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        """Until the kernel answers on shell *and* iopub. The iopub subscription travels on its own connection
        (ZeroMQ's "slow joiner"): a kernel_info reply on shell does not mean the kernel's publisher knows of us yet,
        and a call sent before it does would lose its output and idle status and wait out the wall limit. Any
        message published after the subscription (ipykernel's iopub_welcome, the status of a kernel_info)
        proves it; kernel_info is asked again until one comes."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        client = self.client
        assert client is not None, "_start sets the client before it waits"
        shell_ok = iopub_ok = False
        while time.monotonic() < deadline and self.alive():
            client.kernel_info()
            wait_until = time.monotonic() + 0.5
            while not (shell_ok and iopub_ok) and (left := wait_until - time.monotonic()) > 0:
                if not shell_ok:  # only kernel_info is asked on this client yet: any reply is one
                    with contextlib.suppress(queue.Empty):
                        client.get_shell_msg(timeout=left if iopub_ok else 0.05)
                        shell_ok = True
                if not iopub_ok:
                    with contextlib.suppress(queue.Empty):
                        client.get_iopub_msg(timeout=0.05)
                        iopub_ok = True
            if shell_ok and iopub_ok:
                self._drain()
                return
        raise SandboxUnavailable(f"the sandbox kernel did not start: {self._kernel_log()}")

    def _drain(self) -> None:
        """Drop what the channels hold (replies and statuses of kernel_info asked more than once): every call
        matches its own messages by request id anyway."""
        client = self.client
        assert client is not None, "a live session has its client"
        for get in (client.get_shell_msg, client.get_iopub_msg):
            with contextlib.suppress(queue.Empty):
                while True:
                    get(timeout=0)

    def _kernel_log(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-2000:].decode(errors="replace").strip() or "no message"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.client is not None:
            self.client.stop_channels()
            self.client = None
        if self.proc is not None and self.proc.poll() is None:
            # The sandbox's PID 1 dying takes every process of its PID namespace with it; bwrap follows.
            tree = self._tree() if self.pid else []
            for pid in (self.pid, self.proc.pid):
                if pid:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log.error("sandbox %s did not exit after SIGKILL", self.proc.pid)
            _wait_gone(tree)
        if self._procfd is not None:
            os.close(self._procfd)
            self._procfd = None
        if self.proc is not None:
            self.proc = None
            self._stderr.close()

    def restart(self) -> None:
        self.stop()
        self._start()

    # --- execution ----------------------------------------------------------------------------------------------
    def cancel(self) -> None:
        self._cancel.set()

    def execute(self, code: str, *, on_output: OnOutput | None = None, should_cancel=None) -> Execution:
        if not self.alive():
            self.restart()
            return self._finish(Execution(error="died", restarted=True,
                                          logs="The sandbox had stopped; it was restarted and earlier state is gone."))
        self._cancel.clear()
        before = {f.path: f for f in self.files()}
        out = _Collector(self.limits.output_bytes, on_output)
        client = self.client
        assert client is not None, "a live session has its client"
        msg_id = client.execute(code, store_history=False, allow_stdin=False)
        started = time.monotonic()
        cpu_start = self._usage()[0]
        next_check = started + CHECK_EVERY_SECONDS
        reason = None
        status = None
        while True:
            now = time.monotonic()
            try:
                msg = client.get_iopub_msg(timeout=max(0.0, next_check - now))
            except queue.Empty:
                msg = None
            if msg is not None and msg["parent_header"].get("msg_id") == msg_id:
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    break
                status = out.message(msg) or status
                continue
            if time.monotonic() < next_check:
                continue
            next_check = time.monotonic() + CHECK_EVERY_SECONDS
            reason = self._over_limit(started, cpu_start, should_cancel)
            if reason:
                break
        if reason == "cancelled" and self._interrupt(msg_id):
            self._shell_reply(msg_id, timeout=5)
            return self._finish(Execution(logs=out.text(), images=out.images, error="cancelled"), before)
        if reason:
            self.restart()
            note = {"timeout": f"Execution exceeded the {self.limits.wall_seconds:g} s time limit",
                    "cpu_time": f"Execution exceeded the {self.limits.cpu_seconds:g} s CPU time limit",
                    "memory": f"Execution exceeded the {self.limits.memory_bytes // 1024**2} MB memory limit",
                    "cancelled": "Execution was cancelled",
                    "died": "The Python process died"}[reason]
            out.add(f"\n{note}; the session was restarted and its variables and files are gone.\n")
            return self._finish(Execution(logs=out.text(), images=out.images, error=reason, restarted=True), before)
        self._shell_reply(msg_id, timeout=5)
        return self._finish(Execution(logs=out.text(), images=out.images, error=status), before)

    def _over_limit(self, started: float, cpu_start: float, should_cancel) -> str | None:
        if self._cancel.is_set() or (should_cancel is not None and should_cancel()):
            return "cancelled"
        if not self.alive():
            return "died"
        if time.monotonic() - started > self.limits.wall_seconds:
            return "timeout"
        cpu, rss = self._usage()
        if cpu - cpu_start > self.limits.cpu_seconds:
            return "cpu_time"
        if rss > self.limits.memory_bytes:
            return "memory"
        return None

    def _interrupt(self, msg_id: str) -> bool:
        """SIGINT to the kernel (KeyboardInterrupt in the user's code); True if it went idle and state is kept
        (else the caller restarts the session)."""
        kernel = self._kernel_pid()
        if kernel is None:
            return False
        try:
            os.kill(kernel, signal.SIGINT)
        except ProcessLookupError:
            return False
        client = self.client
        assert client is not None, "a live session has its client"
        deadline = time.monotonic() + INTERRUPT_GRACE_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = client.get_iopub_msg(timeout=left)
            except queue.Empty:
                break
            if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                    and msg["content"]["execution_state"] == "idle"):
                return True
        return False

    def _shell_reply(self, msg_id: str, *, timeout: float) -> None:
        """Read the shell channel up to this call's reply: an earlier call's late reply is dropped on the way, and
        none is left behind to be taken for a later call's."""
        client = self.client
        assert client is not None, "a live session has its client"
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                if client.get_shell_msg(timeout=left)["parent_header"].get("msg_id") == msg_id:
                    return
            except queue.Empty:
                return

    def _finish(self, result: Execution, before: dict[str, FileInfo] | None = None) -> Execution:
        if before is not None and not result.restarted:
            result.files = [f for f in self.files() if before.get(f.path) != f]
        self._idle_cpu_start = self._usage()[0]
        return result

    def check_idle(self) -> str | None:
        if not self.alive():
            return None
        cpu, rss = self._usage()
        reason = ("cpu_time" if cpu - self._idle_cpu_start > self.limits.cpu_seconds
                  else "memory" if rss > self.limits.memory_bytes else None)
        if reason:
            self.stop()
        return reason

    # --- the sandbox's processes, seen from the worker ----------------------------------------------------------
    def _tree(self) -> list[int]:
        pids: list[int] = []
        todo = [self.pid] if self.pid is not None else []
        while todo:
            pid = todo.pop()
            pids.append(pid)
            try:
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children") as f:
                        todo.extend(int(c) for c in f.read().split())
            except OSError:
                continue
        return pids

    def _kernel_pid(self) -> int | None:
        """The kernel: the sandbox PID 1's (bwrap's reaper's) child."""
        try:
            with open(f"task/{self.pid}/children", opener=self._proc_opener) as f:
                children = f.read().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def _usage(self) -> tuple[float, int]:
        """CPU seconds (including reaped children) and resident bytes of every process in the sandbox."""
        cpu, rss = 0, 0
        for pid in self._tree():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            cpu += sum(int(x) for x in fields[11:15])
            rss += int(fields[21]) * _PAGE
        return cpu / _TICKS, rss

    # --- files --------------------------------------------------------------------------------------------------
    # Paths inside the sandbox are resolved by hand from a descriptor of its working directory, with O_NOFOLLOW at
    # every step: through /proc/<pid>/root a symlink the code made would otherwise be followed on the worker's side.
    def _workdir_fd(self) -> int:
        if self._procfd is None:
            raise FileNotFoundError(WORKDIR)
        return os.open(f"root{WORKDIR}", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=self._procfd)

    def _proc_opener(self, path: str, flags: int) -> int:
        if self._procfd is None:
            raise ProcessLookupError(self.pid)
        return os.open(path, flags, dir_fd=self._procfd)

    def _open_parent(self, path: str, *, create: bool) -> tuple[int, str]:
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if not parts or ".." in parts:
            raise ValueError(f"bad file path {path!r}")
        fd = self._workdir_fd()
        try:
            for part in parts[:-1]:
                if create:
                    try:
                        os.mkdir(part, 0o777, dir_fd=fd)
                    except FileExistsError:
                        pass
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        return fd, parts[-1]

    def upload(self, path: str, data: bytes) -> None:
        with _as_sandbox_user():
            parent, name = self._open_parent(path, create=True)
            try:
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o666, dir_fd=parent)
            finally:
                os.close(parent)
            with os.fdopen(fd, "wb") as f:
                f.write(data)

    def download(self, path: str, *, max_bytes: int | None = None) -> bytes:
        parent, name = self._open_parent(path, create=False)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=parent)
        except OSError as exc:
            raise FileNotFoundError(path) from exc
        finally:
            os.close(parent)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise FileNotFoundError(path)
            return f.read(max_bytes) if max_bytes is not None else f.read()

    def files(self) -> list[FileInfo]:
        found: list[FileInfo] = []
        try:
            top = self._workdir_fd()
        except OSError:
            return found
        try:
            for dirpath, _dirs, names, dirfd in os.fwalk(".", dir_fd=top, follow_symlinks=False):
                for name in names:
                    st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                    if stat.S_ISREG(st.st_mode):
                        found.append(FileInfo(os.path.normpath(os.path.join(dirpath, name)), st.st_size, st.st_mtime))
        except OSError:
            pass
        finally:
            os.close(top)
        return sorted(found, key=lambda f: f.path)


def _wait_gone(pids: list[int], timeout: float = 5.0) -> None:
    """The kernel kills a dead PID namespace's processes asynchronously: wait until they are gone (or zombies)."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                        break
            except OSError:
                break
            time.sleep(0.01)


class _Collector:
    """Gathers a call's outputs: logs cut at the cap (with a note of what was dropped), PNG images."""

    def __init__(self, cap: int, on_output: OnOutput | None):
        self.cap, self.on_output = cap, on_output
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0
        self.images: list[bytes] = []

    def add(self, text: str) -> None:
        room = self.cap - self.size
        if room <= 0:
            self.dropped += len(text)
            return
        if len(text) > room:
            self.dropped += len(text) - room
            text = text[:room]
        self.parts.append(text)
        self.size += len(text)
        if self.on_output is not None:
            self.on_output(Output("logs", logs=text))

    def text(self) -> str:
        note = f"\n[output truncated at {self.cap} characters]\n" if self.dropped else ""
        return "".join(self.parts) + note

    def message(self, msg: dict) -> str | None:
        """Handle one iopub message of the call; returns "exception" for an error."""
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            self.add(content["text"])
        elif kind == "error":
            self.add(_ANSI.sub("", "\n".join(content["traceback"])) + "\n")
            return "exception"
        elif kind in ("display_data", "execute_result"):
            data = content.get("data", {})
            if "image/png" in data:
                png = base64.b64decode(data["image/png"])
                self.images.append(png)
                if self.on_output is not None:
                    self.on_output(Output("image", png=png))
            elif "text/plain" in data:
                self.add(data["text/plain"] + "\n")
        return None
