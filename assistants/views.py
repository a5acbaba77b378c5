from rest_framework.response import Response

from assistants import selectors, services
from assistants.serializers import (
    AssistantIn,
    AssistantModifyIn,
    MessageIn,
    MessageListParams,
    MessageModifyIn,
    ThreadIn,
    ThreadModifyIn,
    assistant_out,
    message_out,
    thread_out,
)
from assistants_project.api.views import OpenAIViewSet


class AssistantViewSet(OpenAIViewSet):
    lookup_url_kwarg = "assistant_id"

    def list(self, request):
        return self.list_response(selectors.assistant_list(project=self.project), assistant_out)

    def create(self, request):
        return Response(assistant_out(services.assistant_create(project=self.project, **self.body(AssistantIn))))

    def retrieve(self, request, assistant_id: str):
        return Response(assistant_out(selectors.assistant_get(project=self.project, assistant_id=assistant_id)))

    def modify(self, request, assistant_id: str):
        assistant = selectors.assistant_get(project=self.project, assistant_id=assistant_id)
        return Response(assistant_out(services.assistant_modify(assistant=assistant, **self.body(AssistantModifyIn))))

    def destroy(self, request, assistant_id: str):
        assistant = selectors.assistant_get(project=self.project, assistant_id=assistant_id)
        services.assistant_delete(assistant=assistant)
        return Response({"id": assistant_id, "object": "assistant.deleted", "deleted": True})


class ThreadViewSet(OpenAIViewSet):
    """No list: OpenAI's API has none (operators browse threads in the admin)."""

    lookup_url_kwarg = "thread_id"
    lookup_value_regex = r"(?!runs$)[^/.]+"  # leave POST /threads/runs (create-and-run) to the runs app

    def create(self, request):
        return Response(thread_out(services.thread_create(project=self.project, **self.body(ThreadIn))))

    def retrieve(self, request, thread_id: str):
        return Response(thread_out(selectors.thread_get(project=self.project, thread_id=thread_id)))

    def modify(self, request, thread_id: str):
        thread = selectors.thread_get(project=self.project, thread_id=thread_id)
        return Response(thread_out(services.thread_modify(thread=thread, **self.body(ThreadModifyIn))))

    def destroy(self, request, thread_id: str):
        thread = selectors.thread_get(project=self.project, thread_id=thread_id)
        services.thread_delete(thread=thread)
        return Response({"id": thread_id, "object": "thread.deleted", "deleted": True})


class MessageViewSet(OpenAIViewSet):
    lookup_url_kwarg = "message_id"

    def _thread(self, thread_id: str):
        return selectors.thread_get(project=self.project, thread_id=thread_id)

    def list(self, request, thread_id: str):
        thread = self._thread(thread_id)
        return self.list_response(
            selectors.message_list(thread=thread), lambda m: message_out(m, thread_id=thread.public_id),
            params_class=MessageListParams, parent_field="thread_id",
            narrow=lambda qs, params: qs.filter(run_public_id=params["run_id"]) if params.get("run_id") else qs)

    def create(self, request, thread_id: str):
        message = services.message_add(project=self.project, thread_id=thread_id, **self.body(MessageIn))
        return Response(message_out(message))

    def retrieve(self, request, thread_id: str, message_id: str):
        message = selectors.message_get(thread=self._thread(thread_id), message_id=message_id)
        return Response(message_out(message))

    def modify(self, request, thread_id: str, message_id: str):
        message = selectors.message_get(thread=self._thread(thread_id), message_id=message_id)
        return Response(message_out(services.message_modify(message=message, **self.body(MessageModifyIn))))

    def destroy(self, request, thread_id: str, message_id: str):
        message = selectors.message_get(thread=self._thread(thread_id), message_id=message_id)
        services.message_delete(message=message)
        return Response({"id": message_id, "object": "thread.message.deleted", "deleted": True})
