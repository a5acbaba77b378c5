"""Thin viewsets: validate, call a service or selector, shape the answer."""

from __future__ import annotations

from rest_framework.decorators import action
from rest_framework.response import Response

from assistants_project.api.views import OpenAIViewSet
from retrieval import selectors, services
from retrieval.search import search
from retrieval.serializers import (
    FileBatchIn,
    FileListParams,
    SearchIn,
    VectorStoreFileIn,
    VectorStoreFileModifyIn,
    VectorStoreIn,
    VectorStoreModifyIn,
    file_batch_out,
    vector_store_file_out,
    vector_store_out,
)

POLL_AFTER_MS = "500"  # the SDK poll helpers sleep this long between GETs (openai-poll-after-ms)


def _store_response(store) -> Response:
    return Response(vector_store_out(store, selectors.vector_store_stats(store_ids=[store.pk])[store.pk]))


def _batch_response(batch, *, poll: bool = False) -> Response:
    response = Response(file_batch_out(batch, selectors.file_batch_stats(batch=batch)))
    if poll:
        response["openai-poll-after-ms"] = POLL_AFTER_MS
    return response


class VectorStoreViewSet(OpenAIViewSet):
    lookup_url_kwarg = "vector_store_id"

    def list(self, request):
        def shape_page(page: list) -> list[dict]:
            stats = selectors.vector_store_stats(store_ids=[s.pk for s in page])
            return [vector_store_out(s, stats[s.pk]) for s in page]

        return self.list_response(selectors.vector_store_list(project=self.project), shape_page=shape_page)

    def create(self, request):
        return _store_response(services.vector_store_create(project=self.project, **self.body(VectorStoreIn)))

    def retrieve(self, request, vector_store_id: str):
        return _store_response(selectors.vector_store_get(project=self.project, vector_store_id=vector_store_id))

    def modify(self, request, vector_store_id: str):
        store = selectors.vector_store_get(project=self.project, vector_store_id=vector_store_id)
        return _store_response(services.vector_store_modify(vector_store=store, **self.body(VectorStoreModifyIn)))

    def destroy(self, request, vector_store_id: str):
        store = selectors.vector_store_get(project=self.project, vector_store_id=vector_store_id)
        services.vector_store_delete(vector_store=store)
        return Response({"id": vector_store_id, "object": "vector_store.deleted", "deleted": True})

    @action(detail=True, methods=["post"], url_path="search")
    def search(self, request, vector_store_id: str):
        data = self.body(SearchIn)
        results = search(project=self.project, vector_store_ids=[vector_store_id], query=data["query"],
                         max_num_results=data["max_num_results"], filters=data.get("filters"),
                         ranking_options=data.get("ranking_options"))
        services.vector_stores_touch_by_id(project=self.project, vector_store_ids=[vector_store_id])
        queries = [data["query"]] if isinstance(data["query"], str) else data["query"]
        return Response({"object": "vector_store.search_results.page", "search_query": queries,
                         "data": [r.as_api() for r in results], "has_more": False, "next_page": None})


class _InStore(OpenAIViewSet):
    @property
    def store(self):
        if not hasattr(self, "_store"):
            self._store = selectors.vector_store_get(project=self.project,
                                                     vector_store_id=self.kwargs["vector_store_id"])
        return self._store

    def files_page(self, queryset) -> Response:
        def shape(vsf) -> dict:
            vsf.vector_store = self.store
            return vector_store_file_out(vsf)

        return self.list_response(
            queryset, shape, params_class=FileListParams, cursor_field="file__public_id",
            narrow=lambda qs, params: qs.filter(status=params["filter"]) if "filter" in params else qs)


class VectorStoreFileViewSet(_InStore):
    lookup_url_kwarg = "file_id"

    def _get(self, file_id: str):
        vsf = selectors.vector_store_file_get(vector_store=self.store, file_id=file_id)
        vsf.vector_store = self.store
        return vsf

    def list(self, request, vector_store_id: str):
        return self.files_page(selectors.vector_store_file_list(vector_store=self.store))

    def create(self, request, vector_store_id: str):
        return Response(vector_store_file_out(
            services.vector_store_file_create(vector_store=self.store, **self.body(VectorStoreFileIn))))

    def retrieve(self, request, vector_store_id: str, file_id: str):
        response = Response(vector_store_file_out(self._get(file_id)))
        response["openai-poll-after-ms"] = POLL_AFTER_MS
        return response

    def modify(self, request, vector_store_id: str, file_id: str):
        vsf = services.vector_store_file_update(vector_store_file=self._get(file_id),
                                                **self.body(VectorStoreFileModifyIn))
        return Response(vector_store_file_out(vsf))

    def destroy(self, request, vector_store_id: str, file_id: str):
        services.vector_store_file_delete(vector_store_file=self._get(file_id))
        return Response({"id": file_id, "object": "vector_store.file.deleted", "deleted": True})

    @action(detail=True, methods=["get"], url_path="content")
    def content(self, request, vector_store_id: str, file_id: str):
        texts = selectors.vector_store_file_chunks(vector_store_file=self._get(file_id))
        return Response({"object": "vector_store.file_content.page",
                         "data": [{"type": "text", "text": t} for t in texts], "has_more": False, "next_page": None})


class FileBatchViewSet(_InStore):
    lookup_url_kwarg = "batch_id"

    def _get(self, batch_id: str):
        batch = selectors.file_batch_get(vector_store=self.store, batch_id=batch_id)
        batch.vector_store = self.store
        return batch

    def create(self, request, vector_store_id: str):
        batch = services.file_batch_create(vector_store=self.store, **self.body(FileBatchIn))
        batch.vector_store = self.store
        return _batch_response(batch)

    def retrieve(self, request, vector_store_id: str, batch_id: str):
        return _batch_response(self._get(batch_id), poll=True)

    @action(detail=True, methods=["post"], url_path="cancel")
    def cancel(self, request, vector_store_id: str, batch_id: str):
        return _batch_response(services.file_batch_cancel(batch=self._get(batch_id)))

    @action(detail=True, methods=["get"], url_path="files")
    def files(self, request, vector_store_id: str, batch_id: str):
        batch = self._get(batch_id)
        return self.files_page(selectors.vector_store_file_list(vector_store=self.store, batch=batch))
