import uuid

import pytest


@pytest.fixture(autouse=True)
def _fresh_rate_limits(settings):
    """Each test starts with empty rate-limit counters.

    allauth counts attempts in the cache, keyed by client address, and every
    test client comes from 127.0.0.1: without this, a test's sign-ups would
    count against the next test's. A key prefix of its own keeps them apart
    without flushing a Redis other test runs share.
    """
    caches = {name: dict(config) for name, config in settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = (
        f"{caches['default'].get('KEY_PREFIX', '')}-{uuid.uuid4().hex}"
    )
    if caches["default"]["BACKEND"].endswith("LocMemCache"):
        caches["default"]["LOCATION"] = caches["default"]["KEY_PREFIX"]
    settings.CACHES = caches
