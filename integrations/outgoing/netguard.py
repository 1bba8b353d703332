"""The SSRF guard of outgoing webhooks: only public addresses, checked after DNS, then pinned.

A webhook URL is chosen by a user, and the worker that POSTs to it runs
inside the network: without a guard, a webhook aimed at
`http://169.254.169.254/` or `http://localhost:6379/` would make TeamChat
reach what only it can reach. So:

- only `http` and `https`;
- the host is resolved, and the request is refused if ANY address it
  resolves to is loopback, private, link-local, multicast, reserved,
  unspecified or otherwise not global (an IPv4-mapped or 6to4 IPv6 address
  is judged by the IPv4 address it carries too), unless
  settings.WEBHOOK_ALLOW_PRIVATE;
- the connection goes to an address that was checked (`PinnedTransport`
  rewrites the request to it, keeping the name in the Host header and TLS
  SNI, and certificates are verified against the name), so a DNS answer that
  changes between the check and the connect (DNS rebinding) cannot slip in;
- redirects are not followed (the client sets follow_redirects=False).
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}


class Refused(Exception):
    """A webhook URL the guard will not let the worker reach; the message says why.

    `retry`: the reason may pass (a name that did not resolve just now).
    """

    def __init__(self, message: str, *, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


def address_refusal(address: IPAddress) -> str | None:
    """Why this address may not be reached ("loopback", ...), or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv6 address that carries an IPv4 one reaches that one: judge it.
        for kind, carried in (("IPv4-mapped", address.ipv4_mapped), ("6to4", address.sixtofour)):
            if carried is not None:
                inner = address_refusal(carried)
                if inner:
                    return f"{kind} {inner}"
    for reason, hit in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("not a public", not address.is_global),
    ):
        if hit:
            return reason
    return None


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (an address literal: itself), in the resolver's order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"The host {host} could not be resolved ({exc}).", retry=True) from exc
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        # Drop an IPv6 scope ("fe80::1%eth0"): the address is judged without it.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    if not found:
        raise Refused(f"The host {host} has no address.", retry=True)
    return found


def addresses_checked(host: str, port: int) -> list[IPAddress]:
    """The addresses of `host` the worker may connect to; Refused if any of them is not public."""
    addresses = resolve(host, port)
    if settings.WEBHOOK_ALLOW_PRIVATE:
        return addresses
    for address in addresses:
        reason = address_refusal(address)
        if reason is not None:
            raise Refused(
                f"{host} resolves to {address}, a {reason} address: webhooks may only "
                "reach public addresses (an admin can allow private ones with "
                "WEBHOOK_ALLOW_PRIVATE)."
            )
    return addresses


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int


def target_of(url: str) -> Target:
    """The scheme, host and port of a webhook URL; Refused for anything but http(s) with a host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"The URL is not valid ({exc}).") from exc
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise Refused("A webhook URL must start with http:// or https://.")
    if not parts.hostname:
        raise Refused("A webhook URL must name a host.")
    return Target(scheme, parts.hostname, port or DEFAULT_PORTS[scheme])


def url_check(url: str) -> None:
    """Refused, with a clear reason, for a URL a webhook may not have (creation time)."""
    target = target_of(url)
    addresses_checked(target.host, target.port)


class PinnedTransport(httpx.BaseTransport):
    """An httpx transport that connects only to checked addresses, resolving the name once.

    The request goes to the checked IP itself; the Host header keeps the
    name (httpx set it when the request was built) and TLS gets the name as
    SNI, so virtual hosting and certificate checks work as for the name.
    When the first address refuses the connection the next one is tried.
    """

    def __init__(self, **options: object) -> None:
        self._inner = httpx.HTTPTransport(**options)  # type: ignore[arg-type]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        scheme = request.url.scheme
        if scheme not in SCHEMES:
            raise Refused("A webhook URL must start with http:// or https://.")
        host = request.url.host
        port = request.url.port or DEFAULT_PORTS[scheme]
        addresses = addresses_checked(host, port)
        if scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": host}
        for i, address in enumerate(addresses):
            request.url = request.url.copy_with(host=str(address))
            try:
                return self._inner.handle_request(request)
            except httpx.ConnectError:
                if i == len(addresses) - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self._inner.close()
