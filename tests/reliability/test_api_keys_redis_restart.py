"""A revoked API key stays revoked across a Redis restart from its snapshot, and when the revoke happens while Redis
is unreachable (issue 12, item 5): nothing outside Postgres can bring a key back."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest
import redis

from tests.live import ROOT, e2e_env
from tests.reliability.conftest import STACK_ENV

pytestmark = pytest.mark.e2e


def _manage(stack, *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True, text=True,
                          env=e2e_env(stack.fake.base_url, **STACK_ENV), timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def _statuses(stack, key: str, count: int = 8) -> list[int]:
    """Several requests, so that every web process answers at least once on a multi-process server."""
    with httpx.Client(base_url=stack.base_url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as http:
        return [http.get("/assistants").status_code for _ in range(count)]


def test_a_key_revoked_while_redis_is_down_stays_revoked_after_it_restarts_from_its_snapshot(stack):
    from assistants_project import embedded

    key = _manage(stack, "createapikey", "--name", "revoked in an outage").splitlines()[-1]
    assert set(_statuses(stack, key)) == {200}  # valid, and now cached by the web processes
    redis.Redis.from_url(embedded.ensure_redis(stack.data_dir)).save()  # the snapshot Redis will restart from
    stack.kill_redis()
    try:
        assert _manage(stack, "revokeapikey", key).endswith("revoked")
    finally:
        stack.start_redis()
    time.sleep(1.5)  # each process re-reads the key table's fingerprint at most once a second
    refused = httpx.get(f"{stack.base_url}/assistants", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert set(_statuses(stack, key)) == {401}
    assert set(_statuses(stack, stack.api_key)) == {200}  # the other keys still work
