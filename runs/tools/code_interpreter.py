"""``code_interpreter``: accepted on assistants, threads and runs (with its ``file_ids``), but nothing executes it
yet: it is not offered to the model."""

from __future__ import annotations

from files.selectors import file_get
from runs.tools.base import Tool


class CodeInterpreterTool(Tool):
    type = "code_interpreter"
    attachable = True
    default_resources = {"file_ids": []}

    def resolve_resources(self, *, project, resources: dict, param: str) -> dict:
        file_ids = list(resources.get("file_ids") or [])
        for file_id in file_ids:
            file_get(project=project, file_id=file_id)
        return {"file_ids": file_ids}


TOOL = CodeInterpreterTool()
