"""Production settings: the deploy check, HTTPS defaults, proxies, logging, and .env.example."""

import json
import logging
import os
import re
import subprocess
import sys

from django.conf import settings
from django.utils.log import AdminEmailHandler

from teamchat.logging import TruncateFilter

PRODUCTION = {
    "DJANGO_SECRET_KEY": "k3y-" + "a1B2c3D4e5" * 6,
    "DJANGO_ALLOWED_HOSTS": "chat.example.com",
}
# Variables the test run sets for itself (plain HTTP, its own database...),
# which a production-like child process must not inherit.
SCRUBBED = (
    "DJANGO_",
    "DATABASE_",
    "SECURE_",
    "SESSION_",
    "CSRF_",
    "TRUSTED_",
    "ALLAUTH_",
    "LOG_",
)


def run(code: list[str], **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED)}
    return subprocess.run(
        [sys.executable, *code],
        env={**clean, "DJANGO_SETTINGS_MODULE": "teamchat.settings", **env},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )


def settings_in(names: list[str], **env: str) -> dict:
    """The named settings as a process started with `env` sees them."""
    script = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n, None) for n in {names!r}}}))"
    )
    result = run(["-c", script], **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- The deploy check ------------------------------------------------------


def test_deploy_check_reports_nothing_in_production():
    result = run(["manage.py", "check", "--deploy", "--fail-level", "DEBUG"], **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues (0 silenced)" in result.stdout


def test_deploy_check_notices_a_weakened_setting():
    # The check above is only worth something if it can fail.
    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        **PRODUCTION,
        SECURE_SSL_REDIRECT="false",
    )
    assert result.returncode != 0
    assert "security.W008" in result.stdout + result.stderr


# --- HTTPS and cookie defaults ---------------------------------------------

HTTPS_SETTINGS = [
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
]


def test_production_is_https_only_by_default():
    values = settings_in([*HTTPS_SETTINGS, "SECURE_PROXY_SSL_HEADER"], **PRODUCTION)
    assert values == {
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 365 * 24 * 3600,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        # Trusting a client's claim of HTTPS is opt-in, for proxies only.
        "SECURE_PROXY_SSL_HEADER": None,
    }


def test_a_development_server_speaks_plain_http():
    values = settings_in(HTTPS_SETTINGS, DJANGO_DEBUG="true", DJANGO_SECRET_KEY="dev")
    assert values == {
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 0,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
    }


def test_proxy_settings_come_from_the_environment():
    values = settings_in(
        ["SECURE_PROXY_SSL_HEADER", "ALLAUTH_TRUSTED_PROXY_COUNT"],
        **PRODUCTION,
        SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https",
        TRUSTED_PROXY_COUNT="1",
    )
    assert values == {
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "ALLAUTH_TRUSTED_PROXY_COUNT": 1,
    }
    assert settings.ALLAUTH_TRUSTED_PROXY_COUNT == 0  # the default: trust no header


def test_a_malformed_proxy_header_setting_is_a_startup_error():
    result = run(
        ["-c", "import django; django.setup()"], **PRODUCTION, SECURE_PROXY_SSL_HEADER="https"
    )
    assert result.returncode != 0
    assert "SECURE_PROXY_SSL_HEADER is a header and a value" in result.stderr


def test_socket_settings_for_the_chat_have_safe_defaults():
    values = settings_in(
        ["CHAT_MAX_SOCKETS_PER_USER", "CHAT_SESSION_RECHECK_SECONDS"], **PRODUCTION
    )
    assert values == {"CHAT_MAX_SOCKETS_PER_USER": 20, "CHAT_SESSION_RECHECK_SECONDS": 60}


# --- Logging ---------------------------------------------------------------


def test_a_huge_log_message_is_cut_short():
    script = (
        "import django, logging; django.setup(); "
        "logging.getLogger('chat.realtime.consumers').warning('bad frame: %s', 'x' * 1_000_000)"
    )
    result = run(["-c", script], **PRODUCTION)
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stderr.splitlines() if "bad frame" in line]
    assert len(line) < settings.LOG_MAX_MESSAGE_CHARS + 200
    assert "more characters left out" in line


def test_a_huge_exception_is_cut_short_but_keeps_its_ends():
    record = logging.LogRecord("django.request", logging.ERROR, __file__, 1, "boom", None, None)
    try:
        raise ValueError("y" * 500_000)
    except ValueError:
        record.exc_info = sys.exc_info()
    TruncateFilter(max_chars=1000).filter(record)
    text = logging.Formatter().format(record)
    assert len(text) < 5000
    assert text.startswith("boom\nTraceback")
    assert "characters left out" in text
    assert text.rstrip().endswith("y")


def test_short_log_messages_are_untouched():
    record = logging.LogRecord("chat", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    assert TruncateFilter(max_chars=100).filter(record)
    assert record.getMessage() == "hello you"


LOGGERS_SCRIPT = """
import json, logging, django
django.setup()
loggers = {"": logging.getLogger()}
loggers.update(
    (name, logger)
    for name, logger in logging.Logger.manager.loggerDict.items()
    if isinstance(logger, logging.Logger)
)
print(json.dumps({
    name: [
        [type(h).__name__, [type(f).__name__ for f in h.filters]] for h in logger.handlers
    ]
    for name, logger in loggers.items()
}))
"""


def test_every_handler_truncates_and_none_sends_email():
    result = run(["-c", LOGGERS_SCRIPT], **PRODUCTION)
    assert result.returncode == 0, result.stderr
    handlers = json.loads(result.stdout.strip().splitlines()[-1])
    assert handlers[""], "the root logger writes somewhere"
    for name, attached in handlers.items():
        for kind, filters in attached:
            assert kind != AdminEmailHandler.__name__, name
            assert TruncateFilter.__name__ in filters, (name, kind)
    # Django's own loggers pass their records up to the root's handler.
    assert handlers["django"] == [] and handlers["django.request"] == []


# --- .env.example ----------------------------------------------------------


def test_every_environment_variable_is_in_env_example():
    source = (settings.BASE_DIR / "teamchat" / "settings.py").read_text()
    read = set(re.findall(r"env(?:\.\w+)?\(\s*\"([A-Z0-9_]+)\"", source))
    listed = set(
        re.findall(r"^#?\s*([A-Z0-9_]+)=", (settings.BASE_DIR / ".env.example").read_text(), re.M)
    )
    assert read, "no env reads found: the pattern is stale"
    assert read - listed == set()


def test_the_server_listens_with_room_for_a_whole_organization_connecting_at_once():
    from teamchat import server

    args = server.daphne_args("127.0.0.1", 8123)
    endpoint = args[args.index("--endpoint") + 1]
    assert endpoint == "tcp:port=8123:interface=127.0.0.1:backlog=4096"
    assert server.listen_endpoint("::1", 8000) == r"tcp:port=8000:interface=\:\:1:backlog=4096"


JSON_LOG_SCRIPT = """
import django, logging
django.setup()
log = logging.getLogger("chat.demo")
log.warning("a line\\nwith a break and \\u00e9")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("it failed")
"""


def test_log_format_json_writes_one_object_a_line():
    result = run(["-c", JSON_LOG_SCRIPT], LOG_FORMAT="json", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.strip().splitlines()]
    warning, error = lines[-2], lines[-1]
    assert (warning["level"], warning["logger"]) == ("WARNING", "chat.demo")
    assert warning["message"] == "a line\nwith a break and é"
    assert warning["time"].endswith("+00:00") and isinstance(warning["process"], int)
    assert error["message"] == "it failed" and "ZeroDivisionError" in error["exception"]


def test_an_unknown_log_format_is_refused():
    result = run(["-c", "import django; django.setup()"], LOG_FORMAT="xml", **PRODUCTION)
    assert result.returncode != 0 and "LOG_FORMAT is plain or json" in result.stderr
