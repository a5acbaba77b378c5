"""Settings for mypy's Django plugin, which imports the settings and sets Django up to read the models. External
services are named (never connected to), so type checking starts no embedded Postgres or Redis that nothing would
stop when it fails."""

import os

os.environ.update(
    DATABASE_URL="postgres://typecheck@127.0.0.1:1/typecheck",
    REDIS_URL="redis://127.0.0.1:1/0",
    DJANGO_SECRET_KEY="typecheck-only",
    CREDENTIALS_ENCRYPTION_KEY="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
)

from assistants_project.settings import *  # noqa: F403
