import allauth.mfa.admin  # noqa: F401  (registered first, so it can be replaced below)
from allauth.mfa.admin import AuthenticatorAdmin as BaseAuthenticatorAdmin
from allauth.mfa.models import Authenticator
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Value
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from integrations.audit import audit_record

from .http import signed_in_user
from .models import Invite, Session, SignupPolicy, User
from .services import user_deactivate, user_role_set, user_set_active

# Fields of the user form that make someone more powerful than the person
# editing: only a superuser may change them.
_SUPERUSER_FIELDS = ("is_staff", "is_superuser", "groups", "user_permissions")
_DJANGO_FIELDSETS = tuple(BaseUserAdmin.fieldsets or ())


class AuditedPasswordChangeForm(AdminPasswordChangeForm):
    """The admin's "set password" form: the new password and the entry commit together."""

    def save(self, commit: bool = True) -> User:
        with transaction.atomic():
            user = super().save(commit=commit)
            audit_record(
                action="user.password_set",
                target=f"user:{user.username}",
                data={"usable": user.has_usable_password()},
            )
        return user


class EffectiveRoleFilter(admin.SimpleListFilter):
    """Filter by the role TeamChat acts on: superusers are listed under Admin."""

    title = "role"
    parameter_name = "role"

    def lookups(self, request, model_admin):
        return User.Role.choices

    def queryset(self, request, queryset):
        role = self.value()
        if role is not None and role in User.Role.values:
            return queryset.filter(User.with_effective_role(role))
        return queryset


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = (
        "username",
        "email",
        "role_shown",
        "is_active",
        "is_staff",
        "date_joined",
        "last_login",
    )
    list_filter = (EffectiveRoleFilter, "is_active", "is_bot", "is_staff", "is_superuser")
    search_fields = ("username", "email", "first_name", "last_name")
    fieldsets = (
        *_DJANGO_FIELDSETS[:2],
        ("Role in TeamChat", {"fields": ("role",)}),
        ("Bot", {"fields": ("is_bot", "bot_owner"), "classes": ("collapse",)}),
        *_DJANGO_FIELDSETS[2:],
    )
    raw_id_fields = ("bot_owner",)
    add_fieldsets = (
        *BaseUserAdmin.add_fieldsets,
        ("Role in TeamChat", {"fields": ("role",)}),
    )
    actions = ["activate_users", "deactivate_users"]
    change_password_form = AuditedPasswordChangeForm

    @admin.display(description="role", ordering="role")
    def role_shown(self, obj: User) -> str:
        role = obj.effective_role.label
        return f"{role} (superuser)" if obj.is_superuser else role

    def get_fieldsets(self, request, obj=None):
        # A superuser is an admin whatever their stored role says: show that,
        # rather than a "Member" choice that changes nothing.
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or not obj.is_superuser:
            return fieldsets
        return tuple(
            (name, {**options, "fields": ("role_shown",)})
            if options.get("fields") == ("role",)
            else (name, options)
            for name, options in fieldsets
        )

    def get_readonly_fields(self, request, obj=None):
        # A bot is made a bot on the Bots page; an admin may give it another owner here.
        readonly = [*super().get_readonly_fields(request, obj), "role_shown", "is_bot"]
        if obj is None or not obj.is_bot:
            readonly.append("bot_owner")
        if not request.user.is_superuser:
            readonly += _SUPERUSER_FIELDS
        return readonly

    def save_model(self, request, obj: User, form, change: bool) -> None:
        """Role and activity change through accounts.services, with their rules.

        A moderator with the admin's change permission could otherwise
        deactivate an admin, or make themselves one, through the form.
        """
        if not change:
            super().save_model(request, obj, form, change)
            audit_record(
                action="user.create",
                target=f"user:{obj.username}",
                request=request,
                data={"role": obj.role, "is_staff": obj.is_staff, "is_superuser": obj.is_superuser},
            )
            return
        before = User.objects.get(pk=obj.pk)
        privileges = {
            name: {"from": getattr(before, name), "to": getattr(obj, name)}
            for name in ("is_staff", "is_superuser")
            if getattr(before, name) != getattr(obj, name)
        }
        if privileges:
            audit_record(
                action="user.privileges",
                target=f"user:{obj.username}",
                request=request,
                data=privileges,
            )
        wanted_role, wanted_active = obj.role, obj.is_active
        wanted_owner = obj.bot_owner
        obj.role, obj.is_active = before.role, before.is_active
        obj.bot_owner_id = before.bot_owner_id
        super().save_model(request, obj, form, change)
        if obj.is_bot and wanted_owner is not None and wanted_owner.pk != before.bot_owner_id:
            from chat.errors import ChatError
            from integrations.bots import bot_update

            try:
                bot_update(
                    actor=request.user, bot=obj, owner=wanted_owner.username, request=request
                )
            except ChatError as error:
                self.message_user(request, f"{error.detail} Not changed.", messages.ERROR)
        try:
            if wanted_role != before.role:
                user_role_set(actor=request.user, user=obj, role=wanted_role)
            if wanted_active != before.is_active:
                if wanted_active:
                    if not request.user.is_moderator:
                        raise PermissionDenied("Only moderators and admins may activate accounts.")
                    user_set_active(obj, active=True)
                else:
                    user_deactivate(actor=request.user, user=obj)
        except PermissionDenied as error:
            self.message_user(request, f"{error} Not changed.", messages.ERROR)

    def save_related(self, request, form, formsets, change: bool) -> None:
        """Groups and permissions given or taken away are recorded as user.privileges."""
        user = form.instance
        fields = [name for name in ("groups", "user_permissions") if name in form.fields]
        before = {name: self._names(user, name) for name in fields} if change else {}
        super().save_related(request, form, formsets, change)
        if not change:
            return
        data = {}
        for name in fields:
            after = self._names(user, name)
            if after != before[name]:
                data[name] = {
                    "added": sorted(after - before[name]),
                    "removed": sorted(before[name] - after),
                }
        if data:
            audit_record(
                action="user.privileges", target=f"user:{user.username}", request=request, data=data
            )

    @staticmethod
    def _names(user: User, field: str) -> set[str]:
        if field == "groups":
            return set(user.groups.values_list("name", flat=True))
        return {
            f"{app}.{codename}"
            for app, codename in user.user_permissions.values_list(
                "content_type__app_label", "codename"
            )
        }

    @admin.action(description="Activate selected users")
    def activate_users(self, request, queryset):
        count = sum(user_set_active(user, active=True) for user in queryset)
        self.message_user(request, f"Activated {count} user(s).", messages.SUCCESS)

    @admin.action(description="Deactivate selected users (closes their open sockets)")
    def deactivate_users(self, request, queryset):
        count = 0
        refused: dict[str, list[str]] = {}
        for user in queryset:
            try:
                count += user_deactivate(actor=request.user, user=user)
            except PermissionDenied as error:
                refused.setdefault(str(error), []).append(user.get_username())
        self.message_user(request, f"Deactivated {count} user(s).", messages.SUCCESS)
        for reason, names in refused.items():
            self.message_user(
                request, f"{reason} Not deactivated: {', '.join(names)}.", messages.ERROR
            )


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ("session_key", "user", "expire_date")
    list_select_related = ("user",)
    search_fields = ("user__username",)
    readonly_fields = ("session_key", "user", "login_id", "expire_date")
    exclude = ("session_data",)

    def has_add_permission(self, request):
        return False

    def delete_model(self, request: HttpRequest, obj: Session) -> None:
        """Deleting a session signs its user out there: recorded."""
        with transaction.atomic():
            audit_record(
                action="session.delete",
                target=f"user:{obj.user.username}" if obj.user else "",
                request=request,
            )
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        with transaction.atomic():
            for session in queryset.select_related("user"):
                self.delete_model(request, session)


admin.site.unregister(Authenticator)


@admin.register(Authenticator)
class AuthenticatorAdmin(BaseAuthenticatorAdmin):
    """Two-factor authenticators; deleting one resets that factor (audited)."""

    def delete_model(self, request: HttpRequest, obj: Authenticator) -> None:
        with transaction.atomic():
            audit_record(
                action="user.2fa_reset",
                target=f"user:{obj.user.username}",
                request=request,
                data={"type": obj.type},
            )
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        with transaction.atomic():
            for authenticator in queryset.select_related("user"):
                self.delete_model(request, authenticator)

    def save_model(self, request: HttpRequest, obj: Authenticator, form, change: bool) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            audit_record(
                action="user.2fa_change" if change else "user.2fa_add",
                target=f"user:{obj.user.username}",
                request=request,
                data={"type": obj.type},
            )


@admin.register(SignupPolicy)
class SignupPolicyAdmin(admin.ModelAdmin):
    """One row: the list page goes straight to it."""

    fieldsets = (
        (
            None,
            {
                "fields": ("mode", "allowed_domains"),
                "description": "Under Allowed email domains, anyone can type an "
                "address at your domain: a new account can use TeamChat (pages, API and "
                "socket) only once its address is verified, through the link it is sent.",
            },
        ),
        (
            "Two-factor",
            {
                "fields": ("require_2fa_for_staff",),
                "description": "When required, staff, moderators and admins must set up an "
                "authenticator app before they can use TeamChat at all (pages, API and "
                "socket) or the admin.",
            },
        ),
        (
            "Bots",
            {
                "fields": ("members_may_create_bots",),
                "description": "Admins can always create bots; with this, members can "
                "create bots of their own on the Bots page.",
            },
        ),
        (None, {"fields": ("updated",)}),
    )
    readonly_fields = ("updated",)

    def save_model(self, request: HttpRequest, obj: SignupPolicy, form, change: bool) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            if form.changed_data:
                audit_record(
                    action="policy.signup",
                    target="policy:signup",
                    request=request,
                    data={name: form.cleaned_data.get(name) for name in form.changed_data},
                )

    def changelist_view(self, request: HttpRequest, extra_context=None):
        policy, _ = SignupPolicy.objects.get_or_create(pk=1)
        return HttpResponseRedirect(reverse("admin:accounts_signuppolicy_change", args=[policy.pk]))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Invite)
class InviteAdmin(admin.ModelAdmin):
    list_display = ("__str__", "invite_link", "uses", "max_uses", "expires", "created_by")
    list_select_related = ("created_by",)
    search_fields = ("note", "created_by__username")
    fields = ("note", "max_uses", "expires", "invite_link", "uses", "created_by", "created")
    readonly_fields = ("invite_link", "uses", "created_by", "created")

    def get_queryset(self, request: HttpRequest):
        # Display methods get the object, not the request; the link needs
        # the request's host when SITE_URL is not set. Carried on each row,
        # since the admin instance is shared by concurrent requests.
        return super().get_queryset(request).annotate(_site=Value(request.build_absolute_uri("/")))

    @admin.display(description="Invite link")
    def invite_link(self, obj: Invite) -> str:
        if obj.pk is None:
            return "Shown once saved."
        return format_html("<code>{}</code>", obj.url(request_site=getattr(obj, "_site", "")))

    def save_model(self, request: HttpRequest, obj: Invite, form, change: bool) -> None:
        if not change:
            obj.created_by = signed_in_user(request)
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            audit_record(
                action="invite.change" if change else "invite.create",
                target=f"invite:{obj.pk}",
                request=request,
                data={"max_uses": obj.max_uses, "note": obj.note[:100]},
            )

    def delete_model(self, request: HttpRequest, obj: Invite) -> None:
        with transaction.atomic():
            audit_record(action="invite.delete", target=f"invite:{obj.pk}", request=request)
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        with transaction.atomic():
            for invite in queryset:
                self.delete_model(request, invite)
