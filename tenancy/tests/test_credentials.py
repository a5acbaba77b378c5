"""Provider credentials: encryption at rest, precedence, the command, the write-only admin, key rotation."""

import io
import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.urls import reverse

from assistants_project import providers
from gateway.credentials import RequestCredentials
from tenancy import credentials
from tenancy.models import ProviderCredential
from tenancy.services import provider_credential_set, provider_credentials_rotate
from tests.live import ROOT

pytestmark = pytest.mark.django_db
KEY = "sk-stored-" + "x" * 24


def test_stored_parameters_are_encrypted_and_only_their_names_are_readable(project):
    row = provider_credential_set(project=project, provider="OpenAI", params={"api_key": KEY, "organization": "o1"})
    assert row.provider == "openai" and row.param_names == ["api_key", "organization"]
    assert KEY not in row.sealed and KEY not in repr(row)
    assert credentials.decrypt(ProviderCredential.objects.get().sealed) == {"api_key": KEY, "organization": "o1"}


def test_precedence_request_then_project_then_alias(project):
    provider_credential_set(project=project, provider="openai", params={"api_key": KEY, "organization": "org-p"})
    alias = {"api_key": "sk-alias", "temperature": 0.2}
    with credentials.scope(project_id=None):
        assert credentials.llm_params("gpt-4o-mini", alias) == alias  # no project: the server's own
    with credentials.scope(project_id=project.pk):
        assert credentials.llm_params("gpt-4o-mini", alias) == {"api_key": KEY, "organization": "org-p",
                                                                "temperature": 0.2}
        assert credentials.llm_params("anthropic/claude-3-5-haiku-latest", {}) == {}  # another provider's: none
        assert credentials.embedding_params("text-embedding-3-small") == {"api_key": KEY, "organization": "org-p"}
    request = RequestCredentials(api_key="sk-request-1234", llm_params={"organization": "org-r"})
    sealed = credentials.seal(request)
    assert "sk-request-1234" not in sealed
    with credentials.scope(project_id=project.pk, sealed=sealed):
        assert credentials.llm_params("gpt-4o-mini", alias) == {"api_key": "sk-request-1234",
                                                                "organization": "org-r", "temperature": 0.2}
        assert providers.scrub(f"bad key sk-request-1234 and {KEY}") == "bad key [redacted] and [redacted]"
    assert credentials.current_request() is credentials.NONE  # the scope is closed


def test_one_scrub_masks_server_keys_key_shapes_and_the_scopes_header_credentials(monkeypatch):
    monkeypatch.setenv("MYPROVIDER_API_KEY", "server-env-value-123")
    text = "refused server-env-value-123, sk-proj-shapedKey987 and header-given-value-456; status 401"
    request = RequestCredentials(api_key="header-given-value-456")
    with credentials.scope(project_id=None, request=request):
        scrubbed = providers.scrub(text)
    assert scrubbed == "refused [redacted], sk-[redacted] and [redacted]; status 401"
    assert "header-given-value-456" in providers.scrub(text)  # outside the scope: not a known secret


def test_command_sets_lists_without_values_and_deletes(project, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(KEY + "\n"))
    out = io.StringIO()
    call_command("providercredentials", "set", "--project", project.name, "--provider", "openai", "--api-key", "-",
                 "--param", "aws_region_name=eu-west-1", stdout=out)
    assert KEY not in out.getvalue()
    assert credentials.decrypt(ProviderCredential.objects.get().sealed) == {"api_key": KEY,
                                                                           "aws_region_name": "eu-west-1"}
    listing = io.StringIO()
    call_command("providercredentials", "list", stdout=listing)
    assert "openai" in listing.getvalue() and "api_key, aws_region_name" in listing.getvalue()
    assert KEY not in listing.getvalue()
    call_command("providercredentials", "delete", "--project", project.public_id, "--provider", "openai",
                 stdout=io.StringIO())
    assert not ProviderCredential.objects.exists()


def test_admin_fields_are_write_only(admin_client, project):
    add = reverse("admin:tenancy_providercredential_add")
    response = admin_client.post(add, {"project": project.pk, "provider": "openai", "api_key": KEY,
                                       "other_params": '{"organization": "org-1"}'})
    assert response.status_code == 302
    row = ProviderCredential.objects.get()
    change = reverse("admin:tenancy_providercredential_change", args=[row.pk])
    for url in (change, reverse("admin:tenancy_providercredential_changelist")):
        page = admin_client.get(url).content.decode()
        assert KEY not in page and "org-1" not in page and "api_key, organization" in page
    # an empty key keeps the stored one; other parameters given replace the old ones
    response = admin_client.post(change, {"project": project.pk, "provider": "openai", "api_key": "",
                                          "other_params": '{"aws_region_name": "eu-west-1"}'})
    assert response.status_code == 302
    row.refresh_from_db()
    assert credentials.decrypt(row.sealed) == {"api_key": KEY, "aws_region_name": "eu-west-1"}
    history = admin_client.get(reverse("admin:tenancy_providercredential_history", args=[row.pk])).content.decode()
    assert KEY not in history


def test_rotation_reencrypts_under_the_new_key(project, settings):
    old = settings.CREDENTIALS_ENCRYPTION_KEYS
    provider_credential_set(project=project, provider="openai", params={"api_key": KEY})
    new_key = Fernet.generate_key().decode()
    try:
        settings.CREDENTIALS_ENCRYPTION_KEYS = [new_key, *old]
        credentials._fernet.cache_clear()
        assert provider_credentials_rotate() == 1
        settings.CREDENTIALS_ENCRYPTION_KEYS = [new_key]  # the old key dropped: still readable
        credentials._fernet.cache_clear()
        assert credentials.decrypt(ProviderCredential.objects.get().sealed) == {"api_key": KEY}
        settings.CREDENTIALS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # replaced without rotating
        credentials._fernet.cache_clear()
        with pytest.raises(ValueError, match="rotated"):
            credentials.decrypt(ProviderCredential.objects.get().sealed)
    finally:
        settings.CREDENTIALS_ENCRYPTION_KEYS = old
        credentials._fernet.cache_clear()


def test_production_settings_require_the_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "CREDENTIALS_ENCRYPTION_KEY")}
    env.update(DATABASE_URL="postgres://u:p@127.0.0.1:1/db", REDIS_URL="redis://127.0.0.1:1/0",
               DJANGO_SECRET_KEY="k" * 50, ASSISTANTS_DATA_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0 and "CREDENTIALS_ENCRYPTION_KEY must be set" in done.stderr


def test_a_run_calls_its_model_with_the_stored_credentials_its_claim_read(project, monkeypatch,
                                                                           django_assert_num_queries):
    from assistants.models import Assistant, Thread
    from runs import engine, llm, services

    def run_seeing(seen: list):
        assistant = Assistant.objects.create(project=project, model="gpt-4o-mini")
        thread = Thread.objects.create(project=project)
        run = services.run_create(project=project, thread_id=thread.public_id, assistant_id=assistant.public_id)

        def stream(**kwargs):
            with django_assert_num_queries(0):  # the claim read them: the call itself queries nothing
                seen.append(credentials.llm_params(kwargs["model"], {}))
            yield llm.TextDelta("hi")
            yield llm.Finish("stop", {"prompt_tokens": 3, "completion_tokens": 1})

        monkeypatch.setattr("runs.llm.stream_chat", stream)
        monkeypatch.setattr("runs.prompt.llm.context_window", lambda model: None)
        engine.run_execute(run_id=run.pk, task_id=run.claimed_by)
        return seen

    assert run_seeing([]) == [{}]  # none stored: the server's own
    provider_credential_set(project=project, provider="openai", params={"api_key": KEY, "organization": "org-p"})
    assert run_seeing([]) == [{"api_key": KEY, "organization": "org-p"}]
