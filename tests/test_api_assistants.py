"""Assistants CRUD over HTTP: shapes against OpenAI's schemas, validation with params, pagination, tenancy."""

import pytest

from assistants.models import Assistant
from tests.schema import assert_list_schema, assert_schema

pytestmark = pytest.mark.django_db


def create(api, **body):
    body.setdefault("model", "gpt-4o-mini")
    response = api.post("/v1/assistants", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def assert_error(response, status, param=None, code=None, contains=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["param"] == param
    assert body["error"]["code"] == code
    if contains:
        assert contains in body["error"]["message"]
    return body["error"]


def test_create_full_assistant_matches_schema(api):
    body = create(
        api,
        name="Math tutor",
        description="Helps",
        instructions="You are a tutor.",
        tools=[
            {"type": "code_interpreter"},
            {"type": "file_search", "file_search": {"max_num_results": 5,
                                                    "ranking_options": {"ranker": "auto", "score_threshold": 0.2}}},
            {"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                              "parameters": {"type": "object", "properties": {}}, "strict": True}},
        ],
        metadata={"team": "a"},
        temperature=0.5,
        top_p=0.9,
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}},
        reasoning_effort="low",
    )
    assert_schema(body, "AssistantObject")
    assert body["id"].startswith("asst_")
    assert body["object"] == "assistant"
    assert body["name"] == "Math tutor"
    assert body["tools"][1]["file_search"]["max_num_results"] == 5
    assert body["tools"][2]["function"]["strict"] is True
    assert body["temperature"] == 0.5
    assert "reasoning_effort" not in body  # accepted, but not in OpenAI's response object
    fetched = api.get(f"/v1/assistants/{body['id']}").json()
    assert fetched == body


def test_defaults_are_openai_defaults(api):
    body = create(api)
    assert_schema(body, "AssistantObject")
    assert body["tools"] == [] and body["metadata"] == {} and body["tool_resources"] == {}
    assert body["temperature"] == 1.0 and body["top_p"] == 1.0 and body["response_format"] == "auto"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "model"),
        ({"model": "m", "name": "x" * 257}, "name"),
        ({"model": "m", "description": "x" * 513}, "description"),
        ({"model": "m", "instructions": "x" * 256_001}, "instructions"),
        ({"model": "m", "temperature": 2.5}, "temperature"),
        ({"model": "m", "top_p": -0.1}, "top_p"),
        ({"model": "m", "tools": [{"type": "browser"}]}, "tools[0].type"),
        ({"model": "m", "tools": [{"type": "function"}]}, "tools[0].function"),
        ({"model": "m", "tools": [{"type": "function", "function": {"name": "bad name"}}]}, "tools[0].function.name"),
        ({"model": "m", "tools": [{"type": "code_interpreter"}] * 129}, "tools"),
        ({"model": "m", "tools": [{"type": "file_search", "file_search": {"max_num_results": 51}}]},
         "tools[0].file_search.max_num_results"),
        ({"model": "m", "response_format": {"type": "xml"}}, "response_format.type"),
        ({"model": "m", "reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"model": "m", "tool_resources": {"code_interpreter": {"file_ids": ["f"] * 21}}},
         "tool_resources.code_interpreter.file_ids"),
        ({"model": "m", "tool_resources": {"file_search": {"vector_store_ids": ["a", "b"]}}},
         "tool_resources.file_search.vector_store_ids"),
        ({"model": "m", "unknown_field": 1}, "unknown_field"),
        ({"model": "m", "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"model": "m", "metadata": {"k" * 65: "v"}}, "metadata"),
        ({"model": "m", "metadata": {"k": "v" * 513}}, "metadata"),
        ({"model": "m", "metadata": {"k": 1}}, "metadata"),
        ({"model": "m", "metadata": "nope"}, "metadata"),
    ],
)
def test_invalid_create_names_param_and_writes_nothing(api, body, param):
    error = assert_error(api.post("/v1/assistants", body, format="json"), 400, param=param)
    assert error["type"] == "invalid_request_error"
    assert Assistant.objects.count() == 0


def test_metadata_at_the_limits_is_accepted(api):
    metadata = {f"{i:02d}" + "k" * 62: "v" * 512 for i in range(16)}
    assert create(api, metadata=metadata)["metadata"] == metadata


def test_unknown_file_in_tool_resources_is_404_and_writes_nothing(api):
    response = api.post("/v1/assistants", {"model": "m", "tool_resources": {"code_interpreter": {"file_ids": [
        "file-nope"]}}}, format="json")
    assert_error(response, 404, param="file_id", contains="file-nope")
    assert Assistant.objects.count() == 0


def test_modify_changes_only_given_fields(api):
    body = create(api, name="a", instructions="keep me", metadata={"x": "1"})
    response = api.post(f"/v1/assistants/{body['id']}", {"name": "b", "metadata": {"y": "2"}}, format="json")
    assert response.status_code == 200
    modified = response.json()
    assert_schema(modified, "AssistantObject")
    assert modified["name"] == "b" and modified["instructions"] == "keep me" and modified["metadata"] == {"y": "2"}
    assert modified["model"] == body["model"]


def test_modify_validates(api):
    body = create(api)
    assert_error(api.post(f"/v1/assistants/{body['id']}", {"temperature": 9}, format="json"), 400,
                 param="temperature")
    assert api.get(f"/v1/assistants/{body['id']}").json()["temperature"] == 1.0


def test_delete_then_gone(api):
    body = create(api)
    response = api.delete(f"/v1/assistants/{body['id']}")
    assert response.json() == {"id": body["id"], "object": "assistant.deleted", "deleted": True}
    assert_schema(response.json(), "DeleteAssistantResponse")
    assert_error(api.get(f"/v1/assistants/{body['id']}"), 404, contains=f"No assistant found with id '{body['id']}'")
    assert_error(api.delete(f"/v1/assistants/{body['id']}"), 404)


def test_empty_list(api):
    response = api.get("/v1/assistants")
    assert response.status_code == 200
    assert_list_schema(response.json(), "ListAssistantsResponse")


def test_pagination_walks_both_directions(api):
    ids = [create(api, name=str(i))["id"] for i in range(7)]  # oldest first
    newest_first = ids[::-1]

    page1 = api.get("/v1/assistants?limit=3").json()
    assert_list_schema(page1, "ListAssistantsResponse")
    assert [a["id"] for a in page1["data"]] == newest_first[:3]
    assert page1["has_more"] is True
    assert page1["first_id"] == newest_first[0] and page1["last_id"] == newest_first[2]

    page2 = api.get(f"/v1/assistants?limit=3&after={page1['last_id']}").json()
    assert [a["id"] for a in page2["data"]] == newest_first[3:6] and page2["has_more"] is True
    page3 = api.get(f"/v1/assistants?limit=3&after={page2['last_id']}").json()
    assert [a["id"] for a in page3["data"]] == newest_first[6:] and page3["has_more"] is False

    back = api.get(f"/v1/assistants?limit=3&before={page3['first_id']}").json()
    assert [a["id"] for a in back["data"]] == newest_first[3:6] and back["has_more"] is True

    asc = api.get("/v1/assistants?order=asc&limit=4").json()
    assert [a["id"] for a in asc["data"]] == ids[:4] and asc["has_more"] is True
    asc2 = api.get(f"/v1/assistants?order=asc&limit=4&after={asc['last_id']}").json()
    assert [a["id"] for a in asc2["data"]] == ids[4:] and asc2["has_more"] is False
    asc_back = api.get(f"/v1/assistants?order=asc&limit=2&before={ids[4]}").json()
    assert [a["id"] for a in asc_back["data"]] == ids[2:4] and asc_back["has_more"] is True

    everything = api.get("/v1/assistants?limit=100").json()
    assert [a["id"] for a in everything["data"]] == newest_first and everything["has_more"] is False


@pytest.mark.parametrize(
    ("query", "param"),
    [("limit=0", "limit"), ("limit=101", "limit"), ("limit=abc", "limit"), ("order=sideways", "order"),
     ("after=asst_unknown", "after"), ("before=asst_unknown", "before")],
)
def test_invalid_list_parameters(api, query, param):
    create(api)
    assert_error(api.get(f"/v1/assistants?{query}"), 400, param=param)


def test_list_limit_bounds_accepted(api):
    create(api)
    assert len(api.get("/v1/assistants?limit=1").json()["data"]) == 1
    assert len(api.get("/v1/assistants?limit=100").json()["data"]) == 1


def test_list_query_count_is_constant(api, django_assert_max_num_queries):
    for i in range(30):
        create(api, name=str(i))
    with django_assert_max_num_queries(4):
        assert len(api.get("/v1/assistants?limit=20").json()["data"]) == 20


def test_tenant_isolation(api, other_api):
    mine = create(api, name="mine")
    theirs = create(other_api, name="theirs")
    unknown = assert_error(api.get("/v1/assistants/asst_doesnotexist000000000000"), 404)
    foreign = assert_error(api.get(f"/v1/assistants/{theirs['id']}"), 404)
    assert foreign["message"] == unknown["message"].replace("asst_doesnotexist000000000000", theirs["id"])
    assert_error(api.post(f"/v1/assistants/{theirs['id']}", {"name": "stolen"}, format="json"), 404)
    assert_error(api.delete(f"/v1/assistants/{theirs['id']}"), 404)
    assert [a["id"] for a in api.get("/v1/assistants").json()["data"]] == [mine["id"]]
    # A cursor from another project cannot probe it.
    assert_error(api.get(f"/v1/assistants?after={theirs['id']}"), 400, param="after")
    assert other_api.get(f"/v1/assistants/{theirs['id']}").json()["name"] == "theirs"
