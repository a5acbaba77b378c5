"""``file_search``: search the run's vector stores, show the model numbered sources, and turn the markers it cites
(【k:i†filename】) into ``file_citation`` annotations on real spans. Files attached to a message for it go into
the thread's vector store, created on first use (as on OpenAI)."""

from __future__ import annotations

import json
import logging
import re
import time

from django.conf import settings
from rest_framework import serializers

from assistants_project.api.errors import NotFoundError
from assistants_project.api.validation import StrictSerializer
from retrieval import selectors as retrieval_selectors
from retrieval import services as retrieval_services
from retrieval.search import search
from runs.tools.base import ModelCall, Tool, nested, no_extra

logger = logging.getLogger(__name__)

FUNCTION_NAME = "file_search"
RESULT_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"
DEFAULT_MAX_RESULTS = 20
DEFAULT_RANKING = {"ranker": "default_2024_08_21", "score_threshold": 0.0}  # what OpenAI echoes when none was given
MARKER = re.compile(r"【(\d+):(\d+)†([^】]*)】")
OFFERED = {
    "type": "function",
    "function": {
        "name": FUNCTION_NAME,
        "description": "Search the files the user has provided for passages relevant to a query. Cite what "
                       "you use with its source marker, exactly as shown (for example 【0†notes.md】).",
        "parameters": {
            "type": "object",
            "properties": {"queries": {"type": "array", "items": {"type": "string"},
                                       "description": "One or more search queries."}},
            "required": ["queries"],
        },
    },
}


class RankingOptionsIn(StrictSerializer):
    ranker = serializers.ChoiceField(choices=["auto", "default_2024_08_21"], required=False)
    score_threshold = serializers.FloatField(min_value=0, max_value=1)


class FileSearchOptionsIn(StrictSerializer):
    max_num_results = serializers.IntegerField(min_value=1, max_value=50, required=False)
    ranking_options = RankingOptionsIn(required=False)


class FileSearchTool(Tool):
    type = "file_search"
    model_function = FUNCTION_NAME
    includes = (RESULT_CONTENT,)
    attachable = True

    # --- requests ------------------------------------------------------------------------------------
    def validate(self, data: dict) -> dict:
        no_extra(data, {"type", "file_search"})
        options = nested(FileSearchOptionsIn, data.get("file_search") or {}, "file_search")
        return {"type": "file_search", "file_search": options} if options else {"type": "file_search"}

    def out(self, tool: dict) -> dict:
        options = tool.get("file_search") or {}
        return {"type": "file_search", "file_search": {
            "max_num_results": options.get("max_num_results") or DEFAULT_MAX_RESULTS,
            "ranking_options": {**DEFAULT_RANKING, **(options.get("ranking_options") or {})}}}

    def resolve_resources(self, *, project, resources: dict, param: str) -> dict:
        store_ids = list(resources.get("vector_store_ids") or [])
        if resources.get("vector_stores"):
            helper = resources["vector_stores"][0]
            store_ids = [retrieval_services.vector_store_create(
                project=project, file_ids=helper.get("file_ids") or [],
                chunking_strategy=helper.get("chunking_strategy"), metadata=helper.get("metadata") or {}).public_id]
        for store_id in store_ids:
            retrieval_selectors.vector_store_get(project=project, vector_store_id=store_id)
        return {"vector_store_ids": store_ids}

    def attach(self, *, thread, file_ids: list[str]) -> None:
        store = None
        for store_id in ((thread.tool_resources or {}).get("file_search") or {}).get("vector_store_ids") or []:
            try:
                store = retrieval_selectors.vector_store_get(project=thread.project, vector_store_id=store_id)
            except NotFoundError:
                store = None  # deleted since: start a new one
        if store is None:
            store = retrieval_services.vector_store_create(project=thread.project,
                                                           name=f"{thread.public_id} attachments")
            thread.tool_resources = {**(thread.tool_resources or {}),
                                     "file_search": {"vector_store_ids": [store.public_id]}}
            thread.save(update_fields=["tool_resources"])
        attached = retrieval_selectors.vector_store_file_ids(vector_store=store)
        for file_id in file_ids:
            if file_id not in attached:
                retrieval_services.vector_store_file_create(vector_store=store, file_id=file_id)

    # --- the model -----------------------------------------------------------------------------------
    def offered(self, tool: dict) -> dict:
        return OFFERED

    def choice_for_model(self, choice: dict) -> dict:
        return {"type": "function", "function": {"name": FUNCTION_NAME}}

    def replay(self, call: dict, ordinal: int) -> tuple[dict, str]:
        return ({"id": call["id"], "type": "function", "function": {"name": FUNCTION_NAME, "arguments": "{}"}},
                output_for_model(ordinal, call["file_search"]))

    def annotations(self, run, text: str, calls: list[dict]) -> list[dict]:
        return annotations_for(text, calls)

    # --- execution -----------------------------------------------------------------------------------
    def execute(self, run, call: ModelCall) -> tuple[dict, None]:
        return {"id": call.id, "type": "file_search", "file_search": execute(run, call.arguments)}, None

    # --- how calls are shown ------------------------------------------------------------------------
    def call_delta(self, delta) -> dict | None:
        if delta.started:
            return {"index": delta.index, "id": delta.call_id, "type": "file_search", "file_search": {}}
        return None  # the queries the model writes are not shown, as on OpenAI

    def step_call(self, call: dict, include) -> dict:
        if RESULT_CONTENT in include:
            return call
        found = call.get("file_search") or {}
        results = [{k: v for k, v in result.items() if k != "content"} for result in found.get("results", [])]
        return {**call, "file_search": {**found, "results": results}}


TOOL = FileSearchTool()


def store_ids_for(run) -> list[str]:
    """The assistant's and the thread's vector stores (OpenAI searches both)."""
    ids: list[str] = []
    for resources in ((run.assistant.tool_resources if run.assistant else None), run.thread.tool_resources):
        for store_id in ((resources or {}).get("file_search") or {}).get("vector_store_ids") or []:
            if store_id not in ids:
                ids.append(store_id)
    return ids


def tool_options(run) -> dict:
    for tool in run.tools:
        if tool["type"] == "file_search":
            return tool.get("file_search") or {}
    return {}


def queries_from_arguments(arguments: str) -> list[str]:
    try:
        data = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return [arguments] if arguments else []
    queries = data.get("queries") if isinstance(data, dict) else None
    if isinstance(queries, str):
        return [queries]
    if isinstance(queries, list):
        return [q for q in queries if isinstance(q, str) and q.strip()]
    query = data.get("query") if isinstance(data, dict) else None
    return [query] if isinstance(query, str) else []


def execute(run, arguments: str) -> dict:
    """Run the search; returns the tool call's ``file_search`` body (ranking options and results with content)."""
    options = tool_options(run)
    ranking = options.get("ranking_options") or {"ranker": "auto", "score_threshold": 0.0}
    ranking = {"ranker": ranking.get("ranker", "auto"), "score_threshold": ranking.get("score_threshold", 0.0)}
    queries = queries_from_arguments(arguments)
    store_ids = store_ids_for(run)
    results = []
    if queries and store_ids:
        _wait_for_ingestion(run, store_ids)
        hits = search(project=run.project, vector_store_ids=store_ids, query=queries,
                      max_num_results=options.get("max_num_results") or DEFAULT_MAX_RESULTS,
                      ranking_options={"score_threshold": ranking["score_threshold"]})
        retrieval_services.vector_stores_touch_by_id(project=run.project, vector_store_ids=store_ids)
        results = [{"file_id": hit.file_id, "file_name": hit.filename, "score": round(float(hit.score), 6),
                    "content": [{"type": "text", "text": hit.text}]} for hit in hits]
    return {"ranking_options": ranking, "results": results}


def _wait_for_ingestion(run, store_ids: list[str]) -> None:
    """Files attached moments ago may still be ingesting: give them a bounded wait before searching."""
    deadline = time.monotonic() + settings.FILE_SEARCH_INGESTION_WAIT_SECONDS
    while (retrieval_selectors.vector_store_files_pending(project=run.project, vector_store_ids=store_ids)
           and time.monotonic() < deadline):
        time.sleep(0.25)


def output_for_model(ordinal: int, file_search: dict) -> str:
    results = file_search.get("results") or []
    if not results:
        return "No results found in the attached files."
    blocks = []
    for i, result in enumerate(results):
        text = "".join(part.get("text", "") for part in result.get("content") or [])
        blocks.append(f"Source 【{ordinal}:{i}†{result['file_name']}】\n{text}")
    return ("Cite a source by copying its marker, like 【0:0†name】, right after the sentence it supports.\n\n"
            + "\n\n".join(blocks))


def annotations_for(text: str, search_calls: list[dict]) -> list[dict]:
    """``file_citation`` annotations for every marker in ``text`` that names a real result."""
    annotations = []
    for match in MARKER.finditer(text):
        ordinal, index = int(match.group(1)), int(match.group(2))
        if ordinal >= len(search_calls):
            continue
        results = search_calls[ordinal]["file_search"].get("results") or []
        if index >= len(results):
            continue
        annotations.append({
            "type": "file_citation",
            "text": match.group(0),
            "start_index": match.start(),
            "end_index": match.end(),
            "file_citation": {"file_id": results[index]["file_id"]},
        })
    return annotations
