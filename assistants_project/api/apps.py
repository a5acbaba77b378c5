from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "assistants_project.api"
    label = "api"
    verbose_name = "API plumbing"
