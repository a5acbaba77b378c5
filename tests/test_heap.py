"""The web and the worker settle their heap once started (assistants_project/heap.py): what startup loaded is
frozen out of the garbage collector's passes, so a full pass walks only what the requests and runs in flight made,
not the whole process (100–400 ms with the GIL held, every few seconds under load, before)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROBE = ("import gc, sys; {start}; "
         "print(gc.get_freeze_count(), len(gc.get_objects()), gc.get_threshold()[0], 'litellm' in sys.modules)")


@pytest.mark.parametrize("start", [
    "import assistants_project.asgi",  # what uvicorn imports
    "import django; django.setup(); from assistants_project.celery import _preload; _preload()",  # worker_init
], ids=["web", "worker"])
def test_startup_freezes_what_it_loaded(tmp_path, start):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    # settings that start no embedded server: only the import-time work is under test
    env.update(DJANGO_SETTINGS_MODULE="assistants_project.settings_typecheck", ASSISTANTS_DATA_DIR=str(tmp_path),
               LITELLM_LOCAL_MODEL_COST_MAP="True")
    done = subprocess.run([sys.executable, "-c", PROBE.format(start=start)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    frozen, tracked, gen0, litellm_loaded = done.stdout.split()
    assert litellm_loaded == "True"  # loaded before the freeze, not by the first request after it
    assert int(frozen) > 200_000  # Django, DRF, LiteLLM and its model tables
    assert int(tracked) < int(frozen) / 20  # what a full pass still walks
    assert int(gen0) > 700  # fewer young passes than Python's default
