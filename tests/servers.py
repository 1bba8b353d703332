"""Real daphne server processes on the test database, for multi-process and browser tests."""

import os
import queue
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection

READY_LINE = "Listening on TCP address"
# Django's switch that lets blocking ORM calls run under an event loop.
ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"


def test_database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
        return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    port: int
    process: subprocess.Popen
    output: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws/chat/"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(
    startup_timeout: float = 60.0,
    args: tuple[str, ...] = (),
    port: int | None = None,
    host: str = "127.0.0.1",
    command_prefix: tuple[str, ...] = (),
    **env_overrides: str,
) -> ServerProcess:
    """Start `python -m teamchat.server` (with daphne `args`) and return once it listens.

    `port`: a stopped server's, to restart it where its clients reconnect.
    `host`: the address it listens on; `command_prefix` runs it through
    another command (`ip netns exec NAME`: on another network host).
    """
    port = port or free_port()
    env = {
        # A server runs as in production: Django refuses blocking calls from
        # its event loop even when the test process allows them (browser tests).
        **{k: v for k, v in os.environ.items() if k != ASYNC_UNSAFE},
        "DATABASE_URL": test_database_url(),
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "ACCOUNT_EMAIL_VERIFICATION": "none",
        "CHANNEL_LAYER_PREFIX": settings.CHANNEL_LAYER_PREFIX,
        "REDIS_URL": settings.REDIS_URL,
        "PYTHONUNBUFFERED": "1",
        **env_overrides,
    }
    process = subprocess.Popen(
        [*command_prefix, sys.executable, "-m", "teamchat.server"]
        + ["--host", host, "--port", str(port), *args],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = ServerProcess(port, process, host=host)
    lines: queue.Queue[str] = queue.Queue()

    def read_output() -> None:
        # A thread reads every line (a pipe left unread would block the server);
        # the caller waits on the queue, never on the pipe's buffering.
        for line in process.stdout:
            server.output.append(line)
            lines.put(line)
        lines.put("")

    threading.Thread(target=read_output, daemon=True).start()
    deadline = time.monotonic() + startup_timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            server.stop()
            raise RuntimeError("server did not start:\n" + "".join(server.output)) from None
        if not line:
            raise RuntimeError("server exited:\n" + "".join(server.output))
        if READY_LINE in line:
            return server
