from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations and audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from chat import hooks

        from .outgoing import triggers

        # A stored message may be an event for a bot's outgoing webhook.
        hooks.on_messages_stored(triggers.messages_stored, first_read=triggers.hooks_in_rooms_read)
