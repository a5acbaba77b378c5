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
