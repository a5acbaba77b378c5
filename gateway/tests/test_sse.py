"""The chat stream's framing on every exit path, with a stand-in for the provider's chunks (test_provider_stream.py
reads real ones from the fake LLM, including streams it cuts short)."""

import asyncio
import json

import litellm

from gateway.sse import DONE, ClosingStreamingResponse, chat_events


class Stream:
    def __init__(self, chunks, error=None):
        self.chunks, self.error, self.closed = list(chunks), error, 0

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.chunks:
            return self.chunks.pop(0)
        if self.error:
            raise self.error
        raise StopAsyncIteration

    async def aclose(self):
        self.closed += 1


def chunk(content=None, finish=None):
    return {"id": "chatcmpl-1", "created": 1, "choices": [
        {"index": 0, "delta": {"content": content}, "finish_reason": finish, "logprobs": None}]}


def frames(stream, first):
    async def collect():
        response = ClosingStreamingResponse(chat_events(stream, first, model="alias", include_usage=False,
                                                        secrets=["sk-secret-value"]))
        return [part async for part in response]

    return asyncio.run(collect())


def test_a_complete_stream_ends_with_done_and_closes_the_provider_stream():
    stream = Stream([chunk(" there"), chunk(finish="stop")])
    out = frames(stream, chunk("hi"))
    assert out[-1] == DONE and len(out) == 4
    assert json.loads(out[0][len(b"data: "):])["model"] == "alias"
    assert stream.closed >= 1


def test_a_provider_error_mid_stream_is_an_error_chunk_without_done():
    error = litellm.InternalServerError("upstream broke, key sk-secret-value", llm_provider="openai",
                                        model="gpt-4o-mini")
    stream = Stream([chunk(" there")], error=error)
    out = frames(stream, chunk("hi"))
    assert DONE not in out and stream.closed >= 1
    body = json.loads(out[-1][len(b"data: "):])
    assert body["error"]["type"] == "server_error" and "upstream broke" in body["error"]["message"]
    assert "sk-secret-value" not in body["error"]["message"]


def test_a_client_that_leaves_closes_the_provider_stream():
    stream = Stream([chunk(" there"), chunk(" again")])

    async def leave_after_first():
        response = ClosingStreamingResponse(chat_events(stream, chunk("hi"), model="m", include_usage=False,
                                                        secrets=[]))
        parts = aiter(response)
        await anext(parts)
        await parts.aclose()  # what the ASGI layer does when the client disconnects

    asyncio.run(leave_after_first())
    assert stream.closed == 1
