from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    # allauth's app (label "account") is "Accounts" too: two sections of one
    # name on the admin index. Ours holds who may use TeamChat, and how.
    verbose_name = "Users and sign-up"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the receivers)
