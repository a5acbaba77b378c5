"""The provider boundary under faults (runs/llm.py, the shared retry policy, secret scrubbing), against the fake
LLM over HTTP: a bad ending is an error, never a success; credentials are not retried; streams are closed."""

from __future__ import annotations

import gc
import time

import pytest

from assistants_project import providers
from runs import heartbeat, llm
from tests.fake_llm import FakeLLM

KEY = "sk-unit-provider-key-0123456789"


@pytest.fixture(scope="module")
def fake_server():
    with FakeLLM() as fake:
        yield fake


@pytest.fixture
def fake(fake_server, monkeypatch, settings):
    fake_server.reset()
    fake_server.hang_seconds = 5
    monkeypatch.setenv("OPENAI_API_BASE", fake_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    settings.LLM_NUM_RETRIES = 2
    settings.LLM_RETRY_BACKOFF_SECONDS = 0.01
    settings.LLM_TIMEOUT_SECONDS = 5
    return fake_server


def chat(text: str) -> list:
    return list(llm.stream_chat(model="gpt-4o-mini", messages=[{"role": "user", "content": text}]))


def test_a_normal_stream_ends_with_its_finish(fake):
    out = chat("hello there")
    assert "".join(d.text for d in out if isinstance(d, llm.TextDelta)) == "Echo: hello there"
    assert out[-1].reason == "stop"


@pytest.mark.parametrize("fault", ["cut", "non_json"])
def test_a_stream_without_finish_reason_is_a_server_error_not_a_success(fake, fault):
    fake.add_rule("answer", text="one two three four five six seven eight", fault=fault)
    with pytest.raises(llm.ModelError) as caught:
        chat("answer")
    assert caught.value.code == "server_error" and not caught.value.transient
    assert "finish reason" in caught.value.message
    assert len(fake.chat_requests()) == 1  # half an answer is not retried (its text was streamed)


def test_a_stream_cut_after_its_finish_reason_is_complete(fake):
    fake.add_rule("answer", text="one two three", fault="cut_after_finish")
    out = chat("answer")
    assert "".join(d.text for d in out if isinstance(d, llm.TextDelta)) == "one two three"
    assert out[-1].reason == "stop"


def test_a_connection_reset_mid_stream_is_a_server_error(fake):
    fake.add_rule("answer", text="one two three four five six", fault="reset")
    with pytest.raises(llm.ModelError) as caught:
        chat("answer")
    assert caught.value.code == "server_error"


@pytest.mark.parametrize(("status", "code"), [(429, "rate_limit_exceeded"), (500, "server_error"),
                                              (503, "server_error")])
def test_transient_errors_are_retried_by_the_policy_then_reported(fake, status, code):
    fake.add_rule("x", error=(status, "provider trouble"))
    with pytest.raises(llm.ModelError) as caught:
        chat("x")
    assert caught.value.code == code
    assert len(fake.chat_requests()) == 3  # 1 + LLM_NUM_RETRIES, and no hidden client-side retries


def test_a_transient_error_then_success_completes(fake):
    fake.add_rule("x", error=(500, "once"), times=1)
    assert chat("x")[-1].reason == "stop"
    assert len(fake.chat_requests()) == 2


def test_a_wrong_credential_is_not_retried_and_says_so_without_the_key(fake):
    fake.required_api_key = "sk-the-right-one-000000000"
    with pytest.raises(llm.ModelError) as caught:
        chat("x")
    error = caught.value
    assert error.code == "server_error" and not error.transient
    assert "credentials" in error.message and KEY not in error.message and "[redacted]" in error.message
    assert len(fake.chat_requests()) == 1


def test_a_missing_credential_fails_at_once(fake, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    started = time.monotonic()
    with pytest.raises(llm.ModelError) as caught:
        chat("x")
    assert caught.value.code == "server_error" and "credentials" in caught.value.message
    assert not caught.value.transient
    assert time.monotonic() - started < 2 and fake.chat_requests() == []


def test_closing_the_stream_closes_the_provider_connection_at_once(fake):
    """On cancel the engine closes the generator: the HTTP response must close now, on this thread, not when
    the cyclic garbage collector gets to it (the httpcore pool-lock deadlock of issue 12)."""
    fake.add_rule("hang", text="first then never", hang=True)
    gc.disable()  # what a cycle waiting for the collector looks like
    try:
        stream = llm.stream_chat(model="gpt-4o-mini", messages=[{"role": "user", "content": "hang"}])
        assert isinstance(next(d for d in stream if isinstance(d, llm.TextDelta)), llm.TextDelta)
        stream.close()
        deadline = time.monotonic() + 3
        while fake.aborted_count == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert fake.aborted_count == 1  # the fake saw the client hang up while it was still hanging
    finally:
        gc.enable()


def test_a_failing_stream_is_closed_too(fake):
    fake.add_rule("answer", text="one two three four", fault="cut")
    seen = []
    original = llm.close_stream
    llm.close_stream = lambda stream: (seen.append(stream), original(stream))
    try:
        with pytest.raises(llm.ModelError):
            chat("answer")
    finally:
        llm.close_stream = original
    assert len(seen) == 1 and seen[0].completion_stream.response.is_closed


def test_embeddings_use_the_same_policy(fake, settings):
    from retrieval import embeddings

    config = embeddings.EmbeddingConfig(model="text-embedding-3-small", dimensions=8)
    fake.embedding_error = (500, "embedder down")
    with pytest.raises(embeddings.EmbeddingError):
        embeddings.embed(["a"], config=config)
    assert len(fake.embedding_requests()) == 3
    fake.reset()
    fake.required_api_key = "sk-the-right-one-000000000"
    with pytest.raises(embeddings.EmbeddingError) as caught:
        embeddings.embed(["a"], config=config)
    assert len(fake.embedding_requests()) == 1 and KEY not in str(caught.value)


@pytest.mark.parametrize(("text", "secret"), [
    ("Incorrect API key provided: sk-proj-AbC123xyz789. See docs", "sk-proj-AbC123xyz789"),
    ("401 for Authorization: Bearer abcdef0123456789ghij", "abcdef0123456789ghij"),
    ("GET https://x.example/v1/models?key=AIzaSyA-1234567890abcdefghijklmn&alt=json failed", "AIzaSy"),
    ('{"api_key": "supersecretvalue99"} rejected', "supersecretvalue99"),
    ("upstream said: my-custom-provider-secret-value was wrong", "my-custom-provider-secret-value"),
])
def test_scrub_removes_secrets_and_keeps_the_message(monkeypatch, text, secret):
    monkeypatch.setenv("MYPROVIDER_API_KEY", "my-custom-provider-secret-value")
    scrubbed = providers.scrub(text)
    assert secret not in scrubbed and "[redacted]" in scrubbed
    assert scrubbed.split()[0] == text.split()[0]  # still says what happened


def test_heartbeat_stops_stamping_a_run_that_made_no_progress(settings):
    settings.LLM_TIMEOUT_SECONDS, settings.FILE_SEARCH_INGESTION_WAIT_SECONDS = 1, 0
    settings.RUN_HEARTBEAT_TIMEOUT_SECONDS = 3
    with heartbeat.beating(-1):
        stuck = heartbeat._current.entry
        with heartbeat.beating(-2):  # (another thread's attempt, in real life)
            assert {-1, -2} <= set(heartbeat._progressing())
            stuck[1] = time.monotonic() - 5  # -1 stuck for longer than the bound (4 s)
            heartbeat.progress()  # -2 progresses
            ids = heartbeat._progressing()
            assert -1 not in ids and -2 in ids


@pytest.mark.parametrize("fault", [None, "cut"])
def test_reading_the_provider_sdk_stream_directly_gives_what_litellms_wrapper_gives(fake, monkeypatch, fault):
    """OpenAI-SDK-backed providers are read without LiteLLM's per-chunk wrapper (providers.sdk_stream); any other
    provider goes through the wrapper. Both readings give the same deltas, usage and errors."""
    fake.add_rule("weather", tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    fake.add_rule("answer", text="one two three four", fault=fault)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]

    def read() -> list:
        out = []
        for text in ("weather", "answer"):
            try:
                deltas = llm.stream_chat(model="gpt-4o-mini", messages=[{"role": "user", "content": text}], tools=tools)
                # call ids are made anew per answer: compare whether there is one
                out.append([(type(d).__name__, d.index, bool(d.id), d.name, d.arguments)
                            if isinstance(d, llm.ToolCallDelta) else d for d in deltas])
            except llm.ModelError as exc:
                out.append([(exc.code, exc.transient, exc.message)])
        return out

    direct = read()
    monkeypatch.setattr(providers, "sdk_stream", lambda stream: None)
    assert read() == direct
    finish = direct[0][-1]
    assert finish.reason == "tool_calls" and finish.usage["completion_tokens"] > 0
