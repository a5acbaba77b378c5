#!/bin/sh
# The one entrypoint of the image and of every compose service: `entrypoint.sh ROLE`.
#   migrate  once per deployment, before the others: database check, migrations, ASSISTANTS_API_KEY
#   web      the API (uvicorn, WEB_CONCURRENCY processes) on 0.0.0.0:PORT; never migrates
#   worker   a Celery worker (WORKER_POOL, WORKER_CONCURRENCY)
#   beat     Celery beat, exactly one per deployment
#   all      everything in one process tree, migrations included (the default; what `make run` does)
#   health   web|worker: exit 0 when this container's process answers (Docker/compose healthchecks)
# Anything else is run as a command (e.g. `entrypoint.sh python manage.py createapikey`).
set -eu
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"

role="${1:-all}"
[ $# -gt 0 ] && shift
case "$role" in
  migrate) exec "$PYTHON" manage.py prepare "$@" ;;
  web)     exec "$PYTHON" manage.py serve --exec web --host "${HOST:-0.0.0.0}" "$@" ;;
  worker)  exec "$PYTHON" manage.py serve --exec worker "$@" ;;
  beat)    exec "$PYTHON" manage.py serve --exec beat "$@" ;;
  all)     exec "$PYTHON" manage.py serve --host "${HOST:-0.0.0.0}" "$@" ;;
  health)
    case "${1:-web}" in
      # /readyz with a Host the settings allow (the first of DJANGO_ALLOWED_HOSTS), so it passes the host check.
      web)
        host="${DJANGO_ALLOWED_HOSTS:-localhost}"; host="${host%%,*}"
        case "$host" in ""|"*"|.*) host=localhost ;; esac
        exec "$PYTHON" -c 'import sys, urllib.request as u
u.urlopen(u.Request(sys.argv[1], headers={"Host": sys.argv[2]}), timeout=4)' \
          "http://127.0.0.1:${PORT:-8000}/readyz" "$host" ;;
      worker) exec "$PYTHON" -m celery -A assistants_project inspect ping --timeout 5 -d "${WORKER_NAME:-celery@${HOSTNAME:-$(hostname)}}" ;;
      *) echo "entrypoint.sh health: web or worker, not '$1'" >&2; exit 2 ;;
    esac ;;
  -h|--help|help) sed -n '2,9s/^# \{0,1\}//p' "$0" ;;
  *) exec "$role" "$@" ;;
esac
