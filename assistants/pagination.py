"""``paginate`` for a list inside one parent row (a thread's messages) that stays on the (parent, pk) index.

Why not ``queryset.filter(thread=t).order_by("-pk")``: with ``thread_id = X`` Postgres treats thread_id as a
constant, so ``ORDER BY id`` can also be served by walking the primary key backwards and filtering. It
estimates that walk by the thread's share of the table as if its rows were spread evenly; for an old big
thread followed by many newer messages of other threads it walks all of those first (measured: 45-70 ms
for the first page of a 100,000-message thread under 300,000 newer rows, instead of 0.05 ms).
``thread_id >= X AND thread_id <= X`` with ``ORDER BY thread_id, id`` can only be served by the (thread, id) index
(or (thread, run_public_id, id) with the run filter), whatever the data looks like.

Same parameters, validation, cursor rules and errors as ``assistants_project.api.pagination.paginate``.
"""

from __future__ import annotations

from django.db.models import QuerySet

from assistants_project.api.errors import InvalidRequest


def scoped_to(queryset: QuerySet, *, parent_field: str, parent_id: int) -> QuerySet:
    """Rows of one parent, written as a range so the parent column stays an ordering column (see above)."""
    return queryset.filter(**{f"{parent_field}__gte": parent_id, f"{parent_field}__lte": parent_id})


def paginate_in_parent(queryset: QuerySet, params: dict, *, parent_field: str,
                       cursor_field: str = "public_id") -> tuple[list, bool]:
    """Return (rows, has_more) for a ``queryset`` built with ``scoped_to``."""
    reverse = "before" in params
    newest_first = (params["order"] == "desc") != reverse
    sign = "-" if newest_first else ""
    qs = queryset.order_by(f"{sign}{parent_field}", f"{sign}pk")
    cursor = params.get("after") or params.get("before")
    if cursor:
        pivot = queryset.filter(**{cursor_field: cursor}).values_list("pk", flat=True).first()
        if pivot is None:
            param = "before" if reverse else "after"
            raise InvalidRequest(f"Invalid '{param}': no object with id '{cursor}' in this list.", param=param)
        qs = qs.filter(pk__lt=pivot) if newest_first else qs.filter(pk__gt=pivot)
    rows = list(qs[: params["limit"] + 1])  # one extra row tells has_more
    has_more = len(rows) > params["limit"]
    rows = rows[: params["limit"]]
    return (rows[::-1] if reverse else rows), has_more
