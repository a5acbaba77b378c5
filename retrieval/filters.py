"""Attribute filters (ComparisonFilter / CompoundFilter) → validated dicts → SQL over a jsonb column.

Semantics: ``eq``/``gt``/… compare values of the same JSON type (numbers numerically, strings by text order);
an attribute that is missing or of another type never matches them. ``ne`` and ``nin`` match when the attribute
is missing. ``in``/``nin`` take a list of strings and numbers.
"""

from __future__ import annotations

import json

from assistants_project.api.errors import InvalidRequest

COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")
COMPOUNDS = ("and", "or")
MAX_DEPTH = 8
MAX_CLAUSES = 64
_SQL_OPS = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate_filter(value, param: str = "filters") -> dict:
    """Return a normalised filter or raise InvalidRequest naming the offending parameter."""
    counter = [0]
    return _validate(value, param, 1, counter)


def _validate(value, param: str, depth: int, counter: list[int]) -> dict:
    if not isinstance(value, dict):
        raise InvalidRequest(f"Invalid type for '{param}': expected an object.", param=param)
    counter[0] += 1
    if depth > MAX_DEPTH or counter[0] > MAX_CLAUSES:
        raise InvalidRequest(f"Invalid '{param}': filters may nest {MAX_DEPTH} deep and hold {MAX_CLAUSES} clauses.",
                             param=param)
    kind = value.get("type")
    if kind in COMPOUNDS:
        _no_extra(value, {"type", "filters"}, param)
        items = value.get("filters")
        if not isinstance(items, list) or not items:
            raise InvalidRequest(f"Invalid '{param}.filters': expected a non-empty array of filters.",
                                 param=f"{param}.filters")
        return {"type": kind, "filters": [_validate(item, f"{param}.filters[{i}]", depth + 1, counter)
                                          for i, item in enumerate(items)]}
    if kind not in COMPARISONS:
        raise InvalidRequest(f"Invalid value for '{param}.type': {kind!r}. Supported values are: "
                             + ", ".join(f"'{k}'" for k in COMPARISONS + COMPOUNDS) + ".", param=f"{param}.type")
    _no_extra(value, {"type", "key", "value"}, param)
    key = value.get("key")
    if not isinstance(key, str) or not key:
        raise InvalidRequest(f"Invalid '{param}.key': expected a non-empty string.", param=f"{param}.key")
    if "value" not in value:
        raise InvalidRequest(f"Missing required parameter: '{param}.value'.", param=f"{param}.value")
    operand = value["value"]
    if kind in ("in", "nin"):
        if not isinstance(operand, list) or not all(isinstance(v, str) or _is_number(v) for v in operand):
            raise InvalidRequest(f"Invalid '{param}.value': '{kind}' needs an array of strings or numbers.",
                                 param=f"{param}.value")
    elif kind in ("gt", "gte", "lt", "lte"):
        if not (isinstance(operand, str) or _is_number(operand)):
            raise InvalidRequest(f"Invalid '{param}.value': '{kind}' compares a string or a number.",
                                 param=f"{param}.value")
    elif not (isinstance(operand, str | bool) or _is_number(operand)):
        raise InvalidRequest(f"Invalid '{param}.value': expected a string, number or boolean.",
                             param=f"{param}.value")
    return {"type": kind, "key": key, "value": operand}


def _no_extra(value: dict, allowed: set[str], param: str) -> None:
    for key in value:
        if key not in allowed:
            raise InvalidRequest(f"Unrecognized request argument supplied: {param}.{key}", param=f"{param}.{key}")


def _json_type(value) -> str:
    return "string" if isinstance(value, str) else "boolean" if isinstance(value, bool) else "number"


def filter_sql(spec: dict, column: str) -> tuple[str, list]:
    """SQL boolean expression over the jsonb ``column`` with %s parameters (keys and values are parameters)."""
    kind = spec["type"]
    if kind in COMPOUNDS:
        parts = [filter_sql(item, column) for item in spec["filters"]]
        joiner = " AND " if kind == "and" else " OR "
        return "(" + joiner.join(sql for sql, _ in parts) + ")", [p for _, params in parts for p in params]
    key, value = spec["key"], spec["value"]
    attr = f"({column} -> %s)"
    if kind in ("in", "nin"):
        values = [json.dumps(v) for v in value]
        sql = f"COALESCE({attr} = ANY(%s::jsonb[]), false)"
        return (sql if kind == "in" else f"NOT {sql}"), [key, values]
    if kind == "ne":
        return f"{attr} IS DISTINCT FROM %s::jsonb", [key, json.dumps(value)]
    sql = f"COALESCE(jsonb_typeof({attr}) = %s AND {attr} {_SQL_OPS[kind]} %s::jsonb, false)"
    return sql, [key, _json_type(value), key, json.dumps(value)]
