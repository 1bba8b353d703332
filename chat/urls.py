from django.urls import path

from . import api, drafts_views, notify_views, views
from .threads import api as threads
from .uploads import views as uploads

app_name = "chat"

urlpatterns = [
    path("", views.index, name="index"),
    path("r/<slug:slug>/", views.room, name="room"),
    path("rooms/", views.browse, name="browse"),
    path("api/rooms/", api.rooms, name="api-rooms"),
    path("api/rooms/<slug:slug>/", api.room_detail, name="api-room"),
    path("api/rooms/<slug:slug>/messages/", api.room_messages, name="api-room-messages"),
    path("api/rooms/<slug:slug>/join/", api.room_join, name="api-room-join"),
    path("api/rooms/<slug:slug>/leave/", api.room_leave, name="api-room-leave"),
    path("api/rooms/<slug:slug>/read/", api.room_read, name="api-room-read"),
    path("api/rooms/<slug:slug>/members/", api.room_members, name="api-room-members"),
    path(
        "api/rooms/<slug:slug>/members/<str:username>/",
        api.room_member,
        name="api-room-member",
    ),
    path("api/rooms/<slug:slug>/notify/", notify_views.room_notify, name="api-room-notify"),
    path("api/groups/", notify_views.groups, name="api-groups"),
    path("api/groups/<str:handle>/", notify_views.group_detail, name="api-group"),
    path("api/dms/", api.dms, name="api-dms"),
    path("api/threads/", threads.threads, name="api-threads"),
    path("api/threads/<int:root_id>/follow/", threads.thread_follow, name="api-thread-follow"),
    path("api/threads/<int:root_id>/read/", threads.thread_read, name="api-thread-read"),
    path("api/drafts/", drafts_views.drafts_view, name="api-drafts"),
    path("api/uploads/", uploads.upload, name="api-uploads"),
    path("api/uploads/<int:upload_id>/", uploads.upload_detail, name="api-upload"),
    path("api/uploads/pending/<str:key>/", uploads.upload_pending, name="api-upload-pending"),
    path("files/<int:upload_id>/<str:key>/<path:name>", uploads.download, name="upload-file"),
    path("thumbs/<int:upload_id>/<str:key>", uploads.thumbnail, name="upload-thumbnail"),
    path("api/users/", api.users, name="api-users"),
    path("api/emoji/", api.emoji, name="api-emoji"),
    path("api/messages/<int:message_id>/", api.message_detail, name="api-message"),
    path(
        "api/messages/<int:message_id>/reactions/",
        api.message_reactions,
        name="api-message-reactions",
    ),
]
