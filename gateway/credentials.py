"""Provider credentials a request brings in headers (Astra's convention), turned into LiteLLM parameters.

``api-key`` → ``api_key``; ``LLM-PARAM-aws-region-name: eu-west-1`` → ``aws_region_name="eu-west-1"`` for model
calls; ``EMBEDDING-PARAM-<name>`` the same for embedding calls; ``embedding-model`` names the model that embeds
the files and search queries of the request (``retrieval.embeddings.current_config``).
Values that parse as JSON numbers, booleans or objects are passed as such, anything else as the string.

Parameters that would make the server call somewhere else (base URLs, proxies, hosts, file paths, URL values)
are refused unless the operator allows them (PROVIDER_HEADERS_ALLOW_URLS): otherwise any API key holder could
point the server at an arbitrary address. The values are secrets: they never appear in ``repr``, responses or logs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.conf import settings

from assistants_project.api.errors import InvalidRequest

LLM_PREFIX = "llm-param-"
EMBEDDING_PREFIX = "embedding-param-"
# What the request body owns; a header cannot replace it.
RESERVED = frozenset({"model", "messages", "input", "stream", "stream_options"})
# Name fragments of parameters that choose where (or from which local file) the server connects.
_ADDRESS_FRAGMENTS = ("base", "url", "endpoint", "host", "proxy", "proxies", "path", "file", "dir", "socket",
                      "client", "callback", "logger")
# Parameters that read local files or credentials of the server by name.
_ADDRESS_NAMES = frozenset({"vertex_credentials", "aws_profile_name", "aws_web_identity_token",
                            "aws_role_name", "aws_sts_endpoint", "azure_ad_token_provider"})


@dataclass(frozen=True, repr=False)
class RequestCredentials:
    api_key: str | None = None
    embedding_model: str | None = None
    llm_params: dict = field(default_factory=dict)
    embedding_params: dict = field(default_factory=dict)

    def __repr__(self) -> str:  # never the values
        return (f"RequestCredentials(api_key={'set' if self.api_key else 'unset'}, "
                f"llm_params={sorted(self.llm_params)}, embedding_params={sorted(self.embedding_params)})")

    def __bool__(self) -> bool:
        return bool(self.api_key or self.embedding_model or self.llm_params or self.embedding_params)

    def llm_kwargs(self) -> dict:
        return {**self.llm_params, **({"api_key": self.api_key} if self.api_key else {})}

    def embedding_kwargs(self) -> dict:
        return {**self.embedding_params, **({"api_key": self.api_key} if self.api_key else {})}

    def secrets(self) -> list[str]:
        """Every string value these credentials carry, for scrubbing provider messages."""
        values = [self.api_key] + [v for v in (*self.llm_params.values(), *self.embedding_params.values())
                                   if isinstance(v, str)]
        return [v for v in values if v and len(v) >= 4]


NONE = RequestCredentials()


def from_headers(headers) -> RequestCredentials:
    """``headers``: a Django ``request.headers`` (case-insensitive). Raises InvalidRequest naming a refused header."""
    api_key = embedding_model = None
    llm: dict = {}
    embedding: dict = {}
    for raw_name, value in headers.items():  # Django spells them Llm-Param-…; errors name them as documented
        name = raw_name.lower()
        if name == "api-key":
            api_key = value.strip() or None
        elif name == "embedding-model":
            embedding_model = value.strip() or None
        elif name.startswith(LLM_PREFIX):
            _put(llm, "LLM-PARAM-" + name[len(LLM_PREFIX):], name[len(LLM_PREFIX):], value)
        elif name.startswith(EMBEDDING_PREFIX):
            _put(embedding, "EMBEDDING-PARAM-" + name[len(EMBEDDING_PREFIX):], name[len(EMBEDDING_PREFIX):], value)
    if api_key is None and embedding_model is None and not llm and not embedding:
        return NONE
    return RequestCredentials(api_key=api_key, embedding_model=embedding_model, llm_params=llm,
                              embedding_params=embedding)


def _put(params: dict, header: str, suffix: str, raw: str) -> None:
    param = suffix.replace("-", "_")
    if not param or not param.replace("_", "").isalnum():
        raise InvalidRequest(f"Header '{header}' does not name a parameter.", param=header)
    if param in RESERVED:
        raise InvalidRequest(f"Header '{header}' cannot set '{param}': it belongs in the request body.",
                             param=header)
    value = _parse(raw.strip())
    if not settings.PROVIDER_HEADERS_ALLOW_URLS and (_names_address(param) or _has_address(value)):
        raise InvalidRequest(
            f"Header '{header}' is refused: '{param}' could make this server connect to another address or read "
            "a local file. The operator can allow it with PROVIDER_HEADERS_ALLOW_URLS.",
            param=header, code="header_not_allowed")
    params[param] = value


def _parse(raw: str):
    if raw[:1] in "{[-0123456789tfn":
        try:
            return json.loads(raw)
        except ValueError:
            pass
    return raw


def _names_address(param: str) -> bool:
    return param in _ADDRESS_NAMES or any(fragment in param for fragment in _ADDRESS_FRAGMENTS)


def _has_address(value) -> bool:
    if isinstance(value, str):
        text = value.strip().lower()
        return "://" in text or text.startswith(("/", "~", "\\", "file:", "unix:"))
    if isinstance(value, dict):
        return any(_names_address(str(k).lower()) or _has_address(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_address(v) for v in value)
    return False
