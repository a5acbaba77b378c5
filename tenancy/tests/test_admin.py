"""The operators' admin for API keys."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from tenancy.models import ApiKey

pytestmark = pytest.mark.django_db


def test_api_key_creation_shows_the_raw_key_once(admin_client, project, anon_api):
    response = admin_client.post(reverse("admin:tenancy_apikey_add"), {"project": project.pk, "name": "ci"})
    assert response.status_code == 302
    [message] = [str(m) for m in get_messages(response.wsgi_request) if "shown only this once" in str(m)]
    raw = message.rsplit(" ", 1)[-1]
    assert raw.startswith("sk-")
    key = ApiKey.objects.get(name="ci")
    assert key.project == project and raw not in key.key_hash and key.prefix == raw[:8]
    anon_api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert anon_api.get("/v1/files").status_code == 200
    change = reverse("admin:tenancy_apikey_change", args=[key.pk])
    assert raw in admin_client.get(change).content.decode()  # the redirect target shows the message...
    assert raw not in admin_client.get(change).content.decode()  # ...once


def test_revoking_keys_in_the_admin_takes_effect_at_once(admin_client, project, anon_api):
    from tenancy.services import api_key_create

    raw = api_key_create(project=project, name="leaked")
    kept = api_key_create(project=project, name="kept")
    anon_api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert anon_api.get("/v1/files").status_code == 200  # the key is now in the authentication cache
    leaked = ApiKey.objects.get(name="leaked")

    response = admin_client.post(reverse("admin:tenancy_apikey_changelist"), {
        "action": "revoke", "_selected_action": [leaked.pk]})
    assert response.status_code == 302
    assert "Revoked 1 key(s)." in [str(m) for m in get_messages(response.wsgi_request)]
    leaked.refresh_from_db()
    assert leaked.revoked_at is not None
    refused = anon_api.get("/v1/files")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    anon_api.credentials(HTTP_AUTHORIZATION=f"Bearer {kept}")
    assert anon_api.get("/v1/files").status_code == 200  # the others still work


def test_revoking_needs_the_change_permission(client, django_user_model, project):
    from django.contrib.auth.models import Permission

    from tenancy.services import api_key_create

    api_key_create(project=project, name="ci")
    key = ApiKey.objects.get(name="ci")
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_apikey"))
    client.force_login(viewer)
    url = reverse("admin:tenancy_apikey_changelist")
    assert "Revoke the selected keys" not in client.get(url).content.decode()
    client.post(url, {"action": "revoke", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.revoked_at is None
