import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistants_project.settings")
django_application = get_asgi_application()

from gateway.asgi import with_gateway  # noqa: E402  (after Django is set up)

# /v1/chat/completions, /v1/embeddings, /v1/models, /v1/moderations skip Django's per-request thread (gateway/asgi.py)
application = with_gateway(django_application)
