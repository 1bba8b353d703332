// Drafts kept on the server and in this browser: node --test tests/js/*.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";

import { createDrafts } from "../../static/js/drafts.js";

function memoryStorage() {
  const data = new Map();
  return {
    data,
    get length() {
      return data.size;
    },
    key: (i) => Array.from(data.keys())[i] ?? null,
    getItem: (key) => (data.has(key) ? data.get(key) : null),
    setItem: (key, value) => data.set(key, String(value)),
    removeItem: (key) => data.delete(key),
  };
}

/* The server's side of PUT /api/drafts/: versions, conflicts, and events to every device. */
function fakeServer() {
  const server = { drafts: new Map(), devices: [], online: true, requests: 0 };
  server.put = async (body) => {
    server.requests += 1;
    if (!server.online) {
      throw new Error("offline");
    }
    const key = body.room + "#" + (body.thread || "");
    const stored = server.drafts.get(key) || { room: body.room, thread: body.thread || null, body: "", version: 0, updated: null };
    if (body.version !== stored.version) {
      return { status: 409, data: { error: "conflict", draft: stored } };
    }
    const draft = { room: body.room, thread: body.thread || null, body: body.body.trim() ? body.body : "", version: stored.version + 1, updated: new Date().toISOString() };
    server.drafts.set(key, draft);
    server.devices.forEach((device) => device.inbox.push(draft));
    return { status: 200, data: { draft } };
  };
  /* A message stored: its author's draft is cleared, and every device told. */
  server.sendClears = (room, thread = null) => {
    const key = room + "#" + (thread || "");
    const stored = server.drafts.get(key);
    if (stored && stored.body) {
      const draft = { ...stored, body: "", version: stored.version + 1 };
      server.drafts.set(key, draft);
      server.devices.forEach((device) => device.inbox.push(draft));
    }
  };
  server.list = () => Array.from(server.drafts.values()).filter((d) => d.body);
  return server;
}

/* A tab or device: its drafts, its timers run by hand, the events it has been sent. */
function device(server, { storage = memoryStorage(), typing = () => false } = {}) {
  const timers = new Map();
  let next = 1;
  const dev = {
    storage,
    inbox: [],
    shown: [],
    drafts: createDrafts({
      storage,
      user: "mia",
      request: (body) => server.put(body),
      typing: (room, thread) => typing(room, thread),
      setTimer: (fn) => {
        const id = next++;
        timers.set(id, fn);
        return id;
      },
      clearTimer: (id) => timers.delete(id),
    }),
    /* Run the timers due (the debounce), and let the requests answer. */
    async tick() {
      for (let round = 0; round < 5; round += 1) {
        const due = Array.from(timers.values());
        timers.clear();
        due.forEach((fn) => fn());
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
    },
    /* Deliver the events the server sent this device. */
    deliver() {
      dev.inbox.splice(0).forEach((draft) => dev.drafts.receive(draft));
    },
  };
  dev.drafts.on((entry, reason) => dev.shown.push([reason, entry.text]));
  server.devices.push(dev);
  return dev;
}

test("what is typed reaches the server after a pause, and every other tab", async () => {
  const server = fakeServer();
  const laptop = device(server);
  const other = device(server);
  laptop.drafts.start(server.list());
  other.drafts.start(server.list());

  laptop.drafts.edit("general", null, "h");
  laptop.drafts.edit("general", null, "half a thought");
  assert.equal(server.requests, 0, "debounced: nothing sent while typing");
  await laptop.tick();
  assert.equal(server.requests, 1, "one save for the pause");
  assert.equal(server.drafts.get("general#").body, "half a thought");

  laptop.deliver();
  other.deliver();
  assert.equal(other.drafts.load("general"), "half a thought");
  assert.deepEqual(other.shown.at(-1), ["replaced", "half a thought"]);
  assert.equal(laptop.drafts.load("general"), "half a thought");
  assert.ok(!laptop.shown.some(([reason]) => reason === "replaced"), "its own echo does not touch the box");
  await laptop.tick();
  assert.equal(server.requests, 1, "an echo is not saved again");
});

test("an offline device with an older version shows both texts instead of overwriting", async () => {
  const server = fakeServer();
  const laptop = device(server);
  const phone = device(server);
  laptop.drafts.start();
  phone.drafts.start();
  laptop.drafts.edit("general", null, "ship friday");
  await laptop.tick();
  phone.deliver();
  assert.equal(phone.drafts.load("general"), "ship friday");

  server.online = false; // the phone goes offline and edits
  phone.drafts.edit("general", null, "ship monday");
  await phone.tick();
  assert.equal(server.drafts.get("general#").body, "ship friday");
  assert.equal(phone.drafts.load("general"), "ship monday", "kept on the phone");

  server.online = true; // meanwhile the laptop moved on
  laptop.drafts.edit("general", null, "ship friday, after QA");
  await laptop.tick();
  await phone.drafts.online();
  await phone.tick();

  assert.equal(server.drafts.get("general#").body, "ship friday, after QA", "the newer draft stays");
  assert.deepEqual(phone.drafts.conflict("general"), { mine: "ship monday", theirs: "ship friday, after QA" });
  assert.equal(phone.drafts.load("general"), "ship monday", "the box still has the phone's text");

  phone.drafts.resolve("general", null, "mine");
  await phone.tick();
  assert.equal(server.drafts.get("general#").body, "ship monday");
  assert.equal(phone.drafts.conflict("general"), null);
  laptop.deliver();
  assert.equal(laptop.drafts.load("general"), "ship monday");
});

test("choosing the other device's text puts it in the box", async () => {
  const server = fakeServer();
  const laptop = device(server);
  const phone = device(server);
  laptop.drafts.edit("general", null, "theirs");
  await laptop.tick();
  phone.drafts.edit("general", null, "mine, typed before hearing of theirs");
  phone.deliver(); // typed and not saved: a conflict
  assert.ok(phone.drafts.conflict("general"));
  await phone.tick();
  assert.equal(server.drafts.get("general#").body, "theirs", "nothing saved while the person chooses");
  phone.drafts.resolve("general", null, "theirs");
  assert.equal(phone.drafts.load("general"), "theirs");
  assert.deepEqual(phone.shown.at(-1), ["replaced", "theirs"]);
});

test("a change from elsewhere does not replace the text under someone typing", async () => {
  const server = fakeServer();
  let typing = false;
  const laptop = device(server);
  const phone = device(server, { typing: () => typing });
  phone.drafts.edit("general", null, "saved text");
  await phone.tick();
  laptop.deliver();
  phone.deliver();
  laptop.drafts.edit("general", null, "the laptop's version");
  await laptop.tick();
  typing = true;
  phone.deliver();
  assert.equal(phone.drafts.load("general"), "saved text");
  assert.deepEqual(phone.drafts.conflict("general"), { mine: "saved text", theirs: "the laptop's version" });
});

test("a sent message clears the draft everywhere and the empty box is not saved over it", async () => {
  const server = fakeServer();
  const laptop = device(server);
  const other = device(server);
  laptop.drafts.edit("general", null, "hello");
  await laptop.tick();
  other.deliver();
  laptop.deliver();

  laptop.drafts.sent("general", null, "hello", "c-1");
  await laptop.tick();
  assert.equal(server.requests, 1, "the server clears it when it stores the message");
  assert.equal(laptop.drafts.list().length, 0);
  server.sendClears("general");
  laptop.drafts.settle("general", null, { user: "mia", nonce: "c-1" });
  laptop.deliver();
  other.deliver();
  await laptop.tick();
  assert.equal(other.drafts.load("general"), "");
  assert.equal(laptop.drafts.load("general"), "");
  assert.equal(server.requests, 1);
  assert.equal(laptop.drafts.conflict("general"), null);
  assert.equal(laptop.storage.data.size, 0, "nothing left in this browser");
});

test("text typed while a message was on its way survives the server's clear", async () => {
  const server = fakeServer();
  const laptop = device(server);
  laptop.drafts.edit("general", null, "first");
  await laptop.tick();
  laptop.deliver();
  laptop.drafts.sent("general", null, "first", "c-1");
  laptop.drafts.edit("general", null, "second");
  await laptop.tick(); // saved on the version it knew
  server.sendClears("general"); // the send is stored after that save
  laptop.drafts.settle("general", null, { user: "mia", nonce: "c-1" }); // its message comes first
  laptop.deliver();
  await laptop.tick();
  assert.equal(laptop.drafts.load("general"), "second");
  assert.equal(laptop.drafts.conflict("general"), null, "a clear is never a conflict");
  assert.equal(server.drafts.get("general#").body, "second", "saved again after the clear");
});

test("a reload before the send was stored keeps the text; after, it does not", () => {
  const storage = memoryStorage();
  const server = fakeServer();
  const tab = device(server, { storage });
  tab.drafts.edit("general", null, "on its way");
  tab.drafts.sent("general", null, "on its way", "c-9");

  const lost = device(server, { storage });
  lost.drafts.start([], new Set());
  assert.equal(lost.drafts.load("general"), "on its way", "never stored: the text comes back");

  tab.drafts.edit("general", null, "x");
  tab.drafts.sent("general", null, "x", "c-10");
  const stored = device(server, { storage });
  stored.drafts.start([], new Set(["c-10"]));
  assert.equal(stored.drafts.load("general"), "");
});

test("a page starts from the server's drafts, and saves what was typed offline", async () => {
  const storage = memoryStorage();
  const server = fakeServer();
  const first = device(server, { storage });
  first.drafts.edit("design", null, "for design");
  await first.tick();
  server.online = false;
  first.drafts.edit("general", null, "typed offline");
  await first.tick();

  server.online = true;
  const next = device(server, { storage });
  next.drafts.start(server.list());
  assert.equal(next.drafts.load("design"), "for design");
  assert.equal(next.drafts.load("general"), "typed offline");
  await next.tick();
  assert.equal(server.drafts.get("general#").body, "typed offline");
  assert.deepEqual(
    next.drafts.list().map((d) => [d.room, d.text]),
    [
      ["general", "typed offline"],
      ["design", "for design"],
    ]
  );
});

test("thread drafts are kept apart from their room's", async () => {
  const server = fakeServer();
  const tab = device(server);
  tab.drafts.edit("general", null, "to the room");
  tab.drafts.edit("general", 42, "to the thread");
  await tab.tick();
  assert.equal(server.drafts.get("general#").body, "to the room");
  assert.deepEqual(server.drafts.get("general#42"), { ...server.drafts.get("general#42"), thread: 42, body: "to the thread" });
  assert.equal(tab.drafts.load("general", 42), "to the thread");
  assert.equal(tab.drafts.load("general"), "to the room");
});

test("old events and repeats change nothing", async () => {
  const server = fakeServer();
  const tab = device(server);
  tab.drafts.receive({ room: "general", thread: null, body: "v2", version: 2 });
  tab.drafts.receive({ room: "general", thread: null, body: "v1", version: 1 });
  tab.drafts.receive({ room: "general", thread: null, body: "v2", version: 2 });
  assert.equal(tab.drafts.load("general"), "v2");
  assert.equal(tab.shown.length, 1);
});

test("drafts kept only in this browser before are moved to the server", async () => {
  const storage = memoryStorage();
  storage.setItem("teamchat:draft:mia:general", JSON.stringify({ text: "from before", sending: null }));
  storage.setItem("teamchat:draft:bob:general", JSON.stringify({ text: "bob's", sending: null }));
  const server = fakeServer();
  const tab = device(server, { storage });
  tab.drafts.start([]);
  await tab.tick();
  assert.equal(server.drafts.get("general#").body, "from before");
  assert.equal(storage.getItem("teamchat:draft:mia:general"), null);
  assert.ok(storage.getItem("teamchat:draft:bob:general"), "another person's is left alone");
});

test("storage that is missing, full or unreadable loses the copy, not the draft", async () => {
  const server = fakeServer();
  const broken = {
    length: 1,
    key: () => "teamchat:draft2:mia:general#",
    getItem: () => "{not json",
    setItem: () => {
      throw new Error("QuotaExceededError");
    },
    removeItem: () => {},
  };
  const tab = device(server, { storage: broken });
  tab.drafts.start([]);
  tab.drafts.edit("general", null, "text");
  await tab.tick();
  assert.equal(server.drafts.get("general#").body, "text");
  const none = device(server, { storage: null });
  none.drafts.start(server.list());
  assert.equal(none.drafts.load("general"), "text");
});

test("a page left while its save was on its way does not conflict with itself", async () => {
  const storage = memoryStorage();
  const server = fakeServer();
  const tab = device(server, { storage });
  tab.drafts.edit("general", null, "saved");
  await tab.tick();
  tab.drafts.edit("general", null, "saved, and on its way");
  const leaving = tab.drafts.flush("general", null); // the page goes before the answer
  tab.drafts.edit("general", null, "saved, and on its way, and more");
  const left = memoryStorage(); // this browser's copy as the page went
  storage.data.forEach((value, key) => left.setItem(key, value));
  await leaving;

  const next = device(server, { storage: left });
  next.drafts.start(server.list());
  assert.equal(next.drafts.conflict("general"), null);
  assert.equal(next.drafts.load("general"), "saved, and on its way, and more");
  await next.tick();
  assert.equal(server.drafts.get("general#").body, "saved, and on its way, and more");
});
