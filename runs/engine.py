"""The run engine: prompt → model (streamed) → tools → steps and messages, turn after turn.

It knows nothing of HTTP nor of any API's event shapes: a worker task calls ``run_execute``; what happens is
published as ``runs.event_model`` events (rendered onto the run's Redis Stream) as it happens; what each tool
kind does is in ``runs.tools``; the run's own status changes go through ``runs.lifecycle``. No row lock is held
across a model call; every final write is a compare-and-set.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models.sql import InsertQuery
from django.utils import timezone

from assistants.models import Message
from assistants_project.api.ids import new_id
from runs import event_model as ev
from runs import events, heartbeat, lifecycle, llm, tools
from runs.models import Run, RunStep
from runs.prompt import PromptTooLong, build_prompt
from tenancy import credentials as provider_credentials

logger = logging.getLogger(__name__)
# While a model streams, the cancel flag (a Redis read) is checked this often, not per chunk.
CANCEL_CHECK_SECONDS = 0.05
ZERO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


class Cancelled(Exception):
    pass


def _add(a: dict, b: dict) -> dict:
    out = {k: (a.get(k) or 0) + (b.get(k) or 0) for k in ("prompt_tokens", "completion_tokens")}
    out["total_tokens"] = out["prompt_tokens"] + out["completion_tokens"]
    return out


@dataclass
class Turn:
    """One model call's output as it streams: at most one message and one tool-calls step."""

    run: Run
    number: int
    message: Message | None = None
    message_step: RunStep | None = None
    text: list[str] = field(default_factory=list)
    tool_step: RunStep | None = None
    calls: dict[int, dict] = field(default_factory=dict)  # model's index → our call
    finish: str = "stop"
    usage: dict = field(default_factory=lambda: dict(ZERO_USAGE))
    # After a crash: text of ``message`` the stream already carries (the crashed attempt's), not yet re-produced
    replay: str = ""

    # --- the message -------------------------------------------------------------------------------
    def add_text(self, piece: str) -> None:
        if self.replay:
            piece = self._skip_replayed(piece)
            if not piece:
                return
        if self.message is None:
            self._open_message(piece)
            return
        self.text.append(piece)
        events.publish(self.run.public_id, ev.TextDelta(self.message.public_id, piece))

    def _skip_replayed(self, piece: str) -> str:
        """Continue the crashed attempt's message rather than restart it, so a stream consumer (the SDKs'
        ``text_deltas``) does not get its text twice: text this attempt re-produces is not streamed again."""
        n = min(len(piece), len(self.replay))
        if piece[:n] == self.replay[:n]:
            self.text.append(piece[:n])
            self.replay = self.replay[n:]
            return piece[n:]
        return self._diverged() + piece

    def _diverged(self) -> str:
        """This attempt's text differs from what the crashed one streamed: the stream closes that message as it
        was shown (incomplete, its step failed) and the rows go, as for any redone turn; this attempt's text
        (returned) goes to a new message."""
        mine, now = "".join(self.text), timezone.now()
        message, step = self.message, self.message_step
        assert message is not None and step is not None, "a replay continues an open message"
        message.content = [{"type": "text", "text": {"value": mine + self.replay, "annotations": []}}]
        lifecycle.message_enter(message, Message.Status.INCOMPLETE, now, reason="run_failed")
        lifecycle.step_enter(step, RunStep.Status.FAILED, now)
        events.publish(self.run.public_id, ev.MessageStatus(message), ev.StepStatus(step, tuple(self.run.include)))
        with transaction.atomic():
            Message.objects.filter(pk=message.pk).delete()
            RunStep.objects.filter(pk=step.pk).delete()
        self.message = self.message_step = None
        self.text, self.replay = [], ""
        return mine

    def _open_message(self, first_piece: str) -> None:
        """The turn's first text. The rows are inserted first, then their events (ids and timestamps made here) go
        out with the first delta in one write: a worker killed in between must not have shown a message that a
        recovered attempt cannot find (it would stream the first token again, and leave that message open)."""
        run, now = self.run, timezone.now()
        self.message = Message(
            public_id=new_id(Message.id_kind), created_at=now, project_id=run.project_id, thread=run.thread,
            role=Message.Role.ASSISTANT, content=[], status=Message.Status.IN_PROGRESS,
            assistant_public_id=run.assistant_public_id, run_public_id=run.public_id)
        self.message_step = RunStep(
            public_id=new_id(RunStep.id_kind), created_at=now, project_id=run.project_id, run=run,
            thread=run.thread, type=RunStep.Type.MESSAGE_CREATION, turn=self.number,
            step_details={"type": "message_creation", "message_creation": {"message_id": self.message.public_id}})
        self.text.append(first_piece)
        _insert_together(self.message, self.message_step)
        include = tuple(run.include)
        events.publish(run.public_id, ev.StepCreated(self.message_step, include),
                       ev.StepStatus(self.message_step, include), ev.MessageCreated(self.message),
                       ev.MessageStatus(self.message), ev.TextDelta(self.message.public_id, first_piece, first=True))

    def close_message(self, *, incomplete_reason: str | None = None, usage: dict | None = None,
                      step_status: str = RunStep.Status.COMPLETED, final: bool = False) -> None:
        """``final``: the run's answer, which carries what its tool calls make of the text (file_search:
        citations). In a caller's transaction, the rows and their events land with it (at its commit)."""
        self.end_replay()
        if self.message is None or self.message.status != Message.Status.IN_PROGRESS:
            return
        now = timezone.now()
        value = "".join(self.text)
        annotations, parts = _final_content(self.run, value) if final else ([], [])
        message, step = self.message, self.message_step
        assert step is not None, "opened with its message"
        message.content = [{"type": "text", "text": {"value": value, "annotations": annotations}}, *parts]
        message_fields = lifecycle.message_enter(
            message, Message.Status.INCOMPLETE if incomplete_reason else Message.Status.COMPLETED, now,
            reason=incomplete_reason)
        step_fields = lifecycle.step_enter(step, step_status, now)
        step.usage = usage or dict(ZERO_USAGE)
        with transaction.atomic(savepoint=False):
            message.save(update_fields=["content", *message_fields])
            step.save(update_fields=[*step_fields, "usage"])
            added = (ev.PartsAdded(message.public_id, 1, tuple(parts)),) if parts else ()
            events.publish_on_commit(self.run.public_id, *added, ev.MessageStatus(message),
                                     ev.StepStatus(step, tuple(self.run.include)))

    def end_replay(self) -> None:
        """The turn ended before re-producing all the crashed attempt streamed: the message it continued closes
        as shown, and this attempt's text goes to a new one (``_diverged``). Not in a caller's transaction: what
        it shows and writes must not wait for a later commit."""
        if self.replay:
            mine = self._diverged()
            if mine:
                self._open_message(mine)

    # --- tool calls --------------------------------------------------------------------------------
    def add_call_delta(self, delta: llm.ToolCallDelta) -> None:
        if self.message is not None:
            self.close_message()  # text then calls: the message step completes before the tool step opens
        if self.tool_step is None:
            self.tool_step = _step_create(self.run, self.number, RunStep.Type.TOOL_CALLS,
                                          {"type": "tool_calls", "tool_calls": []})
            include = tuple(self.run.include)
            events.publish(self.run.public_id, ev.StepCreated(self.tool_step, include),
                           ev.StepStatus(self.tool_step, include))
        call = self.calls.get(delta.index)
        position = len(self.calls) if call is None else call["position"]
        if call is None:
            call = self.calls[delta.index] = {"position": position, "id": new_id("call"), "name": delta.name or "",
                                              "arguments": ""}
            events.publish(self.run.public_id, ev.ToolCallDelta(
                self.tool_step.public_id, position, tools.for_call(call["name"]).type, call_id=call["id"],
                name=call["name"], started=True))
        elif delta.name and not call["name"]:
            call["name"] = delta.name
        if delta.arguments:
            call["arguments"] += delta.arguments
            events.publish(self.run.public_id, ev.ToolCallDelta(
                self.tool_step.public_id, position, tools.for_call(call["name"]).type, arguments=delta.arguments,
                written=call["arguments"]))


def _insert_together(*objs: models.Model) -> None:
    """INSERT the rows in one statement: one round trip, and one transaction (all or none), on the first token's
    path. As ``save_base(raw=True)``: the values set are stored as they are (a ``created_at`` the events carry,
    where auto_now_add would stamp a new one); each row gets its primary key.

    Its own transaction commits without waiting for the WAL flush (``synchronous_commit`` off for it alone, the
    flush is most of a commit's time: several ms): once the statement returns, the rows are committed and
    visible to every session, so a worker killed after it leaves rows the recovery finds. Only a crash of
    Postgres itself within the WAL writer's delay (≤ 3 × wal_writer_delay, 0.6 s by default; any later
    synchronous commit flushes them too) could lose them, and the recovery then redoes the turn afresh."""
    parts, pks, params = [], [], []
    if not connection.in_atomic_block:  # in a caller's transaction the setting would apply to all of it
        parts.append("relaxed AS (SELECT set_config('synchronous_commit', 'off', true))")
        pks.append("(SELECT 1 FROM relaxed)")  # a CTE that nothing references is not evaluated
    for i, obj in enumerate(objs):
        meta = obj._meta
        query = InsertQuery(type(obj))
        query.insert_values([f for f in meta.local_concrete_fields if f is not meta.auto_field], [obj], raw=True)
        compiler = query.get_compiler(connection=connection)
        compiler.returning_fields = [meta.pk]  # as_sql: … RETURNING "table"."id"
        [(sql, values)] = compiler.as_sql()
        parts.append(f"i{i} AS ({sql})")
        pks.append(f"(SELECT {connection.ops.quote_name(str(meta.pk.column))} FROM i{i})")
        params += values
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(parts)} SELECT {', '.join(pks)}", params)
        row = cursor.fetchone()
    for obj, pk in zip(objs, row[len(row) - len(objs):], strict=True):
        obj.pk = pk
        obj._state.adding, obj._state.db = False, connection.alias


def _step_create(run: Run, turn: int, kind: str, details: dict) -> RunStep:
    return RunStep.objects.create(project_id=run.project_id, run=run, thread=run.thread, type=kind,
                                  step_details=details, turn=turn)


def _check_cancel(run: Run) -> None:
    if events.cancel_requested(run.public_id):
        raise Cancelled
    status = Run.objects.filter(pk=run.pk).values_list("status", flat=True).first()
    if status != Run.Status.IN_PROGRESS:
        raise Cancelled


def _resume_point(run: Run) -> tuple[int, Turn | None]:
    """The number of the last finished turn, and the turn to redo. After a crash the interrupted turn is redone
    from scratch, so its half-written rows (an open tool step) are dropped first; its open message is kept and
    continued (``Turn.replay``) when the event stream tells what of it was streamed, else dropped too."""
    steps = list(RunStep.objects.filter(run=run).values_list("pk", "turn", "status", "type", "step_details"))
    done = max((turn for _, turn, status, _, _ in steps if status != RunStep.Status.IN_PROGRESS), default=0)
    unfinished = [s for s in steps if s[2] == RunStep.Status.IN_PROGRESS]
    carry = None
    for pk, _, _, kind, details in unfinished:
        if kind == RunStep.Type.MESSAGE_CREATION and carry is None:
            message_id = details["message_creation"]["message_id"]
            streamed = events.streamed_text(run.public_id, message_id)
            message = Message.objects.filter(thread=run.thread, public_id=message_id).first()
            if streamed and message is not None:  # "": the stream lost it (Redis restarted): start afresh
                carry = Turn(run=run, number=done + 1, message=message, message_step=RunStep.objects.get(pk=pk),
                             replay=streamed)
    if unfinished:
        with transaction.atomic():
            keep = [carry.message_step.pk] if carry and carry.message_step else []
            message_ids = [details["message_creation"]["message_id"] for pk, _, _, kind, details in unfinished
                           if kind == RunStep.Type.MESSAGE_CREATION and pk not in keep]
            Message.objects.filter(thread=run.thread, public_id__in=message_ids).delete()
            RunStep.objects.filter(run=run, status=RunStep.Status.IN_PROGRESS).exclude(pk__in=keep).delete()
    return done, carry


def _final_content(run: Run, text: str) -> tuple[list[dict], list[dict]]:
    """What the run's tools make of the final message, given their recorded calls (oldest first, by kind):
    annotations on its text (file_search: citations; code_interpreter: links to its files, which may come from
    an earlier run) and parts after it (code_interpreter: figures)."""
    if not run.tools:  # no tool, nothing to make of the text
        return [], []
    calls: dict[str, list[dict]] = {tool["type"]: [] for tool in run.tools}
    for step in RunStep.objects.filter(run=run, type=RunStep.Type.TOOL_CALLS).order_by("pk"):
        for call in step.step_details["tool_calls"]:
            calls.setdefault(call["type"], []).append(call)
    kinds = [(tools.get(kind), of_kind) for kind, of_kind in calls.items()]
    return ([note for tool, of_kind in kinds for note in tool.annotations(run, text, of_kind)],
            [part for tool, of_kind in kinds for part in tool.message_parts(run, of_kind)])


def run_execute(*, run_id: int, task_id: str) -> None:
    run = lifecycle.run_claim(run_id=run_id, task_id=task_id)
    if run is None:
        return
    # the provider credentials of the request that created or continued the run, else the project's (issue 16)
    # (the claim has read the project's, so the model calls query none)
    with heartbeat.beating(run.pk), provider_credentials.scope(project_id=run.project_id,
                                                               sealed=run.sealed_credentials,
                                                               prefetched=lifecycle.claimed_credentials(run)):
        try:
            _execute(run)
            # A cancel that came while the run finished made the finishing write lose its compare-and-set (the run
            # is still in_progress here then): end the cancellation now rather than leave the run cancelling until
            # the sweeper. A won finishing write moved ``run.status`` on: nothing to do (no query).
            if run.status == Run.Status.IN_PROGRESS:
                lifecycle.run_finish_cancel(run_id=run.pk)
        except Cancelled:
            lifecycle.run_finish_cancel(run_id=run.pk)
        except PromptTooLong:
            lifecycle.run_finish(run=run, status=Run.Status.INCOMPLETE,
                                incomplete_details={"reason": "max_prompt_tokens"})
        except llm.ModelError as exc:
            logger.warning("run %s failed: %s (%s)", run.public_id, exc.message, exc.code)
            if not lifecycle.run_finish(run=run, status=Run.Status.FAILED,
                                       last_error={"code": exc.code, "message": exc.message}):
                lifecycle.run_finish_cancel(run_id=run.pk)


def _execute(run: Run) -> None:
    # the claim that first starts a run stamps started_at and heartbeat_at alike: nothing to resume yet
    done, carry = (0, None) if run.started_at == run.heartbeat_at else _resume_point(run)
    usage = run.usage or dict(ZERO_USAGE)
    for number in range(done + 1, done + 1 + settings.RUN_MAX_STEPS + 1):
        if number > settings.RUN_MAX_STEPS:
            lifecycle.run_finish(run=run, status=Run.Status.FAILED, usage=usage, last_error={
                "code": "server_error",
                "message": f"The run exceeded the maximum of {settings.RUN_MAX_STEPS} model turns (RUN_MAX_STEPS)."})
            return
        if number > done + 1:  # the claim has just checked the first turn
            _check_cancel(run)
        budget = None
        if run.max_completion_tokens:
            budget = run.max_completion_tokens - usage["completion_tokens"]
            if budget <= 0:
                lifecycle.run_finish(run=run, status=Run.Status.INCOMPLETE, usage=usage,
                                    incomplete_details={"reason": "max_completion_tokens"})
                return
        turn = _model_turn(run, number, budget, carry if number == done + 1 else None)
        usage = _add(usage, turn.usage)
        if not turn.calls:
            _finish_with(run, turn, usage)
            return
        Run.objects.filter(pk=run.pk).update(usage=usage)
        turn.close_message()
        if _after_tool_calls(run, turn, usage):
            return


def _finish_with(run: Run, turn: Turn, usage: dict) -> None:
    """The run's last turn: its message and step close and the run ends in one transaction, and their events go
    out in one write at its commit (a worker killed before the commit leaves the turn for the redelivery to redo;
    nothing of its end was shown)."""
    turn.end_replay()
    with transaction.atomic():
        if turn.finish == "length":
            turn.close_message(incomplete_reason="max_tokens", usage=turn.usage)
            won = lifecycle.run_finish(run=run, status=Run.Status.INCOMPLETE, usage=usage,
                                       incomplete_details={"reason": "max_completion_tokens"})
        else:
            turn.close_message(usage=turn.usage, final=True)
            won = lifecycle.run_finish(run=run, status=Run.Status.COMPLETED, usage=usage)
        if not won:  # cancelled meanwhile (run_execute ends it): the turn's tokens were spent all the same
            Run.objects.filter(pk=run.pk).update(usage=usage)


def _model_turn(run: Run, number: int, max_tokens: int | None, carry: Turn | None = None) -> Turn:
    prompt = build_prompt(run, first_turn=number == 1)
    if not connection.in_atomic_block:
        # The database connection goes back to the pool while the model thinks (the next write takes one again):
        # otherwise every run in a model call holds one, and a worker overlaps only DB_POOL_MAX_SIZE calls.
        connection.close()
    turn = carry or Turn(run=run, number=number)
    stream = llm.stream_chat(
        model=run.model, messages=prompt.messages, tools=prompt.tools, tool_choice=prompt.tool_choice,
        parallel_tool_calls=run.parallel_tool_calls, response_format=_response_format(run),
        temperature=run.temperature, top_p=run.top_p, max_tokens=max_tokens, reasoning_effort=run.reasoning_effort)
    try:
        checked = time.monotonic()  # the claim (or the previous turn) has just checked
        for delta in stream:
            if time.monotonic() - checked >= CANCEL_CHECK_SECONDS:
                if events.cancel_requested(run.public_id):
                    raise Cancelled
                checked = time.monotonic()
            if isinstance(delta, llm.TextDelta):
                turn.add_text(delta.text)
            elif isinstance(delta, llm.ToolCallDelta):
                turn.add_call_delta(delta)
            else:
                turn.finish = delta.reason
                turn.usage = _add(delta.usage or {
                    "prompt_tokens": llm.count_tokens(run.model, prompt.messages, prompt.tools),
                    "completion_tokens": len("".join(turn.text)) // 4}, {})
    except Cancelled:
        # What was streamed so far is kept: the message ends incomplete with that text.
        turn.close_message(incomplete_reason="run_cancelled", step_status=RunStep.Status.CANCELLED)
        raise
    except llm.ModelError:
        turn.close_message(incomplete_reason="run_failed", step_status=RunStep.Status.FAILED)
        raise
    finally:
        close = getattr(stream, "close", None)
        if close:
            close()  # stop reading from the provider at once (cancel)
    return turn


def _response_format(run: Run):
    fmt = run.response_format
    return None if fmt in (None, "auto") or fmt == {"type": "text"} else fmt


def _model_call(run: Run, step: RunStep, call: dict, kind: str) -> tools.ModelCall:
    def stream(detail: dict) -> None:
        events.publish(run.public_id, ev.ToolCallDelta(step.public_id, call["position"], kind, detail=detail))

    return tools.ModelCall(id=call["id"], name=call["name"], arguments=call["arguments"], step_id=step.public_id,
                           index=call["position"], stream=stream,
                           cancel_requested=lambda: events.cancel_requested(run.public_id))


def _after_tool_calls(run: Run, turn: Turn, usage: dict) -> bool:
    """Execute the calls each kind runs here; pause for those the client answers. True when the run paused
    (requires_action)."""
    step = turn.tool_step
    assert step is not None, "a turn with calls has its tool step"
    calls, pending = [], []
    for call in sorted(turn.calls.values(), key=lambda c: c["position"]):
        tool = tools.for_call(call["name"])
        recorded, asked = tool.execute(run, _model_call(run, step, call, tool.type))
        calls.append(recorded)
        if asked is not None:
            pending.append(asked)
    step.step_details = {"type": "tool_calls", "tool_calls": calls}
    step.usage = turn.usage
    if events.cancel_requested(run.public_id):  # during a call (code_interpreter stops): the step ends cancelled
        step.save(update_fields=["step_details", "usage"])
        raise Cancelled
    if pending:
        step.save(update_fields=["step_details", "usage"])
        lifecycle.run_finish(run=run, status=Run.Status.REQUIRES_ACTION, usage=usage,
                             required_action={"type": "submit_tool_outputs",
                                              "submit_tool_outputs": {"tool_calls": pending}},
                             expires_at=timezone.now() + timedelta(seconds=settings.RUN_EXPIRES_SECONDS))
        return True
    fields = lifecycle.step_enter(step, RunStep.Status.COMPLETED, timezone.now())
    step.save(update_fields=["step_details", "usage", *fields])
    events.publish(run.public_id, ev.StepStatus(step, tuple(run.include)))
    return False
