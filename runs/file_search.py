"""The file_search tool inside runs: search the run's vector stores, show the model numbered sources, and
turn the markers it cites (【k:i†filename】) into ``file_citation`` annotations on real spans."""

from __future__ import annotations

import json
import logging
import re
import time

from runs.models import Run

logger = logging.getLogger(__name__)

DEFAULT_MAX_RESULTS = 20
MARKER = re.compile(r"【(\d+):(\d+)†([^】]*)】")


def store_ids_for(run: Run) -> list[str]:
    """The assistant's and the thread's vector stores (OpenAI searches both)."""
    ids: list[str] = []
    for resources in ((run.assistant.tool_resources if run.assistant else None), run.thread.tool_resources):
        for store_id in ((resources or {}).get("file_search") or {}).get("vector_store_ids") or []:
            if store_id not in ids:
                ids.append(store_id)
    return ids


def tool_options(run: Run) -> dict:
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


def execute(run: Run, arguments: str) -> dict:
    """Run the search; returns the tool call's ``file_search`` body (ranking options and results with content)."""
    options = tool_options(run)
    ranking = options.get("ranking_options") or {"ranker": "auto", "score_threshold": 0.0}
    ranking = {"ranker": ranking.get("ranker", "auto"), "score_threshold": ranking.get("score_threshold", 0.0)}
    queries = queries_from_arguments(arguments)
    store_ids = store_ids_for(run)
    results = []
    if queries and store_ids:
        from retrieval.search import search

        _wait_for_ingestion(run, store_ids)
        hits = search(project=run.project, vector_store_ids=store_ids, query=queries,
                      max_num_results=options.get("max_num_results") or DEFAULT_MAX_RESULTS,
                      ranking_options={"score_threshold": ranking["score_threshold"]})
        results = [{"file_id": hit.file_id, "file_name": hit.filename, "score": round(float(hit.score), 6),
                    "content": [{"type": "text", "text": hit.text}]} for hit in hits]
    return {"ranking_options": ranking, "results": results}


def _wait_for_ingestion(run: Run, store_ids: list[str]) -> None:
    """Files attached moments ago may still be ingesting: give them a bounded wait before searching."""
    from django.conf import settings

    from retrieval.models import VectorStoreFile

    deadline = time.monotonic() + settings.FILE_SEARCH_INGESTION_WAIT_SECONDS
    pending = VectorStoreFile.objects.filter(project=run.project, vector_store__public_id__in=store_ids,
                                             status=VectorStoreFile.Status.IN_PROGRESS)
    while pending.exists() and time.monotonic() < deadline:
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
