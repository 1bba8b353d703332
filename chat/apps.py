from django.apps import AppConfig
from django.db.backends.signals import connection_created


class ChatConfig(AppConfig):
    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        connection_created.connect(_count_queries, dispatch_uid="teamchat-count-queries")

        from django.contrib.auth import get_user_model
        from django.db.models.signals import pre_delete

        from .uploads.services import files_of_deleted_uploader

        pre_delete.connect(
            files_of_deleted_uploader,
            sender=get_user_model(),
            dispatch_uid="teamchat-files-of-deleted-uploader",
        )


def _count_queries(sender, connection, **kwargs) -> None:
    """Count every statement the process runs (teamchat_db_queries_total)."""
    if _query_counted not in connection.execute_wrappers:
        connection.execute_wrappers.append(_query_counted)


def _query_counted(execute, sql, params, many, context):
    from teamchat.metrics import DB_QUERIES

    DB_QUERIES.inc()
    return execute(sql, params, many, context)
