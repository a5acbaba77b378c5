"""Base viewset and the health endpoints."""

from __future__ import annotations

from django.db import connection
from django.http import JsonResponse
from rest_framework import viewsets
from rest_framework.response import Response

from assistants_project.api.pagination import OpenAIListPagination, list_body, paginate
from assistants_project.api.validation import ListParams, validated


class OpenAIViewSet(viewsets.GenericViewSet):
    """Thin: validate, call a service or selector, shape the answer."""

    pagination_class = OpenAIListPagination

    @property
    def project(self):
        return self.request.user.project

    def body(self, serializer_class) -> dict:
        return validated(serializer_class, self.request.data)

    def list_response(self, queryset, shape, *, parent_field: str | None = None):
        rows, has_more = paginate(queryset, validated(ListParams, self.request.query_params),
                                  parent_field=parent_field)
        return Response(list_body([shape(obj) for obj in rows], has_more))


def healthz(request):
    return JsonResponse({"status": "ok"})


def readyz(request):
    problems = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        problems["database"] = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    try:
        from assistants_project.redis import redis_client

        redis_client().ping()
    except Exception as exc:
        problems["redis"] = str(exc) or type(exc).__name__
    if problems:
        down = ", ".join(sorted(problems))
        return JsonResponse(
            {"status": "unavailable", "down": problems,
             "error": {"message": f"Not ready: {down} unreachable.", "type": "server_error", "param": None,
                       "code": None}},
            status=503,
        )
    return JsonResponse({"status": "ok"})
