import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistants_project.settings")
django_application = get_asgi_application()

from assistants_project import heap  # noqa: E402  (after Django is set up)
from assistants_project.request_threads import with_request_threads  # noqa: E402
from gateway.asgi import with_gateway  # noqa: E402

# /v1/chat/completions, /v1/embeddings, /v1/models, /v1/moderations skip Django's per-request thread (gateway/asgi.py);
# every other request's sync code runs on a thread kept from an earlier request (request_threads.py)
application = with_gateway(with_request_threads(django_application))

heap.settle()  # last: everything above stays for the process's life
