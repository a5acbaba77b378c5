from django.apps import AppConfig


class AssistantsConfig(AppConfig):
    name = "assistants"
    verbose_name = "Assistants and conversations"

    def ready(self):
        from django.db.models.signals import post_delete

        # A deleted vector store leaves the tool_resources of assistants and threads (as on OpenAI), inside the
        # deleting transaction: the next run's file_search never meets an id that is gone.
        post_delete.connect(_forget_vector_store, sender="retrieval.VectorStore",
                            dispatch_uid="tool_resources_forget_vector_store")


def _forget_vector_store(sender, instance, **kwargs):
    from assistants.services import vector_store_forget

    vector_store_forget(project_id=instance.project_id, vector_store_id=instance.public_id)
