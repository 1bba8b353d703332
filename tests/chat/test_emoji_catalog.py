"""The emoji catalog behind the picker and `:shortcode:` completion."""

import gzip
import json

import pytest
from django.test import Client

from chat import services


def catalog(person, **headers):
    response = person.client.get("/api/emoji/", headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    return response


def entries(response) -> list[dict]:
    raw = response.content
    if response.get("Content-Encoding") == "gzip":
        raw = gzip.decompress(raw)
    return json.loads(raw)["emoji"]


def test_the_catalog_names_emoji_and_their_shortcodes(person):
    alice = person("alice")
    by_char = {entry["emoji"]: entry for entry in entries(catalog(alice))}
    assert by_char["👍"]["name"] == "thumbs up"
    assert {"thumbs_up", "+1", "thumbsup"} <= set(by_char["👍"]["shortcodes"])
    assert "tada" in by_char["🎉"]["shortcodes"]
    # Skin tone variants are left out; the base emoji is there.
    assert "👍🏽" not in by_char
    assert len(by_char) > 1000


def test_everything_the_picker_offers_is_accepted_as_a_reaction(person):
    alice = person("alice")
    for entry in entries(catalog(alice)):
        services.emoji_validate(entry["emoji"])


def test_the_catalog_is_compressed_and_cacheable_for_the_browser(person):
    alice = person("alice")
    plain = catalog(alice)
    packed = catalog(alice, accept_encoding="gzip, br")
    assert packed["Content-Encoding"] == "gzip"
    assert len(packed.content) < len(plain.content) / 2
    assert entries(packed) == entries(plain)
    assert "max-age" in packed["Cache-Control"]
    assert "Accept-Encoding" in packed["Vary"]


@pytest.mark.django_db
def test_the_catalog_is_for_signed_in_people():
    response = Client().get("/api/emoji/")
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
