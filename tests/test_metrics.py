"""/metrics: Prometheus text for the process itself and its operator, nobody else."""

import pytest
from django.test import Client

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
