"""Provider credentials (issue 16) against the live stack: two projects with their own stored provider keys and
requests that bring a key in headers. The fake provider records the key of every call: runs (both turns of a
function call, and the one after submit_tool_outputs), ingestion, search, file_search inside a run and the gateway
each use the right one. Afterwards no key is in the database, the server log or any response in plain text."""

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.live import e2e_db, e2e_env

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
SERVER_KEY = "sk-fake-provider-key"  # the live stack's OPENAI_API_KEY
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def manage(live, *args: str, stdin: str | None = None) -> str:
    out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=e2e_env(live.fake.base_url),
                         input=stdin, capture_output=True, text=True, check=True)
    return out.stdout


class Seen:
    """Every response body a client received (an httpx event hook): whole bodies, and server-sent event streams
    as the client reads them (``streams``: the bytes so far of each)."""

    def __init__(self) -> None:
        self.plain: list[str] = []
        self.streams: list[list[bytes]] = []

    @property
    def bodies(self) -> list[str]:
        return self.plain + [b"".join(parts).decode() for parts in self.streams]

    def hook(self, response: httpx.Response) -> None:
        if "text/event-stream" not in response.headers.get("content-type", ""):
            response.read()
            self.plain.append(response.text)
            return
        assert "content-encoding" not in response.headers  # the raw bytes are the text the client reads
        parts: list[bytes] = []
        self.streams.append(parts)
        response.stream = _Tee(response.stream, parts)


class _Tee(httpx.SyncByteStream):
    def __init__(self, stream, parts: list[bytes]) -> None:
        self.stream, self.parts = stream, parts

    def __iter__(self):
        for part in self.stream:
            self.parts.append(part)
            yield part

    def close(self) -> None:
        self.stream.close()


@pytest.fixture(scope="module")
def tenants(live_stack):
    """Two fresh projects, each with an API key and its own stored OpenAI key (the session's default project keeps
    the server's key: other tests rely on it)."""
    out = {}
    for name in ("creds-a", "creds-b"):
        tag = f"e2e-{name}-{secrets.token_hex(3)}"
        raw = manage(live_stack, "createapikey", "--project", tag).strip().splitlines()[-1]
        provider_key = f"sk-{name}-{secrets.token_hex(12)}"
        listed = manage(live_stack, "providercredentials", "set", "--project", tag, "--provider", "openai",
                        "--api-key", "-", stdin=provider_key + "\n")
        assert provider_key not in listed and "api_key" in listed
        out[name] = {"project": tag, "api_key": raw, "provider_key": provider_key}
    yield out
    for tenant in out.values():
        manage(live_stack, "providercredentials", "delete", "--project", tenant["project"], "--provider", "openai")


def client_for(live, tenant: dict, seen: Seen, **headers) -> openai.OpenAI:
    http = httpx.Client(event_hooks={"response": [seen.hook]}, timeout=60)
    return openai.OpenAI(base_url=live.base_url, api_key=tenant["api_key"], max_retries=0, http_client=http,
                         default_headers=headers or None)


def wait_store(client, store_id: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        store = client.vector_stores.retrieve(store_id)
        if store.file_counts.in_progress == 0:
            assert store.file_counts.completed == store.file_counts.total, store.file_counts
            return
        time.sleep(0.2)
    raise AssertionError("ingestion did not finish")


def keys_since(live, start: int, path: str) -> list[str]:
    records = live.fake.requests[start:]
    return [(r["headers"].get("authorization") or "")[7:] for r in records if r["path"] == path]


def test_every_call_uses_the_request_then_project_then_server_credentials(live, tenants, tmp_path):
    a, b = tenants["creds-a"], tenants["creds-b"]
    request_key = "sk-request-" + secrets.token_hex(12)
    other_request_key = "sk-request2-" + secrets.token_hex(12)
    seen = Seen()
    plain_a, plain_b = client_for(live, a, seen), client_for(live, b, seen)
    with_headers = client_for(live, a, seen, **{"api-key": request_key, "LLM-PARAM-temperature": "0.5"})
    fake = live.fake

    # runs: project A's stored key, project B's, the request's (create) and a new request's (submit_tool_outputs)
    for client, expected in ((plain_a, a["provider_key"]), (plain_b, b["provider_key"])):
        start = len(fake.requests)
        assistant = client.beta.assistants.create(model="gpt-4o-mini")
        run = client.beta.threads.create_and_run_poll(assistant_id=assistant.id, thread={
            "messages": [{"role": "user", "content": "hello"}]}, poll_interval_ms=100)
        assert run.status == "completed", run.last_error
        assert keys_since(live, start, "/v1/chat/completions") == [expected]

    fake.add_rule("weather please", tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}])
    fake.add_rule(lambda body: body["messages"][-1]["role"] == "tool", text="Sunny in Oslo.")
    start = len(fake.requests)
    assistant = with_headers.beta.assistants.create(model="gpt-4o-mini", tools=[WEATHER])
    run = with_headers.beta.threads.create_and_run_poll(assistant_id=assistant.id, thread={
        "messages": [{"role": "user", "content": "weather please"}]}, poll_interval_ms=100)
    assert run.status == "requires_action"
    with db() as conn:
        sealed = conn.execute("SELECT sealed_credentials FROM runs_run WHERE public_id = %s", [run.id]).fetchone()[0]
    assert sealed and request_key not in sealed  # travels to the worker encrypted
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    continuing = client_for(live, a, seen, **{"api-key": other_request_key})
    run = continuing.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=run.thread_id, run_id=run.id, tool_outputs=[{"tool_call_id": call.id, "output": "sunny"}],
        poll_interval_ms=100)
    assert run.status == "completed"
    assert keys_since(live, start, "/v1/chat/completions") == [request_key, other_request_key]
    assert fake.chat_requests()[-2]["temperature"] == 0.5  # LLM-PARAM-temperature reached the run's call

    # ingestion: the attaching request's key, else the project's
    doc = tmp_path / "guide.md"
    doc.write_text("The lighthouse keeper feeds the cat at dawn.\n")
    for client, expected in ((with_headers, request_key), (plain_b, b["provider_key"])):
        uploaded = client.files.create(file=doc.open("rb"), purpose="assistants")
        start = len(fake.requests)
        store = client.vector_stores.create(name="guide", file_ids=[uploaded.id])
        wait_store(client, store.id)
        assert set(keys_since(live, start, "/v1/embeddings")) == {expected}

        # search: the searching request's key, else the project's
        for searcher, key in ((client, expected), (client_for(live, b if client is plain_b else a, seen,
                                                              **{"api-key": other_request_key}), other_request_key)):
            start = len(fake.requests)
            hits = searcher.vector_stores.search(store.id, query="who feeds the cat").data
            assert hits and "lighthouse" in hits[0].content[0].text
            assert keys_since(live, start, "/v1/embeddings") == [key]

    # file_search inside a run embeds the query with the run's credentials
    fake.add_rule("lighthouse?", tool_calls=[{"name": "file_search", "arguments": {"queries": ["cat at dawn"]}}])
    uploaded = plain_a.files.create(file=doc.open("rb"), purpose="assistants")
    store = plain_a.vector_stores.create(name="guide-a", file_ids=[uploaded.id])
    wait_store(plain_a, store.id)
    assistant = plain_a.beta.assistants.create(model="gpt-4o-mini", tools=[{"type": "file_search"}],
                                               tool_resources={"file_search": {"vector_store_ids": [store.id]}})
    start = len(fake.requests)
    run = with_headers.beta.threads.create_and_run_poll(assistant_id=assistant.id, thread={
        "messages": [{"role": "user", "content": "lighthouse?"}]}, poll_interval_ms=100)
    assert run.status == "completed", run.last_error
    assert keys_since(live, start, "/v1/embeddings") == [request_key]
    assert keys_since(live, start, "/v1/chat/completions") == [request_key, request_key]

    # gateway
    start = len(fake.requests)
    plain_a.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    plain_b.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    with_headers.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    plain_b.embeddings.create(model="text-embedding-3-small", input="hi")
    live.client().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert keys_since(live, start, "/v1/chat/completions") == [a["provider_key"], b["provider_key"], request_key,
                                                                SERVER_KEY]
    assert keys_since(live, start, "/v1/embeddings") == [b["provider_key"]]

    # streamed: a run's events and a gateway completion, with the request's key, and a streamed run whose provider
    # refuses that key and echoes it (as OpenAI's 401 does); their SSE bodies are scanned below like every other
    start = len(fake.requests)
    assistant = with_headers.beta.assistants.create(model="gpt-4o-mini")
    with with_headers.beta.threads.create_and_run(assistant_id=assistant.id, stream=True, thread={
            "messages": [{"role": "user", "content": "stream me"}]}) as events:
        assert "thread.run.completed" in [event.event for event in events]
    chunks = with_headers.chat.completions.create(model="gpt-4o-mini", stream=True,
                                                  messages=[{"role": "user", "content": "stream me too"}])
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    fake.add_rule("echo my key", error=(401, f"Incorrect API key provided: {request_key}.", "invalid_api_key"))
    with with_headers.beta.threads.create_and_run(assistant_id=assistant.id, stream=True, thread={
            "messages": [{"role": "user", "content": "echo my key"}]}) as events:
        assert "thread.run.failed" in [event.event for event in events]
    assert keys_since(live, start, "/v1/chat/completions") == [request_key] * 3
    streamed = [b"".join(parts) for parts in seen.streams]
    assert len(streamed) == 3 and all(b"data: " in body for body in streamed)
    assert b"thread.run.completed" in streamed[0] and b"[DONE]" in streamed[1] and b"thread.run.failed" in streamed[2]

    # nothing kept: every run and ingestion ended, so no sealed credentials remain
    with db() as conn:
        assert conn.execute("SELECT count(*) FROM runs_run WHERE sealed_credentials IS NOT NULL").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM retrieval_vectorstorefile "
                            "WHERE sealed_credentials IS NOT NULL").fetchone()[0] == 0

    secrets_used = [request_key, other_request_key, a["provider_key"], b["provider_key"]]
    dump = database_text()
    log = live.log()
    for key in secrets_used:
        assert key not in dump, "a provider key is stored in plain text"
        assert key not in log, "a provider key is in the server log"
        assert not any(key in body for body in seen.bodies), "a provider key is in a response (or an event stream)"
    assert len(seen.bodies) > 20


def test_the_embedding_model_header_picks_the_model_of_ingestion_and_search(live, tenants, tmp_path):
    a = tenants["creds-a"]
    seen = Seen()
    plain = client_for(live, a, seen)
    chosen = client_for(live, a, seen, **{"embedding-model": "text-embedding-3-large"})
    fake = live.fake

    def models_since(start: int) -> list[str]:
        return [r["body"]["model"] for r in fake.requests[start:] if r["path"] == "/v1/embeddings"]

    doc = tmp_path / "keeper.md"
    doc.write_text("The lighthouse keeper feeds the cat at dawn.\n")
    uploaded = chosen.files.create(file=doc.open("rb"), purpose="assistants")
    start = len(fake.requests)
    store = chosen.vector_stores.create(name="large", file_ids=[uploaded.id])
    wait_store(chosen, store.id)
    assert set(models_since(start)) == {"text-embedding-3-large"}
    with db() as conn:
        recorded = conn.execute("SELECT f.embedding_model FROM retrieval_vectorstorefile f "
                                "JOIN retrieval_vectorstore s ON s.id = f.vector_store_id WHERE s.public_id = %s",
                                [store.id]).fetchall()
    assert recorded == [("text-embedding-3-large",)]

    # a search with the header embeds its query with that model; one without it has no file of the server's model
    # to compare vectors with, so it embeds nothing and matches by keywords
    for client, models in ((chosen, ["text-embedding-3-large"]), (plain, [])):
        start = len(fake.requests)
        hits = client.vector_stores.search(store.id, query="who feeds the cat").data
        assert hits and "lighthouse" in hits[0].content[0].text
        assert models_since(start) == models

    # and so does a run's file_search started with the header
    fake.add_rule("keeper?", tool_calls=[{"name": "file_search", "arguments": {"queries": ["cat at dawn"]}}])
    assistant = plain.beta.assistants.create(model="gpt-4o-mini", tools=[{"type": "file_search"}],
                                             tool_resources={"file_search": {"vector_store_ids": [store.id]}})
    start = len(fake.requests)
    run = chosen.beta.threads.create_and_run_poll(assistant_id=assistant.id, thread={
        "messages": [{"role": "user", "content": "keeper?"}]}, poll_interval_ms=100)
    assert run.status == "completed", run.last_error
    assert models_since(start) == ["text-embedding-3-large"]


def test_url_like_header_is_refused_for_runs_and_the_gateway(live, tenants):
    a = tenants["creds-a"]
    seen = Seen()
    client = client_for(live, a, seen, **{"LLM-PARAM-api-base": "http://169.254.169.254/"})
    assistant = client_for(live, a, seen).beta.assistants.create(model="gpt-4o-mini")
    for call in (lambda: client.beta.threads.create_and_run(assistant_id=assistant.id),
                 lambda: client.chat.completions.create(model="gpt-4o-mini",
                                                        messages=[{"role": "user", "content": "hi"}])):
        with pytest.raises(openai.BadRequestError) as caught:
            call()
        assert caught.value.status_code == 400
        assert caught.value.body["param"] == "LLM-PARAM-api-base"
        assert "PROVIDER_HEADERS_ALLOW_URLS" in caught.value.body["message"]


def test_stored_credentials_are_listed_without_values(live, tenants):
    listing = manage(live, "providercredentials", "list")
    for tenant in tenants.values():
        assert tenant["project"] in listing and tenant["provider_key"] not in listing
    assert "api_key" in listing


def db():
    return e2e_db()


def database_text() -> str:
    """Every text, varchar and json value of every table of the live database, as one string."""
    parts = []
    with db() as conn:
        columns = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' AND "
            "data_type IN ('text', 'character varying', 'json', 'jsonb')").fetchall()
        for table, column in columns:
            for (value,) in conn.execute(f'SELECT "{column}"::text FROM "{table}" WHERE "{column}" IS NOT NULL'):
                parts.append(value)
    return json.dumps(parts)
