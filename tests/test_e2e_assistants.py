"""The official openai SDK against a live `manage.py serve` (uvicorn + worker + beat, embedded stack)."""

import openai
import pytest

pytestmark = pytest.mark.e2e


def test_assistant_lifecycle_with_the_sdk(live):
    client = live.client()
    created = [client.beta.assistants.create(model="gpt-4o-mini", name=f"a{i}", instructions="Be brief.",
                                             tools=[{"type": "code_interpreter"}], metadata={"n": str(i)})
               for i in range(5)]
    assert all(a.id.startswith("asst_") for a in created)
    assert created[0].tools[0].type == "code_interpreter"

    listed = [a.id for a in client.beta.assistants.list(limit=2)]  # auto-pagination walks every page
    assert listed[:5] == [a.id for a in reversed(created)]
    ascending = [a.id for a in client.beta.assistants.list(limit=2, order="asc")]
    assert [i for i in ascending if i in {a.id for a in created}] == [a.id for a in created]

    fetched = client.beta.assistants.retrieve(created[0].id)
    assert fetched.name == "a0" and fetched.metadata == {"n": "0"}

    updated = client.beta.assistants.update(created[0].id, name="renamed", temperature=0.3)
    assert updated.name == "renamed" and updated.temperature == 0.3 and updated.instructions == "Be brief."

    deleted = client.beta.assistants.delete(created[0].id)
    assert deleted.deleted is True and deleted.id == created[0].id
    with pytest.raises(openai.NotFoundError) as info:
        client.beta.assistants.retrieve(created[0].id)
    assert f"No assistant found with id '{created[0].id}'" in info.value.message


def test_sdk_errors_are_typed(live):
    client = live.client()
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.assistants.create(model="gpt-4o-mini", temperature=7)
    assert info.value.param == "temperature"
    assert info.value.body["type"] == "invalid_request_error"
    bad = openai.OpenAI(base_url=live.base_url, api_key="sk-not-a-real-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.beta.assistants.list()
    assert info.value.code == "invalid_api_key"


def test_request_id_reaches_the_sdk(live):
    assistant = live.client().beta.assistants.create(model="gpt-4o-mini")
    assert assistant._request_id and assistant._request_id.startswith("req_")
