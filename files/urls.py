from assistants_project.api.routers import OpenAIRouter
from files.views import FileViewSet

router = OpenAIRouter()
router.register("files", FileViewSet, basename="file")
urlpatterns = router.urls
