"""Response headers that Django 5.2 does not set itself: the Content-Security-Policy.

The policy allows only this site's own scripts, styles, fonts, images (plus
`data:` images, which the two-factor QR code uses) and connections, and the
WebSocket to the hosts in ALLOWED_HOSTS. Nothing inline runs, so markup that
slips into a page cannot execute script. The templates, allauth's pages and
the Django admin (5.2) need no inline script or style.
"""

from collections.abc import Awaitable, Callable, Iterable
from typing import cast

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

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.async_mode:
            return self._acall(request)
        # Sync mode: the rest of the chain is synchronous.
        return self._add_headers(cast(HttpResponseBase, self.get_response(request)))

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        response = cast(Awaitable[HttpResponseBase], self.get_response(request))
        return self._add_headers(await response)

    def _add_headers(self, response: HttpResponseBase) -> HttpResponseBase:
        response.headers.setdefault("Content-Security-Policy", self.policy)
        # Static files never pass XFrameOptionsMiddleware; frame-ancestors
        # covers current browsers, the header older ones.
        if not getattr(response, "xframe_options_exempt", False):
            response.headers.setdefault("X-Frame-Options", settings.X_FRAME_OPTIONS)
        return response


class SameOriginValidator:
    """Refuses a socket handshake whose Origin is not the site it came to.

    As Django's CSRF check does for forms: the Origin must be this server's
    own scheme, host and port (the Host header, which must be in
    ALLOWED_HOSTS, and https behind a proxy that says so through
    SECURE_PROXY_SSL_HEADER), or one of CSRF_TRUSTED_ORIGINS. Comparing the
    host alone let `http://127.0.0.1:9999` or `https://127.0.0.1` in for a
    server at `http://127.0.0.1:8000`. A refused handshake gets HTTP 403.
    """

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_is_allowed(scope):
            from channels.security.websocket import WebsocketDenier

            from teamchat import metrics

            metrics.HANDSHAKES.labels("refused_origin").inc()

            return await WebsocketDenier()(scope, receive, send)
        return await self.inner(scope, receive, send)


def origin_is_allowed(scope: dict) -> bool:
    from django.http.request import split_domain_port, validate_host

    headers = {name: value.decode("latin1") for name, value in scope.get("headers", ())}
    origin, host = headers.get(b"origin"), headers.get(b"host")
    if not origin or not host:
        return False
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    secure = scope.get("scheme") == "wss"
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name, value = proxy_header
        wanted = name.removeprefix("HTTP_").replace("_", "-").lower().encode("latin1")
        secure = headers.get(wanted) == value
    return origin == f"{'https' if secure else 'http'}://{host}"
