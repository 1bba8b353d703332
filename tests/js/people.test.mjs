// The people directory without a browser: node --test tests/js/*.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";

import { Directory, liveStatus, localTime, shownName } from "../../static/js/people.js";
import { Store } from "../../static/js/store.js";

const alice = {
  username: "alice",
  display_name: "Alice Liddell",
  title: "Design lead",
  time_zone: "Europe/Paris",
  status: { text: "In a meeting", emoji: "📅", expires: "2026-12-04T15:00:00.000000Z" },
  avatar: "/avatars/7/3",
};

test("the display name is shown when there is one, else the username", () => {
  assert.equal(shownName(alice, "alice"), "Alice Liddell");
  assert.equal(shownName({ ...alice, display_name: "  " }, "alice"), "alice");
  assert.equal(shownName(null, "bob"), "bob");
});

test("a status is shown until it ends and not after", () => {
  const before = Date.parse("2026-12-04T14:59:59Z");
  const after = Date.parse("2026-12-04T15:00:00Z");
  assert.deepEqual(liveStatus(alice, before), { text: "In a meeting", emoji: "📅", expires: alice.status.expires });
  assert.equal(liveStatus(alice, after), null);
  assert.equal(liveStatus({ ...alice, status: { text: "Away", emoji: "", expires: null } }, after).text, "Away");
  assert.equal(liveStatus({ ...alice, status: null }, before), null);
});

test("the directory matches usernames and the words of display names", () => {
  const directory = new Directory([alice, { username: "bob", display_name: "Robert Paulson" }]);
  assert.deepEqual(directory.matching("al").map((p) => p.username), ["alice"]);
  assert.deepEqual(directory.matching("pau").map((p) => p.username), ["bob"]);
  assert.deepEqual(directory.matching("zed"), []);
});

test("an avatar address that is not the server's own path is dropped", () => {
  for (const avatar of ["https://evil.example/x.png", "//evil.example/x.png", "/static/x.png"]) {
    const directory = new Directory([{ ...alice, avatar }]);
    assert.equal(directory.get("alice").avatar, null, avatar);
  }
  assert.equal(new Directory([{ ...alice, avatar: "/avatars/7/2" }]).get("alice").avatar, "/avatars/7/2");
});

test("the next status to end is found, past ones and unending ones left out", () => {
  const now = Date.parse("2026-07-01T12:00:00Z");
  const status = (expires) => ({ text: "busy", emoji: "", expires });
  const directory = new Directory([
    { username: "ann", status: status("2026-07-01T11:00:00Z") },
    { username: "ben", status: status("2026-07-01T15:00:00Z") },
    { username: "cat", status: status("2026-07-01T13:00:00Z") },
    { username: "dan", status: status(null) },
    { username: "eve", status: null },
  ]);
  const next = directory.nextExpiry(now);
  assert.equal(next.person.username, "cat");
  assert.equal(next.at, Date.parse("2026-07-01T13:00:00Z"));
  assert.equal(new Directory([{ username: "dan", status: status(null) }]).nextExpiry(now), null);
});

test("local time is given in the person's zone, and nothing for an unknown zone", () => {
  const noon = Date.parse("2026-07-01T12:00:00Z");
  assert.match(localTime("Europe/Paris", noon), /^(14[:.]00|0?2[:.]00\s?PM)$/);
  assert.equal(localTime("Mars/Olympus", noon), "");
  assert.equal(localTime("", noon), "");
});

test("a profile event updates the store's directory, says so, and moves seq on", () => {
  const store = new Store(
    { room: "general", roomName: "general", roomKind: "channel", user: "mia", seq: 10, isMember: true, rooms: [], messages: [], people: [alice] },
    { visible: () => false, now: () => 0 }
  );
  const seen = [];
  store.on("profile", ({ person }) => seen.push(person.username));
  store.receive({ type: "profile", seq: 11, ...alice, display_name: "Alice L.", avatar: "/avatars/7/4" });
  assert.equal(store.people.get("alice").display_name, "Alice L.");
  assert.equal(store.people.get("alice").avatar, "/avatars/7/4");
  assert.deepEqual(seen, ["alice"]);
  assert.equal(store.seq, 11);
  store.receive({ type: "profile", seq: 12, username: 5 });
  assert.deepEqual(seen, ["alice"]);
  assert.equal(store.seq, 12);
});
