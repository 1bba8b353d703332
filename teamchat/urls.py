from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path, re_path

from accounts import views as accounts_views
from chat import api as chat_api

from . import ops

# The admin's own login form would skip allauth's rate limits and two-factor
# step; send it to the allauth login page instead.
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]

urlpatterns = [
    path("metrics", ops.metrics, name="metrics"),
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("accounts/", include("allauth.urls")),
    # First: every /api/ operation goes through the NinjaAPI that documents it
    # (/api/schema/, /api/docs/); the patterns below keep their names.
    path("api/", include("teamchat.api_schema.urls")),
    path("api/session/", accounts_views.session_status, name="api-session"),
    path("api/people/", accounts_views.people, name="api-people"),
    path("api/profile/", accounts_views.profile, name="api-profile"),
    path("api/profile/avatar/", accounts_views.profile_avatar, name="api-profile-avatar"),
    path("avatars/<int:user_id>/<int:version>", accounts_views.avatar, name="avatar"),
    path("", include("chat.urls")),
    path("", include("chat.search_urls")),
    path("", include("integrations.urls")),
    path("", include("integrations.outgoing.urls")),
    # Last: any other /api/ path is a JSON 404, like every API error.
    re_path(r"^api/", chat_api.not_found, name="api-not-found"),
]
