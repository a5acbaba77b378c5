"""The tools interface: a kind is one module (a ``Tool``) and its line in the registry; the serializers, the prompt,
the engine and the stream renderer all ask the registry. Engine driven directly, the model faked at ``stream_chat``."""

from datetime import timedelta

import pytest
from django.utils import timezone

from assistants.models import Assistant, Thread
from assistants_project.redis import redis_client
from retrieval.models import VectorStore
from retrieval.services import vector_store_create
from runs import engine, llm, services, tools
from runs.models import Run, RunStep
from runs.tools.base import Tool

pytestmark = pytest.mark.django_db


class ClockTool(Tool):
    """A made-up built-in kind that runs in the worker: tells the time in a city."""

    type = "clock"
    model_function = "clock_now"

    def offered(self, tool):
        return {"type": "function", "function": {"name": "clock_now", "parameters": {"type": "object"}}}

    def replay(self, call, ordinal):
        return ({"id": call["id"], "type": "function", "function": {"name": "clock_now", "arguments": "{}"}},
                call["clock"]["time"])

    def execute(self, run, call):
        call.stream({"ticking": True})  # streamed while it runs
        return {"id": call.id, "type": "clock", "clock": {"time": "12:00"}}, None

    def call_delta(self, delta):
        if delta.started:
            return {"index": delta.index, "id": delta.call_id, "type": "clock", "clock": {}}
        return {"index": delta.index, "type": "clock", "clock": delta.detail} if delta.detail else None


@pytest.fixture
def model(monkeypatch):
    """Scripted model turns; records what each call was given."""
    calls, turns = [], []

    def stream_chat(**kwargs):
        calls.append(kwargs)
        return iter(turns.pop(0))

    monkeypatch.setattr("runs.llm.stream_chat", stream_chat)
    monkeypatch.setattr("runs.prompt.llm.context_window", lambda model: None)
    return calls, turns


def _execute(project, assistant, monkeypatch) -> Run:
    sent = []
    monkeypatch.setattr("runs.tasks.run_execute.apply_async", lambda **kw: sent.append(kw))
    thread = Thread.objects.create(project=project)
    run = services.run_create(project=project, thread_id=thread.public_id, assistant_id=assistant.public_id)
    engine.run_execute(run_id=run.pk, task_id=sent[-1]["task_id"])
    return Run.objects.get(pk=run.pk)


def test_a_new_kind_is_one_tool_and_its_registration(api, project, model, monkeypatch):
    monkeypatch.setitem(tools.REGISTRY, "clock", ClockTool())
    created = api.post("/v1/assistants", {"model": "gpt-4o-mini", "tools": [{"type": "clock"}]})
    assert created.status_code == 200 and created.json()["tools"] == [{"type": "clock"}]
    calls, turns = model
    turns += [[llm.ToolCallDelta(0, name="clock_now", arguments="{}"), llm.Finish("tool_calls", {})],
              [llm.TextDelta("It is noon."), llm.Finish("stop", {})]]

    run = _execute(project, Assistant.objects.get(public_id=created.json()["id"]), monkeypatch)

    assert run.status == Run.Status.COMPLETED
    assert calls[0]["tools"] == [ClockTool().offered({})]
    step = RunStep.objects.get(run=run, type=RunStep.Type.TOOL_CALLS)
    assert step.step_details["tool_calls"][0]["clock"] == {"time": "12:00"}
    assert calls[1]["messages"][-1] == {"role": "tool", "tool_call_id": step.step_details["tool_calls"][0]["id"],
                                        "content": "12:00"}  # replayed to the model as the kind says
    deltas = [fields[b"data"] for _, fields in redis_client().xrange(f"run:{run.public_id}:events")
              if fields[b"event"] == b"thread.run.step.delta"]
    assert len(deltas) == 2  # its argument pieces are not shown; what it streamed while running is
    assert b'"type": "clock", "clock": {}' in deltas[0] and b'"clock": {"ticking": true}' in deltas[1]
    detail = api.get(f"/v1/threads/{run.thread.public_id}/runs/{run.public_id}/steps/{step.public_id}").json()
    assert detail["step_details"]["tool_calls"][0]["type"] == "clock"


def test_unknown_kind_is_refused_naming_the_registered_ones(api):
    response = api.post("/v1/assistants", {"model": "gpt-4o-mini", "tools": [{"type": "clock"}]})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "tools[0].type"
    assert "'code_interpreter', 'file_search', and 'function'" in response.json()["error"]["message"]


def test_file_search_marks_the_runs_vector_stores_used(project, model, monkeypatch):
    store = vector_store_create(project=project, name="empty")
    day_ago = timezone.now() - timedelta(days=1)
    VectorStore.objects.filter(pk=store.pk).update(last_active_at=day_ago)
    assistant = Assistant.objects.create(project=project, model="gpt-4o-mini", tools=[{"type": "file_search"}],
                                         tool_resources={"file_search": {"vector_store_ids": [store.public_id]}})
    _, turns = model
    turns += [[llm.ToolCallDelta(0, name="file_search", arguments='{"queries": ["x"]}'), llm.Finish("tool_calls", {})],
              [llm.TextDelta("Nothing found."), llm.Finish("stop", {})]]

    run = _execute(project, assistant, monkeypatch)

    assert run.status == Run.Status.COMPLETED
    step = RunStep.objects.get(run=run, type=RunStep.Type.TOOL_CALLS)
    assert step.step_details["tool_calls"][0]["file_search"]["results"] == []
    store.refresh_from_db()
    assert timezone.now() - store.last_active_at < timedelta(seconds=5)
