"""A thread with a completed function-calling run and a failed run, made through the services and the real run
engine, against the fake model provider (tests/fake_llm.py) at its HTTP boundary. Shared by the admin tests and
the browser test."""

from __future__ import annotations

from dataclasses import dataclass

from assistants.models import Assistant, Thread
from runs.models import Run

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
QUESTION = "What is the weather in Paris?"
TOOL_OUTPUT = '{"sky": "sunny", "celsius": 22}'
REPLY = "It is sunny in Paris, 22 degrees."
FAILING_QUESTION = "Please explode now"
PROVIDER_ERROR = "upstream exploded"


@dataclass
class Conversation:
    assistant: Assistant
    thread: Thread
    completed: Run
    failed: Run


def use_fake_provider(fake, monkeypatch, settings) -> None:
    """LiteLLM's OpenAI route goes to the fake; no retries, so a provider error fails the run at once."""
    fake.reset()
    monkeypatch.setenv("OPENAI_API_BASE", fake.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-provider-key")
    settings.LLM_NUM_RETRIES = 0
    fake.add_rule("sunny", text=REPLY)  # the turn after the tool output
    fake.add_rule("weather", tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    fake.add_rule("explode", error=(500, PROVIDER_ERROR, "server_error"))


def make_conversation(project) -> Conversation:
    """What a worker would do, called inline: the weather run pauses for the function's output, gets it, and
    completes with the reply; the next run fails on a provider error."""
    from assistants import services as assistant_services
    from runs import engine
    from runs import services as run_services

    assistant = assistant_services.assistant_create(project=project, model="gpt-4o-mini", name="Weather bot",
                                                    tools=[WEATHER_TOOL])
    thread = assistant_services.thread_create(project=project, messages=[{"role": "user", "content": QUESTION}])
    run = run_services.run_create(project=project, thread_id=thread.public_id, assistant_id=assistant.public_id)
    engine.run_execute(run_id=run.pk, task_id=run.claimed_by)
    run.refresh_from_db()
    assert run.status == Run.Status.REQUIRES_ACTION, (run.status, run.last_error)
    [call] = run.required_action["submit_tool_outputs"]["tool_calls"]
    run_services.run_submit_tool_outputs(run=run, tool_outputs=[{"tool_call_id": call["id"], "output": TOOL_OUTPUT}])
    run.refresh_from_db()
    engine.run_execute(run_id=run.pk, task_id=run.claimed_by)
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED, (run.status, run.last_error)

    assistant_services.message_create(thread=thread, role="user", content=FAILING_QUESTION)
    failed = run_services.run_create(project=project, thread_id=thread.public_id, assistant_id=assistant.public_id)
    engine.run_execute(run_id=failed.pk, task_id=failed.claimed_by)
    failed.refresh_from_db()
    assert failed.status == Run.Status.FAILED, failed.status
    return Conversation(assistant=assistant, thread=thread, completed=run, failed=failed)
