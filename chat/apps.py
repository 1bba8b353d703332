from django.apps import AppConfig
from django.db.backends.signals import connection_created


class ChatConfig(AppConfig):
    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        connection_created.connect(_count_queries, dispatch_uid="teamchat-count-queries")


def _count_queries(sender, connection, **kwargs) -> None:
    """Count every statement the process runs (teamchat_db_queries_total)."""
    if _query_counted not in connection.execute_wrappers:
        connection.execute_wrappers.append(_query_counted)


def _query_counted(execute, sql, params, many, context):
    from teamchat.metrics import DB_QUERIES

    DB_QUERIES.inc()
    return execute(sql, params, many, context)
