# One image for every role: `docker run IMAGE` serves everything (embedded Postgres and Redis under /data, like
# `make run`); compose runs it as migrate, web, worker and beat (deploy/entrypoint.sh, docker-compose.yml).
FROM python:3.11.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    ASSISTANTS_DATA_DIR=/data \
    PORT=8000

# An unprivileged user; the code stays root-owned (read-only to it), only /data is its own.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app \
    && mkdir /data && chown app:app /data

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
# .dockerignore keeps var/ (data, the generated secret key), .venv, node_modules and .git out.
COPY . .

USER app
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 CMD ["deploy/entrypoint.sh", "health", "web"]
ENTRYPOINT ["deploy/entrypoint.sh"]
CMD ["all"]
