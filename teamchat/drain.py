"""Whether this server process is shutting down (set on SIGTERM by teamchat.server).

While draining, handshakes are refused and `/readyz` answers 503, so a load
balancer stops sending new clients here while the open sockets are closed
with 1012 and reconnect elsewhere.
"""

_draining = False


def draining() -> bool:
    return _draining


def start() -> None:
    global _draining
    _draining = True
