"""Celery interfaces: thin wrappers around ingestion and services (ids in, nothing out)."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError


def _ingest_failed(self, exc, task_id, args, kwargs, einfo) -> None:
    """After the last retry (or an unexpected error): the file ends ``failed``, never stuck ``in_progress``."""
    from retrieval.ingestion import vector_store_file_fail

    vector_store_file_fail(vsf_id=args[0], task_id=task_id)


@shared_task(bind=True, acks_late=True, autoretry_for=(OperationalError, InterfaceError), retry_backoff=2,
             retry_backoff_max=60, max_retries=5, on_failure=_ingest_failed)
def vector_store_file_ingest(self, vsf_id: int) -> str:
    from retrieval.ingestion import vector_store_file_ingest as ingest

    return ingest(vsf_id=vsf_id, task_id=self.request.id)


@shared_task
def vector_store_files_sweep() -> dict:
    from retrieval.ingestion import vector_store_files_sweep as sweep

    return sweep()


@shared_task
def vector_stores_expire() -> int:
    from retrieval.services import vector_stores_expire as expire

    return expire()


@shared_task(autoretry_for=(OperationalError, InterfaceError), retry_backoff=2, retry_backoff_max=60, max_retries=5)
def chunk_vectors_index() -> int:
    from retrieval.vector_index import run_indexer

    return run_indexer()


@shared_task
def chunk_vectors_index_sweep() -> bool:
    from retrieval.vector_index import schedule_if_pending

    return schedule_if_pending()
