from rest_framework.response import Response

from assistants import selectors, services
from assistants.serializers import AssistantIn, AssistantModifyIn, assistant_out
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
