from django.urls import path

from . import api, views

urlpatterns = [
    path("api/webhooks/outgoing/", api.webhooks, name="api-outgoing-webhooks"),
    path(
        "api/webhooks/outgoing/<int:webhook_id>/", api.webhook_detail, name="api-outgoing-webhook"
    ),
    path(
        "api/webhooks/outgoing/<int:webhook_id>/rotate/",
        api.webhook_rotate,
        name="api-outgoing-webhook-rotate",
    ),
    path(
        "api/webhooks/outgoing/<int:webhook_id>/deliveries/",
        api.webhook_deliveries,
        name="api-outgoing-webhook-deliveries",
    ),
    path("settings/webhooks/", views.webhooks_page, name="settings-webhooks"),
]
