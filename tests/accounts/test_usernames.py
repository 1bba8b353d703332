"""Usernames have one spelling: no look-alike can pass for an existing member."""

import pytest
from django.db import IntegrityError

from accounts.models import User
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def signup(client, username: str, email: str):
    return client.post(
        "/accounts/signup/",
        {
            "username": username,
            "email": email,
            "password1": "a-long-pass-phrase-9",
            "password2": "a-long-pass-phrase-9",
        },
    )


@pytest.mark.parametrize(
    "lookalike",
    [
        "\u0430lice",  # Cyrillic a
        "\uff41lice",  # full-width a
        "alice\u200b",  # zero-width space
        "al\u0131ce",  # dotless i
        "ALICE",  # another case
        "Alice",
    ],
)
def test_a_lookalike_of_an_existing_name_cannot_sign_up(client, lookalike):
    UserFactory(username="alice")
    response = signup(client, lookalike, "other@example.com")
    assert response.status_code == 200  # the form again, with an error
    assert "username" in response.context["form"].errors
    assert User.objects.count() == 1


def test_an_ordinary_name_signs_up(client):
    response = signup(client, "jane.doe-2", "jane@example.com")
    assert response.status_code == 302
    assert User.objects.filter(username="jane.doe-2").exists()


def test_names_differing_only_in_case_are_one_name_in_the_database():
    UserFactory(username="bob")
    with pytest.raises(IntegrityError):
        UserFactory(username="BOB")
