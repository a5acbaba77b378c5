from assistants.views import AssistantViewSet
from assistants_project.api.routers import OpenAIRouter

router = OpenAIRouter()
router.register("assistants", AssistantViewSet, basename="assistant")
urlpatterns = router.urls
