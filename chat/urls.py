from django.urls import path

from . import api, views

app_name = "chat"

urlpatterns = [
    path("", views.index, name="index"),
    path("r/<slug:slug>/", views.room, name="room"),
    path("api/rooms/<slug:slug>/messages/", api.room_messages, name="api-room-messages"),
]
