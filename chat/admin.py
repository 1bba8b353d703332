from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse

from accounts.http import signed_in_user

from . import access, notify, services
from .models import Membership, MentionPolicy, Message, Room, Upload, UserGroup
from .uploads import services as upload_services


class ReadableFilter(admin.SimpleListFilter):
    """Rooms by who may read them (chat.access), not by the flag alone: a DM is never public."""

    title = "who may read"
    parameter_name = "readable"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("everyone", "Everyone"), ("members", "Members only")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Room]) -> QuerySet[Room]:
        if self.value() == "everyone":
            return queryset.filter(access.public())
        if self.value() == "members":
            return queryset.exclude(access.public())
        return queryset


class MembershipInline(admin.TabularInline):
    """Who is in the room. Removing one (the Delete box) is the services' removal:
    their open sockets stop carrying the room at once. People join or are
    invited on the page, by a member, never added here.
    """

    model = Membership
    extra = 0
    fields = ("user", "joined", "last_read_id")
    readonly_fields = fields
    can_delete = True
    verbose_name_plural = "memberships (tick Delete to remove someone, as on the page)"

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return obj is not None and not obj.is_direct and obj.slug != services.DEFAULT_ROOM_SLUG


def _count_by_room(rows: QuerySet, ids: list[int]) -> dict[int, int]:
    """room id -> how many of these rows it has (rooms with none left out). One query."""
    counted = rows.filter(room_id__in=ids).order_by().values_list("room_id").annotate(Count("pk"))
    return dict(counted)


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    """Rooms; a change of name, topic, archiving or members goes through chat.services.

    So it reaches every open socket like a change made on the page, is in the
    event log and the audit log, and follows the same role rules (the room's
    creator, a moderator or a chat admin); staff reach private rooms here
    without being members (access.staff_sees). A direct message is private by
    its kind; its kind and privacy are never edited. Rooms are created on the
    page. Deleting one here (a chat admin; never #general) removes it with its
    messages for good (spam, a legal request) through chat.services: each
    member's open pages are told and drop it, and it is recorded in the audit
    log. Archive a room to close it for everyone and keep its history.
    """

    list_display = ("slug", "name", "kind", "public", "is_archived", "created_by", "created")
    list_filter = ("kind", ReadableFilter, "is_archived")
    list_select_related = ("created_by",)
    search_fields = ("slug", "name", "topic")
    raw_id_fields = ("created_by",)
    inlines = [MembershipInline]

    @admin.display(description="public", boolean=True)
    def public(self, obj: Room) -> bool:
        """Whether every signed-in user may read it."""
        return access.is_public(obj)

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return ("slug", "kind", "is_private", "dm_key", "created_by", "created")

    def get_form(self, request: HttpRequest, obj=None, change: bool = False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        for field, text in (
            ("name", "Changed as on the page: every open page shows the new name."),
            ("topic", "Changed as on the page: every open page shows the new topic."),
            ("is_archived", "An archived room is read-only for everyone; open pages learn it."),
        ):
            if field in form.base_fields:
                form.base_fields[field].help_text = text
        return form

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # created on the page (room_create), which makes its creator a member

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # Only a chat admin (room_delete's rule); everyone's room stays.
        is_admin = bool(getattr(request.user, "is_chat_admin", False))
        return is_admin and (obj is None or obj.slug != services.DEFAULT_ROOM_SLUG)

    def delete_model(self, request: HttpRequest, obj: Room) -> None:
        """The service deletes it (with its messages), tells its members' open pages, audits it."""
        actor = signed_in_user(request)
        slug = obj.slug
        self._after_commit(request, lambda: services.room_delete(actor=actor, room=slug))

    def get_deleted_objects(self, objs, request: HttpRequest):
        """What the confirmation page says goes with the rooms: counted, not listed.

        Django's own list names every message and membership (thousands of
        lines for a busy room) and asks for the right to delete messages one
        by one, which this admin never gives (MessageAdmin): a room with
        messages could not be deleted at all. Deleting the room takes its
        messages with it, and the files they carried; nothing else deletes them.
        """
        rooms = [room for room in objs if room.slug != services.DEFAULT_ROOM_SLUG]
        ids = [room.pk for room in rooms]
        messages_of = _count_by_room(Message.objects.all(), ids)
        members_of = _count_by_room(Membership.objects.all(), ids)
        files_of = dict(
            Upload.objects.filter(message__room_id__in=ids)
            .order_by()
            .values_list("message__room_id")
            .annotate(Count("pk"))
        )
        listed: list = []
        for room in rooms:
            listed.append(f"Room: {room} ({room.name})")
            listed.append(
                [
                    f"{messages_of.get(room.pk, 0)} message(s), gone for good",
                    f"{files_of.get(room.pk, 0)} file(s) on them, deleted",
                    f"{members_of.get(room.pk, 0)} member(s), told on their open pages",
                ]
            )
        totals = {
            "rooms": len(rooms),
            "messages": sum(messages_of.values()),
            "files": sum(files_of.values()),
            "memberships": sum(members_of.values()),
        }
        return listed, totals, set(), []

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Room]) -> None:
        # One room at a time, each its own logged change, as from the delete page.
        for room in queryset.exclude(slug=services.DEFAULT_ROOM_SLUG):
            self.delete_model(request, room)

    def _after_commit(self, request: HttpRequest, change) -> None:
        """Run a logged change once the admin's own transaction has committed.

        The admin saves inside a transaction; a logged change commits (and
        publishes) on its own, so it must not run inside the admin's.
        """

        def run() -> None:
            try:
                change()
            except services.ChatError as error:
                self.message_user(request, f"{error.detail} Not changed.", messages.ERROR)

        transaction.on_commit(run)

    def save_model(self, request: HttpRequest, obj: Room, form, change: bool) -> None:
        # The row is not saved here: the service saves it, logs it and publishes it.
        actor = signed_in_user(request)
        name, topic, archived = obj.name, obj.topic, obj.is_archived
        if not form.has_changed():
            return
        self._after_commit(
            request,
            lambda: services.room_update(
                actor=actor, room=obj.slug, name=name, topic=topic, archived=archived, as_staff=True
            ),
        )

    def save_formset(self, request: HttpRequest, form, formset, change: bool) -> None:
        if formset.model is not Membership:
            super().save_formset(request, form, formset, change)
            return
        formset.save(commit=False)  # collects deleted_objects; deletes nothing
        actor = signed_in_user(request)
        for membership in formset.deleted_objects:
            room, username = membership.room.slug, membership.user.username
            self._after_commit(
                request,
                lambda room=room, username=username: services.room_member_remove(
                    actor=actor, room=room, username=username, as_staff=True
                ),
            )


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Messages can be read and deleted for everyone here, never edited.

    A message's `html` is always what the server rendered from its body; an
    edit here would bypass the sanitizer, and its author's words are theirs.
    Deleting goes through chat.services, which tells every open socket.
    """

    list_display = ("id", "room", "author", "created", "edited", "is_deleted", "short_body")
    list_filter = ("is_deleted", "room")
    list_select_related = ("room", "author")
    search_fields = ("body", "author__username")
    date_hierarchy = "created"
    readonly_fields = ("room", "author", "body", "created", "edited", "is_deleted", "nonce")
    fieldsets = [
        (
            None,
            {
                "fields": readonly_fields,
                "description": "Read-only: only its author edits a message, on the page. "
                "To remove it for everyone, use the list's action "
                "'Delete for everyone (as on the page)': open pages drop it at once.",
            },
        )
    ]
    actions = ["delete_for_everyone"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # a row's deletion would bypass the event log: use the action

    @admin.action(description="Delete for everyone (as on the page)")
    def delete_for_everyone(self, request: HttpRequest, queryset) -> None:
        actor = signed_in_user(request)
        done, refused = 0, []
        for message in queryset.filter(is_deleted=False):
            try:
                services.message_delete(actor=actor, message_id=message.pk, as_staff=True)
                done += 1
            except (services.ChatError, PermissionDenied):
                refused.append(str(message.pk))
        self.message_user(request, f"Deleted {done} message(s).", messages.SUCCESS)
        if refused:
            self.message_user(
                request,
                "Only a moderator or an admin may delete others' messages. "
                f"Not deleted: {', '.join(refused)}.",
                messages.ERROR,
            )

    @admin.display(description="body")
    def short_body(self, obj: Message) -> str:
        return obj.body if len(obj.body) <= 80 else obj.body[:79] + "…"


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    """Uploaded files: listed and removed here, never edited or added.

    Removing goes through chat.uploads.services (the stored bytes are freed,
    downloads answer 404 at once, and an open page drops the file from its
    message live), so a row is never deleted behind the event log's back.
    """

    list_display = ("id", "name", "content_type", "size", "uploader", "message", "created")
    list_filter = ("content_type",)
    list_select_related = ("uploader",)
    search_fields = ("name", "uploader__username")
    date_hierarchy = "created"
    fields = ("name", "content_type", "size", "width", "height", "uploader", "message", "created")
    readonly_fields = fields
    actions = ["remove_files"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # use the action, which tells open pages

    @admin.action(description="Remove the files (for everyone)")
    def remove_files(self, request: HttpRequest, queryset) -> None:
        actor = signed_in_user(request)
        done, refused = 0, []
        for upload in queryset:
            try:
                upload_services.upload_delete(actor=actor, upload_id=upload.pk)
                done += 1
            except services.ChatError:
                refused.append(str(upload.pk))
        self.message_user(request, f"Removed {done} file(s).", messages.SUCCESS)
        if refused:
            self.message_user(
                request,
                f"Only a chat admin may remove others' files. Not removed: {', '.join(refused)}.",
                messages.ERROR,
            )


class UserGroupForm(forms.ModelForm):
    """A handle is checked as the API checks it: shaped like a username, never one."""

    class Meta:
        model = UserGroup
        fields = ("handle", "name", "description", "members")

    def clean_handle(self) -> str:
        handle = self.cleaned_data["handle"]
        current = self.instance.handle if self.instance.pk else None
        if current is not None and handle.lower() == current.lower():
            return handle
        try:
            return notify.group_handle_validate(handle, exclude=self.instance.pk)
        except services.ChatError as error:
            raise forms.ValidationError(error.detail) from None


@admin.register(UserGroup)
class UserGroupAdmin(admin.ModelAdmin):
    """Groups people mention together (@design): every member of the group in the room."""

    form = UserGroupForm
    list_display = ("handle", "name", "member_count", "created")
    search_fields = ("handle", "name", "members__username")
    filter_horizontal = ("members",)

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).prefetch_related("members")

    @admin.display(description="members")
    def member_count(self, obj: UserGroup) -> int:
        return len(obj.members.all())


@admin.register(MentionPolicy)
class MentionPolicyAdmin(admin.ModelAdmin):
    """One row: the list page goes straight to it."""

    fields = ("broadcast_max_members", "updated")
    readonly_fields = ("updated",)

    def changelist_view(self, request: HttpRequest, extra_context=None):
        policy = MentionPolicy.current()
        return HttpResponseRedirect(reverse("admin:chat_mentionpolicy_change", args=[policy.pk]))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
