// The room page's state without a browser: node --test tests/js/*.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";

import { Store, deletedNote, roomLabel } from "../../static/js/store.js";

function room(slug, extra = {}) {
  return { slug, name: slug, topic: "", kind: "channel", private: false, archived: false, unread: 0, mentions: 0, last_read_id: 0, ...extra };
}

function message(id, extra = {}) {
  return { type: "message", room: "general", id, user: "bob", body: "m" + id, html: "<p>m" + id + "</p>", created: "2026-01-01T00:00:00.000000Z", nonce: null, edited: null, mentions: [], reactions: {}, ...extra };
}

function makeStore({ visible = false, ...config } = {}) {
  const store = new Store(
    {
      room: "general",
      roomName: "general",
      roomKind: "channel",
      user: "mia",
      seq: 10,
      isMember: true,
      lastReadId: 0,
      rooms: [room("general"), room("design"), room("dm-x", { kind: "dm", name: "bob, mia", members: ["bob"] })],
      messages: [],
      ...config,
    },
    { visible: () => visible, now: () => 1000 }
  );
  const seen = [];
  ["message", "counts", "room", "room-removed", "membership", "notice", "outbox", "resumed", "message-removed"].forEach((name) =>
    store.on(name, (detail) => seen.push([name, detail]))
  );
  return { store, seen };
}

test("the first page is held in id order and sets the bounds for paging", () => {
  const { store } = makeStore({ messages: [message(5), message(3), message(4)] });
  assert.deepEqual(store.messageList().map((m) => m.id), [3, 4, 5]);
  assert.equal(store.lastId, 5);
  assert.equal(store.oldestId, 3);
  const added = store.addOlder([message(1), message(2), message(3)]);
  assert.deepEqual(added.map((m) => m.id), [1, 2], "what is held already is not added again");
  assert.equal(store.oldestId, 1);
});

test("events move seq on; a replayed event already applied is not counted twice", () => {
  const { store } = makeStore();
  store.receive({ ...message(20, { room: "design" }), seq: 11 });
  assert.equal(store.seq, 11);
  assert.equal(store.rooms.get("design").unread, 1);
  store.receive({ ...message(20, { room: "design" }), seq: 11 });
  assert.equal(store.rooms.get("design").unread, 1);
  store.receive({ type: "typing", room: "general", user: "bob", seq: null });
  assert.equal(store.seq, 11, "events that are never stored leave seq alone");
});

test("seq moves on even when a view fails on the event", () => {
  const { store } = makeStore();
  store.on("message", () => {
    throw new Error("a view broke");
  });
  assert.throws(() => store.receive({ ...message(20), seq: 12 }));
  assert.equal(store.seq, 12);
});

test("messages are applied idempotently: by id, edits and reactions merge, deletes drop", () => {
  const { store, seen } = makeStore({ visible: true });
  store.receive({ ...message(20), seq: 11 });
  store.receive({ ...message(20, { body: "again" }), seq: 11 });
  assert.equal(store.messages.size, 1);
  assert.deepEqual(seen.filter(([n]) => n === "message").map(([, d]) => d.isNew), [true, false]);
  store.receive({ type: "message_edited", room: "general", id: 20, body: "new", html: "<p>new</p>", edited: "2026-01-01T00:01:00Z", mentions: [], broadcast: "channel", seq: 12 });
  assert.equal(store.messages.get(20).body, "new");
  assert.equal(store.messages.get(20).broadcast, "channel");
  store.receive({ type: "reaction", room: "general", id: 20, emoji: "🎉", users: ["bob"], seq: 13 });
  store.receive({ type: "reaction", room: "general", id: 20, emoji: "👍", users: ["mia"], seq: 14 });
  store.receive({ type: "reaction", room: "general", id: 20, emoji: "🎉", users: [], seq: 15 });
  assert.deepEqual(store.messages.get(20).reactions, { "👍": ["mia"] });
  store.receive({ type: "message_deleted", room: "general", id: 20, seq: 16 });
  store.receive({ type: "message_deleted", room: "general", id: 20, seq: 16 });
  assert.equal(store.messages.size, 0);
  assert.equal(seen.filter(([n]) => n === "message-removed").length, 1);
});

test("unread and mention counts: other rooms count, the room in view does not", () => {
  const { store } = makeStore({ visible: true });
  store.receive({ ...message(20, { room: "design", mentions: ["mia"] }), seq: 11 });
  store.receive({ ...message(21, { room: "design", user: "mia" }), seq: 12 });
  store.receive({ ...message(22), seq: 13 });
  assert.deepEqual([store.rooms.get("design").unread, store.rooms.get("design").mentions], [1, 1]);
  assert.equal(store.rooms.get("general").unread, 0);
  assert.deepEqual(store.totals(), { unread: 1, mentions: 1 });
  store.receive({ type: "read", room: "design", last_read_id: 21, unread: 0, mentions: 0, seq: 14 });
  assert.deepEqual(store.totals(), { unread: 0, mentions: 0 });
  store.receive({ ...message(19, { room: "design" }), seq: 15 });
  assert.equal(store.rooms.get("design").unread, 0, "a message before the read marker is not unread");
});

test("this room counts a new message as unseen while the person looks away", () => {
  const { store, seen } = makeStore({ visible: false });
  store.receive({ ...message(20), seq: 11 });
  const [, detail] = seen.find(([n]) => n === "message");
  assert.equal(detail.unseen, true);
  assert.equal(store.rooms.get("general").unread, 1);
});

test("resume: the server's counts win and rooms it no longer lists go", () => {
  const { store, seen } = makeStore();
  store.catchingUp = true;
  store.rooms.get("design").unread = 7;
  store.receive({ type: "resumed", seq: 30, rooms: [{ room: "general", last_read_id: 4, unread: 2, mentions: 1 }, { room: "design", last_read_id: 9, unread: 0, mentions: 0 }] });
  assert.equal(store.catchingUp, false);
  assert.equal(store.seq, 30);
  assert.deepEqual([...store.rooms.keys()].sort(), ["design", "general"]);
  assert.equal(store.rooms.get("design").unread, 0);
  assert.equal(store.marker, 4);
  assert.ok(seen.some(([n, d]) => n === "room-removed" && d.slug === "dm-x"));
  assert.equal(seen[seen.length - 1][0], "resumed");
});

test("resume without this room: the membership is lost, as a removal", () => {
  const { store, seen } = makeStore();
  store.receive({ type: "resumed", seq: 30, rooms: [{ room: "design", last_read_id: 0, unread: 0, mentions: 0 }] });
  assert.equal(store.isMember, false);
  assert.equal(store.canWrite(), false);
  assert.deepEqual(seen.find(([n]) => n === "membership")[1], { member: false, action: "removed", by: null });
});

test("a pending send is acknowledged by its own message, not shown twice", () => {
  const { store, seen } = makeStore();
  const entry = store.queue("hello", "c-1", "2026-01-01T00:00:00Z");
  assert.deepEqual(store.unsent(), [entry]);
  store.outboxSent("c-1");
  assert.deepEqual(store.unsent(), []);
  store.receive({ ...message(20, { user: "mia", body: "hello", nonce: "c-1" }), seq: 11 });
  const [, detail] = seen.find(([n]) => n === "message");
  assert.equal(detail.acked, entry);
  assert.equal(detail.isNew, false);
  assert.equal(store.outbox.size, 0);
});

test("a dropped socket keeps pending sends for the next one; a refusal fails one", () => {
  const { store } = makeStore();
  store.queue("one", "c-1", "t");
  store.queue("two", "c-2", "t");
  store.outboxSent("c-1");
  store.outboxSent("c-2");
  store.outboxSuspend();
  assert.deepEqual(store.unsent().map((e) => e.nonce), ["c-1", "c-2"]);
  store.receive({ type: "error", code: "rate_limited", detail: "Slow down.", nonce: "c-2", seq: null });
  assert.deepEqual([store.outbox.get("c-2").state, store.outbox.get("c-2").reason], ["failed", "Slow down."]);
  assert.deepEqual(store.unsent().map((e) => e.nonce), ["c-1"]);
  store.outboxPending("c-2"); // Retry
  assert.deepEqual(store.unsent().map((e) => e.nonce), ["c-1", "c-2"]);
  store.failPending("you are signed out.");
  assert.deepEqual([...store.outbox.values()].map((e) => e.state), ["failed", "failed"]);
});

test("an early edit goes back when refused or when the socket drops; its event settles it", () => {
  const { store, seen } = makeStore();
  const reverted = [];
  store.expect("c-1", "edit", 20, () => reverted.push("c-1"));
  store.expect("c-2", "delete", 21, () => reverted.push("c-2"));
  store.expect("c-3", "edit", 22, () => reverted.push("c-3"));
  store.receive({ type: "error", code: "forbidden", detail: "No.", nonce: "c-1", seq: null });
  assert.deepEqual(reverted, ["c-1"]);
  assert.deepEqual(seen.find(([n]) => n === "notice")[1], { text: "No." });
  store.receive({ type: "message_edited", room: "general", id: 22, body: "x", seq: 11 });
  store.revertActions();
  assert.deepEqual(reverted, ["c-1", "c-2"]);
  assert.equal(store.actions.size, 0);
});

test("membership: joining, being invited elsewhere, others joining a conversation", () => {
  const { store, seen } = makeStore({ isMember: false, rooms: [room("dm-x", { kind: "dm", name: "bob, mia", members: ["bob"] })] });
  store.receive({ type: "member", room: room("general"), user: "mia", action: "joined", by: "mia", seq: 11 });
  assert.equal(store.isMember, true);
  assert.ok(store.rooms.has("general"));
  store.receive({ type: "member", room: room("design"), user: "mia", action: "invited", by: "bob", seq: 12 });
  assert.deepEqual(seen.find(([n]) => n === "notice")[1], { text: "bob added you to #design." });
  store.receive({ type: "member", room: room("dm-x", { kind: "dm", name: "bob, mia" }), user: "carol", action: "joined", by: "bob", seq: 13 });
  assert.equal(roomLabel(store.rooms.get("dm-x"), "mia"), "bob, carol");
});

test("this room deleted by an admin: it leaves the sidebar and the page ends as after a removal", () => {
  const { store, seen } = makeStore({ room: "design", roomName: "design" });
  store.queue("unsent", "c-1", "t");
  store.receive({ type: "member", room: room("design"), user: "mia", action: "deleted", by: "root", seq: 11 });
  assert.equal(store.rooms.has("design"), false);
  assert.deepEqual([store.isMember, store.canWrite(), store.roomDeleted], [false, false, true]);
  assert.deepEqual(seen.find(([n]) => n === "membership")[1], { member: false, action: "deleted", by: "root" });
  assert.deepEqual(seen.filter(([n]) => n === "notice"), [], "the room's own page says it (room.js), not a second notice");
  store.failPending("this room was deleted.");
  assert.equal(store.outbox.get("c-1").state, "failed");
  // The replay of the same event, then `resumed` without the room: nothing more happens.
  store.receive({ type: "member", room: room("design"), user: "mia", action: "deleted", by: "root", seq: 11 });
  store.receive({ type: "resumed", seq: 11, rooms: [{ room: "general", last_read_id: 0, unread: 0, mentions: 0 }] });
  assert.equal(seen.filter(([n]) => n === "membership").length, 1);
});

test("another room deleted by an admin leaves the sidebar, and the page says so", () => {
  const { store, seen } = makeStore();
  store.receive({ type: "member", room: room("design"), user: "mia", action: "deleted", by: "root", seq: 11 });
  assert.equal(store.rooms.has("design"), false);
  assert.equal(store.isMember, true, "the room in view is untouched");
  assert.deepEqual(seen.find(([n]) => n === "notice")[1], { text: "#design was deleted by root." });
  const dm = room("dm-x", { kind: "dm", name: "bob, mia" });
  store.receive({ type: "member", room: dm, user: "mia", action: "deleted", by: "root", seq: 12 });
  assert.equal(store.rooms.has("dm-x"), false);
  assert.deepEqual(seen.filter(([n]) => n === "notice").pop()[1], { text: "Your conversation with bob was deleted by root." });
});

test("a deleted room is named as people know it: a channel by name, a conversation by its people", () => {
  assert.equal(deletedNote(room("design", { name: "Design" }), "mia", "root"), "#Design was deleted by root.");
  assert.equal(deletedNote(room("dm-y", { kind: "dm", name: "bob, carol, mia" }), "mia", "root"), "Your conversation with bob, carol was deleted by root.");
  assert.equal(deletedNote(room("dm-z", { kind: "dm", name: "mia" }), "mia", "root"), "This conversation was deleted by root.");
  assert.equal(deletedNote(room("design"), "mia", null), "#design was deleted.");
});

test("a renamed or archived room: this room's info changes, an archived one leaves the sidebar", () => {
  const { store } = makeStore();
  store.receive({ type: "room", room: { slug: "general", name: "everyone", topic: "hi", kind: "channel", private: false, archived: false }, seq: 11 });
  assert.equal(store.roomInfo.name, "everyone");
  assert.equal(store.rooms.get("general").name, "everyone");
  store.receive({ type: "room", room: { slug: "design", name: "design", kind: "channel", private: false, archived: true }, seq: 12 });
  assert.equal(store.rooms.has("design"), false);
});

test("typing indicators run out; the author's message ends theirs; presence keeps known states", () => {
  let now = 1000;
  const store = new Store({ room: "general", user: "mia", rooms: [] }, { now: () => now });
  store.receive({ type: "typing", room: "general", user: "bob", seq: null });
  store.receive({ type: "typing", room: "general", user: "mia", seq: null });
  assert.deepEqual([...store.typers.keys()], ["bob"]);
  now += 6000;
  assert.equal(store.pruneTypers(), Infinity);
  store.receive({ type: "typing", room: "general", user: "bob", seq: null });
  store.receive({ ...message(20), seq: 11 });
  assert.equal(store.typers.size, 0);
  store.receive({ type: "presence", users: { bob: "away", carol: "sleeping" }, seq: null });
  assert.deepEqual([...store.presence], [["bob", "away"]]);
});
