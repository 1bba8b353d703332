"""Start daphne with TeamChat's server options: `python -m teamchat.server [--port N]`.

The one place the server's own limits are set, used by the README's run
command and by the tests that start real server processes.
"""

import argparse

from daphne.cli import CommandLineInterface

# PROTOCOL.md: frames up to 128 KiB are always read; daphne refuses larger
# ones itself (closing with 1009) before they reach the application.
MAX_FRAME_BYTES = 128 * 1024
# daphne drops a handshake the application has not accepted within 5 s by
# default. After a restart every client reconnects at once; those handshakes
# should queue for a while rather than fail and come back again.
CONNECT_TIMEOUT_SECONDS = 30
# Connections the kernel completes while the server is busy, before it
# accepts them. Twisted's default is 50: when a whole organization connects
# at once (Monday morning, every tab after a deploy), the rest of the SYNs
# are dropped and those clients retry after 1, 3, 7, 15, 31 s. The kernel caps
# it at net.core.somaxconn (4096 on current Linux).
LISTEN_BACKLOG = 4096


def listen_endpoint(host: str, port: int) -> str:
    """The Twisted endpoint daphne listens on (as its --bind/--port would, plus the backlog)."""
    interface = host.strip("[]").replace(":", r"\:")
    return f"tcp:port={port}:interface={interface}:backlog={LISTEN_BACKLOG}"


def daphne_args(host: str, port: int, extra: list[str] | None = None) -> list[str]:
    return [
        "--endpoint", listen_endpoint(host, port),
        "--websocket-max-message-size", str(MAX_FRAME_BYTES),
        "--websocket-max-frame-size", str(MAX_FRAME_BYTES),
        "--websocket_connect_timeout", str(CONNECT_TIMEOUT_SECONDS),
        *(extra or []),
        "teamchat.asgi:application",
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    known, extra = parser.parse_known_args()
    CommandLineInterface().run(daphne_args(known.host, known.port, extra))


if __name__ == "__main__":
    main()
