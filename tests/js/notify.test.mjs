// Notification rules and the title's counts: node --test tests/js/*.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";

import { dndActive, effectiveLevel, mentionsMe, shouldNotify, titleTotals } from "../../static/js/notifyrules.js";
import { Store } from "../../static/js/store.js";

const NOW = Date.parse("2026-06-01T12:00:00Z");
const channel = (notify = "default") => ({ slug: "design", kind: "channel", notify });
const dm = (notify = "default") => ({ slug: "dm-1", kind: "dm", notify });

function msg(extra = {}) {
  return { id: 1, room: "design", user: "bob", body: "hi", mentions: [], broadcast: null, thread: null, in_channel: false, ...extra };
}

function ctx(room, extra = {}) {
  return { me: "mia", room, visible: false, dndUntil: null, now: NOW, ...extra };
}

test("the default level is all for conversations and mentions for channels", () => {
  assert.equal(effectiveLevel(dm()), "all");
  assert.equal(effectiveLevel(channel()), "mentions");
  assert.equal(effectiveLevel({ kind: "channel" }), "mentions", "no level given: the default");
  assert.equal(effectiveLevel(channel("all")), "all");
  assert.equal(effectiveLevel(dm("mentions")), "mentions");
  assert.equal(effectiveLevel(dm("none")), "none");
});

test("level all notifies every message by others; mentions only mentions; muted never", () => {
  assert.equal(shouldNotify(msg(), ctx(channel("all"))), true);
  assert.equal(shouldNotify(msg(), ctx(channel("mentions"))), false);
  assert.equal(shouldNotify(msg({ mentions: ["mia"] }), ctx(channel("mentions"))), true);
  assert.equal(shouldNotify(msg({ mentions: ["mia"] }), ctx(channel("none"))), false, "muted: not even a mention");
  assert.equal(shouldNotify(msg({ broadcast: "channel" }), ctx(channel("none"))), false);
  assert.equal(shouldNotify(msg(), ctx(dm())), true, "conversations default to all");
  assert.equal(shouldNotify(msg(), ctx(channel())), false, "channels default to mentions");
  assert.equal(shouldNotify(msg({ mentions: ["mia"] }), ctx(channel())), true);
});

test("@channel mentions everyone; @here only those the server listed (online when sent)", () => {
  assert.equal(mentionsMe(msg({ broadcast: "channel" }), "mia"), true);
  assert.equal(shouldNotify(msg({ broadcast: "channel" }), ctx(channel("mentions"))), true);
  assert.equal(shouldNotify(msg({ broadcast: "here", mentions: ["bob"] }), ctx(channel("mentions"))), false);
  assert.equal(shouldNotify(msg({ broadcast: "here", mentions: ["mia"] }), ctx(channel("mentions"))), true);
  // A group mention arrives as the person's name in `mentions`.
  assert.equal(shouldNotify(msg({ body: "@design look", mentions: ["mia", "zoe"] }), ctx(channel())), true);
});

test("never for one's own messages, nor while the tab is visible", () => {
  assert.equal(shouldNotify(msg({ user: "mia" }), ctx(channel("all"))), false);
  assert.equal(shouldNotify(msg({ user: "mia", broadcast: "channel" }), ctx(dm())), false);
  assert.equal(shouldNotify(msg({ mentions: ["mia"] }), ctx(channel("all"), { visible: true })), false);
  assert.equal(shouldNotify(msg(), { me: "mia", room: null, now: NOW }), false, "a room the page does not know");
});

test("do not disturb silences everything until it ends", () => {
  const until = new Date(NOW + 30 * 60 * 1000).toISOString();
  assert.equal(dndActive(until, NOW), true);
  assert.equal(shouldNotify(msg({ mentions: ["mia"] }), ctx(dm("all"), { dndUntil: until })), false);
  assert.equal(shouldNotify(msg({ broadcast: "channel" }), ctx(channel("all"), { dndUntil: until })), false);
  const later = NOW + 31 * 60 * 1000;
  assert.equal(dndActive(until, later), false);
  assert.equal(shouldNotify(msg(), ctx(dm(), { dndUntil: until, now: later })), true, "it ended");
  assert.equal(dndActive(null, NOW), false);
  assert.equal(dndActive("not a time", NOW), false);
});

test("a reply only in its thread notifies its followers unless muted, and anyone it mentions", () => {
  const reply = msg({ thread: 7, in_channel: false });
  assert.equal(shouldNotify(reply, ctx(channel("all"), { following: true })), true);
  assert.equal(shouldNotify(reply, ctx(channel("all"), { following: false })), false);
  assert.equal(shouldNotify(reply, ctx(channel("mentions"), { following: true })), true);
  assert.equal(shouldNotify(reply, ctx(channel("mentions"), { following: false })), false);
  assert.equal(shouldNotify({ ...reply, mentions: ["mia"] }, ctx(channel("mentions"))), true);
  assert.equal(shouldNotify({ ...reply, mentions: ["mia"] }, ctx(channel("none"), { following: true })), false);
  // Also sent to the channel: a message of the room like any other.
  assert.equal(shouldNotify({ ...reply, in_channel: true }, ctx(channel("all"))), true);
});

test("the title leaves out the unread messages of muted rooms but keeps their mentions", () => {
  const rooms = [
    { slug: "a", kind: "channel", notify: "default", unread: 3, mentions: 1 },
    { slug: "b", kind: "channel", notify: "none", unread: 5, mentions: 2 },
    { slug: "c", kind: "dm", notify: "all", unread: 1, mentions: 0 },
  ];
  assert.deepEqual(titleTotals(rooms), { unread: 4, mentions: 3 });
  assert.deepEqual(titleTotals(new Map(rooms.map((r) => [r.slug, r]))), { unread: 4, mentions: 3 });
});

test("the title counts followed threads' unread replies with their room's, muted rooms' mentions only", () => {
  const rooms = [
    { slug: "a", kind: "channel", notify: "default", unread: 1, mentions: 0, thread_unread: 2, thread_mentions: 1 },
    { slug: "b", kind: "channel", notify: "none", unread: 0, mentions: 0, thread_unread: 4, thread_mentions: 1 },
  ];
  assert.deepEqual(titleTotals(rooms), { unread: 3, mentions: 2 });
});

function makeStore() {
  const room = (slug, extra = {}) => ({ slug, name: slug, topic: "", kind: "channel", private: false, archived: false, unread: 0, mentions: 0, last_read_id: 0, notify: "default", ...extra });
  const store = new Store(
    { room: "general", roomName: "general", roomKind: "channel", user: "mia", seq: 10, isMember: true, lastReadId: 0, rooms: [room("general"), room("design"), room("noisy", { notify: "none" })], messages: [] },
    { visible: () => false, now: () => 1000 }
  );
  const seen = [];
  ["counts", "notify"].forEach((name) => store.on(name, (detail) => seen.push([name, detail.entry.slug])));
  return { store, seen };
}

test("a notify event changes the room's level once and the title follows it", () => {
  const { store, seen } = makeStore();
  const base = { type: "message", user: "bob", body: "x", mentions: [], reactions: {}, nonce: null };
  store.receive({ ...base, room: "noisy", id: 20, seq: 11 });
  store.receive({ ...base, room: "noisy", id: 21, broadcast: "channel", seq: 12 });
  store.receive({ ...base, room: "design", id: 22, seq: 13 });
  assert.deepEqual(store.totals(), { unread: 1, mentions: 1 }, "noisy's two unread are left out, its @channel counts");
  seen.length = 0;
  store.receive({ type: "notify", room: "noisy", notify: "all", seq: 14 });
  assert.equal(store.rooms.get("noisy").notify, "all");
  assert.deepEqual(seen, [["notify", "noisy"], ["counts", "noisy"]]);
  assert.deepEqual(store.totals(), { unread: 3, mentions: 1 });
  store.receive({ type: "notify", room: "noisy", notify: "all", seq: 15 });
  assert.equal(seen.length, 2, "the same level again changes nothing");
  store.receive({ type: "notify", room: "elsewhere", notify: "none", seq: 16 });
  assert.equal(seen.length, 2, "a room not in the sidebar is ignored");
});

test("a room joined later starts at its default level", () => {
  const { store } = makeStore();
  store.receive({ type: "member", room: { slug: "new", name: "new", kind: "channel", topic: "", private: false, archived: false }, user: "mia", action: "joined", seq: 11 });
  assert.equal(store.rooms.get("new").notify, "default");
});

test("@-completion offers groups by handle or name, then @channel and @here", async () => {
  const { groupCompletions } = await import("../../static/js/notifyrules.js");
  const groups = [
    { handle: "design", name: "Designers", members: ["a", "b"] },
    { handle: "ops", name: "Operations", members: ["c"] },
  ];
  assert.deepEqual(groupCompletions("", groups).map((g) => g.handle), ["design", "ops", "channel", "here"]);
  assert.deepEqual(groupCompletions("de", groups).map((g) => g.handle), ["design"]);
  assert.deepEqual(groupCompletions("OPER", groups).map((g) => g.handle), ["ops"], "by name, ignoring case");
  assert.deepEqual(groupCompletions("h", groups).map((g) => g.handle), ["here"]);
  assert.equal(groupCompletions("ops", groups)[0].label, "Operations (1 person)");
  assert.deepEqual(groupCompletions("c", [null, { name: "no handle" }]).map((g) => g.handle), ["channel"]);
});
