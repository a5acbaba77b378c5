"""The gateway's ASGI path, called in-process as uvicorn calls it: the same request plumbing as every other request
(request id, OpenAI headers), and the database connections its requests take given back on every exit path, as
Django's request_finished gives them back on its own path."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

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
