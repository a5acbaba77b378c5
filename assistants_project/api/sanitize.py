"""The one input-sanitising layer: every JSON body, multipart field, query parameter and path id passes here
before any serializer sees it.

What it refuses (400, with the offending value's path as ``param``) is what no later layer can store or handle:
NUL characters and lone surrogates (Postgres text and jsonb hold neither: the insert would fail), numbers that are
not finite or do not fit 64 bits (jsonb cannot hold ``Infinity``; bigint columns overflow), and nesting deeper
than ``MAX_DEPTH`` (Python's recursion limit is ~1,000 frames: recursive serializers and ``json.dumps`` would die
on the way down). The walk is iterative, so a hostile body cannot exhaust the stack here either.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser

from assistants_project.api.errors import InvalidRequest

MAX_DEPTH = 64  # JSON Schemas of function parameters are the deepest legitimate input; 64 levels is generous
INT_LIMIT = 2**63 - 1


def _child_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def string_problem(value: str) -> str | None:
    if "\x00" in value:
        return "contains a NUL character (\\u0000), which is not allowed"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate, which is not valid Unicode"
    return None


def check_value(value: Any, root: str = "") -> None:
    """Raise InvalidRequest (param = the value's path) for anything the rest of the server cannot take."""
    stack: list[tuple[Any, str, int]] = [(value, root, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            problem = string_problem(item)
            if problem:
                raise InvalidRequest(f"Invalid '{path or 'body'}': the string {problem}.", param=path or None)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if abs(item) > INT_LIMIT:
                raise InvalidRequest(f"Invalid '{path or 'body'}': the number is too large.", param=path or None)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidRequest(f"Invalid '{path or 'body'}': the number is too large.", param=path or None)
        elif isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise InvalidRequest(f"Invalid '{path or 'body'}': JSON nested deeper than {MAX_DEPTH} levels.",
                                     param=path or None)
            pairs: Iterable = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, str):
                    problem = string_problem(key)
                    if problem:
                        raise InvalidRequest(f"Invalid '{path or 'body'}': a key {problem}.", param=path or None)
                stack.append((child, _child_path(path, key), depth + 1))


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


class SafeJSONParser(JSONParser):
    """JSON bodies: strict JSON (no NaN/Infinity), then ``check_value``."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            raw = stream.read() if stream is not None else b""
            text = raw.decode(encoding)
            data = json.loads(text, parse_constant=_reject_constant) if text.strip() else None
        except RecursionError:
            raise InvalidRequest(f"The JSON body is nested deeper than {MAX_DEPTH} levels.") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        check_value(data)
        return data


def check_multipart(data) -> None:
    """Form fields and upload file names (a QueryDict of strings and files)."""
    for key, values in data.lists():
        check_value(key, "")
        for value in values:
            name = getattr(value, "name", None)
            check_value(name if name is not None else value, key)


class SafeMultiPartParser(MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            parsed = super().parse(stream, media_type, parser_context)
        except (ValueError, TypeError) as exc:  # Django's own parser on a malformed part header
            raise ParseError(f"Multipart form parse error - {exc}") from None
        check_multipart(parsed.data)
        check_multipart(parsed.files)
        return parsed


class SafeFormParser(FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        check_multipart(data)
        return data


def check_request_strings(query_params, path_kwargs: dict) -> None:
    """Query parameters and path ids (URL-decoded) go through the same checks as bodies."""
    for name, value in path_kwargs.items():
        check_value(value, name)
    for key, values in query_params.lists():
        check_value(key, "")
        for value in values:
            check_value(value, key)
