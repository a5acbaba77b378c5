"""Spec-driven fuzzing (schemathesis) of every operation in OpenAI's Assistants spec, in process through the WSGI
app on the test database, with hostile values mixed into what the spec generates.

Asserted for every response: no 5xx; every error is OpenAI's envelope; every 2xx body validates against the spec's
response schema. Bounded: ``FUZZ_EXAMPLES`` examples per operation (default 10, about two minutes on two cores);
``FUZZ_EXAMPLES=200`` is the long profile.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, settings
from schemathesis.specs.openapi.checks import response_schema_conformance

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "tests" / "reference" / "assistants-openapi.yaml"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
LONG = EXAMPLES > 20  # the long profile also replays every example in the spec

# Values the spec allows (any string, any number, any object) that a server must refuse cleanly or store intact.
HOSTILE_STRINGS = ["a\x00b", "\ud800", "\udfff lone", "x" * 70_000, "asst_\x00", "\u202e", "' OR 1=1 --"]
HOSTILE_NUMBERS = [10**400, -(2**80), 2**63, 1.7976931348623157e308]  # (1e400 and NaN: tests/test_api_hostile.py)


def _deep(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


def _load_schema():
    raw = yaml.safe_load(SPEC.read_text())
    # Conscious deviation (README): an empty page carries first_id/last_id null, as OpenAI's API does; the spec
    # types them as plain strings.
    for name, component in raw["components"]["schemas"].items():
        if name.startswith("List") and name.endswith("Response"):
            for key in ("first_id", "last_id"):
                if key in component.get("properties", {}):
                    component["properties"][key] = {"type": ["string", "null"]}
    return schemathesis.openapi.from_dict(raw)


schema = _load_schema()


@pytest.fixture
def seeded(db):
    """A project with a key and one object of each kind, so generated requests can hit real ids too."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from assistants import services as assistant_services
    from files import services as file_services
    from retrieval import services as retrieval_services
    from tenancy.services import api_key_create, project_get_or_create

    project = project_get_or_create(name="fuzz")
    key = api_key_create(project=project)
    assistant = assistant_services.assistant_create(project=project, model="gpt-4o-mini")
    thread = assistant_services.thread_create(project=project, messages=[{"role": "user", "content": "hi"}])
    message = thread.messages.first() if hasattr(thread, "messages") else None
    file = file_services.file_create(project=project, upload=SimpleUploadedFile("a.txt", b"hello"),
                                     purpose="assistants", expires_after=None)
    store = retrieval_services.vector_store_create(project=project, name="fuzz")
    ids = {"assistant_id": assistant.public_id, "thread_id": thread.public_id, "file_id": file.public_id,
           "vector_store_id": store.public_id}
    if message is not None:
        ids["message_id"] = message.public_id
    return {"headers": {"Authorization": f"Bearer {key}", "OpenAI-Beta": "assistants=v2"}, "ids": ids}


def _leaves(value, path=()):
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _leaves(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _leaves(child, (*path, index))
    yield path


def _replace(value, path, new):
    if not path:
        return new
    head, *rest = path
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


HOSTILE_VALUES = [*HOSTILE_STRINGS, *HOSTILE_NUMBERS, "deep-70", "deep-1000", {"type": {"x": 1}}, "x"]


# A valid body per writing operation: hostile values put into these reach storage (generated bodies mostly stop at
# validation), which is where NUL characters and surrogates used to cost a 500.
_META = {"k": "v"}
VALID_BODIES = {
    ("POST", "/assistants"): {"model": "gpt-4o-mini", "name": "n", "description": "d", "instructions": "i",
                              "metadata": _META, "tools": [{"type": "function", "function": {
                                  "name": "f", "description": "d", "parameters": {"type": "object"}}}],
                              "response_format": {"type": "json_schema", "json_schema": {
                                  "name": "s", "schema": {"type": "object"}}}},
    ("POST", "/assistants/{assistant_id}"): {"name": "n", "metadata": _META},
    ("POST", "/threads"): {"messages": [{"role": "user", "content": "hi", "metadata": _META}], "metadata": _META},
    ("POST", "/threads/{thread_id}"): {"metadata": _META},
    ("POST", "/threads/{thread_id}/messages"): {"role": "user", "content": [{"type": "text", "text": "t"}],
                                                "metadata": _META},
    ("POST", "/threads/{thread_id}/messages/{message_id}"): {"metadata": _META},
    ("POST", "/vector_stores"): {"name": "n", "metadata": _META},
    ("POST", "/vector_stores/{vector_store_id}"): {"name": "n", "metadata": _META},
    ("POST", "/vector_stores/{vector_store_id}/search"): {"query": "q", "filters": {
        "type": "eq", "key": "k", "value": "v"}},
}


def _hostile(rng: random.Random, body):
    """The body with one hostile value put somewhere, or None (half the time; the choice is derived from the
    generated case, so a failure replays)."""
    if not isinstance(body, dict | list) or rng.random() < 0.3:
        return None
    path = rng.choice(list(_leaves(body)))
    new = rng.choice(HOSTILE_VALUES)
    if isinstance(new, str) and new.startswith("deep-"):
        new = _deep(int(new.split("-")[1]))
    return _replace(body, tuple(path), new)


def _json_or_none(content: bytes):
    try:
        return json.loads(content)
    except ValueError:
        return None


@pytest.fixture(scope="module")
def wsgi_app():
    """The real WSGI app. As Django's test client does, requests keep the test's connection (and its
    transaction) instead of closing it when they end."""
    from django.core.signals import request_finished, request_started
    from django.core.wsgi import get_wsgi_application
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _check(request: str, status: int, content: bytes) -> None:
    assert status < 500, f"{request} → {status} {content[:500]!r}"
    if status >= 400:
        body = _json_or_none(content)
        assert isinstance(body, dict) and set(body) == {"error"}, f"{request} → {content[:500]!r}"
        assert set(body["error"]) == {"message", "type", "param", "code"}, f"{request} → {body}"


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=os.environ.get("FUZZ_SEED") is None,
          phases=[Phase.explicit, Phase.generate] if LONG else [Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_spec_operations_never_5xx_and_answer_the_envelope_or_the_spec_shape(case, seeded, wsgi_app):
    rng = random.Random(f"{case.method} {case.path} {case.path_parameters!r} {case.query!r} {case.body!r}")
    for name in list(case.path_parameters or {}):
        if name in seeded["ids"] and rng.random() < 0.6:
            case.path_parameters[name] = seeded["ids"][name]
    if isinstance(case.body, dict):
        case.body.pop("stream", None)  # no worker here: a stream would wait for events that never come
    response = case.call(headers=seeded["headers"], app=wsgi_app)
    request = f"{case.method} {case.formatted_path} body={str(case.body)[:500]!r}"
    _check(request, response.status_code, response.content)
    if response.status_code < 400 and "json" in str(response.headers.get("Content-Type")):
        case.validate_response(response, checks=[response_schema_conformance])

    # The same request with a hostile value inside its JSON body, sent as raw JSON (schemathesis' own client would
    # refuse to encode a lone surrogate).
    valid = VALID_BODIES.get((case.method.upper(), case.path))
    base = valid if valid is not None and rng.random() < 0.7 else case.body
    hostile = _hostile(rng, base) if case.media_type in (None, "application/json") else None
    if hostile is not None:
        from werkzeug.test import Client

        raw = json.dumps(hostile, ensure_ascii=True)
        answer = Client(wsgi_app).open(f"/v1{case.formatted_path}", method=case.method, query_string=case.query,
                                       headers={**seeded["headers"], "Content-Type": "application/json"}, data=raw)
        _check(f"{case.method} {case.formatted_path} hostile body={raw[:500]!r}", answer.status_code, answer.data)
