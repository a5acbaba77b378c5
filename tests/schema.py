"""Validate responses against the schemas of OpenAI's own specs (shared/reference/assistants-openapi.yaml, and
gateway-openapi.yaml for /chat/completions, /embeddings, /models and /moderations: ``spec_name="gateway"``)."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import jsonschema
import yaml

# A copy of OpenAI's spec (the subset for these paths) ships with the tests; see reference/README.md.
SPEC_CANDIDATES = [Path(__file__).resolve().parent / "reference" / "assistants-openapi.yaml"]
REFERENCE = Path(__file__).resolve().parent / "reference"


@functools.cache
def spec(spec_name: str = "assistants") -> dict:
    candidates = SPEC_CANDIDATES if spec_name == "assistants" else [REFERENCE / f"{spec_name}-openapi.yaml"]
    for path in candidates:
        if path.exists():
            return yaml.safe_load(path.read_text())
    raise FileNotFoundError(f"OpenAI spec not found in {candidates}")


def _nullable(node):
    """The spec marks nullable fields OpenAPI-3.0 style (``nullable: true``); JSON Schema needs null allowed."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable(value) for key, value in node.items()}
    if node.pop("nullable", False):
        if "enum" in node and None not in node["enum"]:
            node["enum"] = [*node["enum"], None]
        if isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        elif "type" not in node:
            node = {"anyOf": [node, {"type": "null"}]}
    return node


@functools.cache
def _validator(name: str, spec_name: str = "assistants") -> jsonschema.Draft202012Validator:
    doc = _nullable(copy.deepcopy(spec(spec_name)))
    schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    return jsonschema.Draft202012Validator(schema)


def assert_schema(obj: dict, name: str, *, spec_name: str = "assistants") -> None:
    """Raise with every violation listed if ``obj`` does not match ``components.schemas[name]``."""
    errors = sorted(_validator(name, spec_name).iter_errors(obj), key=lambda e: list(e.path))
    if errors:
        lines = [f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors[:10]]
        raise AssertionError(f"response does not match {name}:\n" + "\n".join(lines))


def assert_list_schema(body: dict, name: str) -> None:
    """List envelopes: an empty page carries null first/last ids (as OpenAI's API does), which the spec's
    List* schemas type as strings; validate the page as the spec says when it has items."""
    if body["data"]:
        assert_schema(body, name)
    else:
        assert body == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}
