from django.urls import path

from assistants_project.api.routers import OpenAIRouter
from runs.views import RunStepViewSet, RunViewSet, ThreadAndRunViewSet

router = OpenAIRouter()
router.register(r"threads/(?P<thread_id>[^/.]+)/runs", RunViewSet, basename="run")
router.register(r"threads/(?P<thread_id>[^/.]+)/runs/(?P<run_id>[^/.]+)/steps", RunStepViewSet, basename="step")

# Before the threads routes, or POST /threads/runs would read as "modify thread 'runs'".
urlpatterns = [path("threads/runs", ThreadAndRunViewSet.as_view({"post": "create"})), *router.urls]
