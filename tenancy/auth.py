"""``Authorization: Bearer <key>`` → the key's project. Missing or wrong keys answer 401."""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from assistants_project import logs
from assistants_project.api.errors import AuthenticationFailed
from tenancy import limits
from tenancy.models import Project
from tenancy.selectors import api_key_project


@dataclass(frozen=True)
class ProjectPrincipal:
    """``request.user`` for API calls: the project the key belongs to."""

    project: Project
    api_key_id: int
    is_authenticated: bool = True


def _masked(raw: str) -> str:
    return raw[:3] + "*" * max(0, min(len(raw) - 7, 20)) + raw[-4:] if len(raw) > 8 else "*" * len(raw)


class BearerKeyAuthentication(BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[ProjectPrincipal, int] | None:
        parts = get_authorization_header(request).split()
        if not parts:
            return None  # → NotAuthenticated (401) through IsAuthenticated
        if parts[0].lower() != self.keyword or len(parts) != 2:
            raise AuthenticationFailed(
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
        raw = parts[1].decode(errors="replace")
        found = api_key_project(raw)
        if found is None:
            raise AuthenticationFailed(
                f"Incorrect API key provided: {_masked(raw)}. You can create or revoke keys with "
                "'python manage.py createapikey'.",
                code="invalid_api_key",
            )
        project, key_id = found
        logs.bind(project=project.name)
        limits.check_request(project.pk, limits.effective(project, "requests_per_minute"))
        return ProjectPrincipal(project=project, api_key_id=key_id), key_id

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
