// Files in the composer: the upload queue, what a message may be sent with,
// and the words shown for files. node --test tests/js/*.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";

import { Store } from "../../static/js/store.js";
import { fileKind, formatSize, isInlineImage, MAX_FILES, UploadQueue, uploadErrorText } from "../../static/js/uploads.js";

const file = (name, size = 100) => ({ name, size });
const upload = (id, name) => ({ id, name, size: 100, content_type: "application/pdf", url: "/files/" + id + "/k/" + name });

test("a message waits for its uploads and goes with the finished ones, in the order added", () => {
  const queue = new UploadQueue();
  const { added } = queue.add([file("a.pdf"), file("b.pdf")]);
  assert.equal(queue.sendState(""), "wait");
  queue.done(added[1].key, upload(2, "b.pdf"));
  assert.equal(queue.sendState("hello"), "wait");
  queue.done(added[0].key, upload(1, "a.pdf"));
  assert.equal(queue.sendState(""), "ready", "files without text may be sent");
  assert.deepEqual(queue.take().map((u) => u.id), [1, 2]);
  assert.equal(queue.items.length, 0);
  assert.equal(queue.sendState("  "), "empty");
});

test("a failed upload keeps its reason, is left out of the message and frees its place", () => {
  const queue = new UploadQueue(2);
  const { added } = queue.add([file("big.iso"), file("ok.pdf")]);
  queue.fail(added[0].key, "Too large to upload.");
  queue.done(added[1].key, upload(7, "ok.pdf"));
  assert.equal(queue.get(added[0].key).error, "Too large to upload.");
  assert.equal(queue.sendState(""), "ready");
  assert.deepEqual(queue.uploads().map((u) => u.id), [7]);
  assert.equal(queue.add([file("third.txt")]).refused, null, "the failed one does not count toward the limit");
});

test("more files than a message may carry are refused up front, none added", () => {
  const queue = new UploadQueue();
  assert.equal(MAX_FILES, 10);
  queue.add(Array.from({ length: 8 }, (_, i) => file("f" + i)));
  const { added, refused } = queue.add([file("x"), file("y"), file("z")]);
  assert.deepEqual(added, []);
  assert.match(refused, /At most 10 files per message: 2 more can be added/);
  assert.equal(queue.items.length, 8);
  queue.add([file("x"), file("y")]);
  assert.match(queue.add([file("z")]).refused, /remove one/);
});

test("removing a file while it uploads takes it out; progress and late answers for it change nothing", () => {
  const queue = new UploadQueue();
  const { added } = queue.add([file("a.png", 1000)]);
  queue.progress(added[0].key, 400);
  assert.equal(queue.get(added[0].key).loaded, 400);
  const removed = queue.remove(added[0].key);
  assert.equal(removed.state, "uploading", "the caller aborts its request");
  assert.equal(queue.done(added[0].key, upload(1, "a.png")), null);
  assert.equal(queue.sendState(""), "empty");
});

test("sizes read as people write them", () => {
  assert.equal(formatSize(0), "0 bytes");
  assert.equal(formatSize(1), "1 byte");
  assert.equal(formatSize(1536), "1.5 KB");
  assert.equal(formatSize(25 * 1024 * 1024), "25 MB");
  assert.equal(formatSize(3.25 * 1024 ** 3), "3.3 GB");
});

test("cards get an icon by the sniffed type", () => {
  assert.equal(fileKind("application/pdf"), "pdf");
  assert.equal(fileKind("application/zip"), "archive");
  assert.equal(fileKind("text/html"), "text");
  assert.equal(fileKind("audio/mpeg"), "audio");
  assert.equal(fileKind("video/mp4"), "video");
  assert.equal(fileKind("image/svg+xml"), "image");
  assert.equal(fileKind("application/octet-stream"), "other");
});

test("only raster images with a thumbnail are shown inline; SVG never", () => {
  const thumbnail = { url: "/thumbs/1/k", width: 48, height: 30 };
  assert.equal(isInlineImage({ content_type: "image/png", thumbnail }), true);
  assert.equal(isInlineImage({ content_type: "image/svg+xml", thumbnail }), false);
  assert.equal(isInlineImage({ content_type: "image/png", thumbnail: null }), false);
  assert.equal(isInlineImage({ content_type: "image/gif", thumbnail: { url: "/t", width: 0, height: 3 } }), false);
});

test("refusals are said in words", () => {
  assert.equal(uploadErrorText(413, "too_large", "x"), "Too large to upload.");
  assert.equal(uploadErrorText(413, "quota_exceeded", "x"), "Your storage for files is full.");
  assert.match(uploadErrorText(429, "rate_limited", ""), /Too many uploads/);
  assert.equal(uploadErrorText(0, "network", ""), "Could not reach the server.");
  assert.equal(uploadErrorText(400, "invalid", "The file is empty."), "The file is empty.");
});

function makeStore() {
  return new Store({ room: "general", roomName: "general", roomKind: "channel", user: "mia", seq: 1, isMember: true, rooms: [], messages: [] });
}

test("a queued message keeps its attachments through a failure and a retry, with the same nonce", () => {
  const store = makeStore();
  const files = [upload(3, "a.pdf")];
  store.queue("", "c-1", "t", files);
  store.outboxSent("c-1");
  store.outboxFail("c-1", "No reply from the server.");
  store.retryAll();
  const { entry } = store.outboxNext();
  assert.equal(entry.nonce, "c-1");
  assert.deepEqual(entry.attachments.map((a) => a.id), [3]);
});

test("a file an admin removed leaves the message's other attachments", () => {
  const store = makeStore();
  store.receive({ type: "message", room: "general", id: 5, user: "bo", body: "", seq: 2, attachments: [upload(1, "a.pdf"), upload(2, "b.pdf")] });
  const seen = [];
  store.on("message-edited", ({ changes }) => seen.push(changes.attachments.map((a) => a.id)));
  store.receive({ type: "attachment_removed", room: "general", message: 5, id: 1, seq: 3 });
  assert.deepEqual(seen, [[2]]);
  assert.deepEqual(store.messages.get(5).attachments.map((a) => a.id), [2]);
});
