"""What the server process does before it listens."""

import json
import os
import subprocess
import sys

from django.conf import settings

# In a fresh interpreter (this one has imported everything long ago): what a
# first HTTP request would still have to import after the server's start-up.
PROBE = """
import json, sys
from teamchat.server import settle_heap
settle_heap()
before = set(sys.modules)
from django.urls import resolve, reverse
for path in ("/", reverse("admin:index"), "/api/rooms/", "/healthz"):
    try:
        resolve(path)
    except Exception:
        pass
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_the_url_map_is_loaded_before_the_first_request():
    # Loading it on the first request ran on the event loop and held up
    # every open socket of the process while views and the admin imported.
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "teamchat.settings"},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    imported_late = json.loads(done.stdout.strip().splitlines()[-1])
    assert imported_late == []
