"""/metrics: Prometheus text for the process itself and its operator, nobody else."""

import pytest
from django.test import Client
from prometheus_client import REGISTRY

pytestmark = pytest.mark.django_db


def test_metrics_answer_loopback_clients_in_prometheus_text():
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    text = response.content.decode()
    for name in (
        "teamchat_open_sockets",
        "teamchat_messages_stored_total",
        "teamchat_events_delivered_total",
        "teamchat_db_queries_total",
    ):
        assert f"\n{name} " in text or text.startswith(f"{name} "), name


@pytest.mark.parametrize(
    "extra",
    [
        {"REMOTE_ADDR": "203.0.113.9"},
        # A proxy on the same host connects from loopback, on someone else's behalf.
        {"HTTP_X_FORWARDED_FOR": "203.0.113.9"},
        {"REMOTE_ADDR": "203.0.113.9", "HTTP_AUTHORIZATION": "Bearer wrong"},
    ],
)
def test_metrics_are_not_found_for_anyone_else(extra, settings):
    settings.METRICS_TOKEN = "s3cret-token"
    assert Client().get("/metrics", **extra).status_code == 404


def test_metrics_answer_the_operator_token_from_anywhere(settings):
    settings.METRICS_TOKEN = "s3cret-token"
    response = Client().get(
        "/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer s3cret-token"
    )
    assert response.status_code == 200


def test_the_server_times_each_garbage_collection_by_generation():
    import gc

    from teamchat import metrics
    from teamchat.server import _collection_timer

    def count(generation: str) -> float:
        name = "teamchat_gc_pause_seconds_count"
        return REGISTRY.get_sample_value(name, {"generation": generation}) or 0.0

    before = count("2")
    timer = _collection_timer(metrics.GC_PAUSE)
    gc.callbacks.append(timer)
    try:
        gc.collect(2)
    finally:
        gc.callbacks.remove(timer)
    assert count("2") == before + 1
