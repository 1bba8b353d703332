from django.urls import path

from . import api, views

urlpatterns = [
    path("api/tokens/", api.tokens_view, name="api-tokens"),
    path("api/tokens/<int:token_id>/", api.token_detail, name="api-token"),
    path("settings/tokens/", views.tokens_page, name="settings-tokens"),
]
