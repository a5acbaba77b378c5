"""The gateway's ASGI path, called in-process as uvicorn calls it: the same request plumbing as every other request
(request id, OpenAI headers), and the database connections its requests take given back on every exit path, as
Django's request_finished gives them back on its own path."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.db.models import QuerySet

from gateway.asgi import with_gateway

pytestmark = pytest.mark.django_db(transaction=True)  # the gateway's queries run in another thread


async def _django_app(scope, receive, send):  # nothing here should reach Django's handler
    raise AssertionError(f"{scope['path']} went to Django")


async def _call(path: str, *, method: str = "GET", headers: dict | None = None, body: bytes = b"") -> tuple:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(k.encode(), v.encode()) for k, v in {
                 "host": "localhost", "content-length": str(len(body)),
                 **{k.lower(): v for k, v in (headers or {}).items()}}.items()],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80)}
    inbox = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict] = []
    answered = asyncio.Event()

    async def receive():
        if inbox:
            return inbox.pop(0)
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            answered.set()

    await with_gateway(_django_app)(scope, receive, send)
    start = sent[0]
    headers_out = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers_out, json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


def _shared_thread_connected() -> bool:
    # asgiref runs the gateway's sync_to_async calls (and the async ORM's) in one shared thread: its connection
    return connections["default"].connection is not None


def test_a_key_looked_up_in_the_database_gives_its_connection_back(project):
    from tenancy.services import api_key_create

    key = api_key_create(project=project)  # new: not in this process's key cache, so the database answers

    async def scenario():
        answer = await _call("/v1/models", headers={"Authorization": f"Bearer {key}", "X-Request-ID": "req_gw_1"})
        return answer, await sync_to_async(_shared_thread_connected)()

    (status, headers, body), connected = asyncio.run(scenario())
    assert status == 200 and body["object"] == "list"
    assert headers["x-request-id"] == "req_gw_1" and headers["openai-version"] == "2020-10-01"
    assert int(headers["openai-processing-ms"]) >= 0
    assert connected is False


def test_a_refused_key_gives_its_connection_back(db):
    async def scenario():
        answer = await _call("/v1/models", headers={"Authorization": "Bearer sk-not-a-key"})
        return answer, await sync_to_async(_shared_thread_connected)()

    (status, headers, body), connected = asyncio.run(scenario())
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    assert headers["x-request-id"].startswith("req_")
    assert connected is False


def test_stored_credentials_read_from_the_database_give_their_connection_back(project):
    from tenancy.services import api_key_create

    key = api_key_create(project=project)
    request = json.dumps({"model": "anthropic/claude-3-5-haiku-latest", "input": "hello"}).encode()

    async def scenario():
        # the key's lookup, then the project's stored credentials for the model's provider (a cache miss), then a
        # 400 before any provider call: LiteLLM has moderations for OpenAI models only
        answer = await _call("/v1/moderations", method="POST", body=request,
                             headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        return answer, await sync_to_async(_shared_thread_connected)()

    (status, _headers, body), connected = asyncio.run(scenario())
    assert status == 400 and body["error"]["code"] == "moderations_not_supported", body
    assert connected is False


def test_the_early_checks_apply_on_the_gateway_path(db):
    status, headers, body = asyncio.run(_call("/v1/chat/completions", method="POST",
                                              headers={"Content-Length": str(10**9)}))
    assert status == 413 and "too large" in body["error"]["message"]
    assert headers["x-request-id"].startswith("req_") and "openai-processing-ms" in headers


def test_a_burst_of_requests_reads_the_key_generation_and_stored_credentials_once(project, monkeypatch):
    """Once a second the key generation (and each stored-credentials entry) goes stale: the requests of that moment
    share one read of each instead of queueing one read each in asgiref's one thread (a burst's slow tail)."""
    from assistants_project.api import keycache
    from tenancy import credentials, selectors
    from tenancy.auth import BearerKeyAuthentication
    from tenancy.services import api_key_create

    key = api_key_create(project=project)
    request = json.dumps({"model": "anthropic/claude-3-5-haiku-latest", "input": "hello"}).encode()
    reads = {"generation": 0, "stored": 0, "authenticate": 0}
    generation = selectors.api_keys_generation
    authenticate = BearerKeyAuthentication.authenticate

    def counted_authenticate(self, request):
        reads["authenticate"] += 1
        return authenticate(self, request)

    monkeypatch.setattr(BearerKeyAuthentication, "authenticate", counted_authenticate)

    def counted_generation():
        reads["generation"] += 1
        return generation()

    monkeypatch.setattr("gateway.auth.api_keys_generation", counted_generation)
    first = QuerySet.first

    def counted_first(self):
        if self.model.__name__ == "ProviderCredential":
            reads["stored"] += 1
        return first(self)

    monkeypatch.setattr(QuerySet, "first", counted_first)

    def moderation():
        return _call("/v1/moderations", method="POST", body=request,
                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})

    async def scenario():
        await moderation()  # the key cached, then both stale at once
        keycache._generation = (keycache._generation[0], 0.0)
        credentials._stored_cache.clear()
        reads.update(generation=0, stored=0, authenticate=0)
        return await asyncio.gather(*(moderation() for _ in range(20)))

    answers = asyncio.run(scenario())
    assert [status for status, _, _ in answers] == [400] * 20
    # (before: 20 authentications one after another in asgiref's thread, and 20 stored-credential reads)
    assert reads == {"generation": 1, "stored": 1, "authenticate": 0}


def test_a_shared_call_gives_every_caller_its_answer_or_its_error(db):
    from assistants_project.api.request_context import shared_db_call

    calls = []

    def work(fail: bool):
        calls.append(fail)
        time.sleep(0.05)
        if fail:
            raise RuntimeError("database went away")
        return len(calls)

    async def burst(fail: bool):
        return await asyncio.gather(*(shared_db_call("k", work, fail) for _ in range(10)), return_exceptions=True)

    assert asyncio.run(burst(False)) == [1] * 10
    errors = asyncio.run(burst(True))  # a call made after the first ended: made again
    assert len(calls) == 2 and all(isinstance(e, RuntimeError) for e in errors)
