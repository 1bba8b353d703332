"""Operations endpoints: the Prometheus metrics of this server process."""

import ipaddress

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

# Headers a reverse proxy adds: a request carrying one came from elsewhere,
# even though the proxy itself connects from loopback.
_PROXIED = ("HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP", "HTTP_FORWARDED")


def _may_read_metrics(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    if token and constant_time_compare(given, f"Bearer {token}"):
        return True
    try:
        loopback = ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False
    return loopback and not any(header in request.META for header in _PROXIED)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format, to loopback clients or with `Bearer $METRICS_TOKEN`; else 404."""
    if not _may_read_metrics(request):
        raise Http404
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
