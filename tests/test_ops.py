"""/healthz and /readyz (PROTOCOL v2, Operations), in-process; failures are in
tests/chat/test_faults.py on private services."""

import pytest
from django.test import AsyncClient, Client

from teamchat import drain

pytestmark = pytest.mark.django_db(transaction=True)


def test_healthz_answers_anyone_without_touching_the_services(django_assert_num_queries):
    with django_assert_num_queries(0):
        response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert "no-cache" in response["Cache-Control"]


async def test_readyz_reports_the_database_and_a_channel_layer_round_trip():
    response = await AsyncClient().get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["ready"], body["failed"]) == (True, [])
    assert body["database"]["ok"] and body["database"]["ms"] >= 0
    assert body["channel_layer"]["ok"] and body["channel_layer"]["ms"] >= 0


@pytest.mark.postgres
async def test_readyz_shows_the_database_pool():
    pool = (await AsyncClient().get("/readyz")).json()["database"]["pool"]
    assert pool["max"] >= 1 and 0 <= pool["available"] <= pool["size"] <= pool["max"]


async def test_readyz_is_503_while_the_process_drains(monkeypatch):
    monkeypatch.setattr(drain, "_draining", True)
    response = await AsyncClient().get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["draining"]
    # Liveness is another question: the process still serves.
    assert (await AsyncClient().get("/healthz")).status_code == 200
