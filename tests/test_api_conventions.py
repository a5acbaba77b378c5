"""The error envelope for every failure class, auth, headers, the beta header and health endpoints."""

import pytest
from django.core.management import call_command

from assistants.models import Assistant
from tenancy.models import ApiKey
from tenancy.services import api_key_create
from tests.test_api_assistants import assert_error

pytestmark = pytest.mark.django_db


def test_missing_key_is_401_in_envelope(anon_api):
    error = assert_error(anon_api.get("/v1/assistants"), 401)
    assert "didn't provide an API key" in error["message"]


def test_wrong_key_is_401_invalid_api_key(anon_api):
    anon_api.credentials(HTTP_AUTHORIZATION="Bearer sk-wrong-key-123456")
    error = assert_error(anon_api.get("/v1/assistants"), 401, code="invalid_api_key")
    assert "sk-wrong-key-123456" not in error["message"]  # masked
    assert "3456" in error["message"]


def test_non_bearer_scheme_is_401(anon_api):
    anon_api.credentials(HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz")
    assert_error(anon_api.get("/v1/assistants"), 401)


def test_revoked_key_is_401(project, anon_api):
    raw = api_key_create(project=project)
    anon_api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert anon_api.get("/v1/assistants").status_code == 200
    call_command("revokeapikey", raw)
    assert_error(anon_api.get("/v1/assistants"), 401, code="invalid_api_key")


@pytest.mark.parametrize("how", ["admin edit", "key deleted", "project deleted"])
def test_a_key_revoked_any_way_stops_working_at_once(project, anon_api, how):
    """Valid keys are cached (in Redis) for speed: every way of invalidating one must reach that cache."""
    from django.utils import timezone

    raw = api_key_create(project=project)
    anon_api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert anon_api.get("/v1/assistants").status_code == 200  # now cached
    assert anon_api.get("/v1/assistants").status_code == 200  # answered from the cache
    key = ApiKey.objects.get(project=project)
    if how == "admin edit":
        key.revoked_at = timezone.now()
        key.save()
    elif how == "key deleted":
        ApiKey.objects.filter(pk=key.pk).delete()
    else:
        project.delete()
    assert_error(anon_api.get("/v1/assistants"), 401, code="invalid_api_key")


def test_keys_are_stored_hashed(project):
    raw = api_key_create(project=project)
    key = ApiKey.objects.get()
    assert raw not in (key.key_hash, key.prefix) and len(key.key_hash) == 64


def test_createapikey_command_prints_a_working_key(anon_api, capsys):
    call_command("createapikey", "--project", "cli-project")
    raw = capsys.readouterr().out.strip()
    assert raw.startswith("sk-")
    anon_api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert anon_api.get("/v1/assistants").status_code == 200


def test_unknown_route_is_404_envelope(api):
    assert_error(api.get("/v1/nothing-here"), 404, contains="Invalid URL")
    assert_error(api.get("/v1/assistants/"), 404)  # no trailing slash in OpenAI's API


def test_wrong_method_is_405_envelope(api):
    assert_error(api.put("/v1/assistants", {}, format="json"), 405)
    assert_error(api.patch("/v1/assistants/asst_x", {}, format="json"), 405)


def test_malformed_json_is_400_envelope(api):
    response = api.generic("POST", "/v1/assistants", b'{"model": ', content_type="application/json")
    assert_error(response, 400, contains="could not parse the JSON body")
    assert Assistant.objects.count() == 0


def test_json_body_must_be_an_object(api):
    response = api.generic("POST", "/v1/assistants", b'["model"]', content_type="application/json")
    assert_error(response, 400)


def test_wrong_content_type_is_415_envelope(api):
    response = api.generic("POST", "/v1/assistants", b"model=x", content_type="text/plain")
    assert_error(response, 415)


def test_oversized_body_is_413_before_reading(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    response = api.generic("POST", "/v1/assistants", b'{"model": "' + b"x" * 4096 + b'"}',
                           content_type="application/json")
    assert_error(response, 413)
    assert Assistant.objects.count() == 0


def test_unexpected_exception_is_500_envelope_without_traceback(api, monkeypatch, caplog):
    def boom(**kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr("assistants.selectors.assistant_list", boom)
    api.raise_request_exception = False
    response = api.get("/v1/assistants")
    error = assert_error(response, 500)
    assert error["type"] == "server_error"
    assert "secret internal detail" not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    assert "secret internal detail" in caplog.text  # the traceback goes to the log only


def test_v1_beta_header_is_refused(project, anon_api):
    anon_api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(project=project)}")
    response = anon_api.get("/v1/assistants", HTTP_OPENAI_BETA="assistants=v1")
    error = assert_error(response, 400, code="invalid_beta")
    assert "v1 Assistants API has been deprecated" in error["message"]


def test_missing_beta_header_is_accepted(project, anon_api):
    anon_api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(project=project)}")
    assert anon_api.get("/v1/assistants").status_code == 200


def test_response_headers(api):
    response = api.get("/v1/assistants")
    assert response["x-request-id"].startswith("req_")
    assert int(response["openai-processing-ms"]) >= 0
    assert api.get("/v1/assistants")["x-request-id"] != response["x-request-id"]
    assert assert_error(api.get("/v1/nope"), 404) and api.get("/v1/nope")["x-request-id"]


def test_create_answers_200_not_201(api):
    assert api.post("/v1/assistants", {"model": "m"}, format="json").status_code == 200


def test_healthz_and_readyz(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ok"}


def test_readyz_names_what_is_down(client, monkeypatch):
    import redis

    from assistants_project import redis as redis_module

    class Down:
        def ping(self):
            raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(redis_module, "redis_client", lambda: Down())
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "redis" in response.json()["down"] and "database" not in response.json()["down"]
    assert "redis" in response.json()["error"]["message"]


def test_admin_is_enabled(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200


def test_unknown_host_is_refused(api):
    response = api.get("/v1/assistants", HTTP_HOST="evil.example")
    assert response.status_code == 400 and response.json()["error"]["message"] == "Invalid Host header."


def test_a_revoked_key_cannot_come_back_from_a_cache_that_missed_the_revoke(project, anon_api):
    """Another process revokes (or Redis restarts from an old snapshot): this process's cache never heard of it.
    Within a second the key generation read from Postgres disagrees with the entry's, and the key is refused."""
    import time

    from django.utils import timezone

    from assistants_project.api import keycache

    raw = api_key_create(project=project)
    anon_api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert anon_api.get("/v1/assistants").status_code == 200  # cached
    ApiKey.objects.filter(project=project).update(revoked_at=timezone.now())  # no signal: nothing told the cache
    time.sleep(keycache.GENERATION_CHECK_SECONDS + 0.1)
    assert_error(anon_api.get("/v1/assistants"), 401, code="invalid_api_key")


def test_requests_that_find_the_key_generation_stale_together_read_it_once():
    """Once a second the generation goes stale for every request of that moment: one thread reads it, the others
    wait for that answer rather than each query Postgres."""
    import threading
    import time

    from assistants_project.api import keycache

    keycache.forget()
    reads = []

    def read():
        reads.append(1)
        time.sleep(0.05)
        return ("generation", len(reads))

    threads = [threading.Thread(target=keycache.current_generation, args=(read,)) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(reads) == 1 and keycache.current_generation(read) == ("generation", 1)
    keycache.forget()


def test_cached_key_is_not_queried_again(project, anon_api, django_assert_max_num_queries, monkeypatch):
    from assistants_project.api import keycache

    monkeypatch.setattr(keycache, "GENERATION_CHECK_SECONDS", 3600)  # a slow machine must not re-read it here
    raw = api_key_create(project=project)
    anon_api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert anon_api.get("/v1/assistants").status_code == 200
    with django_assert_max_num_queries(1):  # the page's own query; the key comes from the cache
        assert anon_api.get("/v1/assistants").status_code == 200
