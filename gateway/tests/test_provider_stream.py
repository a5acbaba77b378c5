"""A streamed chat completion read from the provider over HTTP (the fake LLM): OpenAI-SDK-backed providers are read
without LiteLLM's per-chunk wrapper (``providers.sdk_stream``), others through it; both give the client the same
frames, and an answer the provider cuts short is an error chunk without ``[DONE]``, never a success."""

from __future__ import annotations

import asyncio
import json

import pytest

from assistants_project import providers
from gateway import provider
from gateway.sse import DONE, chat_events
from tests.fake_llm import FakeLLM

KEY = "sk-gateway-unit-key-0123456789"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


@pytest.fixture(scope="module")
def fake_server():
    with FakeLLM() as fake:
        yield fake


@pytest.fixture
def fake(fake_server, monkeypatch, settings):
    fake_server.reset()
    monkeypatch.setenv("OPENAI_API_BASE", fake_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    settings.LLM_TIMEOUT_SECONDS = 5
    return fake_server


async def frames(text: str, *, include_usage: bool = True) -> list[bytes]:
    """What the gateway streams to its client for one question, as views.chat_completions streams it."""
    kwargs = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": text}], "stream": True,
              "tools": TOOLS, "stream_options": {"include_usage": include_usage}}
    stream = provider.chunks(await provider.chat(kwargs, [KEY]), [KEY])
    try:
        first = await anext(stream)
    except provider.ProviderError as exc:
        return [f"envelope {exc.status}".encode()]
    return [part async for part in chat_events(stream, first, model="alias", include_usage=include_usage,
                                                secrets=[KEY])]


def comparable(parts: list[bytes]) -> list:
    """The frames without what differs per answer (ids, timestamps), usage as its counts (LiteLLM's wrapper adds
    zero details the provider did not send)."""
    out: list = []
    for part in parts:
        if not part.startswith(b"data: {"):
            out.append(part)
            continue
        payload = json.loads(part[len(b"data: "):])
        payload.pop("id", None)
        payload.pop("created", None)
        if payload.get("usage"):
            payload["usage"] = {k: payload["usage"][k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
        for choice in payload.get("choices") or []:
            for call in choice["delta"].get("tool_calls") or []:
                call["id"] = bool(call.get("id"))
        out.append(payload)
    return out


def test_the_direct_reading_gives_the_client_what_litellms_wrapper_gives(fake, monkeypatch):
    fake.add_rule("weather", tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    fake.add_rule("answer", text="one two three four")

    async def both() -> tuple[list, list]:
        direct = [comparable(await frames(text)) for text in ("answer", "weather")]
        monkeypatch.setattr(providers, "sdk_stream", lambda stream: None)
        return direct, [comparable(await frames(text)) for text in ("answer", "weather")]

    direct, wrapped = asyncio.run(both())
    assert direct == wrapped
    text, calls = direct
    assert text[-1] == DONE and calls[-1] == DONE
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in text[:-1] if c["choices"]) == \
        "one two three four"
    assert text[-2]["usage"]["completion_tokens"] > 0 and text[-2]["choices"] == []
    finish = [c["choices"][0]["finish_reason"] for c in calls[:-1] if c["choices"]]
    assert finish[-1] == "tool_calls"
    call = next(c["choices"][0]["delta"]["tool_calls"][0] for c in calls[:-1]
                if c["choices"] and c["choices"][0]["delta"].get("tool_calls"))
    assert call["function"]["name"] == "get_weather" and call["id"] is True


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize("fault", ["cut", "reset"])
def test_an_answer_cut_short_is_an_error_chunk_without_done(fake, monkeypatch, fault, direct):
    fake.add_rule("answer", text="one two three four five six seven eight", fault=fault)
    if not direct:
        monkeypatch.setattr(providers, "sdk_stream", lambda stream: None)
    out = asyncio.run(frames("answer"))
    assert DONE not in out
    error = json.loads(out[-1][len(b"data: "):])["error"]
    assert error["type"] == "server_error" and KEY not in error["message"]
    streamed = "".join(json.loads(part[len(b"data: "):])["choices"][0]["delta"].get("content", "")
                       for part in out[:-1] if b'"choices":[{' in part)
    assert streamed and "eight" not in streamed  # half an answer went out, then the error

