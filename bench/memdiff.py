"""What grew between two tracemalloc snapshots of a server: `python -m bench.memdiff OLD NEW`.

Snapshots come from `python -m teamchat.server --memory-dir DIR
--tracemalloc-frames 10` (one a minute) or `scripts/soak --memory-dump
--tracemalloc-frames 10`. Prints the allocation sites whose live memory grew
most, each with the stack that made it, newest frame last; given two
`types-*.json` files instead, the types whose live objects grew.
"""

import argparse
import json
import tracemalloc
from pathlib import Path


def growth(old_path: str, new_path: str, top: int, group: str) -> list[str]:
    ignore = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    ]
    old = tracemalloc.Snapshot.load(old_path).filter_traces(ignore)
    new = tracemalloc.Snapshot.load(new_path).filter_traces(ignore)
    stats = new.compare_to(old, group)
    total = sum(s.size_diff for s in stats)
    lines = [f"total growth {total / 1024:+.1f} KiB over {len(stats)} sites"]
    for stat in stats[:top]:
        lines.append(
            f"\n{stat.size_diff / 1024:+9.1f} KiB  {stat.count_diff:+7d} blocks"
            f"  (now {stat.size / 1024:.1f} KiB)"
        )
        frames = stat.traceback.format()
        lines.extend("    " + line for line in frames[-16:])
    return lines


def type_growth(old_path: str, new_path: str, top: int) -> list[str]:
    """Live objects by type, from the `types-*.json` files written beside the snapshots."""
    old = json.loads(Path(old_path).read_text())
    new = json.loads(Path(new_path).read_text())
    diff = sorted(
        ((new.get(k, 0) - old.get(k, 0), k) for k in new.keys() | old.keys()), reverse=True
    )
    return [f"{d:+8d}  {k}  (now {new.get(k, 0)})" for d, k in diff[:top] if d]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--group", choices=["traceback", "lineno", "filename"], default="traceback")
    args = parser.parse_args()
    if args.old.endswith(".json"):
        print("\n".join(type_growth(args.old, args.new, args.top)))
    else:
        print("\n".join(growth(args.old, args.new, args.top, args.group)))


if __name__ == "__main__":
    main()
