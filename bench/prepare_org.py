"""Create an organization in the database of DATABASE_URL: users, rooms, memberships, sessions.

Run from the project with the same environment as the server under test
(DATABASE_URL, DJANGO_SECRET_KEY, ...), on a freshly created database. It
migrates, then creates users `bench00000`..`benchNNNNN` (bulk, one password
hash), makes every one of them a member of `general` (which exists after
migrate; `bulk_create` sends no signals, so this is done here), creates the
organization's other rooms and memberships in bulk as `org_rooms` lays them
out, and one logged-in session per user with the project's session engine
(`prepare.create_sessions`). Writes JSON to `--out`: the session keys (index
i = user i) and the rooms with their members (user indices).

    python bench/prepare_org.py --users 5000 --out /tmp/org.json

The layout (deterministic for a given size and seed), for N users:

- `general`: everyone.
- 6 % of N rooms besides it (300 for 5,000 users); a fifth of them direct
  conversations (`kind=dm`, private) of 2 people (60 %) or 3 to 8;
- the rest public channels `org-NNN` whose sizes fall off with rank as
  N * c / rank^1.2 (at most 90 % of N, at least 3), with c chosen so that
  each user is in about 10 rooms in all (general included);
- members of each room drawn at random.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from prepare import USERNAME, create_sessions, create_users, setup_django

ROOMS_PER_USER = 10
ROOMS_PER_1000_USERS = 60
DM_SHARE = 5  # one room in DM_SHARE is a direct conversation
SIZE_EXPONENT = 1.2
GENERAL = "general"


def org_rooms(users: int, seed: int = 1) -> list[dict]:
    """The organization's rooms: [{"slug", "kind", "members": [user index, ...]}], general first."""
    rng = random.Random(seed)
    count = max(10, round(users * ROOMS_PER_1000_USERS / 1000))
    dms = count // DM_SHARE
    channels = count - dms - 1
    dm_sizes = [2 if rng.random() < 0.6 else rng.randint(3, 8) for _ in range(dms)]
    dm_sizes = [min(size, users) for size in dm_sizes]
    wanted = max(channels * 3, ROOMS_PER_USER * users - users - sum(dm_sizes))
    cap = max(3, round(0.9 * users))

    def sizes(scale: float) -> list[int]:
        return [
            min(cap, max(3, round(scale / rank**SIZE_EXPONENT))) for rank in range(1, channels + 1)
        ]

    low, high = 1.0, 1e12
    for _ in range(200):  # bisection on the scale, geometric
        middle = (low * high) ** 0.5
        if sum(sizes(middle)) < wanted:
            low = middle
        else:
            high = middle
    channel_sizes = [min(size, users) for size in sizes(high)]
    rooms = [{"slug": GENERAL, "kind": "channel", "members": list(range(users))}]
    for rank, size in enumerate(channel_sizes):
        members = sorted(rng.sample(range(users), size))
        rooms.append({"slug": f"org-{rank:03d}", "kind": "channel", "members": members})
    for size in dm_sizes:
        rooms.append(
            {"slug": None, "kind": "dm", "members": sorted(rng.sample(range(users), size))}
        )
    return rooms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    setup_django()
    from django.core.management import call_command
    from django.db import transaction

    from chat.models import Membership, Room
    from chat.selectors import dm_slug_suffix

    started = time.monotonic()
    call_command("migrate", verbosity=0, interactive=False)
    migrated = time.monotonic()
    rooms = org_rooms(args.users, args.seed)
    ordered, _ = create_users([USERNAME.format(i) for i in range(args.users)])

    Room.objects.get(slug=GENERAL)  # made by migrate; everyone joins it below
    new_rooms = []
    for spec in rooms[1:]:
        if spec["kind"] == "dm":
            people = [ordered[i] for i in spec["members"]]
            key = "-".join(str(pk) for pk in sorted(u.pk for u in people))
            spec["slug"] = f"dm-{dm_slug_suffix(key)}"
            name = ", ".join(sorted(u.username for u in people))[:80]
            new_rooms.append(
                Room(slug=spec["slug"], name=name, kind="dm", is_private=True, dm_key=key)
            )
        else:
            new_rooms.append(Room(slug=spec["slug"], name=spec["slug"]))
    with transaction.atomic():
        Room.objects.bulk_create(new_rooms, batch_size=1000)
    by_slug = dict(Room.objects.values_list("slug", "pk"))
    memberships = [
        Membership(room_id=by_slug[spec["slug"]], user=ordered[i])
        for spec in rooms
        for i in spec["members"]
    ]
    with transaction.atomic():
        Membership.objects.bulk_create(memberships, batch_size=5000, ignore_conflicts=True)
    keys = create_sessions(ordered)
    args.out.write_text(json.dumps({"users": args.users, "keys": keys, "rooms": rooms}))
    print(
        json.dumps(
            {
                "users": args.users,
                "rooms": len(rooms),
                "memberships": len(memberships),
                "sessions": len(keys),
                "migrate_s": round(migrated - started, 2),
                "total_s": round(time.monotonic() - started, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
