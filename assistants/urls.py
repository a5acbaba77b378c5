from assistants.views import AssistantViewSet, MessageViewSet, ThreadViewSet
from assistants_project.api.routers import OpenAIRouter

router = OpenAIRouter()
router.register("assistants", AssistantViewSet, basename="assistant")
router.register("threads", ThreadViewSet, basename="thread")
router.register(r"threads/(?P<thread_id>[^/.]+)/messages", MessageViewSet, basename="message")
urlpatterns = router.urls
