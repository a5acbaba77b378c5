"""code_interpreter's pieces that need no sandbox: the code read from streamed JSON arguments, the stream's deltas,
what the model reads back. The sandbox end to end is in tests/test_e2e_code_interpreter.py."""

import json

import pytest

from files.tests.fixtures import storage_dir  # noqa: F401 (a fixture)
from runs import event_model as ev
from runs.renderers.assistants import render
from runs.tools import code_interpreter
from runs.tools.base import ModelCall
from runs.tools.code_interpreter import code_from_arguments, code_so_far, output_for_model

CODE = 'import math\nprint("π ≈", round(math.pi, 2), \'\\\\\')\t# done 😀'


def test_the_code_decodes_piece_by_piece_as_the_model_writes_it():
    arguments = json.dumps({"code": CODE})
    seen = ""
    for end in range(len(arguments) + 1):
        now = code_so_far(arguments[:end])
        assert now.startswith(seen) and CODE.startswith(now)  # never a half escape, never taken back
        seen = now
    assert seen == CODE == code_from_arguments(arguments)
    assert code_so_far('{"code": "a\\u00e9') == "aé" and code_so_far('{"code": "a\\u00') == "a"
    assert code_so_far('{"code": "\\ud83d\\ude00"}') == "😀" and code_so_far('{"code": "\\ud83d') == ""


def test_code_from_other_shapes_of_arguments():
    assert code_from_arguments("print(1)") == "print(1)"  # raw code, no JSON
    assert code_from_arguments('{"source": "print(2)"}') == "print(2)"  # one string under another name
    assert code_from_arguments("{}") == ""


def _rendered(delta):
    return [data["delta"]["step_details"]["tool_calls"][0] for _, data in render(delta)]


def test_stream_deltas_carry_the_input_then_the_outputs():
    arguments = json.dumps({"code": "print(1)"})
    assert _rendered(ev.ToolCallDelta("step_1", 0, "code_interpreter", call_id="call_1", name="python",
                                      started=True)) == [
        {"index": 0, "type": "code_interpreter", "id": "call_1", "code_interpreter": {"input": "", "outputs": []}}]
    pieces = []
    for cut in range(0, len(arguments), 5):
        piece = arguments[cut:cut + 5]
        for call in _rendered(ev.ToolCallDelta("step_1", 0, "code_interpreter", arguments=piece,
                                               written=arguments[:cut + 5])):
            pieces.append(call["code_interpreter"]["input"])
    assert "".join(pieces) == "print(1)" and all(pieces)  # no empty deltas
    outputs = {"outputs": [{"index": 0, "type": "logs", "logs": "1\n"}]}
    assert _rendered(ev.ToolCallDelta("step_1", 0, "code_interpreter", detail=outputs)) == [
        {"index": 0, "type": "code_interpreter", "code_interpreter": outputs}]


def test_what_the_model_reads_back_and_what_clients_see():
    call = {"id": "call_1", "type": "code_interpreter", "_state_lost": True, "code_interpreter": {
        "input": "plt.show()", "outputs": [{"type": "logs", "logs": "drawn\n"},
                                           {"type": "image", "image": {"file_id": "file-1"}}]}}
    text = output_for_model(call)
    assert text.startswith("[The Python session had to start afresh") and "drawn\n[1 image shown" in text
    asked, output = code_interpreter.TOOL.replay(call, 0)
    assert asked["function"] == {"name": "python", "arguments": json.dumps({"code": "plt.show()"})}
    assert output == text
    assert "_state_lost" not in code_interpreter.TOOL.step_call(call, ())
    assert code_interpreter.TOOL.message_parts(None, [call]) == [
        {"type": "image_file", "image_file": {"file_id": "file-1"}}]
    quiet = {"id": "c", "type": "code_interpreter", "code_interpreter": {"input": "x = 1", "outputs": []}}
    assert output_for_model(quiet) == "(no output)\n"


def test_logs_are_made_storable():
    # /proc/self/environ has NULs and code can print lone surrogates; Postgres' JSON takes neither
    assert code_interpreter.storable("a\x00b\ud800c") == "a\\x00b?c"


# --- with the real sandbox: the thread's files and a lost session ----------------------------------------------

@pytest.fixture
def fresh_manager(settings):
    """This process's session manager made anew for the test, and closed after it (a worker's life)."""
    from sandbox import services as sandbox

    settings.CODE_INTERPRETER_SPARE_SESSIONS = 0
    code_interpreter._placed.clear()
    sandbox._manager = None
    yield sandbox
    sandbox.manager().close()
    sandbox._manager = None
    code_interpreter._placed.clear()


def _call(run, code: str, streamed: list) -> dict:
    call = ModelCall(id="call_1", name="python", arguments=json.dumps({"code": code}), step_id="step_1", index=0,
                     stream=streamed.append, cancel_requested=lambda: False)
    recorded, asked = code_interpreter.TOOL.execute(run, call)
    assert asked is None
    return recorded


@pytest.mark.sandbox
@pytest.mark.django_db
def test_thread_files_late_attachments_and_a_lost_session(project, storage_dir, fresh_manager):  # noqa: F811
    from assistants.models import Assistant, Thread
    from assistants.services import message_create
    from files.tests.fixtures import make_file
    from runs.models import Run

    first = make_file(project, b"a,b\n1,2\n", name="data.csv")
    twin = make_file(project, b"other", name="data.csv")  # the same name again: the file id goes in front
    assistant = Assistant.objects.create(project=project, model="m", tools=[{"type": "code_interpreter"}],
                                         tool_resources={"code_interpreter": {"file_ids": [first.public_id]}})
    thread = Thread.objects.create(project=project,
                                   tool_resources={"code_interpreter": {"file_ids": [twin.public_id]}})
    run = Run.objects.create(project=project, thread=thread, assistant=assistant, model="m",
                             assistant_public_id=assistant.public_id, tools=assistant.tools)
    assert f"/mnt/data/data.csv, /mnt/data/{twin.public_id}-data.csv" in code_interpreter.TOOL.instructions(run)

    streamed: list = []
    recorded = _call(run, "x = 7\nimport os\nprint(sorted(os.listdir('/mnt/data')))", streamed)
    assert recorded["code_interpreter"]["outputs"] == [
        {"type": "logs", "logs": f"['data.csv', '{twin.public_id}-data.csv']\n"}]
    assert "".join(d["outputs"][0]["logs"] for d in streamed) == recorded["code_interpreter"]["outputs"][0]["logs"]
    assert "_state_lost" not in recorded

    late = make_file(project, b"late", name="late.txt")  # attached after the session started
    message_create(thread=thread, role="user", content="and this",
                   attachments=[{"file_id": late.public_id, "tools": [{"type": "code_interpreter"}]}])
    recorded = _call(run, "print(x, open('/mnt/data/late.txt').read())", [])
    assert recorded["code_interpreter"]["outputs"] == [{"type": "logs", "logs": "7 late\n"}]

    fresh_manager.manager().close()  # the worker restarts: its sessions die with it
    fresh_manager._manager = None
    recorded = _call(run, "print(open('/mnt/data/late.txt').read())\nprint(x)", [])
    assert recorded["_state_lost"] and recorded["_error"] == "exception"
    logs = recorded["code_interpreter"]["outputs"][0]["logs"]
    assert logs.startswith("late\n") and "NameError" in logs
    assert code_interpreter.output_for_model(recorded).startswith(code_interpreter.STATE_LOST)
