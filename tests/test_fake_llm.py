"""LiteLLM against tests.fake_llm, called the way our server calls it (no Django, no database).

LiteLLM gotchas these tests pin down (litellm 1.106.2):

* Retries. Two layers: ``num_retries`` drives LiteLLM's own retry wrapper (and, when given, is copied into
  ``max_retries``); ``max_retries`` is handed to the OpenAI SDK client, whose default is 2 retries with
  backoff. ``num_retries=0, max_retries=0`` => exactly one HTTP request per chat completion (sync, async,
  stream or not). Embeddings ignore ``max_retries=0`` (``max_retries or litellm.DEFAULT_MAX_RETRIES``, and a
  passed-in ``client`` gets its max_retries overwritten too): set ``litellm.DEFAULT_MAX_RETRIES = 0`` (or env
  ``DEFAULT_MAX_RETRIES=0`` before importing litellm) to get one request.
* MCP. In 1.106.x .. 1.108.3 any ``completion(..., tools=[...])`` imports LiteLLM's MCP gateway, which does
  ``from mcp.types import ...`` -> ModuleNotFoundError when ``mcp`` isn't installed (fixed in 1.108.4, but
  1.108.4+ requires certifi>=2026.10.19, which the registry doesn't carry yet). Workaround: the private kwarg
  ``_skip_mcp_handler=True`` (honoured by 1.106 .. 1.109). Chat only: ``litellm.embedding`` forwards unknown
  kwargs into the request body.
* Usage in streams: with ``stream_options={"include_usage": True}`` the usage arrives on the last chunk as
  ``chunk.usage`` (LiteLLM turns OpenAI's ``choices: []`` into one choice with an empty delta there).
* Endpoint: ``api_base=".../v1"`` (the base incl. /v1) + ``api_key``; or env OPENAI_API_BASE + OPENAI_API_KEY
  (OPENAI_BASE_URL, if set, wins over OPENAI_API_BASE).
"""

from __future__ import annotations

import asyncio
import importlib.abc
import importlib.metadata
import json
import math
import os
import re
import subprocess
import sys
import threading
import time

import httpx
import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # offline: never fetch the model cost map

import litellm
import openai

from tests.fake_llm import FakeLLM, Reply, embed_text, tokenize

LITELLM_VERSION = tuple(int(p) for p in re.findall(r"\d+", importlib.metadata.version("litellm"))[:3])
MCP_IMPORT_BUG = LITELLM_VERSION < (1, 108, 4)

# Exactly one HTTP request per call: no LiteLLM wrapper retries, no OpenAI SDK retries.
NO_RETRIES = {"num_retries": 0, "max_retries": 0}
# What our server passes on every chat completion (see module docstring for _skip_mcp_handler).
CHAT_KW = {**NO_RETRIES, "_skip_mcp_handler": True}

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Local time in a timezone",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
        },
    },
]


@pytest.fixture(scope="module")
def fake():
    previous = litellm.suppress_debug_info
    litellm.suppress_debug_info = True
    with FakeLLM() as server:
        yield server
    litellm.suppress_debug_info = previous


@pytest.fixture(autouse=True)
def _fresh(fake):
    fake.reset()
    yield
    fake.reset()


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def chat(fake: FakeLLM, messages: list[dict], **kwargs):
    params = {"model": "gpt-4o-mini", "messages": messages, "api_base": fake.base_url, "api_key": "sk-fake"}
    return litellm.completion(**{**params, **CHAT_KW, **kwargs})


def stream_chat(fake: FakeLLM, messages: list[dict], **kwargs):
    return chat(fake, messages, stream=True, stream_options={"include_usage": True}, tools=TOOLS, **kwargs)


def collect(chunks) -> dict:
    """Reassemble a LiteLLM stream the way our run loop does."""
    out: dict = {"pieces": [], "calls": {}, "finish_reason": None, "usage": None, "chunks": []}
    for chunk in chunks:
        out["chunks"].append(chunk)
        if getattr(chunk, "usage", None):
            out["usage"] = chunk.usage
        for choice in chunk.choices:
            if choice.finish_reason:
                out["finish_reason"] = choice.finish_reason
            delta = choice.delta
            if delta.content:
                out["pieces"].append(delta.content)
            for tc in delta.tool_calls or []:
                slot = out["calls"].setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
                if tc.id:
                    slot["id"] = tc.id
                if tc.function and tc.function.name:
                    slot["name"] = tc.function.name
                if tc.function and tc.function.arguments:
                    slot["arguments"] += tc.function.arguments
    out["text"] = "".join(out["pieces"])
    return out


async def acollect(stream) -> dict:
    chunks = [chunk async for chunk in stream]
    return collect(chunks)


class _ImportSpy(importlib.abc.MetaPathFinder):
    """Records attempts to import `mcp` (or its submodules) without changing import behaviour."""

    def __init__(self):
        self.attempts: list[str] = []

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "mcp" or fullname.startswith("mcp."):
            self.attempts.append(fullname)
        return None


@pytest.fixture
def mcp_spy():
    spy = _ImportSpy()
    sys.meta_path.insert(0, spy)
    yield spy
    sys.meta_path.remove(spy)


# --------------------------------------------------------------------------- LiteLLM: chat completions


def test_stream_text_chunks_concatenate_and_usage_arrives(fake):
    reply = "Hello, world! How are you today?"
    fake.add_rule("hello", text=reply)

    out = collect(stream_chat(fake, user("hello there")))

    assert out["text"] == reply
    assert out["pieces"] == tokenize(reply)  # one chunk per token, nothing merged or lost
    assert out["finish_reason"] == "stop"
    assert out["usage"] is not None
    assert out["usage"].completion_tokens == len(tokenize(reply))
    assert out["usage"].prompt_tokens > 0
    assert out["usage"].total_tokens == out["usage"].prompt_tokens + out["usage"].completion_tokens
    rebuilt = litellm.stream_chunk_builder(out["chunks"], messages=user("hello there"))
    assert rebuilt.choices[0].message.content == reply


def test_stream_two_parallel_tool_calls_reassemble(fake):
    fake.add_rule(
        "weather",
        text="Let me check.",
        tool_calls=[
            {"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}},
            {"name": "get_time", "arguments": '{"tz": "Europe/Rome"}'},
        ],
    )

    out = collect(stream_chat(fake, user("weather in Paris and time in Rome?")))

    assert out["text"] == "Let me check."
    assert out["finish_reason"] == "tool_calls"
    calls = [out["calls"][i] for i in sorted(out["calls"])]
    assert [c["name"] for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris", "unit": "c"}
    assert json.loads(calls[1]["arguments"]) == {"tz": "Europe/Rome"}
    assert all(re.fullmatch(r"call_[0-9a-f]+", c["id"]) for c in calls)
    assert calls[0]["id"] != calls[1]["id"]
    assert out["usage"] is not None and out["usage"].completion_tokens > 0


def test_non_stream_text_and_tool_calls(fake):
    fake.add_rule("weather", tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}])

    plain = chat(fake, user("just say hi"))
    assert plain.choices[0].message.content == "Echo: just say hi"
    assert plain.choices[0].finish_reason == "stop"
    assert plain.usage.completion_tokens == len(tokenize("Echo: just say hi"))

    tooled = chat(fake, user("weather in Oslo"), tools=TOOLS)
    message = tooled.choices[0].message
    assert tooled.choices[0].finish_reason == "tool_calls"
    assert message.content is None
    assert len(message.tool_calls) == 1
    assert message.tool_calls[0].id.startswith("call_")
    assert message.tool_calls[0].function.name == "get_weather"
    assert json.loads(message.tool_calls[0].function.arguments) == {"city": "Oslo"}


def test_recorded_request_contains_tools_and_messages(fake):
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc", "content": "sunny"},
    ]
    fake.add_rule("sunny", text="It is sunny.")  # matched against the last user/tool message

    out = collect(stream_chat(fake, messages))

    assert out["text"] == "It is sunny."
    (body,) = fake.chat_requests()
    assert body["model"] == "gpt-4o-mini"
    assert body["tools"] == TOOLS
    # LiteLLM drops None-valued keys (the assistant's "content": None) but forwards everything else verbatim
    assert body["messages"] == [{k: v for k, v in m.items() if v is not None} for m in messages]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert "_skip_mcp_handler" not in body
    assert fake.requests[0]["headers"]["authorization"] == "Bearer sk-fake"


def test_acompletion_async_streaming(fake):
    fake.add_rule("async", text="Async works fine.", token_delay=0.001)

    async def run():
        stream = await litellm.acompletion(
            model="gpt-4o-mini",
            messages=user("async please"),
            api_base=fake.base_url,
            api_key="sk-fake",
            stream=True,
            stream_options={"include_usage": True},
            tools=TOOLS,
            **CHAT_KW,
        )
        return await acollect(stream)

    out = asyncio.run(run())
    assert out["text"] == "Async works fine."
    assert out["finish_reason"] == "stop"
    assert out["usage"] is not None and out["usage"].completion_tokens == len(tokenize("Async works fine."))


def test_max_tokens_truncates_with_finish_reason_length(fake):
    fake.add_rule("long", text="one two three four five six")

    response = chat(fake, user("long answer"), max_tokens=3)
    assert response.choices[0].message.content == "one two three"
    assert response.choices[0].finish_reason == "length"

    out = collect(stream_chat(fake, user("long answer"), max_tokens=2))
    assert out["text"] == "one two"
    assert out["finish_reason"] == "length"
    assert out["usage"].completion_tokens == 2


# --------------------------------------------------------------------------- LiteLLM: errors, no retries


@pytest.mark.parametrize("mode", ["sync-stream", "sync", "async-stream"])
def test_server_error_raises_once_without_retries(fake, mode):
    fake.add_rule("boom", error=(500, "The server had an error processing your request.", "server_error"))

    with pytest.raises(litellm.InternalServerError) as excinfo:
        if mode == "sync-stream":
            collect(stream_chat(fake, user("boom")))
        elif mode == "sync":
            chat(fake, user("boom"), tools=TOOLS)
        else:

            async def run():
                stream = await litellm.acompletion(
                    model="gpt-4o-mini",
                    messages=user("boom"),
                    api_base=fake.base_url,
                    api_key="sk-fake",
                    stream=True,
                    tools=TOOLS,
                    **CHAT_KW,
                )
                return await acollect(stream)

            asyncio.run(run())

    assert isinstance(excinfo.value, openai.APIError)
    assert excinfo.value.status_code == 500
    assert len(fake.chat_requests()) == 1  # num_retries=0 + max_retries=0: no hidden retries


def test_rate_limit_raises_rate_limit_error_once(fake):
    fake.add_rule("busy", error=(429, "Rate limit reached for gpt-4o-mini.", "requests"))

    with pytest.raises(litellm.RateLimitError) as excinfo:
        collect(stream_chat(fake, user("busy?")))

    assert excinfo.value.status_code == 429
    assert len(fake.chat_requests()) == 1


def test_context_length_error_maps_to_context_window_exceeded(fake):
    message = "This model's maximum context length is 128000 tokens. Your messages resulted in 200000 tokens."
    fake.add_rule("huge", error=(400, message, "context_length_exceeded"))

    with pytest.raises(litellm.ContextWindowExceededError):
        chat(fake, user("huge prompt"))
    assert len(fake.chat_requests()) == 1


def test_error_rule_with_times_then_recovers(fake):
    fake.add_rule("flaky", error=(500, "transient", "server_error"), times=1)

    with pytest.raises(litellm.InternalServerError):
        chat(fake, user("flaky"))
    assert chat(fake, user("flaky")).choices[0].message.content == "Echo: flaky"
    assert len(fake.chat_requests()) == 2


# --------------------------------------------------------------------------- LiteLLM: embeddings


def _cos(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_embeddings_dimension_and_similarity(fake):
    texts = ["the cat sat on the mat", "a cat sat on a mat", "quarterly revenue grew in europe"]

    response = litellm.embedding(
        model="text-embedding-3-small", input=texts, api_base=fake.base_url, api_key="sk-fake", **NO_RETRIES
    )

    vectors = [item["embedding"] for item in response.data]
    assert [len(v) for v in vectors] == [1536] * 3
    assert all(math.isclose(math.sqrt(_cos(v, v)), 1.0, rel_tol=1e-6) for v in vectors)
    assert _cos(vectors[0], vectors[1]) > _cos(vectors[0], vectors[2]) + 0.2
    assert response.usage.prompt_tokens > 0
    (body,) = fake.embedding_requests()
    assert body["input"] == texts

    small = litellm.embedding(
        model="text-embedding-3-small", input="hello", dimensions=64, api_base=fake.base_url, api_key="sk"
    )
    assert len(small.data[0]["embedding"]) == 64


def test_embedding_error_injection_single_request(fake, monkeypatch):
    # Embeddings turn max_retries=0 into DEFAULT_MAX_RETRIES (2); only the module default disables retries.
    monkeypatch.setattr(litellm, "DEFAULT_MAX_RETRIES", 0)
    fake.embedding_error = (500, "embedding backend down")

    kwargs = {"model": "text-embedding-3-small", "input": ["x"], "api_base": fake.base_url, "api_key": "sk"}
    with pytest.raises(litellm.InternalServerError):
        litellm.embedding(**kwargs, **NO_RETRIES)
    assert len(fake.embedding_requests()) == 1

    fake.embedding_error = (429, "slow down")
    with pytest.raises(litellm.RateLimitError):
        litellm.embedding(**kwargs, **NO_RETRIES)
    assert len(fake.embedding_requests()) == 2


# --------------------------------------------------------------------------- LiteLLM: MCP import, env config


def test_tools_path_does_not_import_mcp(fake, mcp_spy):
    fake.add_rule("weather", tool_calls=[{"name": "get_weather", "arguments": {"city": "Lima"}}])

    out = collect(stream_chat(fake, user("weather in Lima")))
    chat(fake, user("weather in Lima"), tools=TOOLS)

    assert out["calls"][0]["name"] == "get_weather"
    assert mcp_spy.attempts == []
    assert "mcp" not in sys.modules


@pytest.mark.xfail(
    MCP_IMPORT_BUG,
    reason="litellm < 1.108.4 imports `mcp` whenever tools are passed; we pass _skip_mcp_handler=True",
    strict=True,
)
def test_tools_without_skip_flag_do_not_import_mcp(fake, mcp_spy):
    response = litellm.completion(
        model="gpt-4o-mini",
        messages=user("hi"),
        tools=TOOLS,
        api_base=fake.base_url,
        api_key="sk-fake",
        **NO_RETRIES,
    )
    assert response.choices[0].message.content == "Echo: hi"
    assert mcp_spy.attempts == []


def test_environment_variable_configuration(fake, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)  # would take precedence over OPENAI_API_BASE
    monkeypatch.setattr(litellm, "api_base", None)
    monkeypatch.setattr(litellm, "api_key", None)
    monkeypatch.setenv("OPENAI_API_BASE", fake.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    fake.add_rule("env", text="configured by env")

    response = litellm.completion(model="gpt-4o-mini", messages=user("env check"), **CHAT_KW)
    out = collect(
        litellm.completion(
            model="gpt-4o-mini",
            messages=user("env check"),
            stream=True,
            stream_options={"include_usage": True},
            tools=TOOLS,
            **CHAT_KW,
        )
    )
    embedded = litellm.embedding(model="text-embedding-3-small", input=["env"], **NO_RETRIES)

    assert response.choices[0].message.content == "configured by env"
    assert out["text"] == "configured by env"
    assert len(embedded.data[0]["embedding"]) == fake.embedding_dim
    assert [r["path"] for r in fake.requests] == ["/v1/chat/completions"] * 2 + ["/v1/embeddings"]
    assert {r["headers"]["authorization"] for r in fake.requests} == {"Bearer sk-from-env"}


# --------------------------------------------------------------------------- the fake itself (raw HTTP)


def _sse_events(response: httpx.Response) -> list:
    raw = response.read().decode()
    assert raw.endswith("data: [DONE]\n\n")
    blocks = raw.split("\n\n")
    assert blocks[-1] == ""
    events = []
    for block in blocks[:-1]:
        assert block.startswith("data: ") and "\n" not in block
        payload = block[len("data: ") :]
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def test_raw_stream_wire_format(fake):
    fake.add_rule("go", text="Hi there", tool_calls=[{"name": "get_time", "arguments": {"tz": "UTC"}}])
    body = {
        "model": "gpt-4o-mini",
        "messages": user("go"),
        "stream": True,
        "stream_options": {"include_usage": True},
    }

    with httpx.Client(timeout=5) as client:
        response = client.post(f"{fake.base_url}/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _sse_events(response)

    assert events[-1] == "[DONE]"
    usage_event = events[-2]
    assert usage_event["choices"] == [] and usage_event["usage"]["completion_tokens"] > 0
    chunks = events[:-2]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert [d["content"] for d in deltas[1:3]] == ["Hi", " there"]
    first_call = deltas[3]["tool_calls"][0]
    assert first_call["index"] == 0 and first_call["id"].startswith("call_")
    assert first_call["type"] == "function"
    assert first_call["function"] == {"name": "get_time", "arguments": ""}
    fragments = [d["tool_calls"][0] for d in deltas[4:-1]]
    assert len(fragments) > 1
    assert all(set(f) == {"index", "function"} and set(f["function"]) == {"arguments"} for f in fragments)
    assert json.loads("".join(f["function"]["arguments"] for f in fragments)) == {"tz": "UTC"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls" and deltas[-1] == {}
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])


def test_unknown_path_404_envelope_and_models(fake):
    with httpx.Client(timeout=5) as client:
        missing = client.post(f"{fake.base_url}/assistants", json={})
        models = client.get(f"{fake.base_url}/models")
        bad = client.post(
            f"{fake.base_url}/chat/completions", content=b"{", headers={"content-type": "application/json"}
        )

    assert missing.status_code == 404
    assert set(missing.json()["error"]) == {"message", "type", "param", "code"}
    assert models.status_code == 200 and "gpt-4o-mini" in {m["id"] for m in models.json()["data"]}
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    assert [r["path"] for r in fake.requests] == ["/v1/assistants", "/v1/models", "/v1/chat/completions"]


def test_rule_matching_order_kinds_and_default_echo(fake):
    fake.add_rule("alpha", text="generic alpha")
    fake.add_rule(re.compile(r"^alpha \d+$"), text="numbered alpha")  # newer rules win
    fake.add_rule(lambda body: body.get("model") == "gpt-4o", text="model rule")
    fake.add_rule("once", reply="first time", times=1)
    fake.add_rule("dyn", reply=lambda body: Reply(text=f"{len(body['messages'])} messages"))

    def ask(text, model="gpt-4o-mini"):
        return chat(fake, user(text), model=model).choices[0].message.content

    assert ask("alpha 42") == "numbered alpha"
    assert ask("say alpha") == "generic alpha"
    assert ask("anything", model="gpt-4o") == "model rule"
    assert ask("once") == "first time"
    assert ask("once") == "Echo: once"
    assert ask("dyn") == "1 messages"
    parts = [
        {"role": "user", "content": [{"type": "text", "text": "multi"}, {"type": "text", "text": "part"}]}
    ]
    assert chat(fake, parts).choices[0].message.content == "Echo: multi\npart"
    # only the LAST user/tool message is matched
    history = [*user("alpha 1"), {"role": "assistant", "content": "ok"}, *user("unrelated")]
    assert chat(fake, history).choices[0].message.content == "Echo: unrelated"


def test_openai_sdk_base64_embeddings_match_local_function(fake):
    client = openai.OpenAI(base_url=fake.base_url, api_key="sk-fake", max_retries=0)
    result = client.embeddings.create(model="text-embedding-3-small", input="Hello world")  # SDK asks base64

    assert fake.embedding_requests()[0]["encoding_format"] == "base64"
    expected = embed_text("Hello world", 1536)
    got = result.data[0].embedding
    assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(got, expected, strict=True))
    assert [m.id for m in client.models.list()][:1] == ["gpt-4o-mini"]


def test_over_100_concurrent_streams(fake):
    n = 120

    all_in = threading.Event()

    def gated_reply(body):
        # Hold every request until all n are in flight at once (bounded), so the overlap is guaranteed.
        if fake.peak_in_flight >= n:
            all_in.set()
        all_in.wait(timeout=5)
        return Reply(text=f"reply number {body['messages'][-1]['content']}", token_delay=0.002)

    fake.add_rule(None, reply=gated_reply)

    async def one(client: httpx.AsyncClient, i: int) -> str:
        body = {"model": "gpt-4o-mini", "messages": user(str(i)), "stream": True}
        pieces = []
        async with client.stream("POST", f"{fake.base_url}/chat/completions", json=body) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    delta = json.loads(line[6:])["choices"][0]["delta"]
                    pieces.append(delta.get("content") or "")
        return "".join(pieces)

    async def run():
        limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
        async with httpx.AsyncClient(timeout=10, limits=limits) as client:
            return await asyncio.gather(*(one(client, i) for i in range(n)))

    started = time.monotonic()
    texts = asyncio.run(run())
    elapsed = time.monotonic() - started

    assert texts == [f"reply number {i}" for i in range(n)]
    assert fake.peak_in_flight == n
    assert elapsed < 5.0  # the gate would have timed out if the server serialised requests


def test_client_disconnect_aborts_hanging_stream(fake):
    fake.add_rule("hang", text="first then never", hang=True)
    body = {"model": "gpt-4o-mini", "messages": user("hang"), "stream": True}

    with httpx.Client(timeout=5) as client:
        with client.stream("POST", f"{fake.base_url}/chat/completions", json=body) as response:
            lines = response.iter_lines()
            contents = []
            for line in lines:
                if line.startswith("data: "):
                    contents.append(json.loads(line[6:])["choices"][0]["delta"].get("content"))
                if len(contents) == 2:
                    break
        assert contents == ["", "first"]
        started = time.monotonic()
        # closing the response (and client) drops the connection; the fake notices while hanging
    deadline = time.monotonic() + 3
    while fake.aborted_count == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.aborted_count == 1
    assert fake.requests[-1]["aborted"] is True
    assert time.monotonic() - started < 2


def test_standalone_cli_prints_base_url_and_serves():
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_llm", "--port", "0"],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", base_url)
        body = {"model": "m", "messages": user("cli")}
        response = httpx.post(f"{base_url}/chat/completions", json=body, timeout=5)
        assert response.json()["choices"][0]["message"]["content"] == "Echo: cli"
    finally:
        proc.terminate()
        proc.wait(timeout=5)
    assert proc.returncode == 0
