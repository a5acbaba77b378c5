"""The gateway (/v1/chat/completions, /v1/embeddings, /v1/models, /v1/moderations) through the official Python
SDK, sync and async, against the live server and the fake provider; shapes checked against OpenAI's spec."""

import asyncio
import base64
import json
import shutil
import struct
import subprocess
import time
from pathlib import Path

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.fake_llm import embed_text
from tests.schema import assert_schema

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent

PROVIDER_KEY = "sk-fake-provider-key"  # the server's OPENAI_API_KEY in the live stack
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def gateway_schema(obj: dict, name: str) -> None:
    assert_schema(obj, name, spec_name="gateway")


@pytest.fixture
def client(live):
    return live.client()


def sse_payloads(body: str) -> list:
    """The data lines of an SSE body, JSON-decoded except [DONE]."""
    out = []
    for block in body.split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data: "):
                data = line[len("data: "):]
                out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_chat_completion_plain(live, client):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}])
    gateway_schema(raw.http_response.json(), "CreateChatCompletionResponse")
    assert raw.headers["x-request-id"].startswith("req_")
    completion = raw.parse()
    assert completion.object == "chat.completion" and completion.model == "gpt-4o-mini"
    assert completion.choices[0].message.content == "Echo: hello"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens > 0
    sent = live.fake.chat_requests()[-1]
    assert sent["model"] == "gpt-4o-mini" and sent["messages"][0] == {"role": "system", "content": "be brief"}


def test_chat_completion_alias_and_parameters_reach_the_provider(live, client):
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
    completion = client.chat.completions.create(
        model="house-model", messages=[{"role": "user", "content": [{"type": "text", "text": "describe"}, image]}],
        top_p=0.5, stop=["\n\n"], seed=7, max_completion_tokens=50, n=1, logprobs=True, top_logprobs=2,
        frequency_penalty=0.1, presence_penalty=0.2, user="u-1", store=True, metadata={"k": "v"})
    assert completion.model == "house-model"  # the alias is echoed, as runs do
    sent = live.fake.chat_requests()[-1]
    assert sent["model"] == "gpt-4o-mini" and sent["temperature"] == 0.25  # the alias's target and parameter
    assert sent["messages"][0]["content"][1] == image
    for name, value in (("top_p", 0.5), ("stop", ["\n\n"]), ("seed", 7), ("max_completion_tokens", 50),
                        ("n", 1), ("logprobs", True), ("top_logprobs", 2), ("frequency_penalty", 0.1),
                        ("presence_penalty", 0.2), ("user", "u-1")):
        assert sent[name] == value, name
    assert "store" not in sent and "metadata" not in sent  # nothing is stored, here or at the provider
    # the request's own temperature wins over the alias's
    client.chat.completions.create(model="house-model", messages=[{"role": "user", "content": "x"}], temperature=1)
    assert live.fake.chat_requests()[-1]["temperature"] == 1


def test_chat_completion_streamed_with_usage(live, client):
    live.fake.add_rule("count", text="one two three")
    chunks = list(client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "count"}], stream=True,
        stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3
    assert all(c.usage is None for c in chunks[:-1])
    assert live.fake.chat_requests()[-1]["stream_options"] == {"include_usage": True}

    # the raw stream: every chunk matches the spec and the stream ends with [DONE]
    with live.http() as http:
        response = http.post("/chat/completions", json={"model": "gpt-4o-mini", "stream": True,
                                                        "messages": [{"role": "user", "content": "count"}]})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert response.text.endswith("data: [DONE]\n\n")
    payloads = sse_payloads(response.text)
    assert payloads[-1] == "[DONE]"
    for payload in payloads[:-1]:
        gateway_schema(payload, "CreateChatCompletionStreamResponse")
        assert "usage" not in payload  # not asked for


def test_chat_completion_with_tools(live, client):
    live.fake.add_rule("weather", tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    tool_choice = {"type": "function", "function": {"name": "get_weather"}}
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "weather in Paris?"}], tools=[WEATHER],
        tool_choice=tool_choice, parallel_tool_calls=False)
    gateway_schema(raw.http_response.json(), "CreateChatCompletionResponse")
    completion = raw.parse()
    call = completion.choices[0].message.tool_calls[0]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    sent = live.fake.chat_requests()[-1]
    assert sent["tools"] == [WEATHER] and sent["tool_choice"] == tool_choice and sent["parallel_tool_calls"] is False

    # the tool's answer goes back in the next request; streamed tool-call deltas assemble to the same call
    follow = client.chat.completions.create(model="gpt-4o-mini", tools=[WEATHER], messages=[
        {"role": "user", "content": "weather in Paris?"}, completion.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"}])
    assert follow.choices[0].message.content == "Echo: weather in Paris?"
    assert live.fake.chat_requests()[-1]["messages"][-1] == {"role": "tool", "tool_call_id": call.id,
                                                             "content": "sunny"}
    arguments, names = "", []
    for chunk in client.chat.completions.create(model="gpt-4o-mini", tools=[WEATHER], stream=True,
                                                messages=[{"role": "user", "content": "weather again"}]):
        for delta_call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            names += [delta_call.function.name] if delta_call.function and delta_call.function.name else []
            arguments += (delta_call.function.arguments or "") if delta_call.function else ""
    assert names == ["get_weather"] and json.loads(arguments) == {"city": "Paris"}


class Weather(BaseModel):
    city: str
    celsius: int


def test_chat_completion_json_schema_and_json_object(live, client):
    live.fake.add_rule("structured", text='{"city": "Lima", "celsius": 19}')
    parsed = client.chat.completions.parse(model="gpt-4o-mini", response_format=Weather,
                                           messages=[{"role": "user", "content": "structured please"}])
    assert parsed.choices[0].message.parsed == Weather(city="Lima", celsius=19)
    sent = live.fake.chat_requests()[-1]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "Weather"
    assert sent["json_schema"]["schema"]["properties"]["celsius"] == {"title": "Celsius", "type": "integer"}

    plain = client.chat.completions.create(model="gpt-4o-mini", response_format={"type": "json_object"},
                                           messages=[{"role": "user", "content": "structured json"}])
    assert json.loads(plain.choices[0].message.content) == {"city": "Lima", "celsius": 19}
    assert live.fake.chat_requests()[-1]["response_format"] == {"type": "json_object"}


def test_async_sdk_chat_stream_and_embeddings(live):
    async def scenario():
        async with live.async_client() as aclient:
            plain = await aclient.chat.completions.create(model="gpt-4o-mini",
                                                          messages=[{"role": "user", "content": "async hi"}])
            stream = await aclient.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "async stream"}], stream=True,
                stream_options={"include_usage": True})
            text, usage = "", None
            async for chunk in stream:
                text += (chunk.choices[0].delta.content or "") if chunk.choices else ""
                usage = chunk.usage or usage
            embedded = await aclient.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
            many = await asyncio.gather(*(aclient.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"n{i}"}]) for i in range(10)))
            return plain, text, usage, embedded, many

    plain, text, usage, embedded, many = asyncio.run(scenario())
    assert plain.choices[0].message.content == "Echo: async hi"
    assert text == "Echo: async stream" and usage.total_tokens > 0
    assert [round(x, 5) for x in embedded.data[1].embedding] == [round(x, 5) for x in embed_text("beta", 1536)]
    assert sorted(c.choices[0].message.content for c in many) == sorted(f"Echo: n{i}" for i in range(10))


def test_embeddings_float_and_base64(live, client):
    # The SDK asks for base64 by default and decodes it
    default = client.embeddings.create(model="text-embedding-3-small", input="hello world")
    assert live.fake.embedding_requests()[-1]["encoding_format"] == "base64"
    assert [round(x, 5) for x in default.data[0].embedding] == [round(x, 5) for x in embed_text("hello world", 1536)]

    with live.http() as http:
        floats = http.post("/embeddings", json={"model": "text-embedding-3-small", "input": ["a cat", "a dog"],
                                                "encoding_format": "float", "dimensions": 8}).json()
        packed = http.post("/embeddings", json={"model": "text-embedding-3-small", "input": "a cat",
                                                "encoding_format": "base64", "dimensions": 8}).json()
        tokens = http.post("/embeddings", json={"model": "text-embedding-3-small", "input": [[1, 2, 3]],
                                                "dimensions": 4}).json()
    gateway_schema(floats, "CreateEmbeddingResponse")
    # the spec types `embedding` as an array only; the base64 answer matches it once decoded
    decoded = struct.unpack("<8f", base64.b64decode(packed["data"][0]["embedding"]))
    gateway_schema({**packed, "data": [{**packed["data"][0], "embedding": list(decoded)}]}, "CreateEmbeddingResponse")
    assert floats["model"] == "text-embedding-3-small" and [d["index"] for d in floats["data"]] == [0, 1]
    assert floats["data"][0]["embedding"] == pytest.approx(embed_text("a cat", 8), abs=1e-6)
    assert live.fake.embedding_requests()[-3]["dimensions"] == 8
    assert list(decoded) == pytest.approx(embed_text("a cat", 8), abs=1e-6)
    assert floats["usage"]["prompt_tokens"] > 0
    assert live.fake.embedding_requests()[-1]["input"] == [[1, 2, 3]] and len(tokens["data"][0]["embedding"]) == 4


def test_models_list_and_retrieve(live, client):
    raw = client.models.with_raw_response.list()
    gateway_schema(raw.http_response.json(), "ListModelsResponse")
    ids = [m.id for m in raw.parse()]
    assert ids == ["house-model", "responses-model", "gpt-4o-mini", "text-embedding-3-small",
                   "omni-moderation-latest"]
    model = client.models.retrieve("house-model")
    gateway_schema(model.model_dump(), "Model")
    assert model.id == "house-model" and model.owned_by == "openai"
    with pytest.raises(openai.NotFoundError) as excinfo:
        client.models.retrieve("not-a-model")
    assert excinfo.value.body["code"] == "model_not_found"


def test_moderations(live, client):
    raw = client.moderations.with_raw_response.create(input=["I will kill the process", "hello"])
    gateway_schema(raw.http_response.json(), "CreateModerationResponse")
    result = raw.parse()
    assert [r.flagged for r in result.results] == [True, False] and result.results[0].categories.violence
    assert live.fake.requests[-1]["path"] == "/v1/moderations"
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.moderations.create(input="x", model="anthropic/claude-3-5-haiku-latest")
    assert excinfo.value.body["param"] == "model" and "moderations" in excinfo.value.body["message"]


@pytest.mark.parametrize("status,exc_class", [
    (400, openai.BadRequestError), (401, openai.AuthenticationError), (404, openai.NotFoundError),
    (429, openai.RateLimitError), (500, openai.InternalServerError), (503, openai.InternalServerError)])
def test_provider_errors_keep_their_status(live, client, status, exc_class):
    live.fake.add_rule("fail", error=(status, f"provider says {status}"))
    for stream in (False, True):
        with pytest.raises(exc_class) as excinfo:
            response = client.chat.completions.create(model="gpt-4o-mini", stream=stream,
                                                      messages=[{"role": "user", "content": "fail now"}])
            list(response) if stream else None
        assert excinfo.value.status_code == status
        gateway_schema(excinfo.value.response.json(), "ErrorResponse")
        assert f"provider says {status}" in excinfo.value.body["message"]
    live.fake.embedding_error = (status, "embeddings down")
    with pytest.raises(exc_class):
        client.embeddings.create(model="text-embedding-3-small", input="x")


def test_stream_closes_the_provider_stream_when_the_client_goes_away(live):
    live.fake.add_rule("hang", text="first then forever", hang=True)
    with live.http() as http, http.stream("POST", "/chat/completions", json={
            "model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hang"}]}) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if '"content":"first"' in line:
                break
    # the gateway closed its provider connection: the fake saw its client go away long before hang_seconds
    requests = live.fake.wait_for_requests(1, path="/v1/chat/completions")
    end = time.monotonic() + 10
    while not requests[-1]["aborted"] and time.monotonic() < end:
        time.sleep(0.05)
    assert requests[-1]["aborted"]


def test_bad_requests_name_the_parameter(live, client):
    with live.http() as http:
        cases = [({"messages": [{"role": "user", "content": "x"}]}, "model"),
                 ({"model": "gpt-4o-mini"}, "messages"),
                 ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "bogus": 1}, "bogus"),
                 ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "n": 0}, "n"),
                 ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}],
                   "stream_options": {"include_usage": True}}, "stream_options")]
        for body, param in cases:
            response = http.post("/chat/completions", json=body)
            assert response.status_code == 400 and response.json()["error"]["param"] == param, body
        response = http.post("/embeddings", json={"model": "text-embedding-3-small", "input": "x",
                                                  "encoding_format": "hex"})
        assert response.status_code == 400 and response.json()["error"]["param"] == "encoding_format"
        # nulls are "not provided" (LiteLLM's client sends them)
        response = http.post("/chat/completions", json={"model": "gpt-4o-mini", "temperature": None, "tools": None,
                                                        "messages": [{"role": "user", "content": "nulls"}]})
        assert response.status_code == 200 and "temperature" not in live.fake.chat_requests()[-1]
        stored = http.get("/chat/completions/chatcmpl-abc")
        assert stored.status_code == 404 and "does not store" in stored.json()["error"]["message"]
        assert http.get("/chat/completions").status_code == 404
    anonymous = httpx.post(f"{live.base_url}/chat/completions", json={"model": "gpt-4o-mini", "messages": []})
    assert anonymous.status_code == 401 and anonymous.json()["error"]["type"] == "invalid_request_error"
    wrong = httpx.get(f"{live.base_url}/models", headers={"Authorization": "Bearer sk-wrong-key-000000"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"


USER_KEY = "sk-user-own-provider-key-42"


def test_request_provider_key_is_used_and_never_shown(live, client):
    headers = {"api-key": USER_KEY, "LLM-PARAM-temperature": "0.5"}
    completion = client.chat.completions.create(model="gpt-4o-mini", extra_headers=headers,
                                                messages=[{"role": "user", "content": "byok"}])
    assert completion.choices[0].message.content == "Echo: byok"
    assert live.fake.credentials_used("/v1/chat/completions") == [USER_KEY]
    assert live.fake.chat_requests()[-1]["temperature"] == 0.5
    client.embeddings.create(model="text-embedding-3-small", input="x", extra_headers={"api-key": USER_KEY})
    list(client.chat.completions.create(model="gpt-4o-mini", stream=True, extra_headers=headers,
                                        messages=[{"role": "user", "content": "byok stream"}]))
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "server key"}])
    assert live.fake.credentials_used("/v1/chat/completions") == [USER_KEY, USER_KEY, PROVIDER_KEY]
    assert live.fake.credentials_used("/v1/embeddings") == [USER_KEY]

    # a provider that echoes the refused key: the answer masks it
    live.fake.add_rule("echo key", error=(401, f"Incorrect API key provided: {USER_KEY}."))
    with pytest.raises(openai.AuthenticationError) as excinfo:
        client.chat.completions.create(model="gpt-4o-mini", extra_headers=headers,
                                       messages=[{"role": "user", "content": "echo key"}])
    assert USER_KEY not in excinfo.value.response.text and "Incorrect API key" in excinfo.value.body["message"]
    assert USER_KEY not in live.log() and PROVIDER_KEY not in live.log()


@pytest.mark.parametrize("header,value", [("LLM-PARAM-api-base", "http://169.254.169.254/latest"),
                                          ("LLM-PARAM-base-url", "http://evil.example"),
                                          ("EMBEDDING-PARAM-api-base", "http://evil.example"),
                                          ("LLM-PARAM-aws-region-name", "http://evil.example"),
                                          ("LLM-PARAM-vertex-credentials", "/etc/passwd")])
def test_address_parameters_in_headers_are_refused(live, client, header, value):
    with pytest.raises(openai.BadRequestError) as excinfo:
        if header.startswith("EMBEDDING"):
            client.embeddings.create(model="text-embedding-3-small", input="x", extra_headers={header: value})
        else:
            client.chat.completions.create(model="gpt-4o-mini", extra_headers={header: value},
                                           messages=[{"role": "user", "content": "x"}])
    assert excinfo.value.body["param"] == header and header in excinfo.value.body["message"]
    assert live.fake.requests == []  # nothing reached any provider


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_sdk(live):
    live.fake.add_rule("node count", text="one two three")
    live.fake.add_rule("node weather", tool_calls=[{"name": "get_weather", "arguments": {"city": "Quito"}}])
    live.fake.add_rule("node structured", text='{"city": "Quito"}')
    live.fake.add_rule("node fail", error=(429, "slow down, node"))
    assert (ROOT / "node_modules" / "openai").exists(), "run `npm install` (make test does)"
    result = subprocess.run(["node", str(ROOT / "tests" / "node" / "gateway.mjs")], capture_output=True, text=True,
                            timeout=120, cwd=ROOT, env={"PATH": "/usr/bin:/bin:/usr/local/bin",
                                                        "BASE_URL": live.base_url, "API_KEY": live.api_key})
    assert result.returncode == 0, result.stderr + result.stdout
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["plain"]["content"] == "Echo: node hello" and out["plain"]["object"] == "chat.completion"
    assert out["stream"]["text"] == "one two three" and out["stream"]["usage"]["completion_tokens"] == 3
    assert out["tools"]["finish"] == "tool_calls" and json.loads(out["tools"]["call"]["arguments"]) == {"city": "Quito"}
    assert live.fake.chat_requests()[2]["tool_choice"] == "required"
    assert out["jsonSchema"] == {"city": "Quito"}
    assert live.fake.chat_requests()[3]["response_format"]["json_schema"]["name"] == "place"
    assert out["embeddings"]["float"] == pytest.approx(embed_text("node vector", 8), abs=1e-6)
    assert out["embeddings"]["defaultDecoded"] == pytest.approx(embed_text("node vector", 8), abs=1e-6)
    assert live.fake.embedding_requests()[-1]["encoding_format"] == "base64"  # the SDK's default, decoded by it
    assert out["models"] == {"ids": ["house-model", "responses-model", "gpt-4o-mini", "text-embedding-3-small",
                                     "omni-moderation-latest"], "retrieved": "house-model"}
    assert out["error"] == {"status": 429, "name": "RateLimitError", "message": "slow down, node"}


def test_gateway_requests_carry_request_ids_like_the_rest_of_the_api(live):
    """The gateway's fast path answers with the same request id handling as every other endpoint."""
    with live.http() as http:
        given = http.post("/chat/completions", headers={"X-Request-ID": "req_from_the_client_42"},
                          json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        assert given.status_code == 200 and given.headers["x-request-id"] == "req_from_the_client_42"
        made = http.get("/models")
        assert made.status_code == 200 and made.headers["x-request-id"].startswith("req_")
        refused = http.get("/models", headers={"Authorization": "Bearer sk-wrong"})
        assert refused.status_code == 401 and refused.headers["x-request-id"].startswith("req_")
