"""tenancy 0001 / assistants 0002 move Project and ApiKey out of ``assistants`` in Django's state only: a database
made before the move keeps every row, and every object is reachable through the new models afterwards."""

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from rest_framework.test import APIClient

from assistants.models import Assistant, Message, Thread
from files.models import File
from retrieval.models import Chunk, FileBatch, VectorStore, VectorStoreFile
from runs.models import Run, RunStep
from tenancy.models import ApiKey, Project, hash_key

BEFORE = [("assistants", "0001_initial"), ("files", "0002_file_project_id_index"),
          ("retrieval", "0006_chunk_vectors"), ("runs", "0001_initial"), ("tenancy", None)]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    return executor.migrate(targets)


def latest():
    graph = MigrationExecutor(connection).loader.graph
    apps = ("tenancy", "assistants", "files", "retrieval", "runs", "sandbox")
    return [node for app in apps for node in graph.leaf_nodes(app)]


def tables() -> set[str]:
    return set(connection.introspection.table_names())


def fill(apps, name: str) -> dict[str, int]:
    """One object of every kind for a project, written through the models as they were before the move."""
    def model(label):
        return apps.get_model(*label.split("."))

    project = model("assistants.Project").objects.create(public_id=f"proj_{name}", name=name)
    key = model("assistants.ApiKey").objects.create(project=project, name="old", prefix=f"sk-{name}"[:8],
                                                    key_hash=hash_key(f"sk-{name}-key"))
    assistant = model("assistants.Assistant").objects.create(project=project, public_id=f"asst_{name}", model="m")
    thread = model("assistants.Thread").objects.create(project=project, public_id=f"thread_{name}")
    message = model("assistants.Message").objects.create(
        project=project, public_id=f"msg_{name}", thread=thread, role="user",
        content=[{"type": "text", "text": {"value": f"hello from {name}", "annotations": []}}])
    run = model("runs.Run").objects.create(project=project, public_id=f"run_{name}", thread=thread,
                                           assistant=assistant, assistant_public_id=assistant.public_id, model="m",
                                           status="completed")
    step = model("runs.RunStep").objects.create(project=project, public_id=f"step_{name}", run=run, thread=thread,
                                                type="message_creation", status="completed")
    file = model("files.File").objects.create(project=project, public_id=f"file-{name}", filename="a.txt",
                                              purpose="assistants", bytes=5, storage_name=f"{name}/a.txt")
    store = model("retrieval.VectorStore").objects.create(project=project, public_id=f"vs_{name}", name=name)
    batch = model("retrieval.FileBatch").objects.create(project=project, public_id=f"vsfb_{name}",
                                                        vector_store=store)
    vsf = model("retrieval.VectorStoreFile").objects.create(project=project, vector_store=store, file=file,
                                                            batch=batch, status="completed", chunking_strategy={})
    chunk = model("retrieval.Chunk").objects.create(project=project, vector_store=store, vector_store_file=vsf,
                                                    file=file, position=0, text=f"chunk of {name}", token_count=3)
    return {"project": project.pk, "key": key.pk, "assistant": assistant.pk, "thread": thread.pk,
            "message": message.pk, "run": run.pk, "step": step.pk, "file": file.pk, "store": store.pk,
            "batch": batch.pk, "vsf": vsf.pk, "chunk": chunk.pk}


@pytest.mark.django_db(transaction=True)
def test_objects_made_before_the_move_are_all_there_after_it():
    project_type = ContentType.objects.get_by_natural_key("tenancy", "project")
    add_key = Permission.objects.get(content_type__app_label="tenancy", codename="add_apikey")
    try:
        old = migrate(BEFORE).apps
        with pytest.raises(LookupError):
            old.get_model("tenancy", "Project")
        assert {"assistants_project", "assistants_apikey"} <= tables()
        # The content types went back with the models (and keep their ids, so permissions stay attached).
        ContentType.objects.clear_cache()
        assert ContentType.objects.get_by_natural_key("assistants", "project").pk == project_type.pk
        a, b = fill(old, "alpha"), fill(old, "beta")

        migrate(latest())
        assert {"assistants_project", "assistants_apikey"} <= tables()  # the same tables, not copies
        ContentType.objects.clear_cache()
        assert ContentType.objects.get_by_natural_key("tenancy", "project").pk == project_type.pk
        assert Permission.objects.get(pk=add_key.pk).content_type.app_label == "tenancy"

        for ids, name in ((a, "alpha"), (b, "beta")):
            project = Project.objects.get(pk=ids["project"])
            assert (project.name, project.public_id) == (name, f"proj_{name}")
            assert [k.pk for k in project.api_keys.all()] == [ids["key"]]
            assert ApiKey.objects.get(key_hash=hash_key(f"sk-{name}-key")).project == project
            assert Assistant.objects.get(project=project).pk == ids["assistant"]
            thread = Thread.objects.get(project=project)
            assert thread.pk == ids["thread"]
            assert [m.pk for m in thread.messages.all()] == [ids["message"]]
            assert Message.objects.get(project=project).thread == thread
            run = Run.objects.get(project=project)
            assert (run.pk, run.thread, run.assistant_id) == (ids["run"], thread, ids["assistant"])
            assert [s.pk for s in run.steps.filter(project=project)] == [ids["step"]]
            file = File.objects.get(project=project)
            assert file.pk == ids["file"]
            store = VectorStore.objects.get(project=project)
            assert store.pk == ids["store"]
            assert FileBatch.objects.get(project=project, vector_store=store).pk == ids["batch"]
            vsf = VectorStoreFile.objects.get(project=project, vector_store=store)
            assert (vsf.pk, vsf.file, vsf.batch_id) == (ids["vsf"], file, ids["batch"])
            chunk = Chunk.objects.get(project=project)
            assert (chunk.pk, chunk.vector_store_file, chunk.file) == (ids["chunk"], vsf, file)
            assert chunk.text == f"chunk of {name}"

        # The old key still authenticates, and sees its project's objects only.
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Bearer sk-alpha-key", HTTP_OPENAI_BETA="assistants=v2")
        assert [x["id"] for x in client.get("/v1/assistants").json()["data"]] == ["asst_alpha"]
        assert client.get("/v1/threads/thread_beta").status_code == 404

        # Deleting a project through the new models cascades over every app's foreign keys to it.
        Project.objects.filter(pk=b["project"]).delete()
        for model in (ApiKey, Assistant, Thread, Message, Run, RunStep, File, VectorStore, FileBatch,
                      VectorStoreFile, Chunk):
            assert not model.objects.filter(project_id=b["project"]).exists(), model
            assert model.objects.filter(project_id=a["project"]).count() == 1, model
    finally:
        migrate(latest())
