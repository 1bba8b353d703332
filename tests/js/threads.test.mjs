// Threads on the room page, without a browser: node --test tests/js/*.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";

import { Store } from "../../static/js/store.js";
import { compareThreads, isThreadOnly } from "../../static/js/threadstore.js";

function room(slug, extra = {}) {
  return { slug, name: slug, topic: "", kind: "channel", private: false, archived: false, unread: 0, mentions: 0, last_read_id: 0, thread_unread: 0, thread_mentions: 0, ...extra };
}

function message(id, extra = {}) {
  return {
    type: "message",
    room: "general",
    id,
    user: "bob",
    body: "m" + id,
    html: "<p>m" + id + "</p>",
    created: "2026-01-01T00:00:00.000000Z",
    nonce: null,
    edited: null,
    mentions: [],
    reactions: {},
    attachments: [],
    thread: null,
    in_channel: false,
    ...extra,
  };
}

function root(id, extra = {}) {
  return message(id, { replies: 0, last_reply: null, repliers: [], ...extra });
}

function reply(id, rootId, extra = {}) {
  return message(id, { thread: rootId, ...extra });
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
      rooms: [room("general"), room("design")],
      messages: [],
      ...config,
    },
    { visible: () => visible, now: () => 1000 }
  );
  const seen = [];
  [
    "message",
    "message-edited",
    "message-removed",
    "counts",
    "thread-message",
    "thread-edited",
    "thread-removed",
    "thread-reaction",
    "thread-summary",
    "thread-counts",
    "threads-list",
  ].forEach((name) => store.on(name, (detail) => seen.push([name, detail])));
  return { store, seen };
}

const named = (seen, name) => seen.filter(([n]) => n === name).map(([, d]) => d);

test("a reply only in its thread is left out of the room's list, one sent also to the room is in it", () => {
  assert.equal(isThreadOnly(reply(2, 1)), true);
  assert.equal(isThreadOnly(reply(2, 1, { in_channel: true })), false);
  assert.equal(isThreadOnly(root(1)), false);
  const { store } = makeStore({ messages: [root(1, { replies: 2 }), reply(2, 1), reply(3, 1, { in_channel: true }), root(4)] });
  assert.deepEqual(store.messageList().map((m) => m.id), [1, 3, 4]);

  store.receive({ ...reply(5, 1), seq: 11 });
  store.receive({ ...reply(6, 1, { in_channel: true }), seq: 12 });
  assert.deepEqual(store.messageList().map((m) => m.id), [1, 3, 4, 6]);
});

test("paging goes on below a page made only of thread replies", () => {
  const { store } = makeStore({ messages: [root(50), root(51)] });
  const added = store.addOlder([reply(40, 10), reply(41, 10), reply(42, 10)]);
  assert.deepEqual(added, []);
  assert.equal(store.oldestId, 40, "the next page is asked for before the replies already seen");
  assert.deepEqual(store.addOlder([root(10), reply(30, 10)]).map((m) => m.id), [10]);
  assert.equal(store.oldestId, 10);
});

test("thread-only replies do not count as the room's unread; replies sent also to the room do", () => {
  const { store } = makeStore();
  store.receive({ ...reply(20, 5, { room: "design" }), seq: 11 });
  assert.equal(store.rooms.get("design").unread, 0);
  store.receive({ ...reply(21, 5, { room: "design", in_channel: true }), seq: 12 });
  assert.equal(store.rooms.get("design").unread, 1);
});

test("the open thread holds its root and replies, from history and live, each once", () => {
  const { store, seen } = makeStore({ visible: true, messages: [root(1, { replies: 1 })] });
  store.threads.openThread(1);
  store.receive({ ...reply(3, 1), seq: 11 }); // arrives while the history is on its way
  const added = store.threads.load(1, { root: root(1, { replies: 2 }), messages: [reply(2, 1), reply(3, 1)] });
  assert.deepEqual(added.map((m) => m.id), [2], "the live one is not added twice");
  assert.deepEqual(store.threads.replies().map((m) => m.id), [2, 3]);
  assert.equal(store.threads.rootMessage().replies, 2);
  store.receive({ ...reply(3, 1), seq: 11 });
  assert.deepEqual(named(seen, "thread-message").map((d) => d.isNew), [true, false]);
  store.receive({ ...reply(9, 7), seq: 12 });
  assert.deepEqual(store.threads.replies().map((m) => m.id), [2, 3], "another thread's reply stays out");
  assert.equal(store.threads.newestReplyId(), 3);
  assert.equal(store.threads.open.complete, true, "a short page: nothing older to load");
});

test("edits, reactions and deletions reach replies in the open thread", () => {
  const { store, seen } = makeStore({ messages: [root(1, { replies: 1 })] });
  store.threads.openThread(1);
  store.threads.load(1, { root: root(1, { replies: 1 }), messages: [reply(2, 1)] });
  store.receive({ type: "message_edited", room: "general", id: 2, body: "new", html: "<p>new</p>", edited: "2026-01-01T00:01:00Z", mentions: [], seq: 11 });
  assert.equal(store.threads.get(2).body, "new");
  assert.equal(named(seen, "message-edited").length, 0, "the room's list does not hold it");
  store.receive({ type: "reaction", room: "general", id: 2, emoji: "🎉", users: ["bob"], seq: 12 });
  assert.deepEqual(store.threads.get(2).reactions, { "🎉": ["bob"] });
  store.receive({ type: "reaction", room: "general", id: 1, emoji: "👍", users: ["mia"], seq: 13 });
  assert.deepEqual(store.threads.rootMessage().reactions, { "👍": ["mia"] });
  assert.deepEqual(store.messages.get(1).reactions, { "👍": ["mia"] }, "the root in the room too");
  store.receive({ type: "message_deleted", room: "general", id: 2, seq: 14 });
  assert.equal(store.threads.get(2), undefined);
  assert.deepEqual(named(seen, "thread-removed"), [{ id: 2 }]);
});

test("a deleted root with replies stays as a placeholder; it goes once its last reply does", () => {
  const { store, seen } = makeStore({ messages: [root(1, { replies: 1 }), root(4)] });
  store.threads.openThread(1);
  store.threads.load(1, { root: root(1, { replies: 1 }), messages: [reply(2, 1)] });
  store.receive({ type: "message_deleted", room: "general", id: 1, seq: 11 });
  assert.equal(store.messages.get(1).deleted, true);
  assert.equal(store.messages.get(1).body, "");
  assert.equal(store.threads.rootMessage().deleted, true);
  assert.equal(named(seen, "message-removed").length, 0);
  store.receive({ type: "message_deleted", room: "general", id: 4, seq: 12 });
  assert.equal(store.messages.has(4), false, "a root without replies just goes");
  store.receive({ type: "message_deleted", room: "general", id: 2, seq: 13 });
  store.receive({ type: "thread", room: "general", root: 1, replies: 0, last_reply: null, repliers: [], seq: 14 });
  assert.equal(store.messages.has(1), false);
});

test("a thread event brings a root's summary up to date, in the room and in the open thread", () => {
  const { store, seen } = makeStore({ messages: [root(1)] });
  store.threads.openThread(1);
  store.threads.load(1, { root: root(1), messages: [] });
  const summary = { replies: 3, last_reply: "2026-01-01T10:00:00Z", repliers: ["bob", "zoe"] };
  store.receive({ type: "thread", room: "general", root: 1, ...summary, seq: 11 });
  store.receive({ type: "thread", room: "general", root: 1, ...summary, seq: 11 });
  assert.equal(store.messages.get(1).replies, 3);
  assert.deepEqual(store.messages.get(1).repliers, ["bob", "zoe"]);
  assert.equal(store.threads.rootMessage().last_reply, "2026-01-01T10:00:00Z");
  assert.deepEqual(named(seen, "thread-summary")[0], { root: 1, changes: summary });
});

test("our own reply is acknowledged by its message: out of the outbox, into the thread, not shown twice", () => {
  const { store, seen } = makeStore({ messages: [root(1)] });
  store.threads.openThread(1);
  store.threads.load(1, { root: root(1), messages: [] });
  const entry = store.queue("hi", "c-1", "2026-01-01T00:00:00Z", [], { root: 1, inChannel: false });
  assert.equal(entry.thread, 1);
  assert.equal(entry.inChannel, false);
  assert.equal(store.outboxNext().entry, entry);
  store.outboxSent("c-1");
  store.receive({ ...reply(5, 1, { user: "mia", nonce: "c-1", body: "hi" }), seq: 11 });
  assert.equal(store.outbox.size, 0);
  const [shown] = named(seen, "thread-message");
  assert.equal(shown.acked, entry);
  assert.equal(shown.isNew, false);
  const [event] = named(seen, "message");
  assert.equal(event.acked, entry, "the composer hears of it (timer stopped, next send goes)");
  assert.equal(event.here, false);
});

test("a reply sent also to the room from the thread is acknowledged once and shows in both", () => {
  const { store, seen } = makeStore({ messages: [root(1)] });
  store.threads.openThread(1);
  const entry = store.queue("both", "c-2", "2026-01-01T00:00:00Z", [], { root: 1, inChannel: true });
  store.receive({ ...reply(6, 1, { user: "mia", nonce: "c-2", in_channel: true }), seq: 11 });
  assert.deepEqual(store.messageList().map((m) => m.id), [1, 6]);
  assert.equal(named(seen, "thread-message")[0].acked, entry);
  assert.equal(named(seen, "message")[0].acked, entry);
});

test("thread_read: a followed thread's counts, and the room's thread sums move by the difference", () => {
  const { store, seen } = makeStore({ rooms: [room("general"), room("design", { thread_unread: 4, thread_mentions: 1 })] });
  const event = { type: "thread_read", room: "design", root: 7, following: true, last_read_id: 10, unread: 2, mentions: 1 };
  store.receive({ ...event, seq: 11 });
  assert.equal(store.rooms.get("design").thread_unread, 6);
  assert.equal(store.rooms.get("design").thread_mentions, 2);
  store.receive({ ...event, seq: 11 });
  assert.equal(store.rooms.get("design").thread_unread, 6, "the same counts again change nothing");
  store.receive({ ...event, last_read_id: 12, unread: 0, mentions: 0, seq: 12 });
  assert.equal(store.rooms.get("design").thread_unread, 4);
  assert.equal(store.rooms.get("design").thread_mentions, 1);
  assert.equal(store.threads.counts(7).last_read_id, 12);
  store.receive({ ...event, unread: 3, mentions: 0, seq: 13 });
  store.receive({ ...event, following: false, unread: 3, mentions: 0, seq: 14 });
  assert.equal(store.rooms.get("design").thread_unread, 4, "an unfollowed thread counts no more");
  assert.ok(named(seen, "counts").length >= 3);
});

test("resumed: the server's sums and its unread threads win; others have nothing unread", () => {
  const { store } = makeStore();
  store.receive({ type: "thread_read", room: "general", root: 1, following: true, last_read_id: 1, unread: 5, mentions: 2, seq: 11 });
  store.receive({ type: "thread_read", room: "design", root: 2, following: true, last_read_id: 1, unread: 1, mentions: 0, seq: 12 });
  store.receive({
    type: "resumed",
    rooms: [
      { room: "general", unread: 0, mentions: 0, last_read_id: 0, thread_unread: 0, thread_mentions: 0 },
      { room: "design", unread: 0, mentions: 0, last_read_id: 0, thread_unread: 3, thread_mentions: 0 },
    ],
    threads: [{ room: "design", root: 2, following: true, last_read_id: 1, unread: 3, mentions: 0 }],
    seq: null,
  });
  assert.equal(store.threads.counts(1).unread, 0);
  assert.equal(store.threads.counts(2).unread, 3);
  assert.equal(store.rooms.get("design").thread_unread, 3);
  assert.equal(store.rooms.get("general").thread_unread, 0);
  assert.deepEqual(store.threads.totals(), { unread: 3, mentions: 0 });
});

test("the Threads view: followed threads, unread first, then by last reply; live counts reorder it", () => {
  const { store } = makeStore();
  const item = (id, last, unread, extra = {}) => ({
    room: "general",
    root: root(id, { replies: 1, last_reply: last }),
    following: true,
    last_read_id: 0,
    unread,
    mentions: 0,
    ...extra,
  });
  store.threads.applyList({
    threads: [item(1, "2026-01-01T10:00:00Z", 0), item(2, "2026-01-01T09:00:00Z", 2), item(3, "2026-01-01T11:00:00Z", 0)],
    next: null,
  });
  assert.deepEqual(store.threads.list().map((i) => i.rootId), [2, 3, 1]);
  store.receive({ type: "thread_read", room: "general", root: 1, following: true, last_read_id: 0, unread: 1, mentions: 1, seq: 11 });
  assert.deepEqual(store.threads.list().map((i) => i.rootId), [1, 2, 3]);
  store.receive({ type: "thread", room: "general", root: 3, replies: 2, last_reply: "2026-01-01T12:00:00Z", repliers: ["bob"], seq: 12 });
  store.receive({ type: "thread_read", room: "general", root: 2, following: false, last_read_id: 0, unread: 0, mentions: 0, seq: 13 });
  assert.deepEqual(store.threads.list().map((i) => i.rootId), [1, 3], "unfollowed: no longer listed");
  store.receive({ type: "thread_read", room: "design", root: 9, following: true, last_read_id: 0, unread: 1, mentions: 0, seq: 14 });
  assert.equal(store.threads.missingRoots(), 1, "a newly followed thread: the list is loaded again");
  assert.ok(compareThreads({ unread: 1, root: null, rootId: 1 }, { unread: 0, root: null, rootId: 2 }) < 0);
});

test("a reply only in its thread that mentions the person is worth a notification while they look away", () => {
  const { store, seen } = makeStore({ visible: false });
  store.receive({ ...reply(30, 5, { mentions: ["mia"] }), seq: 11 });
  store.receive({ ...reply(31, 5, { room: "design", mentions: [] }), seq: 12 });
  store.receive({ ...reply(32, 5, { user: "mia", mentions: ["mia"] }), seq: 13 });
  assert.deepEqual(named(seen, "message").map((d) => d.unseen), [true, false, false]);
  assert.equal(store.rooms.get("general").unread, 0, "still not the room's unread");
});

test("a thread page's own state tells whether it is followed, without moving the room's sums", () => {
  const { store } = makeStore({ rooms: [room("general", { thread_unread: 2, thread_mentions: 1 }), room("design")] });
  assert.equal(store.threads.counts(7), undefined);
  store.threads.knowState({ room: "general", root: 7, following: true, last_read_id: 3, unread: 2, mentions: 1 });
  assert.equal(store.threads.counts(7).following, true);
  assert.equal(store.rooms.get("general").thread_unread, 2, "the server's sums count it already");
  // Its later events move the sums by the difference, from what the page knew.
  store.receive({ type: "thread_read", room: "general", root: 7, following: true, last_read_id: 5, unread: 0, mentions: 0, seq: 11 });
  assert.equal(store.rooms.get("general").thread_unread, 0);
  assert.equal(store.rooms.get("general").thread_mentions, 0);
  // A thread the page already knows keeps what its events said.
  store.threads.knowState({ room: "general", root: 7, following: false, last_read_id: 0, unread: 9, mentions: 9 });
  assert.equal(store.threads.counts(7).following, true);
  // Not followed: nothing counted.
  store.threads.knowState({ room: "design", root: 8, following: false, last_read_id: 0, unread: 4, mentions: 0 });
  assert.equal(store.threads.counts(8).following, false);
  assert.equal(store.threads.counts(8).unread, 0);
});
