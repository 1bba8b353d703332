from django.urls import path

from . import views

# Mounted under accounts/ next to allauth's own URLs.
urlpatterns = [
    path("invite/<str:token>/", views.invite_accept, name="account_invite"),
]
