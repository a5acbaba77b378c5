"""LiteLLM's assistants client (issue 16) against the live server, unchanged: ``custom_llm_provider="openai"`` and
``api_base`` at this server. LiteLLM sends explicit nulls for what the caller did not set; they mean "not given"."""

import asyncio

import litellm
import pytest
from openai import AssistantEventHandler, AsyncAssistantEventHandler

pytestmark = pytest.mark.e2e


def common(live) -> dict:
    return {"custom_llm_provider": "openai", "api_base": live.base_url, "api_key": live.api_key}


class Deltas(AssistantEventHandler):
    def __init__(self):
        super().__init__()
        self.text = []

    def on_text_delta(self, delta, snapshot):
        self.text.append(delta.value)


class AsyncDeltas(AsyncAssistantEventHandler):
    def __init__(self):
        super().__init__()
        self.text = []

    async def on_text_delta(self, delta, snapshot):
        self.text.append(delta.value)


def test_sync_functions(live):
    kw = common(live)
    live.fake.add_rule("story", text="Once upon a time.")
    assistant = litellm.create_assistants(model="gpt-4o-mini", name="teller", instructions="Tell stories.", **kw)
    assert assistant.id.startswith("asst_") and assistant.name == "teller" and assistant.model == "gpt-4o-mini"
    # LiteLLM sent null for description, tools, tool_resources, metadata, temperature, top_p, response_format
    assert assistant.tools == [] and assistant.metadata == {} and assistant.description is None
    assert assistant.temperature == 1.0 and assistant.top_p == 1.0 and assistant.response_format == "auto"
    assert assistant.id in [a.id for a in litellm.get_assistants(**kw).data]

    thread = litellm.create_thread(messages=[{"role": "user", "content": "a story please"}], **kw)
    assert litellm.get_thread(thread_id=thread.id, **kw).id == thread.id
    added = litellm.add_message(thread_id=thread.id, role="user", content="a short story", **kw)
    assert added.thread_id == thread.id and added.content[0].text.value == "a short story"

    run = litellm.run_thread(thread_id=thread.id, assistant_id=assistant.id, **kw)
    assert run.status in ("queued", "in_progress", "completed")
    run = live.client().beta.threads.runs.poll(thread_id=thread.id, run_id=run.id, poll_interval_ms=100)
    assert run.status == "completed" and run.instructions == "Tell stories."  # null instructions: the assistant's
    messages = litellm.get_messages(thread_id=thread.id, **kw).data
    assert messages[0].role == "assistant" and messages[0].content[0].text.value == "Once upon a time."

    handler = Deltas()
    live.fake.add_rule("again", text="And then the dragon slept.")
    litellm.add_message(thread_id=thread.id, role="user", content="again", **kw)
    with litellm.run_thread_stream(thread_id=thread.id, assistant_id=assistant.id, event_handler=handler,
                                   **kw) as stream:
        stream.until_done()
        assert stream.get_final_run().status == "completed"
    assert "".join(handler.text) == "And then the dragon slept." and len(handler.text) > 1
    streamed = litellm.run_thread(thread_id=thread.id, assistant_id=assistant.id, stream=True, **kw)
    with streamed as stream:  # run_thread(stream=True) is the same stream manager
        stream.until_done()
        assert stream.get_final_run().status == "completed"

    deleted = litellm.delete_assistant(assistant_id=assistant.id, **kw)
    assert deleted.deleted is True and deleted.id == assistant.id


def test_async_functions(live):
    kw = common(live)
    live.fake.add_rule("async story", text="Async once upon a time.")
    live.fake.add_rule("async stream", text="Async streamed tale.")

    async def scenario():
        assistant = await litellm.acreate_assistants(model="gpt-4o-mini", name="async teller", **kw)
        listed = await litellm.aget_assistants(**kw)
        assert assistant.id in [a.id for a in listed.data]
        thread = await litellm.acreate_thread(messages=[{"role": "user", "content": "hello"}], **kw)
        assert (await litellm.aget_thread(thread_id=thread.id, **kw)).id == thread.id
        await litellm.a_add_message(thread_id=thread.id, role="user", content="async story", **kw)
        run = await litellm.arun_thread(thread_id=thread.id, assistant_id=assistant.id, **kw)
        for _ in range(300):
            run = live.client().beta.threads.runs.retrieve(thread_id=thread.id, run_id=run.id)
            if run.status not in ("queued", "in_progress"):
                break
            await asyncio.sleep(0.1)
        assert run.status == "completed"
        messages = (await litellm.aget_messages(thread_id=thread.id, **kw)).data
        assert messages[0].content[0].text.value == "Async once upon a time."

        await litellm.a_add_message(thread_id=thread.id, role="user", content="async stream", **kw)
        handler = AsyncDeltas()
        async with litellm.arun_thread_stream(thread_id=thread.id, assistant_id=assistant.id, event_handler=handler,
                                              **kw) as stream:
            await stream.until_done()
            assert (await stream.get_final_run()).status == "completed"
        assert "".join(handler.text) == "Async streamed tale."
        deleted = await litellm.adelete_assistant(assistant_id=assistant.id, **kw)
        assert deleted.deleted is True

    asyncio.run(scenario())
