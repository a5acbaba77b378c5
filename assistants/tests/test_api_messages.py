"""Messages over HTTP: create (content forms, attachments), list (pagination, run_id), retrieve, modify, delete,
the active-run refusal, tenancy."""

import pytest

from assistants import services
from assistants.models import Message, Thread
from files.tests.fixtures import make_file
from runs.models import Run
from tests.schema import assert_list_schema, assert_schema
from tests.test_api_assistants import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def thread(api):
    response = api.post("/v1/threads", {}, format="json")
    assert response.status_code == 200
    return response.json()


def post(api, thread_id, body):
    return api.post(f"/v1/threads/{thread_id}/messages", body, format="json")


def create(api, thread_id, **body):
    body.setdefault("role", "user")
    body.setdefault("content", "hello")
    response = post(api, thread_id, body)
    assert response.status_code == 200, response.content
    assert_schema(response.json(), "MessageObject")
    return response.json()


def listed(api, thread_id, query=""):
    response = api.get(f"/v1/threads/{thread_id}/messages?{query}")
    assert response.status_code == 200, response.content
    assert_list_schema(response.json(), "ListMessagesResponse")
    return response.json()


def ids(page):
    return [m["id"] for m in page["data"]]


def test_create_text_message_shape(api, thread):
    message = create(api, thread["id"], content="What is 2+2?", metadata={"k": "v"})
    assert message["id"].startswith("msg_")
    assert message["object"] == "thread.message"
    assert message["thread_id"] == thread["id"]
    assert message["role"] == "user" and message["status"] == "completed"
    assert message["content"] == [{"type": "text", "text": {"value": "What is 2+2?", "annotations": []}}]
    assert isinstance(message["created_at"], int) and isinstance(message["completed_at"], int)
    assert message["incomplete_at"] is None and message["incomplete_details"] is None
    assert message["assistant_id"] is None and message["run_id"] is None
    assert message["attachments"] == [] and message["metadata"] == {"k": "v"}
    assert api.get(f"/v1/threads/{thread['id']}/messages/{message['id']}").json() == message


def test_create_with_parts_and_attachments(api, project, thread, storage_dir):
    image, doc, data = (make_file(project, name="a.png", purpose="vision"), make_file(project, name="b.pdf"),
                        make_file(project, name="c.csv"))
    message = create(api, thread["id"], role="assistant", content=[
        {"type": "text", "text": "  spaced  "},
        {"type": "image_file", "image_file": {"file_id": image.public_id}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
    ], attachments=[
        {"file_id": doc.public_id, "tools": [{"type": "file_search"}]},
        {"file_id": data.public_id, "tools": [{"type": "code_interpreter"}, {"type": "file_search"}]},
    ])
    assert message["role"] == "assistant"
    assert message["content"] == [
        {"type": "text", "text": {"value": "  spaced  ", "annotations": []}},
        {"type": "image_file", "image_file": {"file_id": image.public_id, "detail": "auto"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
    ]
    assert message["attachments"] == [
        {"file_id": doc.public_id, "tools": [{"type": "file_search"}]},
        {"file_id": data.public_id, "tools": [{"type": "code_interpreter"}, {"type": "file_search"}]},
    ]


def test_attachment_without_tools_is_stored_with_none(api, project, thread, storage_dir):
    doc = make_file(project)
    message = create(api, thread["id"], attachments=[{"file_id": doc.public_id}])
    assert message["attachments"] == [{"file_id": doc.public_id, "tools": []}]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"content": "x"}, "role"),
        ({"role": "system", "content": "x"}, "role"),
        ({"role": "user"}, "content"),
        ({"role": "user", "content": ""}, "content"),
        ({"role": "user", "content": "x" * 256_001}, "content"),
        ({"role": "user", "content": 42}, "content"),
        ({"role": "user", "content": []}, "content"),
        ({"role": "user", "content": ["text"]}, "content[0]"),
        ({"role": "user", "content": [{"type": "text"}]}, "content[0].text"),
        ({"role": "user", "content": [{"type": "text", "text": ""}]}, "content[0].text"),
        ({"role": "user", "content": [{"type": "text", "text": {"value": "x"}}]}, "content[0].text"),
        ({"role": "user", "content": [{"type": "text", "text": "x", "annotations": []}]}, "content[0].annotations"),
        ({"role": "user", "content": [{"type": "text", "text": "ok"}, {"type": "refusal", "refusal": "no"}]},
         "content[1].type"),
        ({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "not a url"}}]},
         "content[0].image_url.url"),
        ({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.io/a.png",
                                                                          "detail": "max"}}]},
         "content[0].image_url.detail"),
        ({"role": "user", "content": [{"type": "image_url"}]}, "content[0].image_url"),
        ({"role": "user", "content": [{"type": "image_file", "image_file": {}}]}, "content[0].image_file.file_id"),
        ({"role": "user", "content": "x", "attachments": "file-x"}, "attachments"),
        ({"role": "user", "content": "x", "attachments": [{"file_id": "file-x", "tools": [{"type": "function"}]}]},
         "attachments[0].tools[0].type"),
        ({"role": "user", "content": "x", "attachments": [{"file_id": "file-x", "tools": [
            {"type": "file_search", "file_search": {"max_num_results": 3}}]}]}, "attachments[0].tools[0].file_search"),
        ({"role": "user", "content": "x", "attachments": [{"file_id": "file-x", "tools": [], "extra": 1}]},
         "attachments[0].extra"),
        ({"role": "user", "content": "x", "metadata": {"k": "v" * 513}}, "metadata"),
        ({"role": "user", "content": "x", "run_id": "run_x"}, "run_id"),
    ],
)
def test_invalid_create_names_param_and_writes_nothing(api, thread, body, param):
    error = assert_error(post(api, thread["id"], body), 400, param=param)
    assert error["type"] == "invalid_request_error"
    assert Message.objects.count() == 0


def test_content_at_the_length_limit_is_accepted(api, thread):
    assert create(api, thread["id"], content="x" * 256_000)["content"][0]["text"]["value"] == "x" * 256_000


def test_body_must_be_a_json_object(api, thread):
    response = api.generic("POST", f"/v1/threads/{thread['id']}/messages", b'"hi"', content_type="application/json")
    assert_error(response, 400)
    assert Message.objects.count() == 0


@pytest.mark.parametrize("where", ["attachment", "image_file"])
def test_unknown_and_foreign_files_are_not_found(api, thread, other_project, storage_dir, where):
    theirs = make_file(other_project)
    for file_id in ("file-doesnotexist", theirs.public_id):
        if where == "attachment":
            body = {"role": "user", "content": "x", "attachments": [{"file_id": file_id, "tools": []}]}
            param = "attachments[0].file_id"
        else:
            body = {"role": "user", "content": [{"type": "text", "text": "see"},
                                                {"type": "image_file", "image_file": {"file_id": file_id}}]}
            param = "content[1].image_file.file_id"
        error = assert_error(post(api, thread["id"], body), 404, param=param)
        assert error["message"] == f"No such File object: {file_id}"
    assert Message.objects.count() == 0


def test_list_pagination_in_both_orders(api, thread):
    created = [create(api, thread["id"], content=f"m{i}")["id"] for i in range(7)]
    newest_first = created[::-1]

    page = listed(api, thread["id"], "limit=3")
    assert ids(page) == newest_first[:3] and page["has_more"] is True
    assert page["first_id"] == newest_first[0] and page["last_id"] == newest_first[2]
    page = listed(api, thread["id"], f"limit=3&after={page['last_id']}")
    assert ids(page) == newest_first[3:6] and page["has_more"] is True
    page = listed(api, thread["id"], f"limit=3&after={page['last_id']}")
    assert ids(page) == newest_first[6:] and page["has_more"] is False
    back = listed(api, thread["id"], f"limit=2&before={created[3]}")
    assert ids(back) == [created[5], created[4]] and back["has_more"] is True

    asc = listed(api, thread["id"], "order=asc&limit=4")
    assert ids(asc) == created[:4] and asc["has_more"] is True
    asc = listed(api, thread["id"], f"order=asc&limit=4&after={asc['last_id']}")
    assert ids(asc) == created[4:] and asc["has_more"] is False
    assert ids(listed(api, thread["id"])) == newest_first  # default: desc, limit 20


def test_list_filters_by_run_id(api, project, thread):
    row = Thread.objects.get(public_id=thread["id"])
    user = create(api, thread["id"])["id"]
    first = services.message_create(thread=row, role="assistant", content="one", assistant_id="asst_a",
                                    run_id="run_one")
    second = services.message_create(thread=row, role="assistant", content="two", assistant_id="asst_a",
                                     run_id="run_one")
    services.message_create(thread=row, role="assistant", content="three", run_id="run_two")

    page = listed(api, thread["id"], "run_id=run_one&order=asc")
    assert ids(page) == [first.public_id, second.public_id]
    assert all(m["run_id"] == "run_one" and m["assistant_id"] == "asst_a" for m in page["data"])
    page = listed(api, thread["id"], "run_id=run_one&limit=1")
    assert ids(page) == [second.public_id] and page["has_more"] is True
    assert ids(listed(api, thread["id"], f"run_id=run_one&after={second.public_id}")) == [first.public_id]
    assert listed(api, thread["id"], "run_id=run_nothing")["data"] == []
    assert len(listed(api, thread["id"])["data"]) == 4
    # A cursor outside the filtered list is refused like any unknown cursor.
    assert_error(api.get(f"/v1/threads/{thread['id']}/messages?run_id=run_one&after={user}"), 400, param="after")


@pytest.mark.parametrize(
    ("query", "param"),
    [("limit=0", "limit"), ("limit=101", "limit"), ("limit=x", "limit"), ("order=up", "order"),
     ("after=msg_unknown", "after"), ("before=msg_unknown", "before"), ("after=msg_a&before=msg_b", "before")],
)
def test_invalid_list_parameters(api, thread, query, param):
    create(api, thread["id"])
    assert_error(api.get(f"/v1/threads/{thread['id']}/messages?{query}"), 400, param=param)


def test_list_limit_100_and_empty_list(api, thread):
    assert listed(api, thread["id"])["data"] == []
    create(api, thread["id"])
    assert len(listed(api, thread["id"], "limit=100")["data"]) == 1


def test_list_query_count_is_constant(api, project, thread, django_assert_max_num_queries):
    row = Thread.objects.get(public_id=thread["id"])
    for i in range(30):
        services.message_create(thread=row, role="user", content=str(i))
    with django_assert_max_num_queries(4):  # key, thread, page (+ nothing per row)
        assert len(listed(api, thread["id"])["data"]) == 20


def test_modify_metadata_only(api, thread):
    message = create(api, thread["id"], content="keep", metadata={"a": "1"})
    url = f"/v1/threads/{thread['id']}/messages/{message['id']}"
    modified = api.post(url, {"metadata": {"b": "2"}}, format="json").json()
    assert_schema(modified, "MessageObject")
    assert modified == {**message, "metadata": {"b": "2"}}
    assert api.post(url, {}, format="json").json() == modified  # nothing given, nothing changed
    assert_error(api.post(url, {"content": "changed"}, format="json"), 400, param="content")
    assert_error(api.post(url, {"metadata": {"k": 1}}, format="json"), 400, param="metadata")
    assert api.get(url).json() == modified


def test_delete(api, thread):
    keep = create(api, thread["id"], content="keep")
    gone = create(api, thread["id"], content="gone")
    url = f"/v1/threads/{thread['id']}/messages/{gone['id']}"
    response = api.delete(url)
    assert response.json() == {"id": gone["id"], "object": "thread.message.deleted", "deleted": True}
    assert_schema(response.json(), "DeleteMessageResponse")
    assert ids(listed(api, thread["id"])) == [keep["id"]]
    error = assert_error(api.get(url), 404)
    assert error["message"] == f"No message found with id '{gone['id']}'."
    assert_error(api.delete(url), 404)
    assert_error(api.post(url, {"metadata": {}}, format="json"), 404)


def test_unknown_thread_and_malformed_ids(api, thread):
    missing = "No thread found with id 'thread_nope'."
    assert_error(api.get("/v1/threads/thread_nope/messages"), 404, contains=missing)
    assert_error(post(api, "thread_nope", {"role": "user", "content": "x"}), 404, contains=missing)
    assert_error(api.get("/v1/threads/thread_nope/messages/msg_x"), 404, contains=missing)
    assert_error(api.delete("/v1/threads/thread_nope/messages/msg_x"), 404, contains=missing)
    assert_error(api.get(f"/v1/threads/{thread['id']}/messages/undefined"), 400, param="message_id",
                 contains="Expected an ID that begins with 'msg'.")
    assert_error(api.get("/v1/threads/undefined/messages"), 400, param="thread_id")


def test_a_message_is_only_found_in_its_own_thread(api, thread):
    other = api.post("/v1/threads", {}, format="json").json()
    message = create(api, other["id"])
    assert_error(api.get(f"/v1/threads/{thread['id']}/messages/{message['id']}"), 404)
    assert_error(api.delete(f"/v1/threads/{thread['id']}/messages/{message['id']}"), 404)


@pytest.mark.parametrize("status", [s.value for s in Run.ACTIVE])
def test_no_new_messages_while_a_run_is_active(api, project, thread, status):
    row = Thread.objects.get(public_id=thread["id"])
    run = Run.objects.create(project=project, thread=row, assistant_public_id="asst_x", model="m", status=status)
    error = assert_error(post(api, thread["id"], {"role": "user", "content": "wait"}), 400)
    assert error["message"] == f"Can't add messages to {thread['id']} while a run {run.public_id} is active."
    assert error["type"] == "invalid_request_error"
    assert Message.objects.count() == 0


@pytest.mark.parametrize("status", [s.value for s in Run.TERMINAL])
def test_messages_are_welcome_once_the_run_ended(api, project, thread, status):
    row = Thread.objects.get(public_id=thread["id"])
    Run.objects.create(project=project, thread=row, assistant_public_id="asst_x", model="m", status=status)
    create(api, thread["id"])


def test_the_runs_engine_helper_skips_the_active_run_check(project):
    row = services.thread_create(project=project)
    Run.objects.create(project=project, thread=row, assistant_public_id="asst_x", model="m")
    message = services.message_create(thread=row, role="assistant", content=[], assistant_id="asst_x",
                                      run_id="run_x", status="in_progress")
    assert message.completed_at is None and message.content == []
    cited = services.message_create(thread=row, role="assistant", run_id="run_x", content=[{"type": "text", "text": {
        "value": "see [1]", "annotations": [{"type": "file_citation", "text": "[1]", "start_index": 4,
                                              "end_index": 7, "file_citation": {"file_id": "file-x"}}]}}])
    assert cited.content[0]["text"]["annotations"][0]["type"] == "file_citation"


def test_tenant_isolation(api, other_api, thread):
    mine = create(api, thread["id"])
    theirs_thread = other_api.post("/v1/threads", {}, format="json").json()
    theirs = create(other_api, theirs_thread["id"], content="private")
    base = f"/v1/threads/{theirs_thread['id']}/messages"
    assert_error(api.get(base), 404)
    assert_error(post(api, theirs_thread["id"], {"role": "user", "content": "intrude"}), 404)
    assert_error(api.get(f"{base}/{theirs['id']}"), 404)
    assert_error(api.post(f"{base}/{theirs['id']}", {"metadata": {"x": "y"}}, format="json"), 404)
    assert_error(api.delete(f"{base}/{theirs['id']}"), 404)
    # Their message id through my own thread is just as unknown.
    assert_error(api.get(f"/v1/threads/{thread['id']}/messages/{theirs['id']}"), 404)
    assert_error(api.get(f"/v1/threads/{thread['id']}/messages?after={theirs['id']}"), 400, param="after")
    assert ids(listed(api, thread["id"])) == [mine["id"]]
    assert ids(listed(other_api, theirs_thread["id"])) == [theirs["id"]]


def test_list_query_can_only_be_served_by_the_thread_index(api, thread):
    """The page query keeps thread_id as an ordering column (see assistants/pagination.py): a plain
    ``thread_id = X ORDER BY id`` lets Postgres walk the primary key through every newer message of the table."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    create(api, thread["id"])
    for query, direction in [("", "DESC"), ("order=asc", "ASC"), ("run_id=run_x", "DESC")]:
        with CaptureQueriesContext(connection) as captured:
            listed(api, thread["id"], query)
        [page] = [q["sql"] for q in captured.captured_queries if 'FROM "assistants_message"' in q["sql"]]
        assert '"assistants_message"."thread_id" >= ' in page and '"assistants_message"."thread_id" <= ' in page
        assert (f'ORDER BY "assistants_message"."thread_id" {direction}, "assistants_message"."id" {direction}'
                in page)
