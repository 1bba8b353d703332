from django.urls import path

from .realtime.consumers import ChatConsumer

websocket_urlpatterns = [
    # django-stubs type path() for views only; Channels routes ASGI apps with it.
    path("ws/chat/", ChatConsumer.as_asgi()),  # type: ignore[arg-type]
]
