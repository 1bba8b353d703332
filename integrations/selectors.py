"""Reads for integrations."""

from django.db.models import QuerySet

from accounts.models import User

from .models import Token


def tokens_of(user: User) -> QuerySet[Token]:
    """The user's tokens, newest first (expired ones too, until revoked)."""
    return Token.objects.filter(user=user).order_by("-created", "-id")
