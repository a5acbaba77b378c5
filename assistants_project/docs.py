"""The API description this server serves (`/v1/openapi.json`) and its rendering (`/docs`, Swagger UI from the
drf-spectacular-sidecar package, served locally: deployments may be offline).

The description is OpenAI's (tests/reference/assistants-openapi.yaml) cut to what this server routes: each path
and method is kept only if our URLconf resolves it to a view that answers that method. Our extensions are added."""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import yaml
from django.conf import settings
from django.http import HttpResponse
from django.templatetags.static import static
from django.urls import Resolver404, resolve
from django.utils.html import escape
from django.views.decorators.http import require_safe

SOURCE = settings.BASE_DIR / "tests" / "reference" / "assistants-openapi.yaml"
METHODS = ("get", "post", "put", "patch", "delete")

_EXTENSIONS = {
    "/v1/threads/{thread_id}/runs/{run_id}/events": {"get": {
        "operationId": "streamRunEvents",
        "tags": ["Assistants"],
        "summary": "Resume a run's event stream (beyond OpenAI)",
        "description": "The run's server-sent events from the start, or after the event id given in the "
                       "`Last-Event-ID` header or the `after` query parameter, until the run stops; ends with "
                       "`data: [DONE]`. Any web process serves any run's stream.",
        "parameters": [
            {"in": "path", "name": "thread_id", "required": True, "schema": {"type": "string"}},
            {"in": "path", "name": "run_id", "required": True, "schema": {"type": "string"}},
            {"in": "query", "name": "after", "required": False, "schema": {"type": "string"},
             "description": "An event id: only later events are sent."},
            {"in": "header", "name": "Last-Event-ID", "required": False, "schema": {"type": "string"}},
        ],
        "responses": {"200": {"description": "The run's events.", "content": {"text/event-stream": {
            "schema": {"$ref": "#/components/schemas/AssistantStreamEvent"}}}}},
    }},
    "/healthz": {"get": {
        "operationId": "healthz", "tags": ["Operations"], "security": [],
        "summary": "Liveness: the web process answers",
        "responses": {"200": {"description": "Alive.", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"status": {"type": "string", "enum": ["ok"]}}}}}}},
    }},
    "/readyz": {"get": {
        "operationId": "readyz", "tags": ["Operations"], "security": [],
        "summary": "Readiness: the database and Redis answer",
        "responses": {
            "200": {"description": "Ready.", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"status": {"type": "string", "enum": ["ok"]}}}}}},
            "503": {"description": "Not ready: `down` names what is unreachable."},
        },
    }},
}


def _methods_served(path: str) -> set[str]:
    """The HTTP methods our URLconf serves at this spec path (placeholders filled with a sample id)."""
    sample = path.replace("{", "").replace("}", "")  # /threads/{thread_id} -> /threads/thread_id
    try:
        match = resolve(sample)
    except Resolver404:
        return set()
    actions = getattr(match.func, "actions", None)  # DRF viewsets: {method: action}
    return set(actions) if actions is not None else set(METHODS)


def _referenced(node, schemas: dict, seen: set) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            if name not in seen:
                seen.add(name)
                _referenced(schemas.get(name), schemas, seen)
        for value in node.values():
            _referenced(value, schemas, seen)
    elif isinstance(node, list):
        for value in node:
            _referenced(value, schemas, seen)


@functools.cache
def openapi_document() -> bytes:
    spec = yaml.load(SOURCE.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    paths: dict[str, Any] = {}
    for path, item in spec["paths"].items():
        ours = "/v1" + path
        served = _methods_served(ours)
        kept = {k: v for k, v in item.items() if k not in METHODS or k in served}
        if served & set(kept):
            paths[ours] = kept
    paths.update(copy.deepcopy(_EXTENSIONS))
    components = spec.get("components", {})
    used: set[str] = set()
    _referenced([paths, components.get("responses", {})], components.get("schemas", {}), used)
    components["schemas"] = {k: v for k, v in components.get("schemas", {}).items() if k in used}
    document = {
        "openapi": spec["openapi"],
        "info": {"title": "Assistants API (self-hosted)", "version": spec["info"]["version"],
                 "description": "The part of OpenAI's Assistants API v2 this server implements, plus its own "
                                "endpoints (run event streams, health). Authenticate with `Authorization: Bearer "
                                "<key>` (`manage.py createapikey`)."},
        "servers": [{"url": "/"}],
        "security": spec.get("security", []),
        "tags": [*spec.get("tags", []), {"name": "Operations", "description": "Health for load balancers."}],
        "paths": paths,
        "components": components,
    }
    return json.dumps(document).encode()


@require_safe
def openapi_json(request):
    return HttpResponse(openapi_document(), content_type="application/json")


@require_safe
def docs(request):
    base = "drf_spectacular_sidecar/swagger-ui-dist/"
    css, icon, bundle, preset = (escape(static(base + name)) for name in (
        "swagger-ui.css", "favicon-32x32.png", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"))
    return HttpResponse(f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Assistants API</title>
<link rel="stylesheet" href="{css}"><link rel="icon" href="{icon}"></head>
<body><div id="swagger-ui"></div>
<script src="{bundle}"></script>
<script src="{preset}"></script>
<script>
window.ui = SwaggerUIBundle({{url: "/v1/openapi.json", dom_id: "#swagger-ui", layout: "StandaloneLayout",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], persistAuthorization: true}});
</script></body></html>""")
