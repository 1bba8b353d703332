import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "teamchat.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from chat.realtime.handshake import SessionPreloadMiddleware  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402
from integrations.auth import BearerSocketAuth  # noqa: E402
from teamchat.security import SameOriginValidator  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # A bearer token (scripts, bots) needs no session and no Origin.
        "websocket": BearerSocketAuth(
            token_app=URLRouter(websocket_urlpatterns),  # type: ignore[arg-type]
            session_app=SameOriginValidator(
                # Reads the sessions of concurrent handshakes together; the
                # AuthMiddlewareStack below puts the user in the scope as usual.
                SessionPreloadMiddleware(
                    # The stubs want their own subclass of Django's URLPattern here.
                    AuthMiddlewareStack(URLRouter(websocket_urlpatterns))  # type: ignore[arg-type]
                )
            ),
        ),
    }
)
