"""``code_interpreter``: the model runs Python in the thread's sandboxed, stateful session (``sandbox.services``).

The model is offered a ``python`` function taking ``code``; the call executes here, in the worker. The thread's
files (``tool_resources.code_interpreter.file_ids`` of the assistant and the thread, and message attachments naming
this tool) are in the session's ``/mnt/data``. The step records ``code_interpreter.input`` and ``outputs`` (logs,
and images: each figure becomes an ``assistants_output`` file). The run's final message carries the figures as
``image_file`` parts, and links to ``sandbox:/mnt/data/…`` in its text become ``file_path`` annotations on new files.
"""

from __future__ import annotations

import json
import logging
import posixpath
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from files.models import File
from files.selectors import file_get
from runs.tools.base import ModelCall, Tool

logger = logging.getLogger(__name__)

FUNCTION_NAME = "python"
WORKDIR = "/mnt/data"
LINK = re.compile(r"sandbox:(/mnt/data/[^\s)\]\"'<>`]+)")
OFFERED = {
    "type": "function",
    "function": {
        "name": FUNCTION_NAME,
        "description": "Run Python code in a stateful Jupyter-style session (variables, imports and files persist "
                       "between calls) with numpy, pandas and matplotlib, and no internet access. Files are in "
                       "/mnt/data. The output is what the code prints, the value of its last expression, and the "
                       "figures it shows.",
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "The Python code to run."}},
            "required": ["code"],
        },
    },
}
STATE_LOST = ("[The Python session had to start afresh: variables, imports and files written by earlier calls are "
              "gone; the conversation's files are in /mnt/data again.]\n")


class CodeInterpreterTool(Tool):
    type = "code_interpreter"
    model_function = FUNCTION_NAME
    attachable = True
    default_resources = {"file_ids": []}

    # --- requests ------------------------------------------------------------------------------------
    def resolve_resources(self, *, project, resources: dict, param: str) -> dict:
        file_ids = list(resources.get("file_ids") or [])
        for file_id in file_ids:
            file_get(project=project, file_id=file_id)
        return {"file_ids": file_ids}

    # --- the model -----------------------------------------------------------------------------------
    def offered(self, tool: dict) -> dict:
        return OFFERED

    def choice_for_model(self, choice: dict) -> dict:
        return {"type": "function", "function": {"name": FUNCTION_NAME}}

    def instructions(self, run) -> str:
        names = [path for path, _ in thread_files(run)]
        listing = ("The user's files: " + ", ".join(names) + ".") if names else "The user has provided no files."
        return (f"You can run Python with the `{FUNCTION_NAME}` tool. Its working directory is {WORKDIR}. "
                f"{listing} Save files you make for the user in {WORKDIR} and link each one in your answer as "
                f"sandbox:{WORKDIR}/<name> (for example [report.csv](sandbox:{WORKDIR}/report.csv)); figures you "
                f"show are given to the user as images.")

    def replay(self, call: dict, ordinal: int) -> tuple[dict, str]:
        body = call["code_interpreter"]
        return ({"id": call["id"], "type": "function",
                 "function": {"name": FUNCTION_NAME, "arguments": json.dumps({"code": body["input"]})}},
                output_for_model(call))

    def annotations(self, run, text: str, calls: list[dict]) -> list[dict]:
        return link_annotations(run, text)

    def message_parts(self, run, calls: list[dict]) -> list[dict]:
        return [{"type": "image_file", "image_file": {"file_id": output["image"]["file_id"]}}
                for call in calls for output in call["code_interpreter"]["outputs"] if output["type"] == "image"]

    # --- execution -----------------------------------------------------------------------------------
    def execute(self, run, call: ModelCall) -> tuple[dict, None]:
        return execute(run, call), None

    # --- how calls are shown ------------------------------------------------------------------------
    def call_delta(self, delta) -> dict | None:
        head = {"index": delta.index, "type": "code_interpreter"}
        if delta.started:
            return {**head, "id": delta.call_id, "code_interpreter": {"input": "", "outputs": []}}
        if delta.detail is not None:
            return {**head, "code_interpreter": delta.detail}
        written = delta.written or delta.arguments
        before = code_so_far(written[:len(written) - len(delta.arguments)])
        now = code_so_far(written)
        piece = now[len(before):] if now.startswith(before) else ""
        return {**head, "code_interpreter": {"input": piece}} if piece else None

    def step_call(self, call: dict, include) -> dict:
        return {key: value for key, value in call.items() if not key.startswith("_")}


TOOL = CodeInterpreterTool()


# --- the thread's files ----------------------------------------------------------------------------------------

def _file_ids(run) -> list[str]:
    """The assistant's and the thread's code_interpreter files, then those attached to the thread's messages for
    it (OpenAI gives the code all of them)."""
    from assistants.models import Message

    ids: list[str] = []
    for resources in ((run.assistant.tool_resources if run.assistant else None), run.thread.tool_resources):
        ids += ((resources or {}).get("code_interpreter") or {}).get("file_ids") or []
    attached = Message.objects.filter(thread=run.thread,
                                      attachments__contains=[{"tools": [{"type": "code_interpreter"}]}])
    for attachments in attached.order_by("pk").values_list("attachments", flat=True):
        ids += [a["file_id"] for a in attachments
                if any(t.get("type") == "code_interpreter" for t in a.get("tools") or [])]
    return list(dict.fromkeys(ids))


def thread_files(run) -> list[tuple[str, File]]:
    """(path in the session, File row) for each of the run's files that still exists, under its own name (a
    name met twice gets the file id in front)."""
    from assistants_project.api.errors import NotFoundError

    out, taken = [], set()
    for file_id in _file_ids(run):
        try:
            file = file_get(project=run.project, file_id=file_id)
        except NotFoundError:
            continue  # deleted since it was attached
        name = posixpath.basename(file.filename.replace("\\", "/")).strip() or file.public_id
        if name.startswith(".") or name in taken:
            name = f"{file.public_id}-{name.lstrip('.')}"
        taken.add(name)
        out.append((f"{WORKDIR}/{name}", file))
    return out


# Which of a thread's files this process put into its live session (reset whenever a session starts with them).
_placed: dict[str, set[str]] = {}


# --- one call --------------------------------------------------------------------------------------------------

def code_from_arguments(arguments: str) -> str:
    """The code of a call: the ``code`` argument, or the raw text when the model sent no JSON object."""
    try:
        data = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return arguments
    if isinstance(data, dict):
        code = data.get("code")
        if isinstance(code, str):
            return code
        strings = [v for v in data.values() if isinstance(v, str)]
        return strings[0] if len(strings) == 1 else ""
    return data if isinstance(data, str) else ""


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "/": "/", "\\": "\\", '"': '"'}
_CODE_KEY = re.compile(r'"code"\s*:\s*"')


def code_so_far(arguments: str) -> str:
    """The ``code`` string of partly written JSON arguments, decoded as far as it goes (what the stream shows
    while the model writes)."""
    if not arguments.lstrip().startswith("{"):
        return arguments
    match = _CODE_KEY.search(arguments)
    if match is None:
        return ""
    out, i, text = [], match.end(), arguments
    while i < len(text):
        char = text[i]
        if char == '"':
            break
        if char != "\\":
            out.append(char)
            i += 1
            continue
        if i + 1 >= len(text):
            break
        kind = text[i + 1]
        if kind != "u":
            out.append(_ESCAPES.get(kind, kind))
            i += 2
            continue
        if i + 6 > len(text):
            break
        point = int(text[i + 2:i + 6], 16)
        if 0xD800 <= point < 0xDC00:  # a surrogate pair: wait for its second half
            if i + 12 > len(text):
                break
            low = int(text[i + 8:i + 12], 16)
            point = 0x10000 + ((point - 0xD800) << 10) + (low - 0xDC00)
            i += 6
        out.append(chr(point))
        i += 6
    return "".join(out)


@dataclass
class _Outputs:
    """A call's outputs in the order they first appeared (one ``logs`` output, then or before each image), streamed
    as they come; the recorded step holds the same list."""

    run: object
    call: ModelCall
    items: list
    logs_at: int | None = None
    sent_logs: str = ""

    def on_output(self, output) -> None:
        """(The kernel already groups what is printed in a burst: about one logs output per 0.2 s.)"""
        if output.type == "logs":
            self._logs(storable(output.logs))
        elif output.type == "image":
            file = _save_image(self.run, output.png, len(self.items))
            self.items.append({"type": "image", "image": {"file_id": file.public_id}})
            self.call.stream({"outputs": [{"index": len(self.items) - 1, **self.items[-1]}]})

    def _logs(self, piece: str) -> None:
        if self.logs_at is None:
            self.logs_at = len(self.items)
            self.items.append({"type": "logs", "logs": ""})
        self.items[self.logs_at]["logs"] += piece
        self.sent_logs += piece
        self.call.stream({"outputs": [{"index": self.logs_at, "type": "logs", "logs": piece}]})

    def finish(self, logs: str) -> list[dict]:
        """The call's final logs (cut at the limit, with the sandbox's notes) complete what was streamed."""
        logs = storable(logs)
        if logs.startswith(self.sent_logs):
            if logs[len(self.sent_logs):]:
                self._logs(logs[len(self.sent_logs):])
        elif self.logs_at is not None:
            self.items[self.logs_at]["logs"] = logs
        return self.items


def storable(text: str) -> str:
    """Text as Postgres stores it in JSON: no NUL characters (printed by code reading /proc, binary files), no lone
    surrogates."""
    return text.replace("\x00", "\\x00").encode("utf-8", "replace").decode("utf-8")


def _save_image(run, png: bytes, index: int):
    from files.services import file_create_output

    return file_create_output(project=run.project, filename=f"image-{index}.png", data=png, content_type="image/png")


def execute(run, call: ModelCall) -> dict:
    from files import storage
    from sandbox import services as sandbox
    from sandbox.backend import SandboxUnavailable

    code = storable(code_from_arguments(call.arguments))
    thread_id = run.thread.public_id
    files = thread_files(run)
    started: list[bool] = []

    def read_all():
        started.append(True)
        _placed[thread_id] = {file.public_id for _, file in files}
        return [(path, storage.read_bytes(file.storage_name)) for path, file in files]

    outputs = _Outputs(run, call, [])
    recorded: dict[str, Any] = {"id": call.id, "type": "code_interpreter",
                                "code_interpreter": {"input": code, "outputs": []}}
    try:
        placed = _placed.get(thread_id)
        for path, file in files if placed is not None else ():
            if file.public_id not in _placed[thread_id]:
                # attached since this process's session started (if that session is gone, this starts a new one)
                sandbox.file_put(project=run.project, thread_id=thread_id, path=path,
                                 data=storage.read_bytes(file.storage_name), files=read_all)
                _placed[thread_id].add(file.public_id)
        lost_before = bool(started) and placed is not None
        result = sandbox.execute(project=run.project, thread_id=thread_id, code=code, files=read_all,
                                 on_output=outputs.on_output, should_cancel=call.cancel_requested)
    except SandboxUnavailable as exc:
        logger.error("code_interpreter unavailable: %s", exc)
        recorded["code_interpreter"]["outputs"] = [{"type": "logs", "logs": f"The Python sandbox is unavailable: "
                                                                            f"{exc}\n"}]
        recorded["_error"] = "unavailable"
        return recorded
    recorded["code_interpreter"]["outputs"] = outputs.finish(result.logs)
    if result.error:
        recorded["_error"] = result.error
    if result.state_lost or lost_before:
        recorded["_state_lost"] = True
    return recorded


def output_for_model(call: dict) -> str:
    """What the model reads back: the logs, the images as a note, and whether earlier state was lost."""
    outputs = call["code_interpreter"]["outputs"]
    logs = "".join(o["logs"] for o in outputs if o["type"] == "logs")
    images = [o["image"]["file_id"] for o in outputs if o["type"] == "image"]
    text = STATE_LOST if call.get("_state_lost") else ""
    text += logs if logs else ("" if images or call.get("_error") else "(no output)\n")
    if images:
        text += f"[{len(images)} image{'s' if len(images) > 1 else ''} shown to the user]\n"
    if call.get("_error") == "cancelled":
        text += "[The run was cancelled during this call.]\n"
    return text


# --- the final message's links ---------------------------------------------------------------------------------

def link_annotations(run, text: str) -> list[dict]:
    """A ``file_path`` annotation, on a new ``assistants_output`` file, for each link to a file in the session."""
    from files.services import file_create_output
    from sandbox import services as sandbox

    made: dict[str, str | None] = {}
    annotations = []
    for match in LINK.finditer(text):
        path = match.group(1).rstrip(".,;:!?")
        if path not in made:
            made[path] = None
            try:
                data = sandbox.file_get(thread_id=run.thread.public_id, path=path,
                                        max_bytes=settings.FILE_UPLOAD_MAX_BYTES)
            except (FileNotFoundError, OSError, ValueError):
                logger.info("run %s links %s, which its session does not have", run.public_id, path)
            else:
                made[path] = file_create_output(project=run.project, filename=posixpath.basename(path),
                                                data=data).public_id
        if made[path] is None:
            continue
        end = match.start() + len("sandbox:") + len(path)
        annotations.append({"type": "file_path", "text": text[match.start():end], "start_index": match.start(),
                            "end_index": end, "file_path": {"file_id": made[path]}})
    return annotations
