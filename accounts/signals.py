"""Keep open sockets in step with the sessions and accounts behind them."""

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from .services import sockets_recheck
from .session_store import LOGIN_ID_KEY

User = get_user_model()


@receiver(user_logged_in)
def mint_login_id(sender, request, user, **kwargs):
    # Survives session-key rotation (it is session data), so a socket opened
    # in this login can still find its session after a password change.
    request.session[LOGIN_ID_KEY] = secrets.token_hex(16)


@receiver(user_logged_out)
def recheck_after_logout(sender, request, user, **kwargs):
    if user is not None:
        sockets_recheck(user.pk)


@receiver(pre_save, sender=User)
def note_credential_change(sender, instance, update_fields=None, **kwargs):
    if instance.pk is None:
        return
    if update_fields is not None and not {"password", "is_active"} & set(update_fields):
        return
    old = User.objects.filter(pk=instance.pk).values("password", "is_active").first()
    instance._teamchat_recheck = old is not None and (
        old["password"] != instance.password or old["is_active"] != instance.is_active
    )


@receiver(post_save, sender=User)
def user_saved(sender, instance, created, **kwargs):
    if created:
        from chat.services import member_add_to_default_room

        member_add_to_default_room(instance)
    elif getattr(instance, "_teamchat_recheck", False):
        instance._teamchat_recheck = False
        sockets_recheck(instance.pk)


@receiver(post_delete, sender=User)
def user_deleted(sender, instance, **kwargs):
    sockets_recheck(instance.pk)
