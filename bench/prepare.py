"""Create the bench users, rooms and logged-in sessions in the database of DATABASE_URL.

Run from the project with the same environment as the server under test
(DATABASE_URL, DJANGO_SECRET_KEY, ...). It migrates, then creates users
`bench00000`..`benchNNNNN` (bulk, one precomputed password hash), one room per
`--room slug:members` (the first `members` users join it), `N` private
one-member rooms per `--solo-rooms prefix:N` (`prefix00`, `prefix01`, ...:
user i is the only member of room i), and one session per user built by the
project's own session engine (`accounts.session_store`), logged in with a
login id, exactly as the login signal would leave it. The session keys
(cookie values) are written as a JSON list to `--out`, index i being user i.

    python bench/prepare.py --users 1000 --room bench-100:100 --solo-rooms bench-w:50 \
        --out /tmp/keys.json
"""

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USERNAME = "bench{:05d}"
BACKEND = "accounts.backends.AuthenticationBackend"


def parse_room(text: str) -> tuple[str, int]:
    slug, _, members = text.partition(":")
    return slug, int(members)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--room", action="append", type=parse_room, default=[])
    parser.add_argument("--solo-rooms", action="append", type=parse_room, default=[])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    setup_django()
    from django.core.management import call_command

    from chat.models import Membership, Room

    started = time.monotonic()
    call_command("migrate", verbosity=0, interactive=False)
    migrated = time.monotonic()

    names = [USERNAME.format(i) for i in range(args.users)]
    ordered, created = create_users(names)

    for slug, members in args.room:
        room, _ = Room.objects.get_or_create(slug=slug, defaults={"name": slug})
        Membership.objects.bulk_create(
            [Membership(room=room, user=user) for user in ordered[:members]],
            batch_size=2000,
            ignore_conflicts=True,
        )

    solo = {}
    for prefix, count in args.solo_rooms:
        if count > len(ordered):
            raise SystemExit(f"--solo-rooms {prefix}:{count}: only {len(ordered)} users")
        for i, user in enumerate(ordered[:count]):
            slug = solo_slug(prefix, i)
            room, _ = Room.objects.get_or_create(
                slug=slug, defaults={"name": slug, "is_private": True}
            )
            Membership.objects.filter(room=room).exclude(user=user).delete()
            Membership.objects.get_or_create(room=room, user=user)
        solo[prefix] = count

    keys = create_sessions(ordered)
    args.out.write_text(json.dumps(keys))
    print(
        json.dumps(
            {
                "users": len(ordered),
                "created_users": created,
                "rooms": dict(args.room),
                "solo_rooms": solo,
                "sessions": len(keys),
                "migrate_s": round(migrated - started, 2),
                "total_s": round(time.monotonic() - started, 2),
            }
        )
    )


def setup_django() -> None:
    """Django with the project's settings, from the environment (as the server has it)."""
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "teamchat.settings")
    import django

    django.setup()


def create_users(names: list[str]) -> tuple[list, int]:
    """The users named (created in bulk where missing, one password hash), in that order."""
    from django.contrib.auth.hashers import make_password
    from django.db import transaction

    from accounts.models import User

    existing = set(User.objects.filter(username__in=names).values_list("username", flat=True))
    password = make_password(secrets.token_urlsafe(16))
    with transaction.atomic():
        User.objects.bulk_create(
            [
                User(username=name, email=f"{name}@bench.invalid", password=password)
                for name in names
                if name not in existing
            ],
            batch_size=2000,
        )
    by_name = dict(User.objects.filter(username__in=names).values_list("username", "pk"))
    users = {u.pk: u for u in User.objects.filter(pk__in=by_name.values())}
    return [users[by_name[name]] for name in names], len(names) - len(existing)


def create_sessions(ordered: list) -> list[str]:
    """One logged-in session per user, as the login signal leaves it; the session keys."""
    from django.db import transaction

    from accounts.models import Session
    from accounts.selectors import login_session_is_valid
    from accounts.session_store import LOGIN_ID_KEY, SessionStore

    rows = []
    keys = []
    for user in ordered:
        data = {
            "_auth_user_id": str(user.pk),
            "_auth_user_backend": BACKEND,
            "_auth_user_hash": user.get_session_auth_hash(),
            LOGIN_ID_KEY: secrets.token_hex(16),
        }
        key = _new_key()
        store = SessionStore()
        store._session_key = key
        store._session_cache = data  # a new session: nothing to load from the database
        rows.append(store.create_model_instance(data))
        keys.append(key)
    with transaction.atomic():
        Session.objects.bulk_create(rows, batch_size=2000)

    # The sessions must be exactly what a socket handshake and its checks accept.
    for index in {0, len(keys) - 1}:
        loaded = SessionStore(keys[index]).load()
        assert loaded.get("_auth_user_id") == str(ordered[index].pk), "session not stored"
        assert login_session_is_valid(login_id=loaded[LOGIN_ID_KEY], user_id=ordered[index].pk)
    return keys


def solo_slug(prefix: str, index: int) -> str:
    """The one-member room of user `index` (`bench-w00`, `bench-w01`, ...)."""
    return f"{prefix}{index:02d}"


def _new_key() -> str:
    from django.contrib.sessions.backends.base import VALID_KEY_CHARS
    from django.utils.crypto import get_random_string

    # 32 random characters from the session key alphabet, as Django makes them,
    # without one existence query per key.
    return get_random_string(32, VALID_KEY_CHARS)


if __name__ == "__main__":
    main()
