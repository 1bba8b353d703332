"""A worker command started with --metrics-port serves its own /metrics on loopback."""

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from django.conf import settings

from tests import servers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.processes]


def test_the_export_worker_serves_its_metrics_when_given_a_port():
    port = servers.free_port()
    env = {
        **os.environ,
        "DATABASE_URL": servers.test_database_url(),
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "REDIS_URL": settings.REDIS_URL,
        "PYTHONUNBUFFERED": "1",
    }
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "export_worker", "--metrics-port", str(port)],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    text = r.read().decode()
                break
            except (urllib.error.URLError, ConnectionError):
                assert worker.poll() is None, worker.stderr.read().decode()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the worker never served /metrics"
                time.sleep(0.1)  # the worker is still starting: look again
        assert 'teamchat_exports_total{result="done"} 0.0' in text
        assert "process_resident_memory_bytes" in text
    finally:
        worker.terminate()
        worker.wait(timeout=10)
