"""Database session engine that indexes each session by login and user."""

from django.contrib.sessions.backends.db import SessionStore as DBStore

LOGIN_ID_KEY = "_teamchat_login_id"


class SessionStore(DBStore):
    @classmethod
    def get_model_class(cls):
        from .models import Session

        return Session

    def create_model_instance(self, data):
        obj = super().create_model_instance(data)
        obj.login_id = data.get(LOGIN_ID_KEY, "")
        user_id = data.get("_auth_user_id")
        obj.user_id = int(user_id) if user_id else None
        return obj
