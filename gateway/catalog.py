"""The models GET /v1/models lists: the public names of MODEL_ALIASES_FILE, then GATEWAY_MODELS."""

from __future__ import annotations

import functools

from django.conf import settings

from runs.llm import alias_names, resolve


@functools.cache
def models() -> dict[str, dict]:
    names = [*alias_names(), *settings.GATEWAY_MODELS]
    return {name: _model(name) for name in dict.fromkeys(names)}


def _model(name: str) -> dict:
    import litellm

    target, params = resolve(name)
    try:
        owner = litellm.get_llm_provider(target, custom_llm_provider=params.get("custom_llm_provider"))[1]
    except Exception:
        owner = "system"
    return {"id": name, "object": "model", "created": 0, "owned_by": owner}


def model_list() -> dict:
    return {"object": "list", "data": list(models().values())}


def model_get(name: str) -> dict | None:
    return models().get(name)
