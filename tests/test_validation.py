"""Request validation reuses a serializer class's bound fields from one request to the next
(``StrictSerializer.recycle_fields``): nothing of one request may show in another's result or errors."""

import threading

import pytest
from rest_framework import serializers

from assistants.serializers import ThreadIn
from assistants_project.api.validation import validated
from runs.serializers import RunCreateIn


def errors_of(serializer_class, body, **context) -> dict:
    with pytest.raises(serializers.ValidationError) as caught:
        validated(serializer_class, body, **context)
    return caught.value.detail


def test_a_request_after_another_gets_its_own_values_context_and_errors():
    assert validated(RunCreateIn, {"assistant_id": "asst_1", "stream": True, "metadata": {"k": "v"}}, json=True) == {
        "assistant_id": "asst_1", "stream": True, "metadata": {"k": "v"}}
    assert validated(RunCreateIn, {"assistant_id": "asst_2"}, json=True) == {"assistant_id": "asst_2"}
    # the context is the new request's: JSON refuses a string for a number, a multipart form coerces it
    assert "temperature" in errors_of(RunCreateIn, {"assistant_id": "asst_3", "temperature": "1"}, json=True)
    assert validated(RunCreateIn, {"assistant_id": "asst_3", "temperature": "1"}, json=False)["temperature"] == 1.0
    # nested serializers (a list's child) come along and name the offending field
    errors = errors_of(ThreadIn, {"messages": [{"role": "user", "content": "hi", "bogus": 1}]}, json=True)
    assert "bogus" in str(errors)
    assert validated(ThreadIn, {"messages": [{"role": "user", "content": "hi"}]}, json=True)["messages"] == [
        {"role": "user", "content": "hi"}]


def test_the_next_request_takes_the_fields_back_bound_to_itself():
    validated(RunCreateIn, {"assistant_id": "asst_1"}, json=True)
    spare = RunCreateIn._spare_fields[RunCreateIn]
    assert spare, "a validated request gives its fields back"
    recycled = spare[-1]
    serializer = RunCreateIn(data={"assistant_id": "asst_2"}, context={"json": True})
    assert serializer.fields is recycled
    assert all(field.parent is serializer for field in serializer.fields.values())
    assert serializer.fields["additional_messages"].child.root is serializer  # nested: through its parents


def test_concurrent_requests_never_see_each_others_values():
    failures: list[str] = []

    def work(worker: int) -> None:
        for i in range(150):
            assistant = f"asst_{worker}_{i}"
            try:
                if i % 3 == 2:
                    errors = errors_of(RunCreateIn, {"assistant_id": assistant, "temperature": 9}, json=True)
                    assert list(errors) == ["temperature"], errors
                else:
                    body = {"assistant_id": assistant, "metadata": {"worker": str(worker), "i": str(i)},
                            "additional_messages": [{"role": "user", "content": assistant}]}
                    result = validated(RunCreateIn, body, json=True)
                    assert result["assistant_id"] == assistant and result["metadata"] == body["metadata"]
                    assert result["additional_messages"][0]["content"] == assistant
            except AssertionError as exc:
                failures.append(f"{assistant}: {exc}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
