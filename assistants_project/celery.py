import os

from celery import Celery
from celery.signals import worker_init

from assistants_project import logs

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistants_project.settings")

app = Celery("assistants_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
logs.connect_celery()  # a task carries the log context (request_id, …) of whoever sent it


@worker_init.connect
def _preload(**kwargs):
    """Load what the first run or file would otherwise wait for (LiteLLM's import, the tokenizer's tables: a few
    seconds together) before the worker takes tasks; then settle the heap (heap.py)."""
    from assistants_project import heap
    from retrieval.tokens import get_encoding

    get_encoding()
    heap.settle()
