from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from .models import Session, User
from .services import user_set_active


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "email", "is_active", "is_staff", "date_joined", "last_login")
    list_filter = ("is_active", "is_staff", "is_superuser")
    search_fields = ("username", "email", "first_name", "last_name")
    actions = ["activate_users", "deactivate_users"]

    @admin.action(description="Activate selected users")
    def activate_users(self, request, queryset):
        count = sum(user_set_active(user, active=True) for user in queryset)
        self.message_user(request, f"Activated {count} user(s).", messages.SUCCESS)

    @admin.action(description="Deactivate selected users (closes their open sockets)")
    def deactivate_users(self, request, queryset):
        count = sum(
            user_set_active(user, active=False) for user in queryset.exclude(pk=request.user.pk)
        )
        self.message_user(request, f"Deactivated {count} user(s).", messages.SUCCESS)


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ("session_key", "user", "expire_date")
    list_select_related = ("user",)
    search_fields = ("user__username",)
    readonly_fields = ("session_key", "user", "login_id", "expire_date")
    exclude = ("session_data",)

    def has_add_permission(self, request):
        return False
