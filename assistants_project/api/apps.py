from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "assistants_project.api"
    label = "api"
    verbose_name = "API plumbing"

    def ready(self):
        from assistants_project import tracing

        tracing.setup()  # OpenTelemetry, when TRACING_ENABLED (before the request handler loads its middleware)
