"""Base viewset and the health endpoints."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, cast

from django.db import connection
from django.http import JsonResponse
from rest_framework import viewsets
from rest_framework.metadata import BaseMetadata
from rest_framework.response import Response

from assistants_project.api.errors import error_body
from assistants_project.api.ids import check_path_ids
from assistants_project.api.pagination import list_response
from assistants_project.api.sanitize import check_request_strings
from assistants_project.api.validation import validated
from gateway.credentials import from_headers
from tenancy import credentials as provider_credentials

if TYPE_CHECKING:
    from tenancy.auth import ProjectPrincipal
    from tenancy.models import Project

logger = logging.getLogger(__name__)


class PlainMetadata(BaseMetadata):
    """``OPTIONS``: the allowed methods (in the Allow header) and the view's name; our views have no DRF
    serializer_class for DRF's default to describe."""

    def determine_metadata(self, request, view) -> dict:
        return {"name": view.get_view_name()}


class OpenAIViewSet(viewsets.GenericViewSet):
    """Thin: validate, call a service or selector, shape the answer."""

    metadata_class = PlainMetadata

    @property
    def project(self) -> Project:
        # BearerKeyAuthentication's principal; DRF annotates request.user as Django's user model.
        return cast("ProjectPrincipal", self.request.user).project

    def dispatch(self, request, *args, **kwargs):
        # provider credentials for the calls this request makes or starts (tenancy/credentials.py): initial()
        # fills the scope in once the caller is authenticated
        with provider_credentials.scope(project_id=None):
            return super().dispatch(request, *args, **kwargs)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication first: an anonymous caller learns nothing
        check_request_strings(request.query_params, kwargs)
        check_path_ids(kwargs)
        provider_credentials.enter(project_id=self.project.pk, request=from_headers(request.headers))

    def body(self, serializer_class) -> dict:
        return validated(serializer_class, self.request.data, json=self.request.content_type != "multipart/form-data")

    def list_response(self, queryset, shape=None, **options) -> Response:
        return list_response(self.request, queryset, shape, **options)


def healthz(request):
    return JsonResponse({"status": "ok"})


READY_TIMEOUT_SECONDS = 2


def _database_ready() -> None:
    """A fresh connection with a short timeout, not the pool: with Postgres down the pool would wait its full
    timeout, and with the pool exhausted by load the database is still up."""
    import psycopg

    params = connection.get_connection_params()
    params.pop("pool", None)
    params["connect_timeout"] = READY_TIMEOUT_SECONDS
    with psycopg.connect(**params) as conn:
        conn.execute("SELECT 1")


def _redis_ready() -> None:
    from assistants_project import redis

    redis.redis_client().ping()


def readyz(request):
    """Unauthenticated: names what is down, never how (socket paths and server messages go to the log)."""
    down = []
    for name, probe in (("database", _database_ready), ("redis", _redis_ready)):
        try:
            probe()
        except Exception:
            logger.warning("readiness: %s unreachable", name, exc_info=True)
            down.append(name)
    if down:
        body = error_body(f"Not ready: {', '.join(down)} unreachable.", status=503)
        return JsonResponse({"status": "unavailable", "down": down, **body}, status=503)
    return JsonResponse({"status": "ok"})



