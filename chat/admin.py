from django.contrib import admin

from .models import Membership, Message, Room


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ("user",)


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "kind", "is_private", "is_archived", "created_by", "created")
    list_filter = ("kind", "is_private", "is_archived")
    list_select_related = ("created_by",)
    search_fields = ("slug", "name", "topic")
    prepopulated_fields = {"slug": ("name",)}
    raw_id_fields = ("created_by",)
    readonly_fields = ("dm_key",)
    inlines = [MembershipInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "room", "author", "created", "edited", "is_deleted", "short_body")
    list_filter = ("is_deleted", "room")
    list_select_related = ("room", "author")
    search_fields = ("body", "author__username")
    raw_id_fields = ("author",)
    date_hierarchy = "created"

    @admin.display(description="body")
    def short_body(self, obj: Message) -> str:
        return obj.body if len(obj.body) <= 80 else obj.body[:79] + "…"
