"""Response headers that Django 5.2 does not set itself: the Content-Security-Policy.

The policy allows only this site's own scripts, styles, fonts, images (plus
`data:` images, which the two-factor QR code uses) and connections, and the
WebSocket to the hosts in ALLOWED_HOSTS. Nothing inline runs, so markup that
slips into a page cannot execute script. The templates, allauth's pages and
the Django admin (5.2) need no inline script or style.
"""

from collections.abc import Awaitable, Callable, Iterable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase


def websocket_sources(allowed_hosts: Iterable[str]) -> list[str]:
    """ws:// and wss:// sources for each allowed host, on any port.

    'self' already covers same-origin sockets in current browsers; listing
    them keeps older ones working. A leading-dot host (".example.com") also
    allows its subdomains, as it does in ALLOWED_HOSTS; "*" allows any host.
    """
    sources: list[str] = []
    for host in allowed_hosts:
        if host == "*":
            return ["ws:", "wss:"]
        if host.startswith("["):
            # CSP has no syntax for IPv6 literals; 'self' still covers them.
            continue
        names = [host[1:], f"*{host}"] if host.startswith(".") else [host]
        for name in names:
            sources += [f"ws://{name}:*", f"wss://{name}:*"]
    return sources


def content_security_policy(allowed_hosts: Iterable[str]) -> str:
    """The Content-Security-Policy header value for this deployment."""
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'", *websocket_sources(allowed_hosts)],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


class SecurityHeadersMiddleware:
    """Add the Content-Security-Policy, and X-Frame-Options where Django's middleware did not.

    First in MIDDLEWARE, so it also covers static files (whitenoise answers
    them before the inner middleware runs), redirects and error pages. A
    response that set its own policy keeps it.
    """

    sync_capable = True
    async_capable = True

    def __init__(
        self,
        get_response: Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]],
    ) -> None:
        self.get_response = get_response
        self.policy = content_security_policy(settings.ALLOWED_HOSTS)
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if self.async_mode:
            return self._acall(request)
        return self._add_headers(self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        return self._add_headers(await self.get_response(request))

    def _add_headers(self, response: HttpResponseBase) -> HttpResponseBase:
        response.headers.setdefault("Content-Security-Policy", self.policy)
        # Static files never pass XFrameOptionsMiddleware; frame-ancestors
        # covers current browsers, the header older ones.
        if not getattr(response, "xframe_options_exempt", False):
            response.headers.setdefault("X-Frame-Options", settings.X_FRAME_OPTIONS)
        return response
