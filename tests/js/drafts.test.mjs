// Drafts kept per person and room: node --test tests/js/*.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";

import { createDrafts } from "../../static/js/drafts.js";

function memoryStorage() {
  const data = new Map();
  return {
    data,
    getItem: (key) => (data.has(key) ? data.get(key) : null),
    setItem: (key, value) => data.set(key, String(value)),
    removeItem: (key) => data.delete(key),
  };
}

test("a draft is kept per person and room", () => {
  const storage = memoryStorage();
  const mia = createDrafts(storage, "mia");
  mia.save("general", "half a thought");
  mia.save("design", "another");
  assert.equal(mia.load("general").text, "half a thought");
  assert.equal(mia.load("design").text, "another");
  assert.equal(createDrafts(storage, "bob").load("general"), null, "another person on this browser");
  mia.save("general", "   ");
  assert.equal(mia.load("general"), null, "a blank box is no draft");
});

test("a sent draft goes only when its own message is stored", () => {
  const storage = memoryStorage();
  const drafts = createDrafts(storage, "mia");
  drafts.save("general", "hello", "c-1");
  assert.equal(drafts.settle("general", { user: "mia", nonce: "c-0" }), false);
  assert.equal(drafts.settle("general", { user: "bob", nonce: "c-1" }), false);
  assert.equal(drafts.load("general").text, "hello", "kept until acknowledged: a reload brings it back");
  assert.equal(drafts.settle("general", { user: "mia", nonce: "c-1" }), true);
  assert.equal(drafts.load("general"), null);

  drafts.save("general", "sent", "c-2");
  drafts.save("general", "typed after sending");
  assert.equal(drafts.settle("general", { user: "mia", nonce: "c-2" }), false, "a newer draft stays");
  assert.equal(drafts.load("general").text, "typed after sending");
});

test("storage that is missing, full or unreadable loses the draft, not the page", () => {
  assert.equal(createDrafts(null, "mia").load("general"), null);
  const broken = {
    getItem: () => "{not json",
    setItem: () => {
      throw new Error("QuotaExceededError");
    },
    removeItem: () => {},
  };
  const drafts = createDrafts(broken, "mia");
  drafts.save("general", "text");
  assert.equal(drafts.load("general"), null);
});
