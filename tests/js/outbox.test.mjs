// The outbox: sends queued in the order typed, paced under the server's send
// bucket, kept in order when one is refused. node --test tests/js/*.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";

import { Store } from "../../static/js/store.js";

function makeStore({ rate = 10, burst = 3 } = {}) {
  const clock = { now: 0 };
  const store = new Store(
    {
      room: "general",
      roomName: "general",
      roomKind: "channel",
      user: "mia",
      seq: 1,
      isMember: true,
      rooms: [],
      messages: [],
      sendRate: rate,
      sendBurst: burst,
    },
    { now: () => clock.now }
  );
  return { store, clock };
}

let nonces = 0;
function type(store, body) {
  nonces += 1;
  return store.queue(body, "c-" + nonces, "t");
}

function stored(store, entry, id) {
  store.receive({ type: "message", room: "general", id, user: "mia", body: entry.body, nonce: entry.nonce, seq: null });
}

/* Send what the outbox allows now, and let the server store it at once; returns the bodies sent. */
function drain(store, firstId = 100) {
  const sent = [];
  let id = firstId;
  for (let next = store.outboxNext(); next && next.entry; next = store.outboxNext()) {
    store.outboxSent(next.entry.nonce);
    sent.push(next.entry.body);
    stored(store, next.entry, id++);
  }
  return sent;
}

test("one send at a time, in the order typed: the next goes once the one before is stored", () => {
  const { store } = makeStore();
  const [a, b] = [type(store, "a"), type(store, "b")];
  assert.equal(store.outboxNext().entry, a);
  store.outboxSent(a.nonce);
  assert.equal(store.outboxNext(), null, "b waits for a's reply");
  stored(store, a, 1);
  assert.equal(store.outboxNext().entry, b);
});

test("a burst is paced under the server's bucket instead of being refused", () => {
  const { store, clock } = makeStore({ rate: 10, burst: 3 });
  const lines = Array.from({ length: 7 }, (_, i) => type(store, "line " + i));
  assert.deepEqual(drain(store), ["line 0", "line 1", "line 2"], "the burst goes at once");
  const next = store.outboxNext();
  assert.equal(next.entry, null);
  assert.equal(next.wait, 100, "then one every 1/rate seconds");
  clock.now += 99;
  assert.equal(store.outboxNext().entry, null);
  clock.now += 1;
  assert.deepEqual(drain(store, 200), ["line 3"]);
  clock.now += 250;
  assert.deepEqual(drain(store, 300), ["line 4", "line 5"]);
  clock.now += 10_000; // refilled only up to the burst
  assert.deepEqual(drain(store, 400), ["line 6"]);
  assert.equal(store.outbox.size, 0);
  assert.equal(lines.length, 7);
  type(store, "after a rest");
  type(store, "and another");
  assert.deepEqual(drain(store, 500), ["after a rest", "and another"]);
});

test("the time a send is on its way does not refill the estimate: it never runs ahead of the server", () => {
  const { store, clock } = makeStore({ rate: 10, burst: 1 });
  const [a, b] = [type(store, "a"), type(store, "b")];
  store.outboxSent(a.nonce);
  clock.now += 500; // a slow answer: the server may have taken a's token just now
  stored(store, a, 1);
  assert.deepEqual(store.outboxNext(), { entry: null, wait: 100 }, "b waits a full interval after a's answer");
  clock.now += 100;
  assert.equal(store.outboxNext().entry, b);
});

test("a refusal for the rate fails that send and every one typed after it, in place", () => {
  const { store } = makeStore({ rate: 10, burst: 20 });
  const [a, b, c] = [type(store, "a"), type(store, "b"), type(store, "c")];
  store.outboxSent(a.nonce);
  store.receive({ type: "error", code: "rate_limited", detail: "You are sending too fast.", nonce: a.nonce, seq: null });
  assert.deepEqual(
    [...store.outbox.values()].map((e) => [e.body, e.state]),
    [["a", "failed"], ["b", "failed"], ["c", "failed"]],
    "nothing typed after a failed send goes before it"
  );
  assert.equal(a.reason, "You are sending too fast.");
  assert.equal(b.reason, "waiting for the message above.");
  assert.equal(store.outboxNext(), null, "failed sends wait for a retry");
  assert.deepEqual(store.failed(), [a, b, c]);
  assert.equal(c.state, "failed");
});

test("Retry all sends the failed ones again in the order typed, paced from an empty bucket", () => {
  const { store, clock } = makeStore({ rate: 10, burst: 20 });
  const [a, b, c] = [type(store, "a"), type(store, "b"), type(store, "c")];
  store.outboxSent(a.nonce);
  store.receive({ type: "error", code: "rate_limited", detail: "Too fast.", nonce: a.nonce, seq: null });
  assert.equal(store.retryAll(), 3);
  assert.deepEqual(store.failed(), []);
  assert.equal(store.outboxNext().entry, null, "the server said the bucket is empty");
  assert.equal(store.outboxNext().wait, 100);
  const sent = [];
  for (let i = 0; i < 3; i++) {
    clock.now += 100;
    sent.push(...drain(store, 10 + i));
  }
  assert.deepEqual(sent, ["a", "b", "c"]);
  assert.equal(store.outbox.size, 0);
  assert.ok([a, b, c].every((e) => e.state === "pending"));
});

test("a send that gets no reply fails with those behind it; one already stored is not touched", () => {
  const { store } = makeStore();
  const [a, b, c] = [type(store, "a"), type(store, "b"), type(store, "c")];
  drain(store, 1); // a, b and c each stored in turn
  assert.equal(store.outbox.size, 0);
  const [d, e] = [type(store, "d"), type(store, "e")];
  store.outboxSent(d.nonce);
  store.outboxFail(d.nonce, "No reply from the server.");
  assert.deepEqual([d.state, e.state], ["failed", "failed"]);
  // The server did store it after all: its message settles it.
  stored(store, d, 9);
  assert.deepEqual(store.failed(), [e]);
  assert.equal([a, b, c].length, 3);
});

test("a dropped socket sends the one in flight again first, with its nonce", () => {
  const { store } = makeStore();
  const [a, b] = [type(store, "a"), type(store, "b")];
  store.outboxSent(a.nonce);
  store.outboxSuspend();
  assert.equal(store.outboxNext().entry, a);
  assert.deepEqual(store.unsent(), [a, b]);
});

test("without a known rate the outbox still goes one at a time, unpaced", () => {
  const { store } = makeStore({ rate: 0 });
  ["a", "b", "c", "d"].forEach((body) => type(store, body));
  assert.deepEqual(drain(store), ["a", "b", "c", "d"]);
});
