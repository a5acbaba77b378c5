"""The admin's middlewares, for the admin only (the API's request plumbing is ``request_context.py``)."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from assistants_project.api.request_context import API_PATHS


class AdminOnlyMiddleware:
    """Django's session, auth, CSRF, messages and security middlewares, for everything but the API.

    Under ASGI each of those runs its hooks in a worker thread (two hops per middleware, ~6 ms a request);
    the API needs none of them (keys, not sessions), so its requests go straight to the view.
    """

    sync_capable = True
    async_capable = True
    wrapped = [
        "django.middleware.security.SecurityMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ]

    def __init__(self, get_response):
        from django.utils.module_loading import import_string

        self.get_response = get_response
        handler = get_response
        for path in reversed(self.wrapped):
            handler = import_string(path)(handler)
        self.admin_chain = handler
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if request.path.startswith(API_PATHS):
            return self.get_response(request)
        return self.admin_chain(request)
