"""Count the messages a scenario F run stored, in the database of DATABASE_URL.

Run from the project with the same environment as the server under test
(DATABASE_URL, DJANGO_SECRET_KEY, ...), after the server has stopped. Counts
the messages in the rooms whose slug starts with `--room-prefix`: all of them,
those whose nonce carries the run's `--token` (`<token>-...`), and of these the
ones created (the server's clock, taken as the batch is written) between
`--since` and `--until` (Unix times, the measured window). Prints JSON.

    python bench/count_messages.py --room-prefix bench-w --token ab12cd34 \\
        --since 1700000000.0 --until 1700000015.0
"""

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--room-prefix", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--since", type=float, required=True)
    parser.add_argument("--until", type=float, required=True)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "teamchat.settings")
    import django

    django.setup()

    from django.db import connection
    from django.db.models import Count, Max, Min

    from chat.models import Message

    in_rooms = Message.objects.filter(room__slug__startswith=args.room_prefix)
    ours = in_rooms.filter(nonce__startswith=f"{args.token}-")
    since = datetime.fromtimestamp(args.since, UTC)
    until = datetime.fromtimestamp(args.until, UTC)
    span = ours.aggregate(n=Count("id"), first=Min("created"), last=Max("created"))
    per_room = ours.values("room__slug").annotate(n=Count("id"))
    print(
        json.dumps(
            {
                "vendor": connection.vendor,
                "in_rooms": in_rooms.count(),
                "stored": span["n"],
                "stored_in_window": ours.filter(created__gte=since, created__lt=until).count(),
                "first_created": span["first"].timestamp() if span["first"] else None,
                "last_created": span["last"].timestamp() if span["last"] else None,
                "rooms_with_messages": len(per_room),
            }
        )
    )


if __name__ == "__main__":
    main()
