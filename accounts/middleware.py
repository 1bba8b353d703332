from .services import run_collecting_rechecks


class SocketSessionCheckMiddleware:
    """After the response, tell the affected sockets to re-check their sessions.

    Sits outside SessionMiddleware so the session is already saved (or
    flushed) when the sockets look at it.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return run_collecting_rechecks(self.get_response, request)
