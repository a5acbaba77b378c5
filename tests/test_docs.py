"""The README's configuration table and .env.example name every environment variable the settings read."""

import re

from tests.live import ROOT

SETTINGS = (ROOT / "assistants_project" / "settings.py").read_text()
NAMES = sorted(set(re.findall(r'env_(?:str|bool|int|seconds)\(\s*"([A-Z0-9_]+)"', SETTINGS))
               | set(re.findall(r'os\.environ(?:\.get)?[\[(]\s*"([A-Z0-9_]+)"', SETTINGS)))


def test_the_settings_read_variables_at_all():
    assert {"DATABASE_URL", "EMBEDDING_DIMENSIONS", "VECTOR_INDEX_DEFER_SECONDS"} <= set(NAMES)


def test_every_variable_is_in_the_readme_configuration_table():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    assert [name for name in NAMES if f"`{name}`" not in table] == []


def test_every_variable_is_in_env_example():
    example = (ROOT / ".env.example").read_text()
    assert [name for name in NAMES if not re.search(rf"^# {name}=", example, re.M)] == []
