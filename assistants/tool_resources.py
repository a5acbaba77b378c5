"""``tool_resources`` on assistants and threads: check every id belongs to the project, run helpers."""

from __future__ import annotations

from assistants.models import Project
from assistants_project.api.errors import InvalidRequest, NotFoundError


def tool_resources_resolve(*, project: Project, tool_resources: dict | None, param: str = "tool_resources") -> dict:
    """Validated input → stored shape. Unknown (or other projects') ids answer 404 like any unknown id."""
    if not tool_resources:
        return {}
    resolved: dict = {}
    code = tool_resources.get("code_interpreter")
    if code is not None:
        file_ids = list(code.get("file_ids") or [])
        _check_files(project=project, file_ids=file_ids)
        resolved["code_interpreter"] = {"file_ids": file_ids}
    search = tool_resources.get("file_search")
    if search is not None:
        store_ids = list(search.get("vector_store_ids") or [])
        if search.get("vector_stores"):
            store_ids = [_vector_store_from_helper(project=project, helper=search["vector_stores"][0],
                                                   param=f"{param}.file_search.vector_stores[0]")]
        _check_vector_stores(project=project, store_ids=store_ids)
        resolved["file_search"] = {"vector_store_ids": store_ids}
    return resolved


def _check_files(*, project: Project, file_ids: list[str]) -> None:
    from files.selectors import file_get

    for file_id in file_ids:
        file_get(project=project, file_id=file_id)


def _check_vector_stores(*, project: Project, store_ids: list[str]) -> None:
    try:
        from retrieval.selectors import vector_store_get
    except ImportError:  # the retrieval app predates vector stores
        if store_ids:
            raise NotFoundError(f"No vector store found with id '{store_ids[0]}'.") from None
        return
    for store_id in store_ids:
        vector_store_get(project=project, vector_store_id=store_id)


def _vector_store_from_helper(*, project: Project, helper: dict, param: str) -> str:
    try:
        from retrieval.services import vector_store_create
    except ImportError:
        raise InvalidRequest("The inline 'vector_stores' helper is not yet supported.", param=param) from None
    store = vector_store_create(project=project, file_ids=helper.get("file_ids") or [],
                                chunking_strategy=helper.get("chunking_strategy"),
                                metadata=helper.get("metadata") or {})
    return store.public_id


def vector_store_forget(*, project_id: int, vector_store_id: str) -> int:
    """Remove a deleted vector store's id from every assistant's and thread's ``file_search`` resources."""
    from assistants.models import Assistant, Thread

    changed = 0
    for model in (Assistant, Thread):
        rows = model.objects.select_for_update().filter(
            project_id=project_id, tool_resources__file_search__vector_store_ids__contains=[vector_store_id])
        for row in rows.order_by("pk"):
            search = row.tool_resources["file_search"]
            search["vector_store_ids"] = [i for i in search["vector_store_ids"] if i != vector_store_id]
            row.save(update_fields=["tool_resources"])
            changed += 1
    return changed


def thread_attachments_index(*, thread, attachments: list[dict]) -> None:
    """file_search attachments go into the thread's vector store, created on first use (as on OpenAI)."""
    file_ids = list(dict.fromkeys(a["file_id"] for a in attachments
                                  if any(t.get("type") == "file_search" for t in a.get("tools") or [])))
    if not file_ids:
        return
    from retrieval.models import VectorStoreFile
    from retrieval.selectors import vector_store_get
    from retrieval.services import vector_store_create, vector_store_file_create

    store = None
    for store_id in ((thread.tool_resources or {}).get("file_search") or {}).get("vector_store_ids") or []:
        try:
            store = vector_store_get(project=thread.project, vector_store_id=store_id)
        except NotFoundError:
            store = None  # deleted since: start a new one
    if store is None:
        store = vector_store_create(project=thread.project, name=f"{thread.public_id} attachments")
        thread.tool_resources = {**(thread.tool_resources or {}),
                                 "file_search": {"vector_store_ids": [store.public_id]}}
        thread.save(update_fields=["tool_resources"])
    attached = set(VectorStoreFile.objects.filter(vector_store=store).values_list("file__public_id", flat=True))
    for file_id in file_ids:
        if file_id not in attached:
            vector_store_file_create(vector_store=store, file_id=file_id)
