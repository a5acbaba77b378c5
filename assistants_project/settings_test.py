"""Test settings: the embedded stack under var/test, apart from a developer's var/."""

import os
from pathlib import Path

os.environ.setdefault("ASSISTANTS_DATA_DIR", str(Path(__file__).resolve().parent.parent / "var" / "test"))

from assistants_project.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
