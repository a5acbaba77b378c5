"""Public ids with OpenAI's prefixes (``asst_…``, ``file-…``)."""

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits

PREFIXES = {
    "assistant": "asst_",
    "thread": "thread_",
    "message": "msg_",
    "run": "run_",
    "step": "step_",
    "call": "call_",
    "vector_store": "vs_",
    "file_batch": "vsfb_",
    "file": "file-",
    "project": "proj_",
}


def new_id(kind: str, length: int = 24) -> str:
    return PREFIXES[kind] + "".join(secrets.choice(_ALPHABET) for _ in range(length))


# Path parameter → the prefix OpenAI names when an id of the wrong kind is given there.
PATH_ID_PREFIXES = {
    "assistant_id": "asst",
    "thread_id": "thread",
    "message_id": "msg",
    "run_id": "run",
    "step_id": "step",
    "vector_store_id": "vs",
    "batch_id": "vsfb",
    "file_id": "file",
}


def check_id(value: str, *, prefix: str, param: str) -> None:
    """OpenAI answers 400 (not 404) for an id of the wrong kind, e.g. ``undefined`` from a JS client."""
    from assistants_project.api.errors import InvalidRequest

    if not value.startswith(prefix):
        raise InvalidRequest(f"Invalid '{param}': '{value}'. Expected an ID that begins with '{prefix}'.",
                             param=param)


def check_path_ids(kwargs: dict) -> None:
    """Every id in a URL, checked once for every endpoint (the views' base class calls this)."""
    for name, value in kwargs.items():
        prefix = PATH_ID_PREFIXES.get(name)
        if prefix is not None:
            check_id(value, prefix=prefix, param=name)
