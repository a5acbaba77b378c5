"""Per-request provider headers → LiteLLM parameters, and the refusal of parameters that choose an address."""

import pytest
from django.http import HttpHeaders

from assistants_project.api.errors import InvalidRequest
from gateway.credentials import NONE, from_headers


def headers(**pairs: str) -> HttpHeaders:
    return HttpHeaders({f"HTTP_{name.upper().replace('-', '_')}": value for name, value in pairs.items()})


def test_headers_become_litellm_parameters():
    creds = from_headers(headers(**{"api-key": "sk-user-1234", "LLM-PARAM-aws-region-name": "eu-west-1",
                                    "LLM-PARAM-temperature": "0.5", "LLM-PARAM-extra-headers": '{"X-A": "b"}',
                                    "EMBEDDING-PARAM-dimensions": "256", "embedding-model": "cohere/embed-v3",
                                    "Authorization": "Bearer sk-ours"}))
    assert creds.llm_kwargs() == {"aws_region_name": "eu-west-1", "temperature": 0.5,
                                  "extra_headers": {"X-A": "b"}, "api_key": "sk-user-1234"}
    assert creds.embedding_kwargs() == {"dimensions": 256, "api_key": "sk-user-1234"}
    assert creds.embedding_model == "cohere/embed-v3"
    assert "sk-user-1234" not in repr(creds) and "sk-user-1234" in creds.secrets()
    assert from_headers(headers(Authorization="Bearer sk-ours")) is NONE and not NONE


@pytest.mark.parametrize("name,value", [
    ("LLM-PARAM-api-base", "https://example.com"), ("LLM-PARAM-base-url", "x"), ("LLM-PARAM-proxies", "x"),
    ("LLM-PARAM-aws-sts-endpoint", "x"), ("LLM-PARAM-vertex-credentials", "{}"),
    ("EMBEDDING-PARAM-api-base", "x"), ("LLM-PARAM-region", "http://169.254.169.254"),
    ("LLM-PARAM-region", "/etc/passwd"), ("LLM-PARAM-extra-body", '{"callback_url": "x"}')])
def test_address_parameters_are_refused_naming_the_header(name, value):
    with pytest.raises(InvalidRequest) as excinfo:
        from_headers(headers(**{name: value}))
    assert excinfo.value.param == name and name in str(excinfo.value.detail)


def test_the_operator_may_allow_address_parameters(settings):
    settings.PROVIDER_HEADERS_ALLOW_URLS = True
    creds = from_headers(headers(**{"LLM-PARAM-api-base": "http://10.0.0.5:8000/v1"}))
    assert creds.llm_kwargs() == {"api_base": "http://10.0.0.5:8000/v1"}


@pytest.mark.parametrize("name", ["LLM-PARAM-model", "LLM-PARAM-messages", "EMBEDDING-PARAM-input",
                                  "LLM-PARAM-stream"])
def test_body_parameters_cannot_come_from_headers(name):
    with pytest.raises(InvalidRequest) as excinfo:
        from_headers(headers(**{name: "x"}))
    assert excinfo.value.param == name
