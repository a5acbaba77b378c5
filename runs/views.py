from rest_framework.decorators import action
from rest_framework.response import Response

from assistants.selectors import thread_get
from assistants_project.api.views import OpenAIViewSet
from runs import polling, selectors, services
from runs.models import Run
from runs.serializers import (
    RunCreateIn,
    RunModifyIn,
    SubmitToolOutputsIn,
    ThreadAndRunIn,
    include_from_query,
    run_out,
    step_out,
)
from runs.streaming import sse_response


def _poll_hint(response: Response, run: Run) -> Response:
    """The SDKs' *_and_poll helpers sleep this long between polls (runs.polling)."""
    polling.observe(run)
    response["openai-poll-after-ms"] = str(polling.poll_after_ms(run))
    return response


class RunViewSet(OpenAIViewSet):
    lookup_url_kwarg = "run_id"

    def _thread(self):
        return thread_get(project=self.project, thread_id=self.kwargs["thread_id"])

    def _run(self):
        return selectors.run_get(thread=self._thread(), run_id=self.kwargs["run_id"])

    def list(self, request, thread_id: str):
        return self.list_response(selectors.run_list(thread=self._thread()).select_related("thread"), run_out,
                                  parent_field="thread_id")

    def create(self, request, thread_id: str):
        include = include_from_query(request.query_params)
        body = self.body(RunCreateIn)
        stream = body.pop("stream", None)
        run = services.run_create(project=self.project, thread_id=thread_id, include=include, **body)
        if stream:
            return sse_response(run.public_id)
        return _poll_hint(Response(run_out(run)), run)

    def retrieve(self, request, thread_id: str, run_id: str):
        after = polling.hold_cursor(request, run_id)
        run = self._run()
        if after is not None and polling.holds(run):
            return polling.held_response(run, after=after)
        return _poll_hint(Response(run_out(run)), run)

    def modify(self, request, thread_id: str, run_id: str):
        run = self._run()
        run = services.run_modify(run=run, metadata=self.body(RunModifyIn).get("metadata", run.metadata))
        return Response(run_out(run))

    @action(detail=True, methods=["post"])
    def cancel(self, request, thread_id: str, run_id: str):
        run = services.run_cancel(run=self._run())
        return _poll_hint(Response(run_out(run)), run)

    @action(detail=True, methods=["post"])
    def submit_tool_outputs(self, request, thread_id: str, run_id: str):
        body = self.body(SubmitToolOutputsIn)
        run, after = services.run_submit_tool_outputs(run=self._run(), tool_outputs=body["tool_outputs"])
        if body.get("stream"):
            return sse_response(run.public_id, after)
        return _poll_hint(Response(run_out(run)), run)

    @action(detail=True, methods=["get"])
    def events(self, request, thread_id: str, run_id: str):
        """Beyond OpenAI: resume a run's stream after ``Last-Event-ID`` (or ``?after=``)."""
        run = self._run()
        after = request.headers.get("Last-Event-ID") or request.query_params.get("after") or "0-0"
        return sse_response(run.public_id, after)


class ThreadAndRunViewSet(OpenAIViewSet):
    def create(self, request):
        body = self.body(ThreadAndRunIn)
        stream = body.pop("stream", None)
        _thread, run = services.thread_and_run_create(project=self.project, **body)
        if stream:
            return sse_response(run.public_id)
        return _poll_hint(Response(run_out(run)), run)


class RunStepViewSet(OpenAIViewSet):
    lookup_url_kwarg = "step_id"

    def _run(self):
        thread = thread_get(project=self.project, thread_id=self.kwargs["thread_id"])
        return selectors.run_get(thread=thread, run_id=self.kwargs["run_id"])

    def list(self, request, thread_id: str, run_id: str):
        include = include_from_query(request.query_params)
        steps = selectors.step_list(run=self._run()).select_related("run", "thread")
        return self.list_response(steps, lambda step: step_out(step, include=include), parent_field="run_id")

    def retrieve(self, request, thread_id: str, run_id: str, step_id: str):
        include = include_from_query(request.query_params)
        return Response(step_out(selectors.step_get(run=self._run(), step_id=step_id), include=include))



