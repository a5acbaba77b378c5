"""Served API docs: /v1/openapi.json describes what this server routes (OpenAI's spec cut to it, plus our
extensions) and /docs renders it with Swagger UI from our own static files, no CDN."""

import json
import re

import pytest
from django.test import Client
from openapi_spec_validator import validate

IMPLEMENTED = {
    "/v1/assistants", "/v1/assistants/{assistant_id}", "/v1/files", "/v1/files/{file_id}",
    "/v1/files/{file_id}/content", "/v1/threads", "/v1/threads/runs", "/v1/threads/{thread_id}",
    "/v1/threads/{thread_id}/messages", "/v1/threads/{thread_id}/messages/{message_id}",
    "/v1/threads/{thread_id}/runs", "/v1/threads/{thread_id}/runs/{run_id}",
    "/v1/threads/{thread_id}/runs/{run_id}/cancel", "/v1/threads/{thread_id}/runs/{run_id}/steps",
    "/v1/threads/{thread_id}/runs/{run_id}/steps/{step_id}",
    "/v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs", "/v1/vector_stores",
    "/v1/vector_stores/{vector_store_id}", "/v1/vector_stores/{vector_store_id}/files",
    "/v1/vector_stores/{vector_store_id}/files/{file_id}", "/v1/vector_stores/{vector_store_id}/file_batches",
    "/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}",
    "/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel",
    "/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/files",
}
EXTENSIONS = {"/v1/threads/{thread_id}/runs/{run_id}/events", "/healthz", "/readyz"}


pytestmark = pytest.mark.django_db


@pytest.fixture
def document():
    response = Client().get("/v1/openapi.json", HTTP_HOST="localhost")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    return json.loads(response.content)


def test_openapi_json_is_a_valid_description_of_the_implemented_paths(document):
    validate(document)  # OpenAPI 3.1, every $ref resolves
    assert IMPLEMENTED | EXTENSIONS <= set(document["paths"])
    assert document["paths"]["/v1/threads/{thread_id}/runs/{run_id}/events"]["get"]["responses"]["200"]["content"] \
        == {"text/event-stream": {"schema": {"$ref": "#/components/schemas/AssistantStreamEvent"}}}
    assert "AssistantObject" in document["components"]["schemas"]


def test_every_documented_operation_is_routed(document):
    """Each path and method answers as an operation that exists: 401 without a key (or 200 for health), never
    404 or 405."""
    client = Client()
    for path, item in document["paths"].items():
        url = re.sub(r"\{(\w+)\}", r"\1", path)
        for method in ("get", "post", "delete"):
            if method not in item:
                continue
            status = getattr(client, method)(url, HTTP_HOST="localhost").status_code
            expected = {200} if path == "/healthz" else {200, 503} if path == "/readyz" else {401}
            assert status in expected, f"{method.upper()} {path}: {status}"


def test_docs_page_renders_with_local_assets_only():
    client = Client()
    page = client.get("/docs", HTTP_HOST="localhost")
    assert page.status_code == 200
    html = page.content.decode()
    assert "SwaggerUIBundle" in html and '"/v1/openapi.json"' in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) == 4 and not re.search(r"https?://", html)
    for asset in assets:
        assert asset.startswith("/static/drf_spectacular_sidecar/swagger-ui-dist/")
        response = client.get(asset, HTTP_HOST="localhost")
        assert response.status_code == 200, asset
        response.close()
