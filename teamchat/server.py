"""Start daphne with TeamChat's server options: `python -m teamchat.server [--port N]`.

The one place the server's own limits are set, used by the README's run
command and by the tests that start real server processes.
"""

import argparse
import asyncio
import concurrent.futures
import io
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import daphne.server
from daphne.cli import CommandLineInterface
from daphne.http_protocol import HTTPFactory, WebRequest

logger = logging.getLogger("teamchat.server")
# What daphne's own checks log, under daphne's name (as log filters expect).
daphne_logger = logging.getLogger("daphne.server")

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


def body_limit() -> int:
    """The largest request body accepted: one upload at the limit plus its multipart framing."""
    from django.conf import settings

    return int(settings.UPLOADS_MAX_BYTES + settings.UPLOADS_MULTIPART_SLACK)


class BoundedRequest(WebRequest):
    """A request whose body may not pass `body_limit()`: refused with 413 as it arrives.

    daphne (through Twisted) reads a whole body, to a temporary file, before
    the application sees any of it. Here a declared Content-Length over the
    limit is answered as soon as the headers are in, before any of the body
    is read; a chunked body is answered the moment it passes the limit. The
    connection then closes, and nothing more of the body is kept.
    """

    refused = False
    received = 0

    def gotLength(self, length: int | None) -> None:  # noqa: N802  (Twisted's interface)
        if length is not None and length > body_limit():
            self._refuse()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802
        if self.refused:
            return
        self.received += len(data)
        if self.received > body_limit():
            self._refuse()
            return
        super().handleContentChunk(data)

    def _refuse(self) -> None:
        self.refused = True
        self.content = io.BytesIO()
        # No "100 Continue" for a body that will not be read.
        self.requestHeaders.removeHeader(b"expect")
        limit_mib = body_limit() / (1024 * 1024)
        body = json.dumps(
            {"error": "too_large", "detail": f"The request body is over {limit_mib:.3g} MiB."}
        ).encode()
        head = (
            "HTTP/1.1 413 Content Too Large\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            "X-Content-Type-Options: nosniff\r\n"
            "Connection: close\r\n\r\n"
        )
        self.channel.transport.write(head.encode() + body)
        self.channel.loseConnection()


class BoundedHTTPFactory(HTTPFactory):
    def buildProtocol(self, addr: Any) -> Any:  # noqa: N802
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = BoundedRequest
        return protocol


# PROTOCOL v2, Operations: a process told to stop exits within 30 seconds.
DRAIN_SECONDS = 20
EXIT_SECONDS = 28
# Past the reactor's stop, Python waits for the database threads to finish
# their work; one waiting on a lock nobody releases would keep the process
# for ever. It is ended here instead, still within the 30 seconds.
FORCED_EXIT_SECONDS = 29.5
# daphne looks at every connection once a second (has its application
# finished?) and every two seconds (timeouts, pings), each time in one go:
# 15-30 ms with 5,000 sockets open, during which nothing else runs. Here they
# look at this many connections per turn of the event loop.
CHECK_SLICE = 500


class DrainingServer(daphne.server.Server):
    """daphne, with SIGTERM as a graceful drain rather than an abrupt stop.

    On SIGTERM: stop listening (new connections go to other processes),
    refuse handshakes on connections already open, close every socket with
    1012, store every send already received (chat.realtime.drain), then
    stop. SIGINT (Ctrl-C) still stops at once.
    """

    def run(self) -> None:
        from twisted.internet import reactor

        # The listening ports (daphne keeps only the Deferreds that made them).
        self.ports: list[Any] = []
        reactor.callWhenRunning(self._on_sigterm_drain)
        super().run()

    def listen_success(self, port: Any) -> None:
        self.ports.append(port)
        super().listen_success(port)

    def _on_sigterm_drain(self) -> None:
        from twisted.internet import reactor

        # Installed once the reactor runs, so it replaces Twisted's own
        # handler, which would stop at once.
        signal.signal(
            signal.SIGTERM,
            lambda *_: reactor.callFromThread(self._drain),
        )

    def _drain(self) -> None:
        from twisted.internet import reactor

        from chat.realtime.drain import drain_sockets
        from teamchat import drain

        if drain.draining():
            return
        drain.start()
        # Whatever happens in the drain, the process is gone in time.
        reactor.callLater(EXIT_SECONDS, self._stop)  # type: ignore[arg-type]
        watchdog = threading.Timer(FORCED_EXIT_SECONDS, _exit_now)
        watchdog.daemon = True  # a process that ends in time ends with it
        watchdog.start()
        logger.info("SIGTERM: draining")
        for port in self.ports:
            port.stopListening()
        task = asyncio.ensure_future(drain_sockets(DRAIN_SECONDS))
        task.add_done_callback(lambda _: self._stop())

    def _stop(self) -> None:
        from twisted.internet import reactor

        if reactor.running:
            reactor.stop()  # type: ignore[misc]

    # daphne's periodic checks, in slices (CHECK_SLICE). Each walks the
    # connections open when it starts; one that is gone by its turn is skipped.
    # The next walk is scheduled once this one is over, as daphne does.

    def application_checker(self) -> None:
        self._walk(list(self.connections), self._check_application, 1, self.application_checker)

    def timeout_checker(self) -> None:
        self._walk(list(self.connections), self._check_timeouts, 2, self.timeout_checker)

    def _walk(
        self,
        protocols: list[Any],
        check: Callable[[Any], None],
        every: float,
        again: Callable[[], None],
        start: int = 0,
    ) -> None:
        from twisted.internet import reactor

        for protocol in protocols[start : start + CHECK_SLICE]:
            if protocol in self.connections:
                check(protocol)
        if start + CHECK_SLICE < len(protocols):
            rest = (protocols, check, every, again, start + CHECK_SLICE)
            reactor.callLater(0, self._walk, *rest)  # type: ignore[arg-type]
        else:
            reactor.callLater(every, again)  # type: ignore[arg-type]

    def _check_timeouts(self, protocol: Any) -> None:
        protocol.check_timeouts()

    def _check_application(self, protocol: Any) -> None:
        """daphne's application_checker for one connection (daphne 4.2)."""
        details = self.connections[protocol]
        disconnected = details.get("disconnected", None)
        application_instance = details.get("application_instance", None)
        # An application that has not finished long after its client left is killed.
        if disconnected and time.time() - disconnected > self.application_close_timeout:
            if application_instance and not application_instance.done():
                daphne_logger.warning(
                    "Application instance %r for connection %s took too long to shut down "
                    "and was killed.",
                    application_instance,
                    repr(protocol),
                )
                application_instance.cancel()
        # A finished application is reaped (and its error logged).
        if application_instance and application_instance.done():
            try:
                exception = application_instance.exception()
            except (concurrent.futures.CancelledError, asyncio.CancelledError):
                pass
            else:
                if exception:
                    if isinstance(exception, KeyboardInterrupt):
                        self.stop()
                    else:
                        daphne_logger.error(
                            "Exception inside application: %s", exception, exc_info=exception
                        )
                        if not disconnected:
                            protocol.handle_exception(exception)
            del details["application_instance"]
            application_instance = None
        # Closed on both sides: forgotten.
        if not application_instance and disconnected:
            del self.connections[protocol]


def _exit_now() -> None:
    """End a draining process that is still here (a thread stuck in the database)."""
    stuck = [t.name for t in threading.enumerate() if t.is_alive() and not t.daemon]
    logger.error("SIGTERM: still running after %ss (threads: %s); exiting now",
                 FORCED_EXIT_SECONDS, ", ".join(stuck))  # fmt: skip
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(1)


class ServerCLI(CommandLineInterface):
    server_class = DrainingServer


MEMORY_EVERY_SECONDS = 60


def trace_memory(directory: str, frames: int) -> None:
    """Leak hunting (not for production): what stays alive, written to `directory` each minute.

    `types-<pid>-<n>.json` counts live objects by type (cheap). With
    `frames` > 0, tracemalloc starts after the first minute, keeping that
    many frames per allocation, so a `snapshot-<pid>-<n>.pickle` holds only
    what was allocated after the warm-up and is still alive; tracing slows
    the server several times over. Compare two files with
    `python -m bench.memdiff`.
    """
    import gc
    import json
    import tracemalloc
    from collections import Counter
    from pathlib import Path

    from twisted.internet import reactor, task

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    count = iter(range(1_000_000))

    def dump() -> None:
        n = next(count)
        name = f"{os.getpid()}-{n:03d}"
        types = Counter(type(obj).__qualname__ for obj in gc.get_objects())
        (folder / f"types-{name}.json").write_text(json.dumps(dict(types.most_common(300))))
        if tracemalloc.is_tracing():
            tracemalloc.take_snapshot().dump(str(folder / f"snapshot-{name}.pickle"))
        elif n and frames:
            tracemalloc.start(frames)

    reactor.callWhenRunning(lambda: task.LoopingCall(dump).start(MEMORY_EVERY_SECONDS, now=True))


def check_transport() -> None:
    """Check the socket transport's internals (logged, and the metric set); exit if required.

    Exits with status 1 and says why when TEAMCHAT_TRANSPORT_REQUIRED is on
    and something is missing, before listening, so a deploy stops here
    instead of running without the slow-client bound.
    """
    import django
    from django.apps import apps
    from django.conf import settings

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "teamchat.settings")
    if not apps.ready:
        django.setup()  # the logging configuration, before the first line
    from chat.realtime.transport import report_internals, versions

    missing = report_internals()
    if missing and settings.TEAMCHAT_TRANSPORT_REQUIRED:
        installed = ", ".join(f"{name} {v}" for name, v in versions().items())
        sys.exit(
            "Refusing to start: TEAMCHAT_TRANSPORT_REQUIRED is on and the socket transport "
            f"cannot use {'; '.join(missing)} (installed: {installed}). Install the versions "
            "pyproject.toml allows, or turn the setting off to run with plain sends."
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--memory-dir", help="write live object counts here every minute")
    parser.add_argument(
        "--tracemalloc-frames", type=int, default=0, help="with --memory-dir: trace allocations"
    )
    known, extra = parser.parse_known_args()
    if known.memory_dir:
        trace_memory(known.memory_dir, known.tracemalloc_frames)
    check_transport()
    settle_heap()
    share_the_interpreter()
    daphne.server.HTTPFactory = BoundedHTTPFactory
    ServerCLI().run(daphne_args(known.host, known.port, extra))


def settle_heap() -> None:
    """Load the application, then leave what startup made out of garbage collection.

    A full collection walks every object the collector tracks, and most of
    them are what Django, the URL map, templates and the modules make at
    startup and keep for the life of the process: under load each full
    collection paused the event loop for 70 to 100 ms (the tail of the send
    latency while one client floods, bench scenario I). Frozen, they are never
    walked again; everything made afterwards is collected as before.

    The youngest generation is also collected after 20,000 allocations rather
    than 700: a busy socket server makes short-lived objects (frames, futures,
    tasks) by the thousand, and collecting every 700 of them moved those still
    in flight into the older generations, whose collections are the long ones.

    The URL map is loaded here too. Django imports it (every view module, the
    admin, the API schema) on the first HTTP request, on the event loop: that
    request held up every socket of the process for a third of a second
    (bench scenario K at 5,000 people, right after a start or a deploy).
    """
    import gc
    import importlib

    from django.urls import get_resolver

    importlib.import_module("teamchat.asgi")
    # Imports every URLconf module and compiles every pattern.
    get_resolver().reverse_dict  # noqa: B018
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 10)
    from teamchat import metrics  # needs the settings teamchat.asgi loaded

    gc.callbacks.append(_collection_timer(metrics.GC_PAUSE))


def _collection_timer(histogram: Any) -> Any:
    """A gc callback observing each collection's pause, by generation."""
    started = [0.0]

    def timed(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            histogram.labels(str(info.get("generation"))).observe(time.perf_counter() - started[0])

    return timed


def share_the_interpreter() -> None:
    """Let the database threads have the interpreter back soon after each query.

    A thread that waited on PostgreSQL needs the GIL again to go on, and the
    event loop's thread, busy writing an event to thousands of sockets, gives
    it up only every switch interval (5 ms by default). The threads that
    commit hold the global ordering lock meanwhile, a few queries each, so
    every writer of every process waited in turn. At 0.5 ms the lock's waits
    fell by half in the benchmark (scenario K at 2,000 people, p99 22 -> 11 ms).
    """
    import sys

    sys.setswitchinterval(0.0005)


if __name__ == "__main__":
    main()
