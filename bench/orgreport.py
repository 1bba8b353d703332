"""Tables and plots of the organization scenarios (G to K) for bench/run.py's reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orgbench import fmt


def _codes(counts: dict[str, int] | None) -> str:
    return ", ".join(f"{k}: {v}" for k, v in (counts or {}).items())


def _marks(r: dict[str, Any]) -> str:
    marks = []
    if r.get("generator_saturated"):
        marks.append("GEN-SAT")
    machine = r.get("machine_cpu_pct") or (r.get("storm_server") or {}).get("machine_cpu_pct")
    if machine is not None and machine > 90:
        marks.append("CPU-SAT")
    for key, text in (
        ("duplicates", "dups"),
        ("seq_regressions", "seq regressions"),
        ("wrong_room", "in the wrong room"),
        ("unacked", "unacked"),
        ("delivered_not_acked", "delivered but not acked"),
        ("retry_answers", "retry answers"),
    ):
        if r.get(key):
            marks.append(f"{r[key]} {text}")
    errors = {k: v for k, v in (r.get("errors") or {}).items()}
    if errors:
        marks.append("errors " + _codes(errors))
    closed = r.get("closed") or r.get("closed_by_code")
    if closed:
        marks.append("closed by server " + _codes(closed))
    skipped = r.get("skipped") or {}
    if skipped:
        marks.append("skipped " + _codes(skipped))
    if r.get("presence_sub_supported") is False:
        marks.append("presence_sub refused (unknown_type): old presence")
    return "; ".join(marks).replace("|", "/")


def _failed(label: str, entry: dict[str, Any]) -> str:
    return f"| {label} | failed: {str(entry.get('error')).replace('|', '/')} |"


def _queries(m: dict[str, Any] | None) -> str:
    if not m or not m.get("available"):
        return "n/a"
    return fmt(m.get("queries_per_message"), 2)


def _inside(m: dict[str, Any] | None) -> str:
    """Publish -> written to the last local socket, and the ordering lock's wait, in the server."""
    fan = (m or {}).get("server_fanout_ms") or {}
    wait = (m or {}).get("order_lock_wait_ms") or {}
    if not fan:
        return "–"
    text = f"{fmt(fan.get('p50'))} / {fmt(fan.get('p99'))}, {fmt(wait.get('p99'))}"
    gc = (m or {}).get("gc_pauses")
    if gc and gc.get("count"):
        long, total_ms = gc["over_50ms"], gc["seconds"] * 1000
        text += f"; GC {gc['count']:.0f} × ({long:.0f} ≥ 50 ms), {total_ms:.0f} ms"
    return text


def render_sections(report: dict[str, Any]) -> list[str]:
    sc = report["scenarios"]
    plan = report.get("org_plan") or {}
    lines: list[str] = []
    if sc.get("G"):
        lines += _storm_section(sc["G"], plan)
    if sc.get("H"):
        lines += _restart_section(sc["H"], plan)
    if sc.get("I"):
        lines += _flood_section(sc["I"], plan)
    if sc.get("J") or sc.get("K"):
        lines += _day_section(sc.get("J", []), sc.get("K", []), plan, report)
    return lines


def _storm_section(entries: list[dict[str, Any]], plan: dict[str, Any]) -> list[str]:
    lines = [
        "## G: connect storm of a whole organization, with presence",
        "",
        "Every user's one socket starts its handshake at the same instant (`/ws/chat/?seq=` "
        "of the newest event, as the page does) and, right after opening, sends a "
        f"`presence_sub` for {plan.get('subs', 10)} other users (i+1..i+10). Presence frames "
        "and the user entries in them are counted on every socket from the first handshake "
        f"until {fmt(plan.get('storm_after_s'), 0)} s after the last socket opened. Goal: all "
        "open within 1.5 s at 1,000 users and 10 s at 5,000 (linear between), none refused or "
        "closed, and presence frames per user about constant across sizes.",
        "",
        "| Users | Connected | Refused (kind) | Closed after open | All open s (goal) "
        "| Handshake p50 / p99 / max ms | Resumed in window (all at s) | Presence frames | Entries "
        "| Frames / entries per user | Max presence frames per socket per s "
        "| Server CPU % | Server peak RSS MiB | Gen CPU % | Queries | Goal | Notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for g in entries:
        for r in g.get("sizes", []):
            if "presence_frames" not in r:
                lines.append(_failed(str(r.get("users")), r))
                continue
            hs = r["connect"]["handshake_ms"]
            queries = (r.get("metrics") or {}).get("teamchat_db_queries_total")
            lines.append(
                f"| {r['users']} | {r['connected']} | "
                f"{r['refused']} {_codes(r['refused_by_kind'])} | {r['closed_after_open']} | "
                f"{fmt(r['all_open_s'], 2)} ({r['goal_s']:g}) | "
                f"{fmt(hs['p50'], 0)} / {fmt(hs['p99'], 0)} / {fmt(hs['max'], 0)} | "
                f"{r['resumed']} ({fmt(r.get('all_resumed_s'), 2)}) | {r['presence_frames']} | "
                f"{r['presence_entries']} | "
                f"{r['presence_frames_per_user']:g} / {r['presence_entries_per_user']:g} | "
                f"{r['presence_max_per_socket_s']} | "
                f"{fmt(r['storm_server'].get('cpu_pct'), 0)} | "
                f"{fmt(r.get('server_peak_rss_mib'), 0)} | {fmt(r['generator_cpu_pct'], 0)} | "
                f"{fmt(queries, 0) if queries is not None else 'n/a'} | "
                f"{'PASS' if r['pass'] else 'FAIL'} | {_marks(r)} |"
            )
        if "presence_frames_per_user_spread" in g:
            lines += [
                "",
                f"Presence frames per user at the largest size / at the smallest: "
                f"**{g['presence_frames_per_user_spread']}** "
                f"({'linear' if g.get('linear') else 'NOT linear'}: the goal is <= 1.5).",
            ]
    lines.append("")
    return lines


def _restart_section(entries: list[dict[str, Any]], plan: dict[str, Any]) -> list[str]:
    lines = [
        "## H: restart storm",
        "",
        "Every client is connected to server A and resumes from `?seq=<last seq it saw>`; a "
        "sender on server B (same database, Redis and prefix) sends "
        f"{fmt(plan.get('restart_rate'), 0)} msg/s to the rooms (uniformly) before and after "
        "server A gets SIGTERM and a new process takes its port. Clients reconnect like the "
        "page (500 ms x U(0.75, 1.25), doubling after each failed handshake, up to 30 s). "
        "A client is caught up when it has its `resumed` and every message sent before that "
        "moment; every client must end with every message of its rooms exactly once.",
        "",
        "| Users | Sent / acked | Old server exit s (code) | New server listening s "
        "| Caught up | All caught up s | Catch-up p50 / p99 s | Lost | Dups | Seq regressions "
        "| Reconnect attempts | Close codes | Reconnect handshake p99 ms | Replay p99 ms "
        "| New server CPU % | Queries per reconnect (new server) | Goal | Notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in entries:
        if "caught_up" not in r:
            lines.append(_failed(str(r.get("users")), r))
            continue
        old = r.get("old_server") or {}
        cu = r["catch_up_s"]
        available = (r.get("metrics_new_server") or {}).get("available")
        per_reconnect = fmt(r.get("queries_per_reconnect"), 2) if available else "n/a"
        lines.append(
            f"| {r['users']} | {r['sent']} / {r['acked']} | {fmt(old.get('exit_s'), 2)} "
            f"({old.get('exit_code')}) | {fmt(r.get('new_server_listening_s'), 2)} | "
            f"{r['caught_up']}/{r['sockets']} | {fmt(r['all_caught_up_s'], 2)} | "
            f"{fmt(cu['p50'], 2)} / {fmt(cu['p99'], 2)} | {r['lost']} | {r['duplicates']} | "
            f"{r['seq_regressions']} | {_codes(r['attempts'])} | {_codes(r['closed'])} | "
            f"{fmt(r['reconnect_handshake_ms']['p99'], 0)} | "
            f"{fmt(r['replay_latency_ms']['p99'], 0)} | "
            f"{fmt((r.get('new_server') or {}).get('cpu_pct'), 0)} | "
            f"{per_reconnect} | "
            f"{'PASS' if r['pass'] else 'FAIL'} | "
            f"{_marks({**r, 'closed': None})} |"
        )
    lines.append("")
    return lines


def _flood_section(entries: list[dict[str, Any]], plan: dict[str, Any]) -> list[str]:
    lines = [
        "## I: read and typing floods",
        "",
        f"One user sends {fmt(plan.get('flood_read_rate'), 0)} `read` and "
        f"{fmt(plan.get('flood_typing_rate'), 0)} `typing` frames per second over "
        f"{plan.get('flood_sockets')} sockets while the other members of a "
        f"~{plan.get('flood_room_size')}-member room send {fmt(plan.get('flood_msg_rate'), 0)} "
        "msg/s in it. Round trip: a sender's send to its own `message` echo. The server's "
        "per-user send limit is raised by the bench; the read and typing buckets keep their "
        f"defaults. Goal: flooded round-trip p99 within {fmt(plan.get('flood_factor'), 0)}x "
        "the unloaded one, nothing lost.",
        "",
        "| Phase | Senders | Round trip p50 / p99 ms | Fan-out p99 ms | Lost | Flood sent read/s "
        "+ typing/s | Answers to the flooder | Server CPU % | Gen CPU % | Machine CPU % "
        "| Queries per message | Notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in entries:
        if "baseline" not in r or "flood" not in r:
            lines.append(_failed("I", r))
            continue
        for phase in ("baseline", "flood"):
            x = r[phase]
            lat = x["ack_latency_ms"]
            answers = _codes(x.get("flood_answers")) or "–"
            lines.append(
                f"| {phase} | {r['senders']} | {fmt(lat['p50'])} / {fmt(lat['p99'])} | "
                f"{fmt(x['latency_ms']['p99'])} | {x['lost']} | "
                f"{x['flood_read_per_s']:g} + {x['flood_typing_per_s']:g} | {answers} | "
                f"{fmt(x['server'].get('cpu_pct'), 0)} | {fmt(x['generator_cpu_pct'], 0)} | "
                f"{fmt(x.get('machine_cpu_pct'), 0)} | {_queries(x.get('metrics'))} | "
                f"{_marks({**x, 'errors': None})} |"
            )
        lines += [
            "",
            f"Room `{r['room']}` ({r['room_size']} members). Flooded / unloaded round-trip p99: "
            f"**{fmt(r.get('p99_ratio'), 2)}** → {'PASS' if r.get('pass') else 'FAIL'} "
            f"({r['goal']}).",
        ]
    lines.append("")
    return lines


def _day_row(r: dict[str, Any]) -> str:
    lat = r["latency_ms"]
    fps = r["frames_per_s"]
    growth = r["rss_growth"]
    return (
        f"| {r['users']} | {fmt(r['duration_s'], 0)} | {r['rooms']} | "
        f"{r['sent']} ({fmt(r['rates']['messages'])}/s) | {r['expected']} | {r['lost']} | "
        f"{r['duplicates']} | {fmt(lat['p50'])} / {fmt(lat['p99'])} / {fmt(lat['max'], 0)} | "
        f"{_inside(r.get('metrics'))} | "
        f"{fmt(r['replay_latency_ms']['p99'], 0)} | {fmt(r['frames_per_s_total'], 0)} | "
        f"{fmt(fps.get('message'), 0)} / {fmt(fps.get('typing'), 0)} / {fmt(fps.get('read'), 0)} "
        f"/ {fmt(fps.get('presence'), 1)} / {fmt(fps.get('resumed'), 1)} | "
        f"{fmt(r['presence_entries_per_s'], 1)} | {fmt(r['server'].get('cpu_pct'), 0)} | "
        f"{fmt(growth.get('first_mib'), 0)} → {fmt(growth.get('last_mib'), 0)} "
        f"({fmt(growth.get('growth_pct'))} %, {fmt(growth.get('span_s'), 0)} s each) | "
        f"{_queries(r.get('metrics'))} | "
        f"{fmt(r['generator_cpu_pct'], 0)} | {fmt(r.get('machine_cpu_pct'), 0)} | "
        f"{'PASS' if r['pass'] else 'FAIL'} | {_marks(r)} |"
    )


DAY_HEAD = [
    "| Users | Seconds | Rooms | Messages sent | Deliveries expected | Lost | Dups "
    "| Live latency p50 / p99 / max ms "
    "| In the server: fan-out p50 / p99, lock wait p99 ms; GC pauses (≥ 50 ms), their total "
    "| Replayed p99 ms | Frames/s received "
    "| message / typing / read / presence / resumed per s | Presence entries/s "
    "| Server CPU % | Server RSS first → last minute MiB | Queries per message | Gen CPU % "
    "| Machine CPU % | Goal | Notes |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
]


def _day_section(
    days: list[dict[str, Any]],
    growth: list[dict[str, Any]],
    plan: dict[str, Any],
    report: dict[str, Any],
) -> list[str]:
    lines: list[str] = []
    if days:
        lines += [
            "## J: an organization's day",
            "",
            "For every 5,000 users (the rates scale with the organization's size), each second: "
            f"{fmt(plan.get('day_msg_rate'), 0)} messages (rooms chosen uniformly, the sender "
            "uniformly among the room's members, each preceded 1.5 s earlier by the sender's "
            f"`typing` hint: {fmt(plan.get('day_msg_rate'), 0)} hints/s), "
            f"{fmt(plan.get('day_read_rate'), 0)} read-marker moves (to the newest message a "
            "socket saw in a room that got new ones, oldest first), "
            f"{fmt(plan.get('day_presence_rate'), 0)} presence changes (a tab turning away or "
            f"active) and {fmt(plan.get('day_reconnect_rate'), 0)} reconnects (`?seq=`), paced "
            "by absolute deadlines. Latency: receive time − the send time in the body, per "
            "receiving socket, live deliveries (replayed ones after a reconnect apart); lost = "
            "an acknowledged message missing on a member's socket at the end (after the drain); "
            "dups = the same message twice on one socket (including after a resume).",
            "",
            *DAY_HEAD,
        ]
        for r in days:
            lines.append(_day_row(r) if "latency_ms" in r else _failed(str(r.get("users")), r))
        for r in days:
            if r.get("series"):
                lines += [
                    "",
                    f"Server CPU and RSS every {fmt(plan.get('day_sample_s'), 0)} s "
                    f"({r['users']} users); plot: `{plot_names(report)['day']}`.",
                    "",
                    "| t s | " + " | ".join(fmt(x["t_s"], 0) for x in r["series"]) + " |",
                    "|---|" + "---|" * len(r["series"]),
                    "| CPU % | " + " | ".join(fmt(x["cpu_pct"], 0) for x in r["series"]) + " |",
                    "| RSS MiB | " + " | ".join(fmt(x["rss_mib"], 0) for x in r["series"]) + " |",
                    *_window_rows(r["series"]),
                ]
        lines.append("")
    if growth:
        lines += [
            "## K: growth (the day at several sizes)",
            "",
            "The day of J, its rates scaled with the number of users (the same per person), "
            "with the organization laid out the same way for each size. Linear costs show as "
            "frames per second and server CPU per user staying about constant; plot: "
            f"`{plot_names(report)['growth']}`.",
            "",
            *DAY_HEAD,
        ]
        for k in growth:
            for r in k.get("sizes", []):
                lines.append(_day_row(r) if "latency_ms" in r else _failed(str(r.get("users")), r))
        per_user = [
            (r["users"], r["frames_per_s_total"] / r["users"], (r["server"].get("cpu_pct") or 0))
            for k in growth
            for r in k.get("sizes", [])
            if "latency_ms" in r
        ]
        if per_user:
            lines += [
                "",
                "| Users | Frames/s per user | Server CPU % per 1,000 users |",
                "|---|---|---|",
                *[
                    f"| {u} | {fmt(f, 2)} | {fmt(c * 1000 / u, 1)} |"
                    for u, f, c in sorted(per_user)
                ],
            ]
        lines.append("")
    return lines


# --------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------


def plot_names(report: dict[str, Any]) -> dict[str, str]:
    name = report.get("name") or "latest"
    prefix = "" if name == "latest" else f"{name}_"
    return {"growth": f"{prefix}org_growth.png", "day": f"{prefix}org_day.png"}


def plot_all(report: dict[str, Any], folder: Path, name: str) -> list[Path]:
    report["name"] = name
    names = plot_names(report)
    sc = report["scenarios"]
    written = []
    storms = [r for g in sc.get("G", []) for r in g.get("sizes", []) if "presence_frames" in r]
    days = [r for k in sc.get("K", []) for r in k.get("sizes", []) if "latency_ms" in r]
    if storms or days:
        path = folder / names["growth"]
        plot_growth(storms, days, path)
        written.append(path)
    quoted = [r for r in sc.get("J", []) if r.get("series")]
    if quoted:
        path = folder / names["day"]
        plot_day(quoted[-1], path)
        written.append(path)
    return written


def plot_growth(storms: list[dict[str, Any]], days: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cpu_ax, frames_ax, presence_ax) = plt.subplots(1, 3, figsize=(15, 4.8))
    if days:
        users = [r["users"] for r in days]
        cpu_ax.plot(users, [r["server"].get("cpu_pct") for r in days], "o-", label="day (K)")
        frames_ax.plot(users, [r["frames_per_s_total"] for r in days], "o-", label="all frames/s")
        frames_ax.plot(
            users, [r["frames_per_s"].get("message", 0) for r in days], "s--", label="message/s"
        )
        frames_ax.plot(
            users, [r["frames_per_s"].get("presence", 0) for r in days], "^--", label="presence/s"
        )
        presence_ax.plot(
            users,
            [r["frames_per_s"].get("presence", 0) * 60 / r["users"] for r in days],
            "o-",
            label="day: presence frames per user per minute",
        )
    if storms:
        users = [r["users"] for r in storms]
        cpu_ax.plot(
            users, [r["storm_server"].get("cpu_pct") for r in storms], "s-", label="storm (G)"
        )
        presence_ax.plot(
            users,
            [r["presence_frames_per_user"] for r in storms],
            "s-",
            label="storm: presence frames per user",
        )
        presence_ax.plot(
            users,
            [r["presence_entries_per_user"] for r in storms],
            "x--",
            label="storm: presence entries per user",
        )
    cpu_ax.set_title("Server CPU % (100 = one core)")
    frames_ax.set_title("Frames received per second (day)")
    presence_ax.set_title("Presence per user (flat = linear total)")
    for ax in (cpu_ax, frames_ax, presence_ax):
        ax.set_xlabel("users")
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle("TeamChat at organization scale: cost against users")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_day(day: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = day["series"]
    t = [x["t_s"] for x in series]
    fig, (cpu_ax, rss_ax) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    cpu_ax.plot(t, [x["cpu_pct"] for x in series], "-", marker=".")
    cpu_ax.set_ylabel("server CPU % (100 = one core)")
    cpu_ax.set_ylim(bottom=0)
    cpu_ax.grid(True, alpha=0.3)
    rss = [x["rss_mib"] for x in series]
    rss_ax.plot(t, rss, "-", marker=".", color="tab:orange")
    rss_ax.set_ylabel("server RSS MiB")
    rss_ax.set_ylim(0, max(rss) * 1.15)
    rss_ax.set_xlabel("seconds into the measured window")
    rss_ax.grid(True, alpha=0.3)
    growth = day["rss_growth"]
    cpu_ax.set_title(
        f"Scenario J: an organization's day, {day['users']} users, {day['duration_s']:g} s "
        f"(RSS first → last {fmt(growth.get('span_s'), 0)} s: {fmt(growth.get('growth_pct'))} %)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# Per window of an organization's day, beside CPU and RSS: the live tail of the
# messages sent in it, the server's commit and fan-out, and PostgreSQL's work.
WINDOW_ROWS = (
    ("machine_cpu_pct", "Machine CPU % (all cores)", 0),
    ("slowest_p99_ms", "Slowest delivery, p99 of messages, ms", 0),
    ("commit_p99_ms", "Group commit p99 ms", 0),
    ("lock_held_p99_ms", "Order lock held p99 ms", 0),
    ("fanout_p99_ms", "Server fan-out p99 ms", 0),
    ("gc_s", "Server GC s", 2),
    ("checkpoint_buffers", "Checkpoint buffers written", 0),
    ("wal_mib", "WAL MiB", 1),
    ("wal_fpi", "WAL full-page images", 0),
)


def _window_rows(series: list[dict]) -> list[str]:
    rows = []
    for key, label, digits in WINDOW_ROWS:
        if any(key in x for x in series):
            cells = " | ".join(fmt(x.get(key), digits) for x in series)
            rows.append(f"| {label} | {cells} |")
    return rows
