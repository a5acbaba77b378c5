"""The production shape as far as it runs without a container engine: docker-compose.yml and the Dockerfile
parsed and checked against deploy/entrypoint.sh and the settings; the entrypoint's migrate step against a database
that is down; `make run` reading .env; the admin behind a TLS-terminating proxy; static files."""

import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from django.test import Client, override_settings

from tests.live import ROOT

FERNET_KEY = "kBzbZ0ly0iEYuJS4J2nxUCH_vwCk2sDRfkTcFc8mkcE="  # CREDENTIALS_ENCRYPTION_KEY is required with DATABASE_URL

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()
ENTRYPOINT = (ROOT / "deploy" / "entrypoint.sh").read_text()
APP_SERVICES = {name: svc for name, svc in COMPOSE["services"].items() if "build" in svc}


def entrypoint_roles() -> set[str]:
    top = ENTRYPOINT.split('case "$role" in', 1)[1]
    return set(re.findall(r"^  ([a-z]+)\)", top, re.M))


def dockerfile_instruction(name: str) -> list[str]:
    return re.findall(rf"^{name}\s+(.+)$", DOCKERFILE, re.M)


def variables_read() -> set[str]:
    """Environment variables our code reads: the settings, `serve` (HOST, PORT, WEB_CONCURRENCY, WORKER_*) and the
    entrypoint itself."""
    settings = (ROOT / "assistants_project" / "settings.py").read_text()
    serve = (ROOT / "assistants" / "management" / "commands" / "serve.py").read_text()
    names = set(re.findall(r'env_(?:str|bool|int|seconds)\(\s*"([A-Z0-9_]+)"', settings))
    names |= set(re.findall(r'os\.environ(?:\.get)?[\[(]\s*"([A-Z0-9_]+)"', settings + serve))
    names |= set(re.findall(r"\$\{([A-Z0-9_]+)", ENTRYPOINT))
    return names


def test_every_app_service_runs_a_role_of_the_entrypoint():
    roles = entrypoint_roles()
    assert {"migrate", "web", "worker", "beat", "all", "health"} <= roles
    assert set(APP_SERVICES) == {"migrate", "web", "worker", "beat"}
    for name, svc in APP_SERVICES.items():
        assert svc["command"][0] in roles, name
        for part in svc.get("healthcheck", {}).get("test", [])[1:2]:
            assert part == "deploy/entrypoint.sh", name
    assert dockerfile_instruction("ENTRYPOINT") == ['["deploy/entrypoint.sh"]']
    assert dockerfile_instruction("CMD") == ['["all"]']
    assert os.access(ROOT / "deploy" / "entrypoint.sh", os.X_OK)


def test_every_variable_compose_sets_is_one_the_code_reads():
    read = variables_read()
    assert {"DATABASE_URL", "DJANGO_SECRET_KEY", "WEB_CONCURRENCY", "DJANGO_CSRF_TRUSTED_ORIGINS"} <= read
    for name, svc in APP_SERVICES.items():
        unknown = set(svc.get("environment", {})) - read
        assert not unknown, f"{name} sets {unknown}, which nothing reads"


def test_secrets_come_from_the_environment_with_a_message_and_nothing_is_wide_open():
    text = (ROOT / "docker-compose.yml").read_text()
    web_env = APP_SERVICES["web"]["environment"]
    assert re.fullmatch(r"\$\{DJANGO_SECRET_KEY:\?.+\}", web_env["DJANGO_SECRET_KEY"])
    assert re.fullmatch(r"\$\{CREDENTIALS_ENCRYPTION_KEY:\?.+\}", web_env["CREDENTIALS_ENCRYPTION_KEY"])
    assert "${POSTGRES_PASSWORD:?" in web_env["DATABASE_URL"]
    assert re.fullmatch(r"\$\{POSTGRES_PASSWORD:\?.+\}",
                        COMPOSE["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"])
    assert "*" not in web_env["DJANGO_ALLOWED_HOSTS"]
    # No literal password anywhere: every ":<password>@" in a URL is an interpolation.
    assert not re.search(r"://[^:/\s]+:[^$\s][^@\s]*@", text)
    for svc in APP_SERVICES.values():  # .env is optional
        assert svc["env_file"] == [{"path": ".env", "required": False}]


def test_start_order_is_gated_on_health_and_only_the_migrate_service_migrates():
    services = COMPOSE["services"]
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"], name
        assert services[name]["restart"] == "unless-stopped"
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                                 "redis": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker", "beat"):
        svc = services[name]
        assert svc["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
        assert svc["depends_on"]["postgres"] == {"condition": "service_healthy"}, name
        assert svc["restart"] == "unless-stopped", name
    assert services["web"]["healthcheck"]["test"][1:] == ["deploy/entrypoint.sh", "health", "web"]
    assert services["worker"]["healthcheck"]["test"][1:] == ["deploy/entrypoint.sh", "health", "worker"]
    # web, worker and beat exec one process and never migrate; only `migrate` (manage.py prepare) does.
    web_line = next(line for line in ENTRYPOINT.splitlines() if line.strip().startswith("web)"))
    assert "serve --exec web" in web_line
    migrate_line = next(line for line in ENTRYPOINT.splitlines() if line.strip().startswith("migrate)"))
    assert "manage.py prepare" in migrate_line
    named = set(COMPOSE["volumes"])
    for svc in services.values():
        for volume in svc.get("volumes", []):
            assert volume.split(":", 1)[0] in named, volume


def test_the_image_is_slim_pinned_non_root_with_a_healthcheck_and_no_local_data():
    base = dockerfile_instruction("FROM")
    assert len(base) == 1 and re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+", base[0]), base
    users = dockerfile_instruction("USER")
    assert users and users[-1] not in ("root", "0")
    assert dockerfile_instruction("HEALTHCHECK")
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {"var", ".venv", "node_modules", ".git", ".env"} <= ignored
    for image in (COMPOSE["services"]["postgres"]["image"], COMPOSE["services"]["redis"]["image"]):
        assert re.search(r":\d+\.\d+", image), f"{image} is not pinned"


def test_migrate_reports_a_database_that_is_down_as_down(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "CELERY_BROKER_URL")}
    env.update(PATH=f"{os.path.dirname(sys.executable)}:{env['PATH']}", DATABASE_URL="postgres://u:p@127.0.0.1:1/db",
               REDIS_URL="redis://127.0.0.1:1/0", DJANGO_SECRET_KEY="k" * 50, ASSISTANTS_DATA_DIR=str(tmp_path),
               CREDENTIALS_ENCRYPTION_KEY=FERNET_KEY)
    done = subprocess.run([str(ROOT / "deploy" / "entrypoint.sh"), "migrate"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0
    assert "The database at 127.0.0.1:1 is down or unreachable" in done.stderr
    assert "pgvector" not in done.stderr + done.stdout


def test_compose_file_settings_without_a_secret_key_fail_with_its_name(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DJANGO_SECRET_KEY")}
    env.update(DATABASE_URL="postgres://u:p@127.0.0.1:1/db", REDIS_URL="redis://127.0.0.1:1/0",
               ASSISTANTS_DATA_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0 and "DJANGO_SECRET_KEY must be set" in done.stderr


def test_make_run_reads_dot_env_and_the_environment_wins(tmp_path):
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    for name in ("Makefile", "requirements.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text('#!/bin/sh\necho "args=$* FROM_FILE=$FROM_FILE BOTH=$BOTH"\n')
    (bin_dir / "python").chmod(0o755)
    (bin_dir / "dotenv").symlink_to(ROOT / ".venv" / "bin" / "dotenv")
    (bin_dir / ".installed").touch()
    (tmp_path / "sandbox").mkdir()  # the sandbox venv is up to date as well
    shutil.copy(ROOT / "sandbox" / "requirements.txt", tmp_path / "sandbox" / "requirements.txt")
    (tmp_path / ".sandbox-venv").mkdir()
    (tmp_path / ".sandbox-venv" / ".installed").touch()
    (tmp_path / ".env").write_text("FROM_FILE=file  # a comment\nBOTH=file\n")
    env = {**os.environ, "BOTH": "environment"}
    env.pop("FROM_FILE", None)
    done = subprocess.run(["make", "-s", "run", f"BIN={bin_dir}"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "args=manage.py serve FROM_FILE=file BOTH=environment" in done.stdout
    (tmp_path / ".env").unlink()  # no .env: still runs
    done = subprocess.run(["make", "-s", "run", f"BIN={bin_dir}"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "args=manage.py serve FROM_FILE= BOTH=environment" in done.stdout


def test_proxy_settings_are_read_from_the_environment(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(DATABASE_URL="postgres://u:p@127.0.0.1:1/db", REDIS_URL="redis://127.0.0.1:1/0",
               DJANGO_SECRET_KEY="k" * 50, ASSISTANTS_DATA_DIR=str(tmp_path), CREDENTIALS_ENCRYPTION_KEY=FERNET_KEY,
               DJANGO_CSRF_TRUSTED_ORIGINS="https://proxy.example, https://admin.example",
               DJANGO_TRUST_X_FORWARDED_PROTO="true")
    code = ("from assistants_project import settings as s; "
            "print(s.CSRF_TRUSTED_ORIGINS, s.SECURE_PROXY_SSL_HEADER)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == ("['https://proxy.example', 'https://admin.example'] "
                                   "('HTTP_X_FORWARDED_PROTO', 'https')")
    env["DJANGO_CSRF_TRUSTED_ORIGINS"] = "proxy.example"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "DJANGO_CSRF_TRUSTED_ORIGINS" in done.stderr


def _admin_login(host: str) -> int:
    """The admin login as a browser does it through https://proxy.example, which forwards to us with
    X-Forwarded-Proto: https and the given Host."""
    client = Client(enforce_csrf_checks=True, HTTP_HOST=host, HTTP_X_FORWARDED_PROTO="https")
    page = client.get("/admin/login/")
    assert page.status_code == 200
    response = client.post("/admin/login/?next=/admin/",
                           {"username": "ops", "password": "s3cret-pass", "next": "/admin/",
                            "csrfmiddlewaretoken": client.cookies["csrftoken"].value},
                           HTTP_ORIGIN="https://proxy.example", HTTP_REFERER="https://proxy.example/admin/login/")
    return response.status_code, response.get("Location")


@pytest.mark.parametrize("host, configured", [
    # The proxy keeps the Host header: believing its X-Forwarded-Proto makes the request https, as the origin is.
    ("proxy.example", {"SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https")}),
    # The proxy sends the backend's own address: the public origin must be trusted explicitly.
    ("web", {"CSRF_TRUSTED_ORIGINS": ["https://proxy.example"]}),
])
def test_admin_login_behind_a_tls_terminating_proxy(django_user_model, host, configured):
    django_user_model.objects.create_superuser("ops", "ops@example.com", "s3cret-pass")
    with override_settings(ALLOWED_HOSTS=[host], CSRF_TRUSTED_ORIGINS=[], SECURE_PROXY_SSL_HEADER=None):
        assert _admin_login(host)[0] == 403  # "CSRF verification failed", as reported
        with override_settings(**configured):
            assert _admin_login(host) == (302, "/admin/")


def test_the_admin_css_is_served_without_debug(settings):
    assert settings.DEBUG is False
    response = Client().get("/static/admin/css/base.css", HTTP_HOST="localhost")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/css")
    assert b"body" in b"".join(response.streaming_content)
    assert Client().get("/static/admin/css/no-such.css", HTTP_HOST="localhost").status_code == 404
