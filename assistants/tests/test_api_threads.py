"""Threads over HTTP: create (with messages, atomically), retrieve, modify, delete (cascading), tenancy."""

import pytest

from assistants.models import Message, Thread
from files.models import File
from files.tests.fixtures import make_file
from runs.models import Run, RunStep
from tests.schema import assert_list_schema, assert_schema
from tests.test_api_assistants import assert_error

pytestmark = pytest.mark.django_db


def create(api, body=None):
    response = api.post("/v1/threads", body if body is not None else {}, format="json")
    assert response.status_code == 200, response.content
    assert_schema(response.json(), "ThreadObject")
    return response.json()


def messages_of(api, thread_id, query="order=asc"):
    body = api.get(f"/v1/threads/{thread_id}/messages?{query}").json()
    assert_list_schema(body, "ListMessagesResponse")
    return body["data"]


def test_create_empty_thread(api):
    thread = create(api)
    assert thread["id"].startswith("thread_")
    assert thread["object"] == "thread"
    assert thread["tool_resources"] == {} and thread["metadata"] == {}
    assert isinstance(thread["created_at"], int)
    assert api.get(f"/v1/threads/{thread['id']}").json() == thread


def test_create_without_a_body(api):
    response = api.generic("POST", "/v1/threads", b"", content_type="application/json")
    assert response.status_code == 200, response.content
    assert_schema(response.json(), "ThreadObject")


def test_create_with_messages_tool_resources_and_metadata(api, project, storage_dir):
    doc, image = make_file(project, name="doc.txt"), make_file(project, name="cat.png", purpose="vision")
    thread = create(api, {
        "messages": [
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": [{"type": "text", "text": "Hi, how can I help?"}]},
            {"role": "user", "content": [
                {"type": "text", "text": "Look at these"},
                {"type": "image_file", "image_file": {"file_id": image.public_id, "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ], "attachments": [{"file_id": doc.public_id, "tools": [{"type": "file_search"}]}],
             "metadata": {"n": "3"}},
        ],
        "tool_resources": {"code_interpreter": {"file_ids": [doc.public_id]}},
        "metadata": {"user": "42"},
    })
    assert thread["tool_resources"]["code_interpreter"] == {"file_ids": [doc.public_id]}
    # The file_search attachment went into a vector store made for the thread, as on OpenAI.
    (store_id,) = thread["tool_resources"]["file_search"]["vector_store_ids"]
    assert api.get(f"/v1/vector_stores/{store_id}/files").json()["data"][0]["id"] == doc.public_id
    assert thread["metadata"] == {"user": "42"}

    messages = messages_of(api, thread["id"])
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    for message in messages:
        assert_schema(message, "MessageObject")
        assert message["thread_id"] == thread["id"] and message["run_id"] is None
        assert message["status"] == "completed" and isinstance(message["completed_at"], int)
    assert messages[0]["content"] == [{"type": "text", "text": {"value": "Hello", "annotations": []}}]
    assert messages[1]["content"][0]["text"]["value"] == "Hi, how can I help?"
    assert messages[2]["content"] == [
        {"type": "text", "text": {"value": "Look at these", "annotations": []}},
        {"type": "image_file", "image_file": {"file_id": image.public_id, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "auto"}},
    ]
    assert messages[2]["attachments"] == [{"file_id": doc.public_id, "tools": [{"type": "file_search"}]}]
    assert messages[2]["metadata"] == {"n": "3"}


def test_a_bad_third_message_creates_nothing(api, project, storage_dir):
    good = make_file(project)
    body = {"messages": [
        {"role": "user", "content": "one"},
        {"role": "user", "content": "two", "attachments": [{"file_id": good.public_id, "tools": []}]},
        {"role": "user", "content": "three", "attachments": [
            {"file_id": good.public_id, "tools": [{"type": "code_interpreter"}]},
            {"file_id": "file-missing", "tools": [{"type": "code_interpreter"}]}]},
    ]}
    error = assert_error(api.post("/v1/threads", body, format="json"), 404,
                         param="messages[2].attachments[1].file_id")
    assert error["message"] == "No such File object: file-missing"
    assert Thread.objects.count() == 0 and Message.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": "hello"}, "messages"),
        ({"messages": ["hello"]}, "messages[0]"),
        ({"messages": [{"content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": "ok"}, {"role": "user", "content": ""}]}, "messages[1].content"),
        ({"messages": [{"role": "user", "content": "ok"}, {"role": "user", "content": []}]}, "messages[1].content"),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                       {"role": "user", "content": "c", "oops": 1}]}, "messages[2].oops"),
        ({"messages": [{"role": "user", "content": [{"type": "audio", "audio": {}}]}]},
         "messages[0].content[0].type"),
        ({"messages": [{"role": "user", "content": "x", "attachments": [{"tools": []}]}]},
         "messages[0].attachments[0].file_id"),
        ({"messages": [{"role": "user", "content": "x", "metadata": {"k": 1}}]}, "messages[0].metadata"),
        ({"tool_resources": {"code_interpreter": {"file_ids": ["file-x"] * 21}}},
         "tool_resources.code_interpreter.file_ids"),
        ({"tool_resources": {"file_search": {"vector_store_ids": ["vs_a", "vs_b"]}}},
         "tool_resources.file_search.vector_store_ids"),
        ({"tool_resources": {"file_search": {"vector_store_ids": ["vs_a"], "vector_stores": [{}]}}},
         "tool_resources.file_search.vector_stores"),
        ({"tool_resources": "all"}, "tool_resources"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"assistant_id": "asst_x"}, "assistant_id"),
    ],
)
def test_invalid_create_names_param_and_writes_nothing(api, body, param):
    error = assert_error(api.post("/v1/threads", body, format="json"), 400, param=param)
    assert error["type"] == "invalid_request_error"
    assert Thread.objects.count() == 0 and Message.objects.count() == 0


def test_unknown_or_foreign_file_in_tool_resources_is_404(api, other_project, storage_dir):
    theirs = make_file(other_project)
    for file_id in ("file-nope", theirs.public_id):
        body = {"tool_resources": {"code_interpreter": {"file_ids": [file_id]}}}
        error = assert_error(api.post("/v1/threads", body, format="json"), 404, param="file_id")
        assert error["message"] == f"No such File object: {file_id}"
    assert Thread.objects.count() == 0


def test_unknown_vector_store_is_404(api):
    body = {"tool_resources": {"file_search": {"vector_store_ids": ["vs_nope"]}}}
    response = api.post("/v1/threads", body, format="json")
    assert_error(response, 404, param=response.json()["error"]["param"], contains="vs_nope")
    assert Thread.objects.count() == 0


def test_inline_vector_store_helper(api, project, storage_dir):
    """Until the vector-store issue lands this is a clear 400; afterwards the helper creates and attaches a store."""
    doc = make_file(project)
    body = {"tool_resources": {"file_search": {"vector_stores": [{"file_ids": [doc.public_id]}]}}}
    response = api.post("/v1/threads", body, format="json")
    try:
        from retrieval.services import vector_store_create  # noqa: F401
    except ImportError:
        assert_error(response, 400, param="tool_resources.file_search.vector_stores[0]", contains="not yet supported")
        assert Thread.objects.count() == 0
    else:
        assert response.status_code == 200, response.content
        [store_id] = response.json()["tool_resources"]["file_search"]["vector_store_ids"]
        assert store_id.startswith("vs_")


def test_retrieve_unknown_and_malformed_ids(api):
    error = assert_error(api.get("/v1/threads/thread_doesnotexist"), 404)
    assert error["message"] == "No thread found with id 'thread_doesnotexist'."
    error = assert_error(api.get("/v1/threads/undefined"), 400, param="thread_id")
    assert error["message"] == "Invalid 'thread_id': 'undefined'. Expected an ID that begins with 'thread'."


def test_modify_metadata_and_tool_resources(api, project, storage_dir):
    doc = make_file(project)
    thread = create(api, {"metadata": {"a": "1"},
                          "tool_resources": {"code_interpreter": {"file_ids": [doc.public_id]}}})
    url = f"/v1/threads/{thread['id']}"

    modified = api.post(url, {"metadata": {"b": "2"}}, format="json").json()
    assert_schema(modified, "ThreadObject")
    assert modified["metadata"] == {"b": "2"}
    assert modified["tool_resources"] == thread["tool_resources"]  # untouched when not given

    modified = api.post(url, {"tool_resources": {"code_interpreter": {"file_ids": []}}}, format="json").json()
    assert modified["tool_resources"] == {"code_interpreter": {"file_ids": []}} and modified["metadata"] == {"b": "2"}
    modified = api.post(url, {"tool_resources": None, "metadata": None}, format="json").json()
    assert modified["tool_resources"] == {} and modified["metadata"] == {}

    assert api.post(url, {}, format="json").json() == modified
    assert api.get(url).json() == modified


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"messages": []}, 400, "messages"),
        ({"metadata": "x"}, 400, "metadata"),
        ({"tool_resources": {"file_search": {"vector_stores": [{"file_ids": []}]}}}, 400,
         "tool_resources.file_search.vector_stores"),
        ({"tool_resources": {"code_interpreter": {"file_ids": ["file-nope"]}}}, 404, "file_id"),
    ],
)
def test_invalid_modify_changes_nothing(api, body, status, param):
    thread = create(api, {"metadata": {"keep": "me"}})
    assert_error(api.post(f"/v1/threads/{thread['id']}", body, format="json"), status, param=param)
    assert api.get(f"/v1/threads/{thread['id']}").json() == thread


def test_delete_cascades_to_messages_runs_and_steps_but_not_files(api, project, storage_dir):
    doc = make_file(project)
    thread = create(api, {"messages": [{"role": "user", "content": "hi", "attachments": [
        {"file_id": doc.public_id, "tools": [{"type": "file_search"}]}]}]})
    row = Thread.objects.get(public_id=thread["id"])
    run = Run.objects.create(project=project, thread=row, assistant_public_id="asst_x", model="m",
                             status=Run.Status.COMPLETED)
    RunStep.objects.create(project=project, run=run, thread=row, type=RunStep.Type.MESSAGE_CREATION)
    other = create(api, {"messages": [{"role": "user", "content": "stays"}]})

    response = api.delete(f"/v1/threads/{thread['id']}")
    assert response.status_code == 200
    assert response.json() == {"id": thread["id"], "object": "thread.deleted", "deleted": True}
    assert_schema(response.json(), "DeleteThreadResponse")

    assert not Thread.objects.filter(public_id=thread["id"]).exists()
    assert not Message.objects.filter(thread_id=row.pk).exists()
    assert not Run.objects.filter(thread_id=row.pk).exists() and not RunStep.objects.exists()
    assert File.objects.filter(pk=doc.pk).exists() and api.get(f"/v1/files/{doc.public_id}").status_code == 200
    assert len(messages_of(api, other["id"])) == 1
    assert_error(api.get(f"/v1/threads/{thread['id']}"), 404)
    assert_error(api.delete(f"/v1/threads/{thread['id']}"), 404)
    assert_error(api.get(f"/v1/threads/{thread['id']}/messages"), 404)


def test_threads_have_no_list_endpoint(api):
    create(api)
    assert_error(api.get("/v1/threads"), 405)


def test_create_and_run_path_is_not_taken_for_a_thread_id(api):
    """POST /v1/threads/runs belongs to the runs app (create-and-run), never to 'modify thread runs'."""
    response = api.post("/v1/threads/runs", {}, format="json")
    assert response.status_code != 200 or response.json().get("object") != "thread"
    assert "No thread found" not in response.content.decode()


def test_tenant_isolation(api, other_api):
    theirs = create(other_api, {"metadata": {"owner": "b"}})
    unknown = assert_error(api.get("/v1/threads/thread_doesnotexist00000000000"), 404)
    foreign = assert_error(api.get(f"/v1/threads/{theirs['id']}"), 404)
    assert foreign["message"] == unknown["message"].replace("thread_doesnotexist00000000000", theirs["id"])
    assert_error(api.post(f"/v1/threads/{theirs['id']}", {"metadata": {"owner": "a"}}, format="json"), 404)
    assert_error(api.delete(f"/v1/threads/{theirs['id']}"), 404)
    assert other_api.get(f"/v1/threads/{theirs['id']}").json() == theirs
