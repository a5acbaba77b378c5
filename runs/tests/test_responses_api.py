"""The Responses API translation (runs/responses_api.py) and the event stream → deltas (runs/llm.py)."""

import pytest

from runs import llm, responses_api

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
                                            "parameters": {"type": "object", "properties": {}}}}


def test_chat_prompt_becomes_stateless_responses_input():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}}]},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "cold"},
    ]
    kwargs = responses_api.request(
        messages=messages, tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False, response_format={"type": "json_schema", "json_schema": {
            "name": "answer", "schema": {"type": "object"}, "strict": True}},
        temperature=0.3, top_p=None, max_tokens=5, reasoning_effort="low")
    assert kwargs["store"] is False and kwargs["stream"] is True
    assert kwargs["input"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "input_text", "text": "what is this?"},
                                     {"type": "input_image", "image_url": "data:image/png;base64,AAA",
                                      "detail": "auto"}]},
        {"role": "assistant", "content": "Let me check."},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "cold"},
    ]
    assert kwargs["tools"] == [{"type": "function", "name": "get_weather", "description": "Weather by city",
                                "parameters": {"type": "object", "properties": {}}, "strict": False}]
    assert kwargs["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert kwargs["parallel_tool_calls"] is False
    assert kwargs["text"] == {"format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"},
                                         "strict": True}}
    assert kwargs["max_output_tokens"] == responses_api.MIN_OUTPUT_TOKENS  # OpenAI's floor
    assert kwargs["reasoning"] == {"effort": "low"} and kwargs["temperature"] == 0.3 and "top_p" not in kwargs


def _events(*events):
    yield from events


def test_events_become_our_deltas():
    out = list(llm._normalize_responses(_events(
        {"type": "response.created", "response": {}},
        {"type": "response.output_text.delta", "delta": "Hi"},
        {"type": "response.output_item.added", "output_index": 1,
         "item": {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": ""}},
        {"type": "response.function_call_arguments.delta", "output_index": 1, "delta": '{"a":1}'},
        {"type": "response.completed", "response": {"usage": {"input_tokens": 7, "output_tokens": 3}}},
    )))
    assert out == [llm.TextDelta("Hi"), llm.ToolCallDelta(index=1, id="c1", name="get_weather", arguments=""),
                   llm.ToolCallDelta(index=1, arguments='{"a":1}'),
                   llm.Finish(reason="tool_calls", usage={"prompt_tokens": 7, "completion_tokens": 3})]


def test_incomplete_is_length_and_bad_endings_are_errors():
    out = list(llm._normalize_responses(_events(
        {"type": "response.output_text.delta", "delta": "Hi"},
        {"type": "response.incomplete", "response": {"incomplete_details": {"reason": "max_output_tokens"}}})))
    assert out[-1] == llm.Finish(reason="length", usage={})
    with pytest.raises(llm.ModelError) as failed:
        list(llm._normalize_responses(_events(
            {"type": "response.failed", "response": {"error": {"code": "server_error", "message": "boom"}}})))
    assert failed.value.code == "server_error" and failed.value.message == "boom"
    with pytest.raises(llm.ModelError) as cut:  # no response.completed: not a success
        list(llm._normalize_responses(_events({"type": "response.output_text.delta", "delta": "Hi"})))
    assert cut.value.transient
