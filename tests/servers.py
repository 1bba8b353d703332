"""Real daphne server processes on the test database, for multi-process and browser tests."""

import os
import selectors
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection

READY_LINE = "Listening on TCP address"


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

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/chat/"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(startup_timeout: float = 60.0, **env_overrides: str) -> ServerProcess:
    """Start `python -m teamchat.server` and return once it listens."""
    port = free_port()
    env = {
        **os.environ,
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
        [sys.executable, "-m", "teamchat.server", "--port", str(port)],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = ServerProcess(port, process)
    deadline = time.monotonic() + startup_timeout
    with selectors.DefaultSelector() as sel:
        sel.register(process.stdout, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sel.select(remaining):
                server.stop()
                raise RuntimeError("server did not start:\n" + "".join(server.output))
            line = process.stdout.readline()
            if not line:
                raise RuntimeError("server exited:\n" + "".join(server.output))
            server.output.append(line)
            if READY_LINE in line:
                break
    _drain_in_background(server)
    return server


def _drain_in_background(server: ServerProcess) -> None:
    # Keep reading the server's output so a full pipe never blocks it.
    import threading

    def drain() -> None:
        for line in server.process.stdout:
            server.output.append(line)

    threading.Thread(target=drain, daemon=True).start()
