"""The operators' admin for runs: found by id, filtered, read as a timeline with steps, events replayed,
cancelled; token usage by project, model and day. Data made through the services and the real engine."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from assistants.models import Assistant, Message, Thread
from files.tests.fixtures import storage_dir  # noqa: F401 - a fixture
from runs import services
from runs.models import Run
from runs.tests.conversation import (
    FAILING_QUESTION,
    PROVIDER_ERROR,
    QUESTION,
    REPLY,
    TOOL_OUTPUT,
    make_conversation,
    use_fake_provider,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(project, fake_llm_server, monkeypatch, settings, django_capture_on_commit_callbacks):
    use_fake_provider(fake_llm_server, monkeypatch, settings)
    with django_capture_on_commit_callbacks(execute=True):  # the events a commit would publish
        made = make_conversation(project)
    yield made
    fake_llm_server.reset()


def page(client, url, **params) -> str:
    response = client.get(url, params)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_a_failed_run_is_found_by_its_id(admin_client, conversation):
    runs = reverse("admin:runs_run_changelist")
    failed, completed = conversation.failed, conversation.completed
    listing = page(admin_client, runs, q=failed.public_id)
    assert failed.public_id in listing and completed.public_id not in listing
    assert PROVIDER_ERROR in listing  # the error is in the list's row
    both = page(admin_client, runs, q=conversation.thread.public_id)  # by its thread's id
    assert failed.public_id in both and completed.public_id in both
    step = completed.steps.first()
    assert completed.public_id in page(admin_client, runs, q=step.public_id)  # by one of its steps' ids
    reply = Message.objects.get(run_public_id=completed.public_id)
    by_message = page(admin_client, runs, q=reply.public_id)  # by the id of a message it wrote
    assert completed.public_id in by_message and failed.public_id not in by_message
    response = admin_client.get(reverse("admin:runs_run_by_id", args=[failed.public_id]))
    assert response.status_code == 302 and response["Location"] == reverse("admin:runs_run_change", args=[failed.pk])
    assert admin_client.get(reverse("admin:runs_run_by_id", args=["run_nope"])).status_code == 404


def test_run_list_filters(admin_client, conversation, other_project):
    runs = reverse("admin:runs_run_changelist")
    failed, completed = conversation.failed.public_id, conversation.completed.public_id
    for params, shown, hidden in [
        ({"status__exact": "failed"}, failed, completed),
        ({"outcome": "problem"}, failed, completed),
        ({"status__exact": "completed"}, completed, failed),
        ({"project__id__exact": conversation.thread.project_id}, failed, None),
        ({"model": "gpt-4o-mini"}, failed, None),
        ({"created_at__gte": "2000-01-01T00:00:00+00:00"}, completed, None),
    ]:
        listing = page(admin_client, runs, **params)
        assert shown in listing
        if hidden:
            assert hidden not in listing
    assert failed not in page(admin_client, runs, project__id__exact=other_project.pk)
    assert failed not in page(admin_client, runs, model="other-model")
    assert "Failed runs" in page(admin_client, runs)  # the one-click link


def test_run_page_shows_timeline_steps_tool_calls_usage_and_error(admin_client, conversation):
    run = conversation.completed
    html = page(admin_client, reverse("admin:runs_run_change", args=[run.pk]))
    # the status changes, from the event stream, in order
    order = [html.index(f"<td>{status}</td>") for status in ("created", "queued", "in_progress", "requires_action")]
    assert order == sorted(order) and "<td>completed</td>" in html
    steps = list(run.steps.order_by("pk"))
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    for step in steps:  # each step's creation and completion in the timeline
        assert f"step {step.public_id} ({step.type}) created" in html and f"step {step.public_id} completed" in html
    assert "get_weather" in html and "&quot;city&quot;: &quot;Paris&quot;" in html  # the call and its arguments
    assert "&quot;celsius&quot;: 22" in html  # its output
    assert REPLY in html  # the message step's text
    assert f"{run.usage['total_tokens']} tokens" in html and run.usage["total_tokens"] > 0
    assert reverse("admin:runs_run_events", args=[run.pk]) in html

    error = conversation.failed.last_error
    assert error["code"] == "server_error" and PROVIDER_ERROR in error["message"]
    failed = page(admin_client, reverse("admin:runs_run_change", args=[conversation.failed.pk]))
    assert f"server_error: {error['message']}" in failed and "<td>failed</td>" in failed


@pytest.mark.usefixtures("storage_dir")
def test_file_search_results_and_citations(admin_client, project, fake_llm_server, monkeypatch, settings,
                                           django_capture_on_commit_callbacks):
    """A run whose model searches the assistant's store and cites the hit: the run page lists the results (file,
    score, content), the thread page the citation."""
    from assistants import services as assistant_services
    from files.tests.fixtures import make_file
    from retrieval.ingestion import vector_store_file_ingest
    from retrieval.models import VectorStoreFile
    from retrieval.services import vector_store_create
    from runs import engine

    use_fake_provider(fake_llm_server, monkeypatch, settings)
    settings.EMBEDDING_MODEL = ""  # keyword search is enough here
    doc = make_file(project, content=b"Otters hold hands while they sleep.", name="otters.txt")
    store = vector_store_create(project=project, file_ids=[doc.public_id])
    assert vector_store_file_ingest(vsf_id=VectorStoreFile.objects.get(vector_store=store).pk) == "completed"
    fake_llm_server.add_rule("otters sleep", tool_calls=[{"name": "file_search",
                                                          "arguments": {"queries": ["otters sleep"]}}])
    fake_llm_server.add_rule("Otters hold hands", text="They hold hands.【0:0†otters.txt】")
    assistant = assistant_services.assistant_create(
        project=project, model="gpt-4o-mini", tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.public_id]}})
    thread = assistant_services.thread_create(project=project, messages=[
        {"role": "user", "content": "How do otters sleep?"}])
    with django_capture_on_commit_callbacks(execute=True):
        run = services.run_create(project=project, thread_id=thread.public_id, assistant_id=assistant.public_id)
        engine.run_execute(run_id=run.pk, task_id=run.claimed_by)
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED, run.last_error

    html = page(admin_client, reverse("admin:runs_run_change", args=[run.pk]))
    assert "<strong>file_search</strong>" in html
    assert f"otters.txt ({doc.public_id})" in html and "Otters hold hands while they sleep." in html
    thread_html = page(admin_client, reverse("admin:assistants_thread_change", args=[thread.pk]))
    assert f"【0:0†otters.txt】 → file_citation {doc.public_id}" in thread_html
    assert "file_search → 1 result(s): otters.txt" in thread_html


def test_timeline_falls_back_to_the_run_row_when_the_stream_has_expired(admin_client, conversation):
    from assistants_project.redis import redis_client
    from runs.events import stream_key

    run = conversation.failed
    redis_client().delete(stream_key(run.public_id))
    html = page(admin_client, reverse("admin:runs_run_change", args=[run.pk]))
    assert "created (queued)" in html and "started (in_progress)" in html and "<td>failed</td>" in html
    events = page(admin_client, reverse("admin:runs_run_events", args=[run.pk]))
    assert "No stored events" in events


def test_event_replay_shows_the_stored_stream(admin_client, conversation):
    run = conversation.completed
    html = page(admin_client, reverse("admin:runs_run_events", args=[run.pk]))
    for event in ("thread.run.created", "thread.run.requires_action", "thread.run.step.delta",
                  "thread.message.delta", "thread.run.completed"):
        assert f"event: {event}" in html
    assert html.index("event: thread.run.created") < html.index("event: thread.run.completed")


def test_thread_page_reads_as_the_conversation_with_its_runs(admin_client, conversation):
    thread, completed, failed = conversation.thread, conversation.completed, conversation.failed
    html = page(admin_client, reverse("admin:assistants_thread_change", args=[thread.pk]))
    positions = [html.index(text) for text in (QUESTION, REPLY, FAILING_QUESTION)]
    assert positions == sorted(positions)
    assert reverse("admin:runs_run_change", args=[completed.pk]) in html  # the runs, linked
    assert reverse("admin:runs_run_change", args=[failed.pk]) in html
    assert reverse("admin:runs_run_by_id", args=[completed.public_id]) in html  # the reply's run
    assert 'get_weather({&quot;city&quot;: &quot;Paris&quot;})' in html and TOOL_OUTPUT.replace('"', "&quot;") in html
    assert f"server_error: {failed.last_error['message']}" in html and PROVIDER_ERROR in html


def test_cancel_a_run_from_its_page_and_from_the_list(admin_client, project):
    assistant = Assistant.objects.create(project=project, model="gpt-4o-mini")
    threads = [Thread.objects.create(project=project) for _ in range(2)]
    first, second = (services.run_create(project=project, thread_id=t.public_id, assistant_id=assistant.public_id)
                     for t in threads)
    change = page(admin_client, reverse("admin:runs_run_change", args=[first.pk]))
    cancel_url = reverse("admin:runs_run_cancel", args=[first.pk])
    assert cancel_url in change
    assert "Yes, cancel this run" in page(admin_client, cancel_url)  # a confirmation first
    response = admin_client.post(cancel_url)
    assert response.status_code == 302
    first.refresh_from_db()
    assert first.status == Run.Status.CANCELLED and first.cancelled_at  # a queued run ends at once (the service)
    assert cancel_url not in page(admin_client, reverse("admin:runs_run_change", args=[first.pk]))

    response = admin_client.post(reverse("admin:runs_run_changelist"), {
        "action": "cancel_runs", "_selected_action": [first.pk, second.pk]})
    assert response.status_code == 302
    notes = [str(m) for m in get_messages(response.wsgi_request)]
    assert f"{first.public_id}: Cannot cancel run with status 'cancelled'." in notes
    assert any(n.startswith(f"{second.public_id}: cancel requested") for n in notes)
    assert Run.objects.get(pk=second.pk).status == Run.Status.CANCELLED


def test_cancel_needs_more_than_view_permission(client, django_user_model, project):
    from django.contrib.auth.models import Permission

    assistant = Assistant.objects.create(project=project, model="gpt-4o-mini")
    thread = Thread.objects.create(project=project)
    run = services.run_create(project=project, thread_id=thread.public_id, assistant_id=assistant.public_id)
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_run"))
    client.force_login(viewer)
    change = client.get(reverse("admin:runs_run_change", args=[run.pk]))
    assert change.status_code == 200 and reverse("admin:runs_run_cancel", args=[run.pk]) not in change.content.decode()
    assert client.post(reverse("admin:runs_run_cancel", args=[run.pk])).status_code == 403
    assert "cancel_runs" not in client.get(reverse("admin:runs_run_changelist")).content.decode()
    client.post(reverse("admin:runs_run_changelist"), {"action": "cancel_runs", "_selected_action": [run.pk]})
    assert Run.objects.get(pk=run.pk).status == Run.Status.QUEUED


def test_token_usage_by_project_model_and_day(admin_client, project, other_project):
    assistant = Assistant.objects.create(project=project, model="gpt-4o-mini")
    other_assistant = Assistant.objects.create(project=other_project, model="gpt-4o-mini")

    def finished_run(owner, helper, model, usage, status=Run.Status.COMPLETED):
        thread = Thread.objects.create(project=owner)
        run = services.run_create(project=owner, thread_id=thread.public_id, assistant_id=helper.public_id,
                                  model=model)
        Run.objects.filter(pk=run.pk).update(status=status, usage=usage)

    finished_run(project, assistant, "gpt-4o-mini", {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15})
    finished_run(project, assistant, "gpt-4o-mini", {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27},
                 status=Run.Status.FAILED)
    finished_run(project, assistant, "gpt-4o", {"prompt_tokens": 100, "completion_tokens": 1, "total_tokens": 101})
    finished_run(other_project, other_assistant, "gpt-4o-mini",
                 {"prompt_tokens": 1000, "completion_tokens": 1, "total_tokens": 1001})
    finished_run(project, assistant, "gpt-4o", None)  # a run that never reached the model

    url = reverse("admin:runs_run_usage")
    assert url in page(admin_client, reverse("admin:runs_run_changelist"))
    html = page(admin_client, url)
    # project-a / gpt-4o-mini: 2 runs, 1 failed, 30 + 12 = 42 tokens; gpt-4o: 2 runs, 101 tokens
    assert "<td>project-a</td><td>gpt-4o-mini</td><td>2</td><td>1</td>\n    <td>30</td><td>12</td><td>42</td>" in html
    assert "<td>project-a</td><td>gpt-4o</td><td>2</td><td>0</td>\n    <td>100</td><td>1</td><td>101</td>" in html
    assert "<td>1001</td>" in html
    only_a = page(admin_client, url, project=project.pk)
    assert "<td>1001</td>" not in only_a and "<td>42</td>" in only_a
    from django.utils import timezone

    assert timezone.localdate().isoformat() in html  # the by-day table


def test_run_pages_need_staff(client, project):
    assistant = Assistant.objects.create(project=project, model="gpt-4o-mini")
    thread = Thread.objects.create(project=project)
    run = services.run_create(project=project, thread_id=thread.public_id, assistant_id=assistant.public_id)
    for url in (reverse("admin:runs_run_change", args=[run.pk]), reverse("admin:runs_run_events", args=[run.pk]),
                reverse("admin:runs_run_usage"), reverse("admin:runs_run_cancel", args=[run.pk])):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_run_step_pages(admin_client, conversation):
    tool_step = conversation.completed.steps.get(type="tool_calls")
    steps = reverse("admin:runs_runstep_changelist")
    listing = page(admin_client, steps, q=conversation.completed.public_id)
    assert tool_step.public_id in listing and "tool_calls" in listing
    assert tool_step.public_id in page(admin_client, steps, type__exact="tool_calls")
    assert tool_step.public_id not in page(admin_client, steps, type__exact="message_creation")
    html = page(admin_client, reverse("admin:runs_runstep_change", args=[tool_step.pk]))
    assert "function get_weather" in html and "&quot;celsius&quot;: 22" in html
    assert f"{tool_step.usage['total_tokens']} tokens" in html
    assert reverse("admin:runs_run_change", args=[conversation.completed.pk]) in html
