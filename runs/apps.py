from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "runs"

    def ready(self) -> None:
        # Runs sit above assistants and register what the lower layers ask of them; importing the tasks also
        # registers how the lifecycle sends a run to a worker (in the web process too, which never runs one).
        from assistants.selectors import register_active_run_lookup
        from runs import tasks  # noqa: F401
        from runs.selectors import active_run_of

        register_active_run_lookup(active_run_of)
