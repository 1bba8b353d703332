from django.urls import path

from . import api, bots_api, commands_api, views
from .exports import views as export_views

urlpatterns = [
    path("api/tokens/", api.tokens_view, name="api-tokens"),
    path("api/tokens/<int:token_id>/", api.token_detail, name="api-token"),
    path("settings/tokens/", views.tokens_page, name="settings-tokens"),
    path("api/bots/", bots_api.bots_view, name="api-bots"),
    path("api/bots/<str:username>/", bots_api.bot_detail, name="api-bot"),
    path("api/bots/<str:username>/tokens/", bots_api.bot_tokens, name="api-bot-tokens"),
    path(
        "api/bots/<str:username>/tokens/<int:token_id>/",
        bots_api.bot_token,
        name="api-bot-token",
    ),
    path("api/bots/<str:username>/rooms/", bots_api.bot_rooms, name="api-bot-rooms"),
    path("api/bots/<str:username>/webhooks/", bots_api.bot_webhooks, name="api-bot-webhooks"),
    path(
        "api/bots/<str:username>/webhooks/<int:hook_id>/",
        bots_api.bot_webhook,
        name="api-bot-webhook",
    ),
    path(
        "api/bots/<str:username>/webhooks/<int:hook_id>/rotate/",
        bots_api.bot_webhook_rotate,
        name="api-bot-webhook-rotate",
    ),
    path("hooks/incoming/<str:secret>/", bots_api.incoming, name="hook-incoming"),
    path("settings/bots/", views.bots_page, name="settings-bots"),
    path("api/rooms/<slug:slug>/commands/", commands_api.room_command, name="api-room-command"),
    path("api/commands/", commands_api.commands_view, name="api-commands"),
    path("api/commands/<str:name>/", commands_api.command_detail, name="api-command"),
    path("api/exports/", export_views.exports, name="api-exports"),
    path("api/exports/<int:job_id>/", export_views.export_detail, name="api-export"),
    path(
        "api/exports/<int:job_id>/download/",
        export_views.export_download,
        name="api-export-download",
    ),
    path("settings/export/", export_views.export_page, name="settings-export"),
]
