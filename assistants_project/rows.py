"""Model instances from hand-written SQL, for the few hot paths where one round trip matters (the ORM cannot
return the rows an UPDATE changed, joined to another table)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from django.db import connection, models

M = TypeVar("M", bound=models.Model)


def columns(model: type[models.Model], alias: str) -> str:
    """Every stored column of ``model`` as ``alias.column``, in field order (what ``from_row`` reads back)."""
    return ", ".join(f"{alias}.{field.column}" for field in model._meta.concrete_fields)


def from_row(model: type[M], values: Sequence[Any]) -> M:
    """An instance from values in ``columns`` order, converted as the ORM would (raw SQL hands JSON over as
    text)."""
    fields = model._meta.concrete_fields
    converted = [field.from_db_value(value, None, connection) if hasattr(field, "from_db_value") else value
                 for field, value in zip(fields, values, strict=True)]
    return model.from_db(connection.alias, [field.attname for field in fields], converted)
