"""Sessions per thread in a worker, and their Container records: real sandboxes, real database."""

from __future__ import annotations

import threading

import pytest

from sandbox import services
from sandbox.backend import Limits
from sandbox.bwrap import BwrapBackend
from sandbox.models import Container

# transaction=True: the session manager records containers on its own connections, outside a test's transaction, so
# only a flush after each test keeps one test's records (same thread ids) out of the next.
pytestmark = [pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]

LIMITS = Limits(cpu_seconds=5, wall_seconds=10, disk_bytes=16 * 1024**2, output_bytes=4096)  # see test_sandbox


@pytest.fixture
def make_manager():
    made = []

    def make(**kwargs):
        options = {"idle_seconds": 1200, "max_sessions": 8, "reap": False, **kwargs}
        manager = services.SessionManager(BwrapBackend(), LIMITS, **options)
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.close()


def thread_files():
    return [("data.csv", b"n\n1\n2\n3\n"), ("/mnt/data/notes.txt", b"hello")]


def test_each_thread_has_its_own_stateful_session(make_manager, project):
    manager = make_manager()
    first = manager.execute(project=project, thread_id="thread_a", code="x = 'a'", files=thread_files)
    assert first.error is None and not first.state_lost
    assert manager.execute(project=project, thread_id="thread_a", code="print(x)").logs == "a\n"
    other = manager.execute(project=project, thread_id="thread_b", code="print(x)")
    assert other.error == "exception" and "NameError" in other.logs
    read = manager.execute(project=project, thread_id="thread_a",
                           code="import pandas as pd\nprint(pd.read_csv('/mnt/data/data.csv').n.sum())\n"
                                "print(open('/mnt/data/notes.txt').read())")
    assert read.logs == "6\nhello\n"


def test_the_container_record_follows_the_session(make_manager, project, other_project):
    manager = make_manager()
    result = manager.execute(project=project, thread_id="thread_c", code="open('/mnt/data/out.txt', 'w').write('42')",
                             files=thread_files)
    assert [f.path for f in result.files] == ["out.txt"]
    assert manager.file_get(thread_id="thread_c", path="/mnt/data/out.txt") == b"42"
    container = Container.objects.get(thread_id="thread_c")
    assert container.project == project and container.status == "running"
    assert container.public_id.startswith("cntr_")
    assert sorted(f["path"] for f in container.files) == ["/mnt/data/data.csv", "/mnt/data/notes.txt",
                                                          "/mnt/data/out.txt"]
    body = container.to_openai()
    assert body["object"] == "container" and body["memory_limit"] == "1g"
    assert body["expires_after"] == {"anchor": "last_active_at", "minutes": 20}
    assert not Container.objects.filter(project=other_project).exists()


def test_a_worker_without_the_session_starts_fresh_and_says_state_is_gone(make_manager, project):
    make_manager().execute(project=project, thread_id="thread_d", code="x = 1", files=thread_files)
    old = Container.objects.get(thread_id="thread_d")
    other_worker = make_manager()
    result = other_worker.execute(project=project, thread_id="thread_d",
                                  code="import os\nprint(sorted(os.listdir('/mnt/data')))\nprint(x)",
                                  files=thread_files)
    assert result.state_lost
    assert result.logs.startswith("['data.csv', 'notes.txt']\n") and "NameError" in result.logs
    old.refresh_from_db()
    assert old.status == "expired"
    assert Container.objects.filter(thread_id="thread_d", status="running").count() == 1


def test_an_idle_session_is_stopped_and_its_container_expires(make_manager, project):
    manager = make_manager(idle_seconds=0)
    manager.execute(project=project, thread_id="thread_e", code="x = 1")
    pids = manager._live["thread_e"].session._tree()
    assert manager.sweep() == 1
    assert Container.objects.get(thread_id="thread_e").status == "expired"
    from sandbox.tests.test_sandbox import _pids_alive

    assert _pids_alive(pids) == []
    again = manager.execute(project=project, thread_id="thread_e", code="print(1)")
    assert again.state_lost and again.logs == "1\n"


def test_a_killed_call_restarts_with_the_threads_files_in_a_new_container(make_manager, project):
    manager = make_manager()
    manager.execute(project=project, thread_id="thread_f", code="x = 1", files=thread_files)
    first = Container.objects.get(thread_id="thread_f")
    result = manager.execute(project=project, thread_id="thread_f", code="while True: pass", files=thread_files)
    assert result.error in ("timeout", "cpu_time") and result.restarted
    after = manager.execute(project=project, thread_id="thread_f", code="import os\nprint(sorted(os.listdir('.')))")
    assert after.logs == "['data.csv', 'notes.txt']\n" and not after.state_lost
    first.refresh_from_db()
    assert first.status == "expired"
    assert Container.objects.filter(thread_id="thread_f", status="running").exclude(pk=first.pk).count() == 1


def test_cancel_by_thread_id(make_manager, project):
    manager = make_manager()
    manager.execute(project=project, thread_id="thread_g", code="kept = 7")
    threading.Timer(0.5, manager.cancel, args=["thread_g"]).start()
    result = manager.execute(project=project, thread_id="thread_g", code="import time\ntime.sleep(30)")
    assert result.error == "cancelled"
    assert manager.execute(project=project, thread_id="thread_g", code="print(kept)").logs == "7\n"


def test_the_least_recently_used_session_makes_room(make_manager, project):
    manager = make_manager(max_sessions=2)
    for thread in ("thread_h1", "thread_h2", "thread_h3"):
        manager.execute(project=project, thread_id=thread, code="x = 1")
    assert sorted(manager._live) == ["thread_h2", "thread_h3"]
    assert Container.objects.get(thread_id="thread_h1").status == "expired"


def test_beat_expires_records_no_worker_can_hold(project):
    from datetime import timedelta

    from django.utils import timezone

    stale = Container.objects.create(project=project, thread_id="thread_i", memory_limit="1g",
                                     expires_after_minutes=20, last_active_at=timezone.now() - timedelta(hours=2))
    fresh = Container.objects.create(project=project, thread_id="thread_j", memory_limit="1g",
                                     expires_after_minutes=20, last_active_at=timezone.now())
    assert services.containers_expire() == 1
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert (stale.status, fresh.status) == ("expired", "running")


def test_a_spare_session_serves_a_new_threads_first_call_clean(make_manager, project):
    import time

    from sandbox.tests.test_sandbox import _pids_alive

    manager = make_manager(spares=1)
    manager.execute(project=project, thread_id="thread_k1", code="secret = 'k1'\nopen('k1.txt', 'w').write('k1')")
    deadline = time.monotonic() + 30
    while not manager._spare and time.monotonic() < deadline:
        time.sleep(0.05)
    spare = manager._spare[0]
    result = manager.execute(project=project, thread_id="thread_k2", files=thread_files,
                             code="import os\nprint(sorted(os.listdir('.')))\nprint('secret' in globals())")
    assert result.logs == "['data.csv', 'notes.txt']\nFalse\n"
    assert manager._live["thread_k2"].session is spare
    while len(manager._spare) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = [pid for s in manager._spare for pid in s._tree()]
    assert pids
    manager.close()
    assert _pids_alive(pids) == []


def test_the_process_manager_is_made_from_the_settings(project, settings):
    settings.CODE_INTERPRETER_SPARE_SESSIONS = 0
    settings.CODE_INTERPRETER_MEMORY_MB = 512
    services._manager = None
    try:
        seen = []
        result = services.execute(project=project, thread_id="thread_l", code="print(2**100)", on_output=seen.append)
        assert result.logs == "1267650600228229401496703205376\n" and [o.logs for o in seen] == [result.logs]
        manager = services.manager()
        assert manager.limits.memory_bytes == 512 * 1024**2 and manager.idle_seconds == 1200
        assert Container.objects.get(thread_id="thread_l").memory_limit == "512m"
        services.file_put(project=project, thread_id="thread_l", path="/mnt/data/in.txt", data=b"abc")
        services.execute(project=project, thread_id="thread_l",
                         code="open('/mnt/data/out.txt', 'w').write(open('in.txt').read().upper())")
        assert services.file_get(thread_id="thread_l", path="/mnt/data/out.txt") == b"ABC"
        threading.Timer(0.5, services.cancel, kwargs={"thread_id": "thread_l"}).start()
        assert services.execute(project=project, thread_id="thread_l", code="import time\ntime.sleep(20)").error \
            == "cancelled"
    finally:
        services.manager().close()
        services._manager = None


def test_the_admin_lists_and_shows_containers(admin_client, project):
    from django.urls import reverse
    from django.utils import timezone

    container = Container.objects.create(project=project, thread_id="thread_m", memory_limit="1g",
                                         expires_after_minutes=20, last_active_at=timezone.now(),
                                         files=[{"path": "/mnt/data/out.csv", "bytes": 3}])
    listing = admin_client.get(reverse("admin:sandbox_container_changelist"), {"q": "thread_m"})
    assert listing.status_code == 200 and container.public_id in listing.content.decode()
    page = admin_client.get(reverse("admin:sandbox_container_change", args=[container.pk]))
    assert page.status_code == 200 and "/mnt/data/out.csv" in page.content.decode()


def test_code_left_running_between_calls_is_stopped_at_the_cpu_limit(make_manager, project):
    import time

    manager = make_manager()
    result = manager.execute(project=project, thread_id="thread_n", code=(
        "import subprocess, sys, threading\n"
        "threading.Thread(target=lambda: [None for _ in iter(int, 1)], daemon=True).start()\n"
        "subprocess.Popen([sys.executable, '-c', 'while True: pass'])\nprint('returned')"))
    assert result.logs == "returned\n" and result.error is None
    pids = manager._live["thread_n"].session._tree()
    # the leftovers reach the CPU limit sooner or later, later the busier the machine: the deadline only ends a hang
    deadline = time.monotonic() + 180
    stopped = 0
    while not stopped and time.monotonic() < deadline:
        time.sleep(0.5)
        stopped = manager.watch()
    assert stopped == 1 and "thread_n" not in manager._live
    from sandbox.tests.test_sandbox import _pids_alive

    assert _pids_alive(pids) == []
    assert Container.objects.get(thread_id="thread_n").status == "expired"
    assert manager.execute(project=project, thread_id="thread_n", code="print(1)").state_lost


def test_a_quiet_session_is_left_alone_between_calls(make_manager, project):
    manager = make_manager()
    manager.execute(project=project, thread_id="thread_o", code="import numpy\nx = numpy.ones(1000)")
    assert manager.watch() == 0
    assert manager.execute(project=project, thread_id="thread_o", code="print(int(x.sum()))").logs == "1000\n"


def test_concurrent_first_calls_of_a_thread_share_one_session_and_one_container(make_manager, project):
    from django.db import connection

    manager = make_manager(spares=1)
    ready = threading.Barrier(4)
    results, errors = [], []

    def first_call():
        try:
            ready.wait()
            results.append(manager.execute(project=project, thread_id="thread_p", files=thread_files,
                                           code="calls = globals().get('calls', 0) + 1\nprint(calls)"))
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    callers = [threading.Thread(target=first_call) for _ in range(4)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert errors == []
    assert sorted(r.logs for r in results) == ["1\n", "2\n", "3\n", "4\n"]  # one session, the calls in turn
    assert not any(r.state_lost or r.restarted for r in results)
    assert Container.objects.filter(thread_id="thread_p").count() == 1


def test_a_session_restarting_in_a_call_is_not_replaced(make_manager, project):
    manager = make_manager()
    manager.execute(project=project, thread_id="thread_r", code="x = 1")
    live = manager._live["thread_r"]
    with live.lock:  # a call in flight, between the kill of its sandbox and the start of the next one
        live.session.stop()
        assert manager._session(project, "thread_r", None) == (live, False)
        live.session.restart()
    assert manager.execute(project=project, thread_id="thread_r", code="print(1)").logs == "1\n"
    assert manager._live["thread_r"] is live and Container.objects.filter(thread_id="thread_r").count() == 1


def test_a_thread_has_one_running_container_record_across_workers(make_manager, project):
    from django.db import IntegrityError, connection, transaction
    from django.utils import timezone

    fields = {"project": project, "thread_id": "thread_q", "memory_limit": "1g", "expires_after_minutes": 20}
    Container.objects.create(last_active_at=timezone.now(), **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        Container.objects.create(last_active_at=timezone.now(), **fields)
    Container.objects.create(last_active_at=timezone.now(), status="expired", **fields)  # any number of these

    workers = [make_manager(), make_manager()]  # two processes' managers, recording at the same moment
    ready = threading.Barrier(4)
    errors = []

    def record(manager):
        try:
            ready.wait()
            manager._container_create(project, "thread_q")
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    recorders = [threading.Thread(target=record, args=(workers[i % 2],)) for i in range(4)]
    for recorder in recorders:
        recorder.start()
    for recorder in recorders:
        recorder.join()
    assert errors == []
    assert Container.objects.filter(thread_id="thread_q").count() == 6
    assert Container.objects.filter(thread_id="thread_q", status="running").count() == 1
