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


def test_type_checking_sets_django_up_without_starting_embedded_servers(tmp_path):
    """mypy's Django plugin sets Django up with the settings pyproject.toml names; those must start no embedded
    Postgres or Redis (a failing mypy step would leave them running: nothing stops them)."""
    import os
    import subprocess
    import sys
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    config = tomllib.loads((root / "pyproject.toml").read_text())
    module = config["tool"]["django-stubs"]["django_settings_module"]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    env.update(DJANGO_SETTINGS_MODULE=module, ASSISTANTS_DATA_DIR=str(tmp_path / "data"))
    try:
        done = subprocess.run([sys.executable, "-c", "import django; django.setup(); from django.apps import apps; "
                               "from django.conf import settings; "
                               "print(len(apps.get_models()), settings.EMBEDDED_POSTGRES, settings.EMBEDDED_REDIS)"],
                              cwd=root, env=env, capture_output=True, text=True, timeout=120)
    finally:  # when this fails, what the settings started is stopped here
        from assistants_project import embedded

        embedded.stop_redis(tmp_path / "data")
        embedded.stop_postgres(tmp_path / "data")
    assert done.returncode == 0, done.stderr
    models, embedded_postgres, embedded_redis = done.stdout.split()
    assert int(models) > 10 and embedded_postgres == "False" and embedded_redis == "False"
    assert list((tmp_path / "data").iterdir()) == []  # no Postgres or Redis was laid out (nor started) there
