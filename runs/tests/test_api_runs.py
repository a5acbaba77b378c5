"""Runs over HTTP without a worker: shapes, bad input, tenancy. (Execution is covered end to end.)"""

import json

import pytest
from asgiref.sync import async_to_sync

from runs.models import Run, RunStep
from tests.schema import assert_list_schema, assert_schema
from tests.test_api_assistants import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def assistant(api):
    return api.post("/v1/assistants", {"model": "gpt-4o-mini", "instructions": "Be kind.", "tools": [
        {"type": "function", "function": {"name": "f"}}]}, format="json").json()


@pytest.fixture
def thread(api):
    return api.post("/v1/threads", {"messages": [{"role": "user", "content": "hi"}]}, format="json").json()


def create_run(api, thread, assistant, **body):
    return api.post(f"/v1/threads/{thread['id']}/runs", {"assistant_id": assistant["id"], **body}, format="json")


def test_create_copies_the_assistant_and_matches_schema(api, thread, assistant):
    response = create_run(api, thread, assistant, metadata={"k": "v"})
    assert response.status_code == 200
    run = response.json()
    assert_schema(run, "RunObject")
    assert run["id"].startswith("run_") and run["status"] == "queued" and run["thread_id"] == thread["id"]
    assert run["model"] == "gpt-4o-mini" and run["instructions"] == "Be kind." and run["tools"] == assistant["tools"]
    assert run["usage"] is None and run["expires_at"] - run["created_at"] == 600
    assert response["openai-poll-after-ms"]
    # Later edits of the assistant do not change the run.
    api.post(f"/v1/assistants/{assistant['id']}", {"instructions": "Changed."}, format="json")
    assert api.get(f"/v1/threads/{thread['id']}/runs/{run['id']}").json()["instructions"] == "Be kind."


def test_list_retrieve_modify(api, thread, assistant):
    run = create_run(api, thread, assistant).json()
    listed = api.get(f"/v1/threads/{thread['id']}/runs").json()
    assert_list_schema(listed, "ListRunsResponse")
    assert [r["id"] for r in listed["data"]] == [run["id"]]
    modified = api.post(f"/v1/threads/{thread['id']}/runs/{run['id']}", {"metadata": {"a": "b"}}, format="json")
    assert modified.json()["metadata"] == {"a": "b"}
    assert_error(api.post(f"/v1/threads/{thread['id']}/runs/{run['id']}", {"model": "x"}, format="json"), 400,
                 param="model")


@pytest.mark.parametrize(("body", "param"), [
    ({"max_prompt_tokens": 255}, "max_prompt_tokens"),
    ({"max_completion_tokens": 10}, "max_completion_tokens"),
    ({"tools": [{"type": "function", "function": {}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "nope"}]}, "tools[0].type"),
    ({"tools": [{"type": "code_interpreter"}] * 21}, "tools"),
    ({"truncation_strategy": {"type": "last_messages"}}, "truncation_strategy.last_messages"),
    ({"truncation_strategy": {"type": "middle"}}, "truncation_strategy.type"),
    ({"tool_choice": "sometimes"}, "tool_choice"),
    ({"temperature": 3}, "temperature"),
    ({"additional_messages": [{"role": "system", "content": "x"}]}, "additional_messages[0].role"),
    ({"model": "definitely-not-routable"}, "model"),
    ({"surprise": 1}, "surprise"),
])
def test_bad_create_input_names_param_and_writes_nothing(api, thread, assistant, body, param):
    assert_error(create_run(api, thread, assistant, **body), 400, param=param,
                 code="model_not_found" if param == "model" else None)
    assert Run.objects.count() == 0


def test_unknown_assistant_and_thread_are_404(api, thread, assistant):
    assert_error(create_run(api, thread, {"id": "asst_unknown"}), 404, contains="No assistant found")
    assert_error(create_run(api, {"id": "thread_unknown"}, assistant), 404, contains="No thread found")
    assert Run.objects.count() == 0


def test_second_active_run_is_400_not_409(api, thread, assistant):
    first = create_run(api, thread, assistant).json()
    error = assert_error(create_run(api, thread, assistant), 400)
    assert error["message"] == f"Thread {thread['id']} already has an active run {first['id']}."
    error = assert_error(api.post(f"/v1/threads/{thread['id']}/messages", {"role": "user", "content": "x"},
                                  format="json"), 400)
    assert error["message"] == f"Can't add messages to {thread['id']} while a run {first['id']} is active."


def test_cancel_finished_run_is_400(api, thread, assistant):
    run = create_run(api, thread, assistant).json()
    Run.objects.filter(public_id=run["id"]).update(status="completed")
    assert_error(api.post(f"/v1/threads/{thread['id']}/runs/{run['id']}/cancel"), 400,
                 contains="Cannot cancel run with status 'completed'")


def test_cancel_queued_run(api, thread, assistant):
    run = create_run(api, thread, assistant).json()
    response = api.post(f"/v1/threads/{thread['id']}/runs/{run['id']}/cancel")
    assert response.json()["status"] == "cancelling"
    assert api.get(f"/v1/threads/{thread['id']}/runs/{run['id']}").json()["status"] == "cancelled"


def test_submit_tool_outputs_when_not_requires_action_is_400(api, thread, assistant):
    run = create_run(api, thread, assistant).json()
    assert_error(api.post(f"/v1/threads/{thread['id']}/runs/{run['id']}/submit_tool_outputs",
                          {"tool_outputs": [{"tool_call_id": "call_x", "output": "y"}]}, format="json"), 400,
                 param="tool_outputs")
    assert_error(api.post(f"/v1/threads/{thread['id']}/runs/{run['id']}/submit_tool_outputs",
                          {"tool_outputs": []}, format="json"), 400, param="tool_outputs")


def test_steps_list_and_include_validation(api, thread, assistant):
    run = create_run(api, thread, assistant).json()
    stored = Run.objects.get(public_id=run["id"])
    step = RunStep.objects.create(project=stored.project, run=stored, thread=stored.thread, type="tool_calls",
                                  status="completed", step_details={"type": "tool_calls", "tool_calls": [
                                      {"id": "call_1", "type": "file_search", "file_search": {
                                          "ranking_options": {"ranker": "auto", "score_threshold": 0.0},
                                          "results": [{"file_id": "file-1", "file_name": "a.md", "score": 0.5,
                                                       "content": [{"type": "text", "text": "secret"}]}]}}]})
    base = f"/v1/threads/{thread['id']}/runs/{run['id']}/steps"
    listed = api.get(base).json()
    assert_list_schema(listed, "ListRunStepsResponse")
    assert "content" not in listed["data"][0]["step_details"]["tool_calls"][0]["file_search"]["results"][0]
    include = "include%5B%5D=step_details.tool_calls%5B%2A%5D.file_search.results%5B%2A%5D.content"
    with_content = api.get(f"{base}/{step.public_id}?{include}").json()
    assert_schema(with_content, "RunStepObject")
    assert with_content["step_details"]["tool_calls"][0]["file_search"]["results"][0]["content"][0]["text"] == "secret"
    assert_error(api.get(f"{base}?include[]=everything"), 400, param="include[0]")
    assert_error(api.get(f"{base}/step_unknown"), 404)


def test_create_thread_and_run(api, assistant):
    response = api.post("/v1/threads/runs", {"assistant_id": assistant["id"], "thread": {
        "messages": [{"role": "user", "content": "hello"}], "metadata": {"t": "1"}}}, format="json")
    run = response.json()
    assert_schema(run, "RunObject")
    assert api.get(f"/v1/threads/{run['thread_id']}").json()["metadata"] == {"t": "1"}


def test_create_thread_and_run_is_atomic(api, assistant):
    from assistants.models import Thread

    response = api.post("/v1/threads/runs", {"assistant_id": assistant["id"], "thread": {
        "messages": [{"role": "user", "content": "ok"}, {"role": "robot", "content": "bad"}]}}, format="json")
    assert_error(response, 400, param="thread.messages[1].role")
    response = api.post("/v1/threads/runs", {"assistant_id": "asst_missing", "thread": {
        "messages": [{"role": "user", "content": "ok"}]}}, format="json")
    assert_error(response, 404)
    assert Thread.objects.count() == 0 and Run.objects.count() == 0


async def read(response) -> bytes:
    return b"".join([part async for part in response.streaming_content])


def test_a_poll_helpers_get_of_an_active_run_is_answered_after_the_hold_at_most(api, thread, assistant, settings):
    """No worker here: the run stays queued, so the held GET ends with the hold and the run as it is then."""
    settings.RUN_POLL_HOLD_SECONDS = 0.3
    run = create_run(api, thread, assistant).json()
    url = f"/v1/threads/{thread['id']}/runs/{run['id']}"
    Run.objects.filter(public_id=run["id"]).update(metadata={"changed": "during the hold"})
    held = api.get(url, HTTP_X_STAINLESS_POLL_HELPER="true")
    assert held.status_code == 200 and held["Content-Type"] == "application/json"
    body = json.loads(async_to_sync(read)(held))
    assert_schema(body, "RunObject")
    assert body["id"] == run["id"] and body["status"] == "queued" and body["metadata"] == {"changed": "during the hold"}
    # The hold was the wait: the next poll may come at once (and be held again).
    assert held["openai-poll-after-ms"] == "20"
    # Without the helper's header, or with holding off, the answer comes at once, with the run's hint.
    assert not api.get(url).streaming and api.get(url).json()["status"] == "queued"
    settings.RUN_POLL_HOLD_SECONDS = 0
    plain = api.get(url, HTTP_X_STAINLESS_POLL_HELPER="true")
    assert not plain.streaming and int(plain["openai-poll-after-ms"]) >= 20


def test_a_poll_helpers_get_is_answered_at_once_when_redis_is_unreachable(api, thread, assistant, settings,
                                                                          monkeypatch):
    import redis

    settings.RUN_POLL_HOLD_SECONDS = 0.3
    run = create_run(api, thread, assistant).json()

    class Down:
        def xrevrange(self, *args, **kwargs):
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6399. Connection refused.")

    monkeypatch.setattr("runs.events.redis_client", lambda: Down())
    response = api.get(f"/v1/threads/{thread['id']}/runs/{run['id']}", HTTP_X_STAINLESS_POLL_HELPER="true")
    assert response.status_code == 200 and not response.streaming and response.json()["status"] == "queued"


def test_tenant_isolation(api, other_api, thread, assistant):
    run = create_run(api, thread, assistant).json()
    other_assistant = other_api.post("/v1/assistants", {"model": "gpt-4o-mini"}, format="json").json()
    assert_error(other_api.get(f"/v1/threads/{thread['id']}/runs/{run['id']}"), 404)
    # A poll helper's GET, which may be held for an active run of the caller's, answers another's run as unknown.
    assert_error(other_api.get(f"/v1/threads/{thread['id']}/runs/{run['id']}", HTTP_X_STAINLESS_POLL_HELPER="true"),
                 404)
    assert_error(other_api.get(f"/v1/threads/{thread['id']}/runs"), 404)
    assert_error(other_api.post(f"/v1/threads/{thread['id']}/runs/{run['id']}/cancel"), 404)
    # Another project's assistant reads as unknown too.
    assert_error(create_run(api, api.post("/v1/threads", {}, format="json").json(), other_assistant), 404)
