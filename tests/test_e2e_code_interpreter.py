"""code_interpreter in runs, end to end: the official SDKs, a live server, a real Celery worker running the code in
the real bubblewrap sandbox, and the fake LLM (which asks for the code to run)."""

import json
import shutil
import subprocess
import time

import psutil
import pytest
from openai import AssistantEventHandler

from tests.live import E2E_API_KEY, E2E_DATA_DIR, ROOT, e2e_db

pytestmark = [pytest.mark.e2e, pytest.mark.sandbox]

BIG = str(2**100)


@pytest.fixture
def client(live):
    return live.client()


@pytest.fixture
def assistant(client):
    return client.beta.assistants.create(model="gpt-4o-mini", instructions="You are a math tutor.",
                                         tools=[{"type": "code_interpreter"}])


def _turn(body) -> list[dict]:
    """The messages after the last user message (this run's tool rounds so far)."""
    messages = body["messages"]
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    return messages[last_user + 1:]


def _asks(word: str, rounds: int = 0):
    """A matcher: the last user message has ``word`` and the run has made ``rounds`` tool calls so far."""
    def match(body):
        user = [m for m in body["messages"] if m["role"] == "user"][-1]
        return word in str(user["content"]) and sum(m["role"] == "tool" for m in _turn(body)) == rounds
    return match


def python(code: str) -> list[dict]:
    return [{"name": "python", "arguments": {"code": code}}]


def tool_output(body) -> str:
    return [m for m in body["messages"] if m["role"] == "tool"][-1]["content"]


def calls_of(client, thread_id, run_id):
    steps = client.beta.threads.runs.steps.list(thread_id=thread_id, run_id=run_id, order="asc").data
    return [call for step in steps if step.type == "tool_calls" for call in step.step_details.tool_calls]


def logs_of(call) -> str:
    return "".join(o.logs for o in call.code_interpreter.outputs if o.type == "logs")


def run_poll(client, thread_id, assistant_id, **kwargs):
    return client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id,
                                                    poll_interval_ms=100, **kwargs)


def _wait(predicate, timeout=30.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def test_the_model_runs_code_and_answers_with_its_output(live, client, assistant):
    live.fake.add_rule(_asks("two to the hundredth"), tool_calls=python("print(2**100)"))
    live.fake.add_rule(_asks("two to the hundredth", 1), reply=lambda body: f"It is {tool_output(body).strip()}.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What is two to the hundredth?"}])
    run = run_poll(client, thread.id, assistant.id)
    assert run.status == "completed", run.last_error

    (call,) = calls_of(client, thread.id, run.id)
    assert call.type == "code_interpreter" and call.id.startswith("call")
    assert call.code_interpreter.input == "print(2**100)"
    assert [o.type for o in call.code_interpreter.outputs] == ["logs"] and logs_of(call) == BIG + "\n"
    reply = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert reply.content[0].text.value == f"It is {BIG}."

    first, second = live.fake.chat_requests()[-2:]
    assert [t["function"]["name"] for t in first["tools"]] == ["python"]
    assert "/mnt/data" in first["messages"][0]["content"]  # the model is told where files are
    asked = second["messages"][-2]["tool_calls"][0]
    assert asked["function"]["name"] == "python" and json.loads(asked["function"]["arguments"]) == {
        "code": "print(2**100)"}
    answer = second["messages"][-1]
    assert (answer["role"], answer["tool_call_id"], answer["content"]) == ("tool", asked["id"], BIG + "\n")

    with e2e_db() as db:
        containers = db.execute("SELECT status, memory_limit FROM sandbox_container WHERE thread_id = %s",
                                [thread.id]).fetchall()
    assert containers == [("running", "1g")]


def test_state_is_kept_across_calls_and_runs_of_a_thread(live, client, assistant):
    first = "x = 41\nimport math\n_ = open('kept.txt', 'w').write('k')"
    live.fake.add_rule(_asks("remember"), tool_calls=python(first))
    live.fake.add_rule(_asks("remember", 1), tool_calls=python("print(x + 1, math.floor(2.5))"))
    live.fake.add_rule(_asks("remember", 2), text="Done.")
    live.fake.add_rule(_asks("double it"), tool_calls=python("print(x * 2)"))
    live.fake.add_rule(_asks("double it", 1), reply=lambda body: tool_output(body))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "remember x"}])
    run = run_poll(client, thread.id, assistant.id)
    assert run.status == "completed", run.last_error
    assert [logs_of(c) for c in calls_of(client, thread.id, run.id)] == ["", "42 2\n"]

    client.beta.threads.messages.create(thread_id=thread.id, role="user", content="now double it")
    run = run_poll(client, thread.id, assistant.id)
    assert run.status == "completed", run.last_error
    assert [logs_of(c) for c in calls_of(client, thread.id, run.id)] == ["82\n"]
    assert tool_output(live.fake.chat_requests()[-1]) == "82\n"  # no "state is gone" note: it was kept

    # a later run's answer links a file an earlier run wrote, without running code itself
    live.fake.add_rule(_asks("the file"), text="Here: sandbox:/mnt/data/kept.txt")
    client.beta.threads.messages.create(thread_id=thread.id, role="user", content="the file, please")
    run = run_poll(client, thread.id, assistant.id)
    assert run.status == "completed", run.last_error
    (note,) = client.beta.threads.messages.list(thread_id=thread.id).data[0].content[0].text.annotations
    assert note.text == "sandbox:/mnt/data/kept.txt" and client.files.content(note.file_path.file_id).read() == b"k"


def test_a_csv_attachment_is_read_with_pandas(live, client, assistant, tmp_path):
    data = tmp_path / "sales.csv"
    data.write_text("region,amount\nnorth,10\nsouth,32\n")
    notes = tmp_path / "notes.txt"
    notes.write_text("from the assistant")
    sales = client.files.create(file=data.open("rb"), purpose="assistants")
    helper = client.files.create(file=notes.open("rb"), purpose="assistants")
    tutor = client.beta.assistants.create(model="gpt-4o-mini", tools=[{"type": "code_interpreter"}],
                                          tool_resources={"code_interpreter": {"file_ids": [helper.id]}})
    code = ("import pandas as pd\ndf = pd.read_csv('/mnt/data/sales.csv')\nprint(df.amount.sum())\n"
            "print(open('/mnt/data/notes.txt').read())")
    live.fake.add_rule(_asks("total sales"), tool_calls=python(code))
    live.fake.add_rule(_asks("total sales", 1), reply=lambda body: tool_output(body))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What are the total sales?",
                                                   "attachments": [{"file_id": sales.id,
                                                                    "tools": [{"type": "code_interpreter"}]}]}])
    run = run_poll(client, thread.id, tutor.id)
    assert run.status == "completed", run.last_error
    (call,) = calls_of(client, thread.id, run.id)
    assert logs_of(call) == "42\nfrom the assistant\n"
    system = live.fake.chat_requests()[-2]["messages"][0]["content"]
    assert "/mnt/data/sales.csv" in system and "/mnt/data/notes.txt" in system


def test_a_figure_becomes_an_image_file_the_sdk_downloads(live, client, assistant):
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])\nplt.title('squares')\nplt.show()"
    live.fake.add_rule(_asks("plot the squares"), tool_calls=python(code))
    live.fake.add_rule(_asks("plot the squares", 1), text="Here is the plot.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "plot the squares"}])
    run = run_poll(client, thread.id, assistant.id)
    assert run.status == "completed", run.last_error

    (call,) = calls_of(client, thread.id, run.id)
    images = [o.image.file_id for o in call.code_interpreter.outputs if o.type == "image"]
    assert len(images) == 1
    reply = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert reply.content[0].text.value == "Here is the plot."
    assert [(p.type, p.image_file.file_id) for p in reply.content[1:]] == [("image_file", images[0])]
    png = client.files.content(images[0]).read()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert client.files.retrieve(images[0]).purpose == "assistants_output"
    assert "1 image shown to the user" in tool_output(live.fake.chat_requests()[-1])


def test_a_written_csv_linked_in_the_reply_is_a_file_path_annotation(live, client, assistant):
    code = "import pandas as pd\npd.DataFrame({'n': [1, 2, 3]}).to_csv('/mnt/data/numbers.csv', index=False)"
    live.fake.add_rule(_asks("export the numbers"), tool_calls=python(code))
    live.fake.add_rule(_asks("export the numbers", 1),
                       text="Download it: [numbers.csv](sandbox:/mnt/data/numbers.csv). Not [this](sandbox:/mnt/data/"
                            "missing.csv).")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "export the numbers"}])
    run = run_poll(client, thread.id, assistant.id)
    assert run.status == "completed", run.last_error

    text = client.beta.threads.messages.list(thread_id=thread.id).data[0].content[0].text
    (note,) = text.annotations  # the missing file gets none
    assert note.type == "file_path" and note.text == "sandbox:/mnt/data/numbers.csv"
    assert text.value[note.start_index:note.end_index] == note.text
    assert client.files.content(note.file_path.file_id).read() == b"n\n1\n2\n3\n"
    made = client.files.retrieve(note.file_path.file_id)
    assert made.filename == "numbers.csv" and made.purpose == "assistants_output"


def test_streaming_shows_the_code_as_written_then_the_logs(live, client, assistant):
    code = "total = sum(range(10))\nprint('total', total)"
    live.fake.add_rule(_asks("stream a sum"), tool_calls=python(code))
    live.fake.add_rule(_asks("stream a sum", 1), text="The total is 45.")

    class Handler(AssistantEventHandler):
        def __init__(self):
            super().__init__()
            self.created, self.inputs, self.logs, self.done = [], [], [], []

        def on_tool_call_created(self, tool_call):
            self.created.append(tool_call.type)

        def on_tool_call_delta(self, delta, snapshot):
            if delta.type == "code_interpreter":
                if delta.code_interpreter.input:
                    self.inputs.append(delta.code_interpreter.input)
                for output in delta.code_interpreter.outputs or []:
                    if output.type == "logs":
                        self.logs.append(output.logs)

        def on_tool_call_done(self, tool_call):
            self.done.append(tool_call)

    thread = client.beta.threads.create(messages=[{"role": "user", "content": "stream a sum"}])
    handler = Handler()
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id,
                                         event_handler=handler) as stream:
        stream.until_done()
    assert handler.created == ["code_interpreter"]
    assert len(handler.inputs) > 1 and "".join(handler.inputs) == code  # piece by piece, as the model wrote it
    assert "".join(handler.logs) == "total 45\n"
    snapshot = handler.done[0]
    assert snapshot.code_interpreter.input == code and snapshot.code_interpreter.outputs[0].logs == "total 45\n"
    assert handler.current_run.status == "completed"


def test_a_streamed_figure_reaches_on_image_file_done(live, client, assistant):
    live.fake.add_rule(_asks("stream a plot"), tool_calls=python("import matplotlib.pyplot as plt\nplt.bar([1, 2], "
                                                                   "[3, 4])\nplt.show()"))
    live.fake.add_rule(_asks("stream a plot", 1), text="Bars.")

    class Handler(AssistantEventHandler):
        def __init__(self):
            super().__init__()
            self.images, self.outputs, self.texts = [], [], []

        def on_tool_call_delta(self, delta, snapshot):
            self.outputs += [o.image.file_id for o in delta.code_interpreter.outputs or [] if o.type == "image"]

        def on_text_done(self, text):
            self.texts.append(text.value)

        def on_image_file_done(self, image_file):
            self.images.append(image_file.file_id)

    thread = client.beta.threads.create(messages=[{"role": "user", "content": "stream a plot"}])
    handler = Handler()
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id,
                                         event_handler=handler) as stream:
        stream.until_done()
    assert handler.texts == ["Bars."] and len(handler.outputs) == 1 and handler.images == handler.outputs
    assert client.files.content(handler.images[0]).read().startswith(b"\x89PNG")


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_sdk_streams_code_interpreter(live, client, assistant):
    code = "print(6 * 7)"
    live.fake.add_rule(_asks("node python"), tool_calls=python(code))
    live.fake.add_rule(_asks("node python", 1), text="42 it is.")
    assert (ROOT / "node_modules" / "openai").exists(), "run `npm install` (make test does)"
    result = subprocess.run(["node", str(ROOT / "tests" / "node" / "code_interpreter.mjs")], capture_output=True,
                            text=True, timeout=120, cwd=ROOT,
                            env={"PATH": "/usr/bin:/bin:/usr/local/bin", "BASE_URL": live.base_url,
                                 "API_KEY": live.api_key, "ASSISTANT_ID": assistant.id})
    assert result.returncode == 0, result.stderr + result.stdout
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {"created": "code_interpreter", "input": code, "logs": "42\n", "text": "42 it is.",
                   "status": "completed"}


def _escapes(live):
    port = live.base_url.split(":")[2].split("/")[0]
    return {
        "own port": (f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3)", "Error"),
        "other host": ("import socket\nsocket.create_connection(('1.1.1.1', 443), timeout=3)", "Error"),
        "settings": (f"print(open({str(ROOT / 'assistants_project' / 'settings.py')!r}).read())",
                     "FileNotFoundError"),
        "database files": (f"import os\nprint(os.listdir({str(E2E_DATA_DIR)!r}))", "FileNotFoundError"),
        "environment": ("import os\nprint(dict(os.environ))\nprint(open('/proc/1/environ').read())\n"
                        "raise SystemExit('looked')", "looked"),
        "write outside": ("open('/usr/evil', 'w').write('x')", "Error"),
        "fork bomb": ("import os\nwhile True:\n    os.fork()", ""),
        "fill the disk": ("i = 0\nwhile True:\n    with open(f'/mnt/data/f{i}', 'wb') as f:\n"
                          "        f.write(b'0' * 1024**2)\n    i += 1", "No space left on device"),
        "print 100 MB": ("print('x' * 100_000_000)", "[output truncated at"),
        "10 GB": ("block = bytearray(10 * 1024**3)", "MemoryError"),
        "infinite loop": ("while True:\n    pass", "time limit"),
        "kill the parent": ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(1, signal.SIGKILL)\n"
                            "print('alive')", ""),
    }


@pytest.mark.parametrize("attempt", ["own port", "other host", "settings", "database files", "environment",
                                     "write outside", "fork bomb", "fill the disk", "print 100 MB", "10 GB",
                                     "infinite loop", "kill the parent"])
def test_escape_attempts_are_contained_and_reported(live, client, assistant, attempt):
    code, expected = _escapes(live)[attempt]
    live.fake.add_rule(_asks("try this"), tool_calls=python(code))
    live.fake.add_rule(_asks("try this", 1), text="Tried.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"try this: {attempt}"}])
    run = run_poll(client, thread.id, assistant.id, timeout=120)
    assert run.status == "completed", run.last_error
    (call,) = calls_of(client, thread.id, run.id)
    logs = logs_of(call)
    assert logs and expected in logs, logs
    for secret in (E2E_API_KEY, "sk-fake-provider-key"):
        assert secret not in logs
    assert tool_output(live.fake.chat_requests()[-1]).startswith(logs[:200])  # the model was told
    # the service keeps serving, and the thread's session works again
    assert client.beta.assistants.retrieve(assistant.id).id == assistant.id
    live.fake.add_rule(_asks("and now"), tool_calls=python("print('still here')"))
    live.fake.add_rule(_asks("and now", 1), text="Fine.")
    client.beta.threads.messages.create(thread_id=thread.id, role="user", content="and now")
    run = run_poll(client, thread.id, assistant.id)
    assert run.status == "completed" and logs_of(calls_of(client, thread.id, run.id)[0]).endswith("still here\n")


def test_cancel_stops_the_call_and_the_session_stays_usable(live, client, assistant):
    code = "kept = 'yes'\nimport time\nfor i in range(300):\n    print(i, flush=True)\n    time.sleep(0.1)"
    live.fake.add_rule(_asks("count slowly"), tool_calls=python(code))
    live.fake.add_rule(_asks("count slowly", 1), text="Counted.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "count slowly"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    _wait(lambda: client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data)
    time.sleep(1.5)  # mid-call
    started = time.monotonic()
    client.beta.threads.runs.cancel(thread_id=thread.id, run_id=run.id)
    run = client.beta.threads.runs.poll(thread_id=thread.id, run_id=run.id, poll_interval_ms=100)
    assert run.status == "cancelled" and time.monotonic() - started < 10  # not the 30 s the code would take
    step = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data[0]
    assert step.status == "cancelled" and step.type == "tool_calls"
    logs = logs_of(step.step_details.tool_calls[0])
    assert logs.startswith("0\n") and "299\n" not in logs  # stopped mid-way

    live.fake.add_rule(_asks("still there"), tool_calls=python("print(kept)"))
    live.fake.add_rule(_asks("still there", 1), text="Yes.")
    client.beta.threads.messages.create(thread_id=thread.id, role="user", content="still there?")
    run = run_poll(client, thread.id, assistant.id)
    assert run.status == "completed" and logs_of(calls_of(client, thread.id, run.id)[0]) == "yes\n"


def test_sigkill_of_the_worker_mid_call_leaves_no_stuck_run_nor_sandbox(live, client, assistant):
    import os
    import signal

    live.fake.add_rule(_asks("sleep long"), tool_calls=python("import time\ntime.sleep(25)"), times=1)
    live.fake.add_rule(_asks("sleep long"), text="Woke up after a restart.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "sleep long"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    _wait(lambda: client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data)
    time.sleep(1.0)  # mid-call
    (worker,) = live.child_pids("worker")
    sandboxes = _wait(lambda: [p for p in psutil.Process(worker).children(recursive=True) if p.name() == "bwrap"])
    os.kill(worker, signal.SIGKILL)
    run = _wait(lambda: (r := client.beta.threads.runs.retrieve(thread_id=thread.id, run_id=run.id)).status
                not in ("queued", "in_progress") and r, timeout=90, interval=0.5)
    assert run.status in ("completed", "failed")
    if run.status == "completed":
        reply = client.beta.threads.messages.list(thread_id=thread.id, run_id=run.id).data
        assert [m.content[0].text.value for m in reply] == ["Woke up after a restart."]

    def gone(process):
        try:
            return process.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    _wait(lambda: all(gone(p) for p in sandboxes), timeout=10)
