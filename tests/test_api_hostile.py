"""Hostile and malformed input answers a clear 4xx in OpenAI's envelope, naming the offending param; never a 500."""

import json

import pytest

from tests.test_api_assistants import assert_error

pytestmark = pytest.mark.django_db


def post_raw(api, path, raw: str | bytes):
    return api.generic("POST", path, raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass"),
                       content_type="application/json")


@pytest.fixture
def thread_id(api):
    return api.post("/v1/threads", {}, format="json").json()["id"]


@pytest.fixture
def assistant_id(api):
    return api.post("/v1/assistants", {"model": "gpt-4o-mini"}, format="json").json()["id"]


@pytest.mark.parametrize(("body", "param"), [
    ('{"model": "m", "metadata": {"k": "a\\u0000b"}}', "metadata.k"),
    ('{"model": "m", "name": "\\ud800"}', "name"),
    ('{"model": "m", "metadata": {"\\u0000": "x"}}', "metadata"),
    ('{"model": "m", "temperature": 1e400}', "temperature"),
    ('{"model": "m", "temperature": 123456789012345678901234567890}', "temperature"),
    ('{"model": "m", "tools": [{"type": "function", "function": {"name": "f", "parameters": '
     + '{"a": ' * 100 + "1" + "}" * 100 + "}}]}", "tools[0].function.parameters" + ".a" * 60),
])
def test_unstorable_values_are_400_with_their_path(api, body, param):
    response = post_raw(api, "/v1/assistants", body)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"] == param


def test_json_nested_a_thousand_deep_is_400(api):
    assert_error(post_raw(api, "/v1/assistants", '{"model": "m", "metadata": ' + "[" * 1000 + "]" * 1000 + "}"),
                 400, param=None)


def test_nan_is_not_json(api):
    assert_error(post_raw(api, "/v1/assistants", '{"model": "m", "temperature": NaN}'), 400)


def test_nul_in_message_content_and_search_query(api, thread_id):
    assert_error(api.post(f"/v1/threads/{thread_id}/messages", {"role": "user", "content": "a\x00"}, format="json"),
                 400, param="content")
    store = api.post("/v1/vector_stores", {}, format="json").json()["id"]
    assert_error(api.post(f"/v1/vector_stores/{store}/search", {"query": "\x00"}, format="json"), 400,
                 param="query")


def test_nul_and_wrong_kind_ids_in_paths_and_queries(api, thread_id):
    assert_error(api.get("/v1/threads/thread_%00x"), 400, param="thread_id")
    assert_error(api.get("/v1/assistants/undefined"), 400, param="assistant_id",
                 contains="Expected an ID that begins with 'asst'.")
    assert_error(api.get(f"/v1/threads/{thread_id}/runs/undefined"), 400, param="run_id")
    assert_error(api.get("/v1/files/%00"), 400, param="file_id")
    assert_error(api.get("/v1/assistants?after=asst_%00"), 400, param="after")


def test_type_confusion_in_nested_fields(api, thread_id, assistant_id):
    response = api.post(f"/v1/threads/{thread_id}/messages",
                        {"role": "user", "content": [{"type": {"x": 1}, "text": "hi"}]}, format="json")
    assert_error(response, 400, param="content[0].type")
    response = api.post(f"/v1/threads/{thread_id}/runs",
                        {"assistant_id": assistant_id, "tool_choice": {"type": "function", "function": "f"}},
                        format="json")
    assert_error(response, 400, param="tool_choice.function")
    response = api.post("/v1/assistants", {"model": "m", "tools": [{"type": "function", "function": "f"}]},
                        format="json")
    assert_error(response, 400, param="tools[0].function")


@pytest.mark.parametrize(("body", "param"), [
    ({"model": 123}, "model"),
    ({"model": "m", "temperature": "1"}, "temperature"),
    ({"model": "m", "name": ["x"]}, "name"),
])
def test_wrong_json_types_are_not_coerced(api, body, param):
    assert_error(api.post("/v1/assistants", body, format="json"), 400, param=param)


def test_explicit_nulls_mean_not_given(api):
    """LiteLLM's client sends every unset argument as null."""
    body = {"model": "m", "tools": None, "metadata": None, "name": None, "response_format": None,
            "tool_resources": None, "temperature": None}
    response = api.post("/v1/assistants", body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["tools"] == [] and response.json()["metadata"] == {}


def test_response_format_json_schema_is_validated_and_echoed_in_the_spec_shape(api):
    good = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}}
    response = api.post("/v1/assistants", {"model": "m", "response_format": good}, format="json")
    assert response.json()["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": False}}
    bad = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {}, "bogus": 1}}
    assert_error(api.post("/v1/assistants", {"model": "m", "response_format": bad}, format="json"), 400,
                 param="response_format.json_schema.bogus")
    bad = {"type": "json_schema", "json_schema": {"name": "has space"}}
    assert_error(api.post("/v1/assistants", {"model": "m", "response_format": bad}, format="json"), 400,
                 param="response_format.json_schema.name")


def test_tools_come_back_with_openai_defaults(api):
    tools = [{"type": "file_search"}, {"type": "function", "function": {"name": "f"}}, {"type": "code_interpreter"}]
    body = api.post("/v1/assistants", {"model": "m", "tools": tools}, format="json").json()
    assert body["tools"][0] == {"type": "file_search", "file_search": {
        "max_num_results": 20, "ranking_options": {"ranker": "default_2024_08_21", "score_threshold": 0.0}}}
    assert body["tools"][1] == {"type": "function", "function": {"name": "f", "strict": False}}
    assert body["tool_resources"]["code_interpreter"] == {"file_ids": []}


def test_files_post_without_multipart_and_with_a_huge_part_content_type(api):
    assert_error(api.post("/v1/files", {"purpose": "assistants"}, format="json"), 415)
    assert_error(api.generic("POST", "/v1/files", b""), 400, param="file")
    boundary = "xyz"
    raw = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nassistants\r\n"
           f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n"
           f"Content-Type: text/{'x' * 100_000}\r\n\r\nhello\r\n--{boundary}--\r\n").encode()
    response = api.generic("POST", "/v1/files", raw, content_type=f"multipart/form-data; boundary={boundary}")
    assert 400 <= response.status_code < 500, response.content
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_options_is_not_a_500(api):
    response = api.options("/v1/assistants")
    assert response.status_code < 500, response.content


def test_create_and_run_without_thread_and_update_run_without_metadata(api, assistant_id, settings):
    response = api.post("/v1/threads/runs", {"assistant_id": assistant_id}, format="json")
    assert response.status_code == 200, response.content
    run = response.json()
    response = api.post(f"/v1/threads/{run['thread_id']}/runs/{run['id']}", {}, format="json")
    assert response.status_code == 200, response.content
    response = api.post(f"/v1/threads/{run['thread_id']}/runs/{run['id']}", {"metadata": {"a": "b"}}, format="json")
    assert response.json()["metadata"] == {"a": "b"}


@pytest.mark.parametrize("committed", [
    pytest.param(False, id="in-a-test-transaction"),
    pytest.param(True, id="committed", marks=pytest.mark.django_db(transaction=True)),  # as in production
])
def test_active_run_constraint_answers_400_not_500(api, thread_id, assistant_id, monkeypatch, committed):
    """Two creators racing past the active-run check: the database constraint decides, the loser gets 400 naming
    the winner."""
    from assistants import selectors
    from runs import services

    real = services.thread_for_run

    def without_active_run(**kwargs):
        thread, assistant, run_pk = real(**kwargs)
        thread.active_run_id = None  # as if the competing run had not committed yet
        return thread, assistant, run_pk

    first = api.post(f"/v1/threads/{thread_id}/runs", {"assistant_id": assistant_id}, format="json")
    assert first.status_code == 200
    monkeypatch.setattr(services, "thread_for_run", without_active_run)
    assert selectors  # the real selector stays importable
    response = api.post(f"/v1/threads/{thread_id}/runs", {"assistant_id": assistant_id}, format="json")
    assert_error(response, 400, contains=f"Thread {thread_id} already has an active run {first.json()['id']}.")
    runs = api.get(f"/v1/threads/{thread_id}/runs").json()["data"]
    assert [run["id"] for run in runs] == [first.json()["id"]]  # the loser left nothing behind


def test_json_body_that_is_not_an_object(api):
    assert_error(post_raw(api, "/v1/assistants", json.dumps([1, 2])), 400)


# --- Outages: one mapping to a prompt 503 --------------------------------------------------------------------

@pytest.mark.parametrize("error", ["pool timeout", "db operational", "broker"])
def test_database_and_broker_outages_answer_503_in_the_envelope(api, monkeypatch, error):
    import kombu.exceptions
    import psycopg_pool
    from django import db

    from assistants import views

    raised = {"pool timeout": psycopg_pool.PoolTimeout("couldn't get a connection after 5.00 sec"),
              "db operational": db.OperationalError("connection to server on socket failed"),
              "broker": kombu.exceptions.OperationalError("Error 111 connecting to localhost:6379")}[error]

    def down(**kwargs):
        raise raised

    monkeypatch.setattr(views.selectors, "assistant_list", down)
    response = api.get("/v1/assistants")
    error_body = assert_error(response, 503)
    assert error_body["type"] == "server_error"
    assert "socket" not in error_body["message"] and "6379" not in error_body["message"]


def test_readyz_does_not_show_socket_paths_or_server_messages(client, monkeypatch):
    import redis

    from assistants_project import redis as redis_module

    class Down:
        def ping(self):
            raise redis.ConnectionError("Error 2 connecting to unix socket: /srv/secret/redis.sock.")

    monkeypatch.setattr(redis_module, "redis_client", lambda: Down())
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "/srv/secret" not in response.content.decode()
    assert response.json()["down"] == ["redis"]
