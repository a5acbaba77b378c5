"""Prompt assembly: instructions, history in order, images, truncation by tokens, this run's tool turns."""

import pytest

from assistants.models import Assistant, Message, Thread
from assistants.services import message_create
from runs import llm, services
from runs.models import RunStep
from runs.prompt import PromptTooLong, build_prompt

pytestmark = pytest.mark.django_db


@pytest.fixture
def thread(project):
    return Thread.objects.create(project=project)


def make_run(project, thread, **options):
    assistant = Assistant.objects.create(project=project, model="gpt-4o-mini", instructions="Sys.",
                                         tools=[{"type": "function", "function": {"name": "f"}},
                                                {"type": "code_interpreter"}])
    return services.run_create(project=project, thread_id=thread.public_id, assistant_id=assistant.public_id, **options)


def test_system_history_and_tools(project, thread):
    message_create(thread=thread, role="user", content="one")
    message_create(thread=thread, role="assistant", content="two")
    message_create(thread=thread, role="user", content=[
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}])
    run = make_run(project, thread, additional_instructions="More.")
    prompt = build_prompt(run)
    system = prompt.messages[0]
    assert system["role"] == "system" and system["content"].startswith("Sys.\n\nMore.\n\nYou can run Python")
    assert "/mnt/data" in system["content"]  # code_interpreter says where files are
    assert prompt.messages[1:3] == [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"}]
    assert prompt.messages[3] == {"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}]}
    assert [t["function"]["name"] for t in prompt.tools] == ["f", "python"]  # code_interpreter is `python`
    assert prompt.tool_choice is None


def test_max_prompt_tokens_drops_oldest_messages_never_the_system_message(project, thread):
    for i in range(40):
        message_create(thread=thread, role="user", content=f"message number {i} " + "word " * 20)
    run = make_run(project, thread, max_prompt_tokens=300)
    prompt = build_prompt(run)
    assert prompt.messages[0]["role"] == "system"
    kept = [m["content"] for m in prompt.messages[1:]]
    assert kept and kept[-1].startswith("message number 39") and len(kept) < 40
    numbers = [int(text.split()[2]) for text in kept]
    assert numbers == list(range(40 - len(kept), 40))  # a contiguous newest suffix
    assert llm.count_tokens("gpt-4o-mini", prompt.messages, prompt.tools) <= 300


def test_prompt_too_long_even_for_the_newest_message(project, thread):
    message_create(thread=thread, role="user", content="word " * 2000)
    run = make_run(project, thread, max_prompt_tokens=256)
    with pytest.raises(PromptTooLong):
        build_prompt(run)


def test_tool_turns_of_this_run_are_replayed(project, thread):
    message_create(thread=thread, role="user", content="go")
    run = make_run(project, thread)
    RunStep.objects.create(project=project, run=run, thread=thread, type="tool_calls", status="completed", turn=1,
                           step_details={"type": "tool_calls", "tool_calls": [
                               {"id": "call_a", "type": "function",
                                "function": {"name": "f", "arguments": "{}", "output": "42"}}]})
    prompt = build_prompt(run)
    assert prompt.messages[-2:] == [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "42"}]


def test_named_tool_choice_passes_through(project, thread):
    run = make_run(project, thread, tool_choice={"type": "function", "function": {"name": "f"}})
    assert build_prompt(run).tool_choice == {"type": "function", "function": {"name": "f"}}
    assert Message.objects.count() == 0


def test_the_claim_reads_the_first_prompts_messages(project, thread, django_assert_num_queries):
    """The worker's claim reads the thread's messages with the run (one round trip on the way to the first token):
    the first prompt then queries nothing, and holds what a prompt built afresh holds, without the run's own."""
    from runs import lifecycle

    message_create(thread=thread, role="user", content="one")
    message_create(thread=thread, role="assistant", content="two")
    assistant = Assistant.objects.create(project=project, model="gpt-4o-mini", instructions="Sys.")
    run = services.run_create(project=project, thread_id=thread.public_id, assistant_id=assistant.public_id,
                              additional_messages=[{"role": "user", "content": "three"}])
    message_create(thread=thread, role="assistant", content="the run's own", run_id=run.public_id)
    claimed = lifecycle.run_claim(run_id=run.pk, task_id=run.claimed_by)
    with django_assert_num_queries(0):
        prompt = build_prompt(claimed, first_turn=True)
    assert [m["content"] for m in prompt.messages[1:]] == ["one", "two", "three"]
    assert prompt.messages == build_prompt(run, first_turn=True).messages  # read afresh by the query
