"""The default sandbox (bubblewrap + IPython kernel), for real: what code can do in it, and every way out we know of.

Run alone with ``pytest -m sandbox``. Nothing here is skipped: without ``bwrap`` or the sandbox venv these fail.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings

from sandbox.backend import Limits
from sandbox.bwrap import BwrapBackend

pytestmark = pytest.mark.sandbox

# CPU time does not grow with the machine's load, wall time does: 5 CPU s is over three times the heaviest call here
# (matplotlib: ~1.4 s), 10 s wall over twice its wall time on a loaded 2-core machine (~4.5 s at load 11).
LIMITS = Limits(cpu_seconds=5, wall_seconds=10, memory_bytes=1024**3, disk_bytes=32 * 1024**2, output_bytes=8192,
                processes=64)


@pytest.fixture(scope="module")
def backend():
    return BwrapBackend()


@pytest.fixture(scope="module")
def shared(backend):
    """One session for the tests that leave it usable."""
    session = backend.start(LIMITS)
    yield session
    session.stop()


@pytest.fixture
def session(backend):
    """A session of its own, for tests that kill or fill it."""
    session = backend.start(LIMITS)
    yield session
    session.stop()


def _pids_alive(pids) -> list[int]:
    alive = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.append(pid)
        except FileNotFoundError:
            pass
    return alive


def assert_usable(session):
    result = session.execute("print('still here', 6 * 7)")
    assert (result.error, result.logs) == (None, "still here 42\n")


# --- what it is for ------------------------------------------------------------------------------------------------
def test_print_a_big_number(shared):
    result = shared.execute("print(2**100)")
    assert result.error is None
    assert result.logs == "1267650600228229401496703205376\n"


def test_state_is_kept_between_calls(shared):
    assert shared.execute("import math\nanswer = math.factorial(10)").error is None
    assert shared.execute("print(answer + 1)").logs == "3628801\n"


def test_pandas_reads_a_csv_in_the_working_dir(shared):
    shared.upload("sales.csv", b"region,amount\nnorth,10\nsouth,32\n")
    result = shared.execute("import pandas as pd\ndf = pd.read_csv('/mnt/data/sales.csv')\nprint(df.amount.sum())")
    assert (result.error, result.logs) == (None, "42\n")


def test_a_matplotlib_plot_comes_back_as_png_bytes(shared):
    streamed = []
    result = shared.execute("import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])\nplt.title('squares')\nplt.show()",
                            on_output=streamed.append)
    assert result.error is None
    assert len(result.images) == 1 and result.images[0].startswith(b"\x89PNG\r\n\x1a\n")
    assert [o.type for o in streamed] == ["image"] and streamed[0].png == result.images[0]


def test_a_written_csv_is_listed_and_retrievable(shared):
    result = shared.execute("import pandas as pd\npd.DataFrame({'x': [1, 2]}).to_csv('/mnt/data/out.csv', index=False)")
    assert result.error is None
    assert [f.path for f in result.files] == ["out.csv"]
    assert shared.download("/out.csv".lstrip("/")) == b"x\n1\n2\n"
    assert "out.csv" in [f.path for f in shared.files()]


def test_an_exception_is_an_error_with_its_traceback(shared):
    result = shared.execute("def f():\n    return 1 / 0\nf()")
    assert result.error == "exception" and not result.restarted
    assert "ZeroDivisionError: division by zero" in result.logs and "\x1b[" not in result.logs


def test_output_streams_while_the_call_runs(shared):
    seen = []
    shared.execute("import sys, time\nprint('first', flush=True)\ntime.sleep(0.6)\nprint('second')",
                   on_output=lambda o: seen.append((o.logs, time.monotonic())))
    assert [text for text, _ in seen] == ["first\n", "second\n"]
    assert seen[1][1] - seen[0][1] > 0.4


# --- escape attempts: each contained and reported, the worker unharmed ----------------------------------------------
def test_no_network_not_even_the_workers_loopback(shared):
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    port = server.getsockname()[1]
    try:
        result = shared.execute(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)")
        assert result.error == "exception" and "ConnectionRefusedError" in result.logs
        with pytest.raises(TimeoutError):
            server.accept()
    finally:
        server.close()
    result = shared.execute("import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)")
    assert result.error == "exception" and "Network is unreachable" in result.logs
    result = shared.execute("import socket\nsocket.getaddrinfo('pypi.org', 443)")
    assert result.error == "exception" and "gaierror" in result.logs


def test_the_services_files_settings_and_data_are_not_there(shared):
    paths = [settings.BASE_DIR, settings.BASE_DIR / "assistants_project" / "settings.py", settings.DATA_DIR,
             settings.DATA_DIR / "postgres", Path(sys.prefix), "/etc/passwd", "/etc/hostname", "/home"]
    result = shared.execute(f"import os\nprint([os.path.exists(p) for p in {[str(p) for p in paths]!r}])")
    assert result.logs == f"{[False] * len(paths)}\n"
    # the root holds the system's /usr and the interpreter, read-only, and nothing else of the host
    top = eval(shared.execute("import os\nprint(sorted(os.listdir('/')))").logs)
    assert set(top) <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "mnt", "opt", "proc", "run", "sbin", "tmp",
                        "usr", *Path(sys.base_prefix).parts[1:2]}


def test_the_workers_environment_is_not_there(shared, monkeypatch):
    monkeypatch.setenv("SANDBOX_TEST_CANARY", "sk-very-secret")
    result = shared.execute("import os\nprint(sorted(os.environ))\nprint(open('/proc/1/environ','rb').read())")
    assert "SANDBOX_TEST_CANARY" not in result.logs and "sk-very-secret" not in result.logs
    assert "DJANGO" not in result.logs and "DATABASE_URL" not in result.logs


def test_the_worker_and_other_processes_are_invisible(shared):
    result = shared.execute("import os\nprint(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))")
    pids = eval(result.logs)
    assert os.getpid() not in pids and max(pids) < 100  # a PID namespace of its own: 1 is bwrap's reaper


def test_another_sessions_files_are_out_of_reach(backend, shared):
    other = backend.start(LIMITS)
    try:
        other.upload("secret.txt", b"other thread's data")
        result = shared.execute("import os\nprint(os.path.exists('/mnt/data/secret.txt'))\n"
                                f"print(os.path.exists('/proc/{other.pid}/root'))")
        assert result.logs == "False\nFalse\n"
        assert "secret.txt" not in [f.path for f in shared.files()]
    finally:
        other.stop()


def test_nothing_outside_the_working_dir_is_writable(shared):
    targets = ["/x", "/usr/x", "/opt/venv/x", "/etc/x", "/tmp/../x", "/proc/sys/vm/swappiness",
               "/proc/sys/kernel/core_pattern", "/proc/sysrq-trigger"]
    code = (f"import os\nfor t in {targets!r}:\n    try:\n        open(t, 'w').write('x')\n        print('WROTE', t)\n"
            "    except OSError as e:\n        print('refused', type(e).__name__)")
    result = shared.execute(code)
    assert "WROTE" not in result.logs and result.logs.count("refused") == len(targets)
    assert not Path("/x").exists() and not Path("/usr/x").exists()
    assert Path("/proc/sys/kernel/core_pattern").read_text() != "x\n"
    uid = shared.execute("import os\nprint(os.getuid(), os.geteuid())")
    assert uid.logs == "65534 65534\n"
    # and on the host: nobody when the worker is root (never root), else the worker's own uid
    with open(f"/proc/{shared._kernel_pid()}/status") as f:
        host_uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
    assert set(host_uids) == {str(65534 if os.geteuid() == 0 else os.geteuid())}


def test_a_link_made_inside_is_never_followed_by_the_worker(shared):
    result = shared.execute("import os\nos.symlink('/etc/passwd', '/mnt/data/leak')\nos.mkdir('/mnt/data/d')\n"
                            "os.symlink('/etc', '/mnt/data/d/etc')")
    assert result.error is None
    for path in ("leak", "d/etc/passwd"):
        with pytest.raises((FileNotFoundError, OSError)):
            shared.download(path)
    with pytest.raises((FileNotFoundError, OSError)):
        shared.upload("d/etc/hostname", b"overwritten")
    assert not {"leak", "d/etc"} & {f.path for f in shared.files()}


def test_no_new_namespaces_or_privileges(shared):
    result = shared.execute("import subprocess\nprint(subprocess.run(['unshare', '--user', '--map-root-user', 'id'],"
                            " capture_output=True, text=True).returncode)\n"
                            "print(open('/proc/self/status').read().split('CapEff:')[1].split()[0])")
    assert result.logs.split() == ["1", "0000000000000000"]


def test_allocating_10_gb_fails_inside(shared):
    result = shared.execute("block = bytearray(10 * 1024**3)")
    assert result.error == "exception" and "MemoryError" in result.logs and not result.restarted
    assert_usable(shared)


def test_printing_100_mb_is_cut_at_the_output_cap(shared):
    result = shared.execute("print('x' * 100_000_000)")
    assert len(result.logs) < LIMITS.output_bytes + 200
    assert result.logs.endswith("\n[output truncated at 8192 characters]\n")
    result = shared.execute("for i in range(100_000):\n    print(i)")
    assert result.error is None and result.logs.startswith("0\n1\n2\n") and "[output truncated at" in result.logs
    assert_usable(shared)


def test_killing_its_parent_does_nothing(shared):
    result = shared.execute("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(1, signal.SIGKILL)\n"
                            "print('alive')")
    assert result.logs == "alive\n" or result.error
    assert_usable(shared)


def test_filling_the_disk_stops_at_the_quota(session):
    result = session.execute("i = 0\nwhile True:\n    with open(f'/mnt/data/f{i}', 'wb') as f:\n"
                             "        f.write(b'0' * 1024**2)\n    i += 1")
    assert result.error == "exception" and "No space left on device" in result.logs
    assert sum(f.bytes for f in session.files()) <= LIMITS.disk_bytes
    result = session.execute("import os\nfor name in os.listdir('/mnt/data'): os.remove('/mnt/data/' + name)\n"
                             "open('/mnt/data/big', 'wb').write(b'0' * 40 * 1024**2)")
    assert result.error == "exception" and ("File too large" in result.logs or "No space left" in result.logs)
    assert_usable(session)


def test_an_infinite_loop_is_killed_and_the_session_restarts_clean(session):
    session.execute("kept = 1")
    session.upload("data.txt", b"x")
    pids = session._tree()
    started = time.monotonic()
    result = session.execute("while True:\n    pass")
    assert time.monotonic() - started < LIMITS.wall_seconds + 10
    assert result.error in ("timeout", "cpu_time") and result.restarted
    assert "limit; the session was restarted" in result.logs
    assert _pids_alive(pids) == []
    after = session.execute("print(kept)")
    assert after.error == "exception" and "NameError" in after.logs
    assert session.files() == []
    assert_usable(session)


def test_a_fork_bomb_is_contained(session):
    result = session.execute("import os\nwhile True:\n    os.fork()")
    assert result.error is not None
    assert_usable(session)
    assert len(session._tree()) < 10


def test_processes_started_in_the_background_die_with_the_session(session):
    session.execute("import subprocess\nsubprocess.Popen(['sleep', '600'], start_new_session=True)")
    pids = session._tree()
    assert len(pids) >= 3
    session.stop()
    assert _pids_alive(pids) == []


# --- cancel ------------------------------------------------------------------------------------------------------
def test_cancel_stops_a_long_call_and_keeps_the_state(session):
    session.execute("kept = 'yes'")
    threading.Timer(0.5, session.cancel).start()
    started = time.monotonic()
    result = session.execute("import time\ntime.sleep(60)")
    assert time.monotonic() - started < 5
    assert result.error == "cancelled" and not result.restarted
    assert session.execute("print(kept)").logs == "yes\n"


def test_cancel_of_code_that_ignores_interrupts_restarts_the_session(session, monkeypatch):
    starts = []
    start = session._start
    monkeypatch.setattr(session, "_start", lambda: (starts.append(1), start())[1])
    flag = threading.Event()
    threading.Timer(0.5, flag.set).start()
    result = session.execute("import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)",
                             should_cancel=flag.is_set)
    assert result.error == "cancelled" and result.restarted
    assert starts == [1]  # one new sandbox, not one started and killed at once for another
    assert_usable(session)


def test_the_call_right_after_a_restart_gets_its_output_every_time(backend):
    """A restarted kernel is ready when its output channel is: the next call, sent at once, is answered (not lost
    and waited out to the wall limit)."""
    session = backend.start(Limits(cpu_seconds=0.5, wall_seconds=LIMITS.wall_seconds, disk_bytes=LIMITS.disk_bytes))
    try:
        for _ in range(5):
            result = session.execute("while True:\n    pass")
            assert result.error in ("timeout", "cpu_time") and result.restarted
            assert_usable(session)
    finally:
        session.stop()


def test_a_late_reply_of_an_earlier_request_is_not_left_for_the_next_call(session):
    client = session.client
    client.kernel_info()  # a reply this session's calls never asked for, as an interrupted call's can come late
    assert_usable(session)
    assert not client.shell_channel.msg_ready()  # each call reads up to its own reply, dropping older ones
    assert_usable(session)


def test_a_died_kernel_is_reported_and_replaced(session):
    os.kill(session._kernel_pid(), signal.SIGKILL)
    time.sleep(0.5)
    result = session.execute("print(1)")
    assert result.error == "died" and result.restarted
    assert_usable(session)


# --- the sandbox dies with its worker ---------------------------------------------------------------------------
def test_the_sandbox_dies_with_a_killed_worker(tmp_path):
    script = (
        "import os, sys, time\n"
        "from sandbox.bwrap import BwrapBackend\n"
        "from sandbox.backend import Limits\n"
        f"s = BwrapBackend({settings.CODE_INTERPRETER_PYTHON!r}).start(Limits())\n"
        "s.execute('import subprocess; subprocess.Popen([\"sleep\", \"600\"])')\n"
        "print(' '.join(map(str, s._tree())), flush=True)\n"
        "time.sleep(600)\n"
    )
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              cwd=settings.BASE_DIR)
    try:
        pids = [int(p) for p in worker.stdout.readline().split()]
        assert len(pids) >= 3 and _pids_alive(pids) == pids
    finally:
        worker.kill()
        worker.wait()
    deadline = time.monotonic() + 5
    while _pids_alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _pids_alive(pids) == []
