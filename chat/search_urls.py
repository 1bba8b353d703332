"""Message search URLs, included at the site root by teamchat/urls.py."""

from django.urls import path

from . import search_views

urlpatterns = [
    path("search/", search_views.search_page, name="search"),
    path("api/search/", search_views.search_api, name="api-search"),
]
