from django.contrib import admin
from django.urls import include, path

from assistants_project import docs, metrics
from assistants_project.api import views

urlpatterns = [
    path("healthz", views.healthz),
    path("readyz", views.readyz),
    path("metrics", metrics.metrics_view),  # Prometheus; off unless METRICS_TOKEN is set
    path("admin/", admin.site.urls),
    path("v1/openapi.json", docs.openapi_json),  # the API description (public, like the spec it is cut from)
    path("docs", docs.docs),  # rendered by Swagger UI, served from our static files
    path("v1/", include("runs.urls")),  # first: /threads/runs must not read as a thread id
    path("v1/", include("assistants.urls")),
    path("v1/", include("files.urls")),
    path("v1/", include("retrieval.urls")),
    path("v1/", include("gateway.urls")),
]

handler400 = "assistants_project.api.errors.handler400"
handler403 = "assistants_project.api.errors.handler403"
handler404 = "assistants_project.api.errors.handler404"
handler500 = "assistants_project.api.errors.handler500"
