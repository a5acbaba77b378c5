"""OpenAI routes: no trailing slash, and POST on a detail URL modifies."""

from rest_framework.routers import Route, SimpleRouter


class OpenAIRouter(SimpleRouter):
    def __init__(self) -> None:
        super().__init__(trailing_slash=False)
        routes = list(self.routes)
        for i, route in enumerate(routes):
            if isinstance(route, Route) and "delete" in route.mapping:  # the detail route
                routes[i] = route._replace(mapping={**route.mapping, "post": "modify"})
        self.routes = routes  # an instance copy: never mutate SimpleRouter's class-level list
