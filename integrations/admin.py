from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from .models import AuditEntry, Token


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """The audit log: read-only for everyone, superusers included (append-only from the app)."""

    list_display = ("at", "actor_name", "action", "target", "ip")
    list_filter = ("action", ("at", admin.DateFieldListFilter))
    search_fields = ("actor_name", "action", "target", "ip")
    date_hierarchy = "at"
    fields = ("at", "actor_name", "action", "target", "ip", "data_shown")
    readonly_fields = fields
    list_per_page = 100
    actions = None  # no "Delete selected", and no action checkboxes

    @admin.display(description="details")
    def data_shown(self, obj: AuditEntry) -> str:
        import json

        return format_html(
            "<pre>{}</pre>", json.dumps(obj.data, indent=2, ensure_ascii=False, sort_keys=True)
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        user = request.user
        return bool(user.is_active and user.is_staff and getattr(user, "is_chat_admin", False))

    def has_module_permission(self, request: HttpRequest) -> bool:
        # Listed on the admin's index for every staff admin, not only those
        # given Django permissions on the integrations app.
        return self.has_view_permission(request) or super().has_module_permission(request)


@admin.register(Token)
class TokenAdmin(admin.ModelAdmin):
    """Tokens by user; an admin may revoke one (through the service, so its sockets close)."""

    list_display = ("name", "user", "prefix", "scope", "created", "last_used", "expires")
    list_select_related = ("user",)
    search_fields = ("name", "user__username", "prefix")
    list_filter = ("scope",)
    fields = ("user", "name", "prefix", "scope", "created", "last_used", "expires")
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.action(description="Revoke selected tokens (closes their sockets)")
    def revoke(self, request: HttpRequest, queryset) -> None:
        from .tokens import token_revoke

        for token in queryset.select_related("user"):
            token_revoke(user=token.user, token_id=token.pk, request=request)
        self.message_user(request, "Revoked.")
