"""/api/ through the NinjaAPI: its operations, /api/schema/ and /api/docs/.

Included first in teamchat/urls.py, so these patterns answer; the views'
own patterns (chat/urls.py and friends) stay for their names and are what
tests/test_openapi.py compares the schema against.
"""

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, path

from .api import ROUTES, Route, api


def _dispatch(operation_view: Callable[..., Any], route: Route) -> Callable[..., HttpResponse]:
    documented = frozenset(route.methods)

    def view(request: HttpRequest, **kwargs: Any) -> HttpResponse:
        if request.method in documented:
            return operation_view(request, **kwargs)
        # HEAD, and methods the path does not take (the view's 405 with Allow).
        return route.view(request, **kwargs)

    # Not csrf_exempt, unlike ninja's own views: CsrfViewMiddleware checks a
    # session's unsafe requests exactly as it did before (403 `csrf_failed`),
    # and skips bearer-token requests (integrations.auth marks them).
    view.__name__ = route.view.__name__
    view.__doc__ = route.view.__doc__
    return view


def _django_route(ninja_path: str) -> str:
    return ninja_path.replace("{", "<").replace("}", ">").lstrip("/")


def _patterns() -> list[URLPattern | URLResolver]:
    routes = {_django_route(r.path): r for r in ROUTES}
    patterns: list[URLPattern | URLResolver] = []
    seen: set[str] = set()
    for pattern in api.urls[0]:
        if not isinstance(pattern, URLPattern) or pattern.name == "api-root":
            # The API's root is /api/, which names nothing: the JSON 404.
            continue
        route_text = str(pattern.pattern)
        if route_text in seen:
            continue  # Ninja lists a path once per method; one view serves them all.
        seen.add(route_text)
        route = routes.get(route_text)
        if route is None:
            patterns.append(pattern)  # schema/ and docs/
        else:
            patterns.append(path(route_text, _dispatch(pattern.callback, route), name=pattern.name))
    return patterns


app_name = "api"
urlpatterns = _patterns()
