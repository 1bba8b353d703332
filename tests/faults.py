"""Private Redis and PostgreSQL processes that a fault test starts, stops and restarts itself.

The shared services on 127.0.0.1:5432 and :6379 serve every other test; a
fault test kills its own copies instead. Both run as the `postgres` OS user
when the tests run as root (PostgreSQL refuses to run as root), in
directories that user owns, each on a free loopback port; every process is
started directly (no wrapper), so the test holds its pid and can kill exactly
it.

    python -m tests.faults alice bob    # with DATABASE_URL etc. set: users and sessions

The command form creates signed-in users in the database of DATABASE_URL
(through Django, as a login would leave them) and prints their session
cookies as JSON; a test runs it against its private database.
"""

import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SERVICE_USER = "postgres"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin() -> Path:
    """The directory of initdb and postgres: $PG_BIN, or the newest /usr/lib/postgresql/*/bin."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if found:
        return Path(found[-1])
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError("no PostgreSQL server binaries (initdb, postgres); set PG_BIN")


def _as_service_user() -> dict:
    """Popen arguments that run the child as the service user when we are root."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(SERVICE_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _libc_prctl():
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None  # not Linux: the fixtures' teardown still stops the services


_PRCTL = _libc_prctl()
_PR_SET_PDEATHSIG = 1
_KILL = int(signal.SIGKILL)


def _die_with_parent() -> None:
    """In the child (nothing imported or allocated here): die with the test process,
    so no service outlives a run that was killed."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, _KILL)


def _private_dir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVICE_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def _wait_until(check, what: str, timeout: float, process: "_Process") -> None:
    """Until `check()` says the service answers; fails at once if the service exits."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # not up yet
            last = exc
        assert process.process is not None
        try:
            # Between two attempts, wait on the one event that ends the wait
            # for good: the service exiting.
            process.process.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            continue
        break
    log = process.log
    output = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise RuntimeError(f"{what} did not come up in {timeout}s ({last!r})\n{output}")


class _Process:
    """One service process: its pid, its log file, a clean kill."""

    def __init__(self, directory: Path, name: str) -> None:
        self.dir = directory
        self.log = directory / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def _spawn(self, args: list[str]) -> None:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                args,
                cwd=self.dir,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.dir)},
                preexec_fn=_die_with_parent,
                **_as_service_user(),
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int, timeout: float = 20) -> None:
        """Send `signum` and wait for the process to exit (SIGKILL if it will not)."""
        if not self.running:
            return
        assert self.process is not None
        self.process.send_signal(signum)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class PrivateRedis(_Process):
    """`redis-server` on a free port, no persistence: a restart starts empty."""

    def __init__(self, also_on: tuple[str, ...] = ()) -> None:
        super().__init__(_private_dir("tc-redis-"), "redis")
        self.port = free_port()
        # Addresses it listens on besides 127.0.0.1 (for other network hosts).
        self.also_on = also_on

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def url_on(self, host: str) -> str:
        return f"redis://{host}:{self.port}/0"

    def start(self, *extra: str) -> "PrivateRedis":
        """Start it; `extra` are more redis-server options (`--replicaof HOST PORT`)."""
        self._spawn(
            [
                shutil.which("redis-server") or "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1", *self.also_on,
                *(["--protected-mode", "no"] if self.also_on else []),
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--dir", str(self.dir),
                *extra,
            ]
        )  # fmt: skip
        _wait_until(self.ping, f"redis on port {self.port}", 10, self)
        return self

    def ping(self) -> bool:
        import socket

        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    def kill(self) -> None:
        """Redis dies at once, as in a crash: every connection is reset."""
        self.signal(signal.SIGKILL)

    def pause(self) -> None:
        """Redis stops answering (SIGSTOP) while its connections stay open, as in a stall."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateSentinel(_Process):
    """`redis-sentinel` on a free port watching one primary as `name`, quick to fail over."""

    def __init__(self, name: str, primary_port: int) -> None:
        super().__init__(_private_dir("tc-sentinel-"), "sentinel")
        self.port = free_port()
        self.name = name
        self.primary_port = primary_port

    def start(self) -> "PrivateSentinel":
        config = self.dir / "sentinel.conf"
        config.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            "daemonize no\n"
            f"dir {self.dir}\n"
            f"sentinel monitor {self.name} 127.0.0.1 {self.primary_port} 1\n"
            f"sentinel down-after-milliseconds {self.name} 1000\n"
            f"sentinel failover-timeout {self.name} 10000\n"
            f"sentinel parallel-syncs {self.name} 1\n"
        )
        if os.geteuid() == 0:  # the sentinel rewrites its configuration file
            entry = pwd.getpwnam(SERVICE_USER)
            os.chown(config, entry.pw_uid, entry.pw_gid)
        self._spawn([shutil.which("redis-sentinel") or "redis-sentinel", str(config)])
        _wait_until(lambda: self.primary() is not None, f"sentinel on {self.port}", 10, self)
        return self

    def command(self, *words: str) -> Any:
        import redis

        with redis.Redis(port=self.port, socket_timeout=2, decode_responses=True) as client:
            return client.execute_command(*words)

    def primary(self) -> int | None:
        """The port of the primary the sentinel names now."""
        found = self.command("SENTINEL", "get-master-addr-by-name", self.name)
        return int(found[1]) if found else None

    def stop(self) -> None:
        self.signal(signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivatePostgres(_Process):
    """A PostgreSQL cluster of its own (initdb in a temporary directory), trust auth.

    `stop()` is a fast shutdown (clients are disconnected, as when the
    database goes down for a restart); `start()` brings the same cluster back
    on the same port.
    """

    TEMPLATE = "teamchat_migrated"

    def __init__(self, also_on: tuple[str, ...] = (), *options: str) -> None:
        super().__init__(_private_dir("tc-postgres-"), "postgres")
        self.data = self.dir / "data"
        self.port = free_port()
        self.bin = postgres_bin()
        self._databases = 0
        # Addresses it listens on besides 127.0.0.1 (trusted from anywhere),
        # and more server settings ("name=value").
        self.also_on = also_on
        self.options = options

    def init(self) -> "PrivatePostgres":
        result = subprocess.run(
            [
                str(self.bin / "initdb"),
                "-D", str(self.data),
                "-U", "postgres",
                "-A", "trust",
                "-E", "UTF8",
                "--locale", "C",
                "--no-sync",
            ],
            cwd=self.dir,
            capture_output=True,
            text=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.dir)},
            **_as_service_user(),
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        if self.also_on:
            with open(self.data / "pg_hba.conf", "a") as hba:
                hba.write("host all all 0.0.0.0/0 trust\n")
        return self

    def url(self, database: str = "postgres", host: str = "127.0.0.1") -> str:
        return f"postgres://postgres@{host}:{self.port}/{database}"

    def start(self) -> "PrivatePostgres":
        self._spawn(
            [
                str(self.bin / "postgres"),
                "-D", str(self.data),
                "-p", str(self.port),
                "-k", str(self.dir),
                "-c", "listen_addresses=" + ",".join(("127.0.0.1", *self.also_on)),
                *(word for option in self.options for word in ("-c", option)),
                "-c", "fsync=off",
                "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off",
                "-c", "max_connections=200",
            ]
        )  # fmt: skip
        _wait_until(self.accepts_connections, f"postgres on port {self.port}", 30, self)
        return self

    def accepts_connections(self) -> bool:
        import psycopg

        with psycopg.connect(self.url(), connect_timeout=2):
            return True

    def stop(self) -> None:
        """Fast shutdown: open connections are ended, nothing new is accepted."""
        self.signal(signal.SIGINT)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def execute(self, sql: str, database: str = "postgres", params: tuple = ()) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def migrate_template(self, secret_key: str) -> None:
        """Create the TeamChat schema once, in a template that new databases copy."""
        self.execute(f'CREATE DATABASE "{self.TEMPLATE}"')
        result = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=django_env(self.url(self.TEMPLATE), secret_key=secret_key),
            capture_output=True,
            text=True,
            timeout=180,
        )
        if result.returncode != 0:
            raise RuntimeError(f"migrate failed:\n{result.stdout}\n{result.stderr}")

    def new_database(self) -> str:
        """A fresh, migrated database (a copy of the template); returns its URL."""
        self._databases += 1
        name = f"teamchat_{self._databases}"
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.TEMPLATE}"')
        return self.url(name)


def django_env(database_url: str, redis_url: str = "", *, secret_key: str, **extra: str) -> dict:
    """The environment of a TeamChat process (server, manage.py) on these services."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "REDIS_", "CHANNEL_", "CHAT_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "teamchat.settings",
            "DJANGO_SECRET_KEY": secret_key,
            "DJANGO_DEBUG": "false",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",
            "ACCOUNT_EMAIL_VERIFICATION": "none",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    return env


def signed_in_users(env: dict, names: list[str]) -> dict[str, str]:
    """Create users (members of #general) in env's database; their session cookie headers."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.faults", *names],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"could not create users:\n{result.stdout}\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _create_signed_in_users(names: list[str]) -> dict[str, str]:
    import django

    django.setup()
    from django.conf import settings
    from django.test import Client

    from accounts.models import User

    cookies = {}
    for name in names:
        user = User.objects.create_user(username=name, email=f"{name}@example.com")
        client = Client()
        client.force_login(user)
        key = client.cookies[settings.SESSION_COOKIE_NAME].value
        cookies[name] = f"{settings.SESSION_COOKIE_NAME}={key}"
    return cookies


@contextlib.contextmanager
def private_redis():
    redis = PrivateRedis().start()
    try:
        yield redis
    finally:
        redis.stop()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    print(json.dumps(_create_signed_in_users(sys.argv[1:])))
