"""The chat fixtures (people with sessions, their API and sockets) for integration tests."""

from tests.chat.conftest import (  # noqa: F401  (fixtures)
    _fresh_send_buckets,
    channel,
    people,
    person,
    sockets,
    uploads_dir,
)
