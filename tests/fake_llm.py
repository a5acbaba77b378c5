"""A fake OpenAI-compatible LLM HTTP server for tests and benchmarks (stdlib only).

Usage::

    with FakeLLM() as fake:
        fake.add_rule("weather", tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
        fake.add_rule(re.compile(r"^boom"), error=(500, "upstream exploded", "server_error"), times=1)
        fake.add_rule(lambda body: body.get("model") == "slow", text="zzz", token_delay=0.05)
        litellm.completion(model="gpt-4o-mini", messages=[...], api_base=fake.base_url, api_key="sk-fake")
        fake.chat_requests()[-1]["messages"]

Endpoints: ``POST /v1/chat/completions`` (stream and non-stream), ``POST /v1/responses`` (likewise, with the
same rules), ``POST /v1/embeddings``,
``GET /v1/models`` (and ``GET /v1/models/<id>``).  Everything else answers 404 with an OpenAI error
envelope.  Standalone: ``python -m tests.fake_llm --port 0`` prints the base url and serves until killed.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
import json
import math
import re
import select
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

__all__ = ["FakeLLM", "Reply", "Rule", "embed_text", "tokenize"]

DEFAULT_MODELS = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
)

_TOKEN_RE = re.compile(r"\s*\w+|\s*[^\w\s]|\s+")
_WORD_RE = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    """Split text into stream tokens: words/punctuation with their leading whitespace.

    ``"".join(tokenize(t)) == t`` always holds, e.g. "Hello, world!" -> ["Hello", ",", " world", "!"].
    """
    return _TOKEN_RE.findall(text or "")


def _content_text(content: Any) -> str:
    """Text of a message ``content`` that is a string or a list of content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return "\n".join(texts)
    return str(content)


def _last_text(body: dict, roles: tuple[str, ...]) -> str:
    messages = body.get("messages") if isinstance(body, dict) else None
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role") in roles:
            return _content_text(message.get("content"))
    return ""


def _count_prompt_tokens(body: dict) -> int:
    count = 0
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        count += len(tokenize(_content_text(message.get("content"))))
        for call in message.get("tool_calls") or []:
            function = (call or {}).get("function") or {}
            count += len(tokenize(str(function.get("name", ""))))
            count += len(tokenize(str(function.get("arguments", ""))))
    return max(count, 1)


def _new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def _split_arguments(arguments: str, pieces: int = 3) -> list[str]:
    if not arguments:
        return []
    size = max(1, math.ceil(len(arguments) / pieces))
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


def _error_envelope(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _default_error_type(status: int) -> str:
    if status == 429:
        return "rate_limit_error"
    if status == 401:
        return "authentication_error"
    if status == 404:
        return "not_found_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def _error_parts(error: tuple) -> tuple[int, str, str, str | None]:
    """Normalise (status, message[, type[, code]]) into (status, message, type, code)."""
    status = int(error[0])
    message = str(error[1]) if len(error) > 1 else "fake error"
    type_ = str(error[2]) if len(error) > 2 and error[2] else _default_error_type(status)
    code = error[3] if len(error) > 3 else None
    if type_ == "context_length_exceeded":
        type_, code = "invalid_request_error", code or "context_length_exceeded"
    if code is None and status == 429:
        code = "rate_limit_exceeded"
    return status, message, type_, code


def embed_text(text: str, dim: int) -> list[float]:
    """Deterministic feature-hashing embedding, L2-normalised.

    Lower-cased words (weight 1.0) and their character trigrams (weight 0.25) are hashed (md5, so stable
    across processes) into ``dim`` buckets with a hash-derived sign.  Texts sharing words get higher cosine
    similarity; unrelated texts are close to orthogonal.
    """
    dim = max(1, int(dim))
    vector = [0.0] * dim
    features: list[tuple[str, float]] = []
    for word in _WORD_RE.findall((text or "").lower()):
        features.append(("w:" + word, 1.0))
        padded = f"#{word}#"
        features.extend(("t:" + padded[i : i + 3], 0.25) for i in range(len(padded) - 2))
    for feature, weight in features:
        digest = hashlib.md5(feature.encode("utf-8")).digest()
        bucket = int.from_bytes(digest[:8], "little") % dim
        sign = 1.0 if digest[8] & 1 else -1.0
        vector[bucket] += sign * weight
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:
        vector[0] = 1.0
        return vector
    return [v / norm for v in vector]


@dataclasses.dataclass
class Reply:
    """What the fake answers to a chat completion request.

    - ``text``: assistant content (streamed one token per chunk).
    - ``tool_calls``: list of ``{"name": str, "arguments": str | dict}`` (ids auto-generated, or give "id");
      emitted after ``text`` in the same response.
    - ``error``: ``(status, message[, type[, code]])`` -> HTTP error with an OpenAI error envelope.
      ``type="context_length_exceeded"`` is a shortcut for invalid_request_error/context_length_exceeded.
    - ``token_delay`` / ``first_token_delay``: seconds between streamed chunks / before the first chunk
      (non-stream responses sleep the equivalent total).
    - ``usage``: dict merged over the computed usage.
    - ``hang``: stream the role chunk and the first token, then block until the client disconnects or the
      server stops (at most ``FakeLLM.hang_seconds``), then finish normally.
    - ``finish_reason``: override of the computed finish reason.
    - ``fault``: a provider misbehaviour, see the "fault modes" section of the handler.
    """

    text: str | None = None
    tool_calls: list[dict] | None = None
    error: tuple | None = None
    token_delay: float = 0.0
    first_token_delay: float = 0.0
    usage: dict | None = None
    hang: bool = False
    finish_reason: str | None = None
    fault: str | None = None


Matcher = str | re.Pattern | Callable[[dict], bool] | None


@dataclasses.dataclass
class Rule:
    match: Matcher
    reply: Reply | Callable[[dict], Reply | str]
    times: int | None = None
    hits: int = 0

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def matches(self, body: dict) -> bool:
        if self.match is None:
            return True
        if callable(self.match) and not isinstance(self.match, re.Pattern):
            return bool(self.match(body))
        text = _last_text(body, ("user", "tool"))
        if isinstance(self.match, re.Pattern):
            return self.match.search(text) is not None
        return str(self.match) in text


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512  # listen backlog: 100+ simultaneous connects must not be dropped

    def __init__(self, address, handler, fake: FakeLLM):
        self.fake = fake
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):  # client hang-ups are expected, stay quiet
        pass


class _ClientGone(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeLLM/1.0"
    sys_version = ""
    disable_nagle_algorithm = True  # one small write per SSE chunk; avoid Nagle/delayed-ACK stalls
    server: _Server

    # ------------------------------------------------------------------ plumbing
    def log_message(self, format, *args):
        pass

    @property
    def fake(self) -> FakeLLM:
        return self.server.fake

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send_json(self, status: int, payload: Any, extra_headers: dict | None = None) -> None:
        data = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", _new_id("req_"))
            for key, value in (extra_headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
        except OSError as exc:
            raise _ClientGone from exc
        self._write(data)

    def _send_error(self, status: int, message: str, type_: str | None = None, code: str | None = None):
        headers = {"retry-after-ms": "10"} if status == 429 else None
        self._send_json(status, _error_envelope(message, type_ or _default_error_type(status), code), headers)

    def _peer_closed(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True

    def _sleep(self, seconds: float) -> None:
        """Sleep, but raise _ClientGone as soon as the client disconnects or the server stops."""
        if seconds <= 0:
            return
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self.fake._stopping.is_set():
                raise _ClientGone
            try:
                readable, _, _ = select.select([self.connection], [], [], min(remaining, 0.05))
            except (OSError, ValueError):
                raise _ClientGone from None
            if readable:
                if self._peer_closed():
                    raise _ClientGone
                time.sleep(min(max(deadline - time.monotonic(), 0), 0.05))

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError) as exc:
            raise _ClientGone from exc

    def _write_chunk(self, data: bytes) -> None:
        self._write(b"%x\r\n%s\r\n" % (len(data), data))

    def _write_event(self, payload: Any) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
        self._write_chunk(f"data: {text}\n\n".encode())

    # ------------------------------------------------------------------ dispatch
    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        raw = self._read_body()
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        record = {
            "method": method,
            "path": path,
            "body": body,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "time": time.time(),
            "aborted": False,
        }
        self.fake._record(record)
        self.fake._enter()
        try:
            if bad_json:
                self._send_error(400, "We could not parse the JSON body of your request.")
            elif method == "POST" and path == "/v1/chat/completions":
                self._chat(body if isinstance(body, dict) else {})
            elif method == "POST" and path == "/v1/embeddings":
                self._embeddings(body if isinstance(body, dict) else {})
            elif method == "POST" and path == "/v1/moderations":  # see the gateway section of _Handler
                self._moderations(body if isinstance(body, dict) else {})
            elif method == "POST" and path == "/v1/responses":  # see the Responses API section of _Handler
                self._responses(body if isinstance(body, dict) else {})
            elif method == "GET" and path == "/v1/models":
                self._send_json(200, {"object": "list", "data": [self._model(m) for m in self.fake.models]})
            elif method == "GET" and path.startswith("/v1/models/") and path[len("/v1/models/") :]:
                self._send_json(200, self._model(path[len("/v1/models/") :]))
            else:
                self._send_error(
                    404, f"Unknown request URL: {method} {path}.", "invalid_request_error", "unknown_url"
                )
        except _ClientGone:
            record["aborted"] = True
            self.fake._note_abort()
            self.close_connection = True
        finally:
            self.fake._leave()

    @staticmethod
    def _model(model_id: str) -> dict:
        return {"id": model_id, "object": "model", "created": 1700000000, "owned_by": "fake-llm"}

    # ------------------------------------------------------------------ embeddings
    def _embeddings(self, body: dict) -> None:
        if self._credential_rejected():
            return
        delay = self.fake.embedding_delay
        if delay:
            self._sleep(delay)
        if self.fake.embedding_error is not None:
            status, message, type_, code = _error_parts(tuple(self.fake.embedding_error))
            self._send_error(status, message, type_, code)
            return
        raw_input = body.get("input")
        if isinstance(raw_input, str):
            inputs = [raw_input]
        elif isinstance(raw_input, list) and raw_input and all(isinstance(x, int) for x in raw_input):
            inputs = [" ".join(str(x) for x in raw_input)]  # a single list of token ids
        elif isinstance(raw_input, list) and raw_input:
            inputs = [x if isinstance(x, str) else " ".join(str(t) for t in x) for x in raw_input]
        else:
            self._send_error(400, "'input' must be a non-empty string or array of strings.")
            return
        dim = body.get("dimensions") or self.fake.embedding_dim
        base64_format = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(inputs):
            vector = embed_text(text, dim)
            value: Any = vector
            if base64_format:
                value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
            data.append({"object": "embedding", "index": index, "embedding": value})
        prompt_tokens = max(1, sum(len(tokenize(t)) for t in inputs))
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": body.get("model") or "text-embedding-3-small",
                "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
            },
        )

    # ------------------------------------------------------------------ chat completions
    def _chat(self, body: dict) -> None:
        if self._credential_rejected():
            return
        reply = self.fake._pick_reply(body)
        if reply.fault == "non_json":
            self._send_non_json()
            return
        if reply.error is not None:
            status, message, type_, code = _error_parts(tuple(reply.error))
            if reply.first_token_delay:
                self._sleep(reply.first_token_delay)
            self._send_error(status, message, type_, code)
            return

        text_tokens = tokenize(reply.text) if reply.text else []
        finish_reason = "stop"
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        tool_calls = [self._tool_call(call) for call in (reply.tool_calls or [])]
        if isinstance(limit, int) and limit >= 0 and len(text_tokens) > limit:
            text_tokens = text_tokens[:limit]
            tool_calls = []
            finish_reason = "length"
        elif tool_calls:
            finish_reason = "tool_calls"
        if reply.finish_reason:
            finish_reason = reply.finish_reason

        completion_tokens = len(text_tokens)
        for call in tool_calls:
            completion_tokens += len(tokenize(f"{call['function']['name']} {call['function']['arguments']}"))
        prompt_tokens = _count_prompt_tokens(body)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
        usage.update(reply.usage or {})
        usage.setdefault(
            "total_tokens", int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0)
        )
        meta = {
            "id": _new_id("chatcmpl-"),
            "created": int(time.time()),
            "model": body.get("model") or "gpt-4o-mini",
            "system_fingerprint": "fp_fake",
        }
        if body.get("stream"):
            self._chat_stream(body, reply, meta, text_tokens, tool_calls, finish_reason, usage)
            return

        n_chunks = len(text_tokens)
        n_chunks += sum(1 + len(_split_arguments(call["function"]["arguments"])) for call in tool_calls)
        self._sleep(reply.first_token_delay + reply.token_delay * max(n_chunks - 1, 0))
        if reply.hang:
            self._sleep(self.fake.hang_seconds)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(text_tokens) if (text_tokens or not tool_calls) else None,
            "refusal": None,
        }
        if tool_calls:
            message["tool_calls"] = tool_calls
        self._send_json(
            200,
            {
                **meta,
                "object": "chat.completion",
                "choices": [
                    {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
                ],
                "usage": usage,
            },
        )

    @staticmethod
    def _tool_call(call: dict) -> dict:
        arguments = call.get("arguments", "")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        return {
            "id": call.get("id") or _new_id("call_"),
            "type": "function",
            "function": {"name": call["name"], "arguments": arguments},
        }

    def _chat_stream(self, body, reply, meta, text_tokens, tool_calls, finish_reason, usage) -> None:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict, finish: str | None = None) -> dict:
            payload = {
                **meta,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if include_usage:
                payload["usage"] = None
            return payload

        events: list[dict] = []
        content = "" if text_tokens or not tool_calls else None
        role_delta: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        events.append(chunk(role_delta))
        events.extend(chunk({"content": token}) for token in text_tokens)
        for index, call in enumerate(tool_calls):
            events.append(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": call["id"],
                                "type": "function",
                                "function": {"name": call["function"]["name"], "arguments": ""},
                            }
                        ]
                    }
                )
            )
            events.extend(
                chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                for piece in _split_arguments(call["function"]["arguments"])
            )
        events.append(chunk({}, finish_reason))

        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("x-request-id", _new_id("req_"))
            self.end_headers()
        except OSError as exc:
            raise _ClientGone from exc

        self._sleep(reply.first_token_delay)
        if reply.fault in ("cut", "cut_after_finish", "reset"):
            self._stream_cut(reply, events)
            return
        for position, event in enumerate(events):
            if position >= 2 or (position == 1 and not text_tokens):
                self._sleep(reply.token_delay)
            self._write_event(event)
            # hang after the role chunk + first token (or right after the role chunk when there's no text)
            if reply.hang and (position == 1 or len(events) == 2):
                self._sleep(self.fake.hang_seconds)
        if include_usage:
            self._write_event({**meta, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        self._write_event("[DONE]")
        self._write(b"0\r\n\r\n")


    # ------------------------------------------------------------------ fault modes
    # Provider misbehaviours for reliability tests (``Reply(fault=...)`` and ``FakeLLM.required_api_key``):
    #   "cut"              the stream's body ends cleanly mid-answer: no finish reason, no usage, no [DONE]
    #   "cut_after_finish" the finish-reason chunk arrives, then the body ends (no usage chunk, no [DONE])
    #   "reset"            the connection drops mid-answer without ending the chunked body
    #   "non_json"         200 with a body that is not JSON (a proxy's HTML page)
    # HTTP errors (429, 500, ...) are ``error=``, a hang is ``hang=True``.
    def _credential_rejected(self) -> bool:
        """401 as OpenAI answers a wrong or missing key (echoing the key it got) when ``required_api_key`` is
        set and the request's bearer token differs."""
        expected = self.fake.required_api_key
        if expected is None:
            return False
        got = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if got == expected:
            return False
        message = (f"Incorrect API key provided: {got}. You can find your API key at "
                   "https://platform.openai.com/account/api-keys." if got else
                   "You didn't provide an API key. You need to provide your API key in an Authorization header.")
        self._send_error(401, message, "invalid_request_error", "invalid_api_key")
        return True

    def _send_non_json(self) -> None:
        page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
        except OSError as exc:
            raise _ClientGone from exc
        self._write(page)

    def _stream_cut(self, reply: Reply, events: list[dict]) -> None:
        if reply.fault == "cut_after_finish":
            for event in events:
                self._sleep(reply.token_delay)
                self._write_event(event)
            self._write(b"0\r\n\r\n")
            return
        for event in events[: max(2, len(events) // 2)]:  # the role chunk and about half the answer
            self._sleep(reply.token_delay)
            self._write_event(event)
        if reply.fault == "cut":
            self._write(b"0\r\n\r\n")  # a clean end of the body
            return
        self.close_connection = True  # "reset": no terminating chunk, the socket just closes
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ------------------------------------------------------------------ gateway (issue 16): moderations
    def _moderations(self, body: dict) -> None:
        """Flags an input that contains "kill" (category violence), like OpenAI's shape with every category."""
        raw = body.get("input")
        inputs = raw if isinstance(raw, list) else [raw]
        if not raw or not all(isinstance(x, str) or isinstance(x, dict) for x in inputs):
            self._send_error(400, "'input' must be a non-empty string or array.")
            return
        results = []
        for item in inputs:
            text = item if isinstance(item, str) else str(item.get("text", ""))
            flagged = "kill" in text.lower()
            categories = {name: flagged and name == "violence" for name in MODERATION_CATEGORIES}
            scores = {name: (0.97 if flagged and name == "violence" else 0.0001) for name in MODERATION_CATEGORIES}
            applied = {name: ["text"] for name in MODERATION_CATEGORIES}
            results.append({"flagged": flagged, "categories": categories, "category_scores": scores,
                            "category_applied_input_types": applied})
        self._send_json(200, {"id": _new_id("modr-"), "model": body.get("model") or "omni-moderation-latest",
                              "results": results})

    # ------------------------------------------------------------------ Responses API (issue 16)
    def _responses(self, body: dict) -> None:
        """``POST /v1/responses``: the same rules as chat completions (matched on the input items seen as chat
        messages). Streams the typed events with a ``sequence_number`` from 0; function calls come after the
        text; ``max_output_tokens`` cuts the text (status ``incomplete``, reason max_output_tokens)."""
        chat_view = _responses_as_chat(body)
        reply = self.fake._pick_reply(chat_view)
        if reply.error is not None:
            status, message, type_, code = _error_parts(tuple(reply.error))
            self._sleep(reply.first_token_delay)
            self._send_error(status, message, type_, code)
            return
        tokens = tokenize(reply.text) if reply.text else []
        calls = [self._tool_call(call) for call in (reply.tool_calls or [])]
        limit = body.get("max_output_tokens")
        incomplete = isinstance(limit, int) and len(tokens) > limit
        if incomplete:
            tokens, calls = tokens[:limit], []
        output_tokens = len(tokens) + sum(len(tokenize(f"{c['function']['name']} {c['function']['arguments']}"))
                                          for c in calls)
        input_tokens = _count_prompt_tokens(chat_view)
        usage = {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": input_tokens + output_tokens, **(reply.usage or {})}
        response = {"id": _new_id("resp_"), "object": "response", "created_at": int(time.time()),
                    "status": "in_progress", "model": body.get("model") or "gpt-4o-mini", "output": [],
                    "store": body.get("store", True), "error": None, "incomplete_details": None,
                    "instructions": body.get("instructions"), "max_output_tokens": limit,
                    "parallel_tool_calls": body.get("parallel_tool_calls", True), "previous_response_id": None,
                    "temperature": body.get("temperature", 1.0), "top_p": body.get("top_p", 1.0),
                    "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
                    "text": body.get("text") or {"format": {"type": "text"}}, "truncation": "disabled",
                    "usage": None, "metadata": {}}
        message_id = _new_id("msg_")
        text_item = {"id": message_id, "type": "message", "role": "assistant", "status": "completed",
                     "content": [{"type": "output_text", "text": "".join(tokens), "annotations": []}]}
        call_items = [{"id": _new_id("fc_"), "type": "function_call", "status": "completed", "call_id": c["id"],
                       "name": c["function"]["name"], "arguments": c["function"]["arguments"]} for c in calls]
        output = ([text_item] if tokens or not calls else []) + call_items
        final = {**response, "status": "incomplete" if incomplete else "completed", "output": output,
                 "usage": usage, "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None}
        if not body.get("stream"):
            self._sleep(reply.first_token_delay)
            self._send_json(200, final)
            return
        events: list[tuple[bool, dict]] = [  # (paced: a token_delay before it, event)
            (False, {"type": "response.created", "response": response}),
            (False, {"type": "response.in_progress", "response": response})]
        index = 0
        if tokens or not calls:
            part = {"type": "output_text", "text": "", "annotations": []}
            events += [(False, {"type": "response.output_item.added", "output_index": 0,
                                "item": {**text_item, "status": "in_progress", "content": []}}),
                       (False, {"type": "response.content_part.added", "item_id": message_id, "output_index": 0,
                                "content_index": 0, "part": part})]
            events += [(True, {"type": "response.output_text.delta", "item_id": message_id, "output_index": 0,
                               "content_index": 0, "delta": token, "logprobs": []}) for token in tokens]
            events += [(False, {"type": "response.output_text.done", "item_id": message_id, "output_index": 0,
                                "content_index": 0, "text": "".join(tokens), "logprobs": []}),
                       (False, {"type": "response.content_part.done", "item_id": message_id, "output_index": 0,
                                "content_index": 0, "part": text_item["content"][0]}),
                       (False, {"type": "response.output_item.done", "output_index": 0, "item": text_item})]
            index = 1
        for offset, item in enumerate(call_items):
            at = index + offset
            events.append((True, {"type": "response.output_item.added", "output_index": at,
                                  "item": {**item, "status": "in_progress", "arguments": ""}}))
            events += [(True, {"type": "response.function_call_arguments.delta", "item_id": item["id"],
                               "output_index": at, "delta": piece}) for piece in _split_arguments(item["arguments"])]
            events += [(False, {"type": "response.function_call_arguments.done", "item_id": item["id"],
                                "output_index": at, "arguments": item["arguments"]}),
                       (False, {"type": "response.output_item.done", "output_index": at, "item": item})]
        events.append((False, {"type": "response.incomplete" if incomplete else "response.completed",
                               "response": final}))
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
        except OSError as exc:
            raise _ClientGone from exc
        self._sleep(reply.first_token_delay)
        deltas = 0
        for sequence, (paced, event) in enumerate(events):
            if paced:
                if deltas:
                    self._sleep(reply.token_delay)
                deltas += 1
            event["sequence_number"] = sequence
            text = json.dumps(event, separators=(",", ":"))
            self._write_chunk(f"event: {event['type']}\ndata: {text}\n\n".encode())
            if reply.hang and deltas == 1 and paced:
                self._sleep(self.fake.hang_seconds)
        self._write(b"0\r\n\r\n")


def _responses_as_chat(body: dict) -> dict:
    """A Responses request seen as chat messages (for rule matching and prompt token counts)."""
    raw = body.get("input")
    messages: list[dict] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    for item in [raw] if isinstance(raw, str) else (raw or []):
        if isinstance(item, str):
            messages.append({"role": "user", "content": item})
        elif not isinstance(item, dict):
            continue
        elif item.get("type") == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": str(item.get("output"))})
        elif item.get("type") == "function_call":
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": item.get("call_id"), "type": "function",
                 "function": {"name": item.get("name"), "arguments": item.get("arguments", "")}}]})
        elif "role" in item:
            content = item.get("content")
            if isinstance(content, list):
                content = [{"type": "text", "text": p.get("text", "")} for p in content if isinstance(p, dict)]
            messages.append({"role": item["role"], "content": content})
    return {**body, "messages": messages}
# ------------------------------------------------------------------ end Responses API


MODERATION_CATEGORIES = ("harassment", "harassment/threatening", "sexual", "hate", "hate/threatening", "illicit",
                         "illicit/violent", "self-harm/intent", "self-harm/instructions", "self-harm",
                         "sexual/minors", "violence", "violence/graphic")


class FakeLLM:
    """Scriptable fake OpenAI server.  See module docstring."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        embedding_dim: int = 1536,
        default_token_delay: float = 0.0,
        models: tuple[str, ...] | list[str] = DEFAULT_MODELS,
    ):
        self.host = host
        self.port = port
        self.embedding_dim = embedding_dim
        self.default_token_delay = default_token_delay
        self.models = list(models)
        self.embedding_error: tuple | None = None  # (status, message[, type[, code]])
        self.embedding_delay: float = 0.0
        self.hang_seconds: float = 60.0
        self.required_api_key: str | None = None  # fault mode: other bearer tokens get a 401
        self.requests: list[dict] = []
        self.aborted_count = 0  # responses cut short because the client went away
        self.in_flight = 0  # requests currently being answered
        self.peak_in_flight = 0  # high-water mark of in_flight since start/reset
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self.host, self.port), _Handler, self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FakeLLM:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with server.sockets_lock:
            sockets = list(server.open_sockets)
        for sock in sockets:  # unblock keep-alive handler threads waiting for the next request
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeLLM is not started")
        return f"http://{self.host}:{self.port}/v1"

    # ------------------------------------------------------------------ scripting
    def add_rule(
        self,
        match: Matcher = None,
        reply: Reply | str | Callable[[dict], Reply | str] | None = None,
        *,
        times: int | None = None,
        **reply_fields: Any,
    ) -> Rule:
        """Add a rule (checked newest-first).

        ``match``: None (always), substring of the last user/tool message text, compiled regex (searched in
        that text) or ``callable(body) -> bool``.  ``reply``: a Reply, a str (text reply), a
        ``callable(body) -> Reply | str``, or omitted and given as Reply fields (``text=``, ``tool_calls=``,
        ``error=``, ``token_delay=`` ...).  ``times``: how many requests the rule may answer.
        """
        if reply is None:
            reply = Reply(**reply_fields)
        elif reply_fields:
            raise TypeError("pass either reply=... or Reply fields, not both")
        elif isinstance(reply, str):
            reply = Reply(text=reply)
        rule = Rule(match=match, reply=reply, times=times)
        with self._lock:
            self._rules.append(rule)
        return rule

    @property
    def rules(self) -> list[Rule]:
        with self._lock:
            return list(self._rules)

    def reset(self) -> None:
        """Clear recorded requests, rules and embedding error/delay."""
        with self._lock:
            self.requests.clear()
            self._rules.clear()
            self.aborted_count = 0
            self.peak_in_flight = self.in_flight
        self.embedding_error = None
        self.embedding_delay = 0.0
        self.required_api_key = None

    # ------------------------------------------------------------------ inspection
    def responses_requests(self) -> list[dict]:  # Responses API (issue 16)
        with self._lock:
            return [r["body"] for r in self.requests if r["path"] == "/v1/responses"]

    def chat_requests(self) -> list[dict]:
        with self._lock:
            return [r["body"] for r in self.requests if r["path"] == "/v1/chat/completions"]

    def embedding_requests(self) -> list[dict]:
        with self._lock:
            return [r["body"] for r in self.requests if r["path"] == "/v1/embeddings"]

    def wait_for_requests(self, count: int, timeout: float = 5.0, path: str | None = None) -> list[dict]:
        """Block until at least ``count`` requests (optionally for ``path``) were recorded."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                matching = [r for r in self.requests if path is None or r["path"] == path]
            if len(matching) >= count or time.monotonic() >= deadline:
                return matching
            time.sleep(0.01)

    # ------------------------------------------------------------------ gateway (issue 16): credentials
    def credentials_used(self, path: str | None = None) -> list[str]:
        """The provider key (``Authorization: Bearer …``, or Azure-style ``api-key``) of each recorded request,
        oldest first, optionally only for ``path`` (e.g. "/v1/chat/completions")."""
        with self._lock:
            records = [r for r in self.requests if path is None or r["path"] == path]
        out = []
        for record in records:
            auth = record["headers"].get("authorization", "")
            out.append(auth[7:] if auth.lower().startswith("bearer ") else record["headers"].get("api-key", ""))
        return out

    # ------------------------------------------------------------------ internals
    def _record(self, record: dict) -> None:
        with self._lock:
            self.requests.append(record)

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _note_abort(self) -> None:
        with self._lock:
            self.aborted_count += 1

    def _pick_reply(self, body: dict) -> Reply:
        chosen: Rule | None = None
        with self._lock:
            for rule in reversed(self._rules):
                if rule.exhausted:
                    continue
                try:
                    matched = rule.matches(body)
                except Exception:  # a broken matcher must not kill the request
                    matched = False
                if matched:
                    rule.hits += 1
                    chosen = rule
                    break
        if chosen is None:
            return Reply(text="Echo: " + _last_text(body, ("user",)), token_delay=self.default_token_delay)
        reply = chosen.reply
        if callable(reply) and not isinstance(reply, Reply):
            reply = reply(body)
        if isinstance(reply, str):
            reply = Reply(text=reply)
        return reply


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible LLM server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--embedding-dim", type=int, default=1536)
    parser.add_argument("--token-delay", type=float, default=0.0, help="delay between streamed tokens (s)")
    args = parser.parse_args(argv)
    fake = FakeLLM(
        args.host, args.port, embedding_dim=args.embedding_dim, default_token_delay=args.token_delay
    )
    fake.start()
    print(fake.base_url, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
