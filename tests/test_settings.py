"""Settings read from the environment fail loudly on bad values."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from assistants_project.settings import env_seconds


@pytest.mark.parametrize("raw", ["soon", "0", "120"])
def test_a_bad_number_of_seconds_is_refused_with_its_name(monkeypatch, raw):
    monkeypatch.setenv("STREAM_KEEPALIVE_SECONDS", raw)
    with pytest.raises(ImproperlyConfigured, match="STREAM_KEEPALIVE_SECONDS"):
        env_seconds("STREAM_KEEPALIVE_SECONDS", 10.0, minimum=0.05, maximum=50.0)


def test_seconds_default_and_value(monkeypatch):
    monkeypatch.delenv("STREAM_KEEPALIVE_SECONDS", raising=False)
    assert env_seconds("STREAM_KEEPALIVE_SECONDS", 10.0, minimum=0.05, maximum=50.0) == 10.0
    monkeypatch.setenv("STREAM_KEEPALIVE_SECONDS", "0.3")
    assert env_seconds("STREAM_KEEPALIVE_SECONDS", 10.0, minimum=0.05, maximum=50.0) == 0.3
