"""The request type of views that only signed-in users reach."""

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from .models import User


class AuthenticatedRequest(HttpRequest):
    """A request behind `login_required` or the API's own check: its user is a User.

    Only an annotation: Django builds the request as usual; this tells the
    type checker what those checks guarantee.
    """

    user: User


def signed_in_user(request: HttpRequest) -> User:
    """The request's user, where an earlier check (the admin site's) already required one."""
    user = request.user
    if not user.is_authenticated:
        raise PermissionDenied
    return user
