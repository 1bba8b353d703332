// Shortcut matching and the quick switcher's ranking: node --test tests/js/*.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";

import { SHORTCUTS, matchScore, matchShortcut, parseShortcut, rankSwitcher, shortcutLabel, stepRoom } from "../../static/js/keys.js";

const key = (key, mods = {}) => ({ key, code: "", ctrlKey: false, metaKey: false, altKey: false, shiftKey: false, ...mods });

test("Mod+K is Ctrl+K off a Mac and Cmd+K on one", () => {
  assert.equal(matchShortcut(key("k", { ctrlKey: true }), "Mod+K", false), true);
  assert.equal(matchShortcut(key("K", { ctrlKey: true }), "Mod+K", false), true); // Caps Lock
  assert.equal(matchShortcut(key("k", { metaKey: true }), "Mod+K", false), false);
  assert.equal(matchShortcut(key("k", { metaKey: true }), "Mod+K", true), true);
  assert.equal(matchShortcut(key("k", { ctrlKey: true }), "Mod+K", true), false);
  assert.equal(matchShortcut(key("k"), "Mod+K", false), false);
  assert.equal(matchShortcut(key("k", { ctrlKey: true, shiftKey: true }), "Mod+K", false), false);
});

test("Alt+arrows and Alt+Shift+arrows are different shortcuts", () => {
  assert.equal(matchShortcut(key("ArrowDown", { altKey: true }), "Alt+ArrowDown"), true);
  assert.equal(matchShortcut(key("ArrowDown", { altKey: true, shiftKey: true }), "Alt+ArrowDown"), false);
  assert.equal(matchShortcut(key("ArrowDown", { altKey: true, shiftKey: true }), "Alt+Shift+ArrowDown"), true);
  assert.equal(matchShortcut(key("ArrowDown"), "Alt+ArrowDown"), false);
});

test("? matches by the character typed, whatever Shift it took", () => {
  assert.equal(matchShortcut(key("?", { shiftKey: true }), "?"), true);
  assert.equal(matchShortcut(key("?"), "?"), true);
  assert.equal(matchShortcut(key("/", { shiftKey: true }), "?"), false);
  assert.equal(matchShortcut(key("?", { ctrlKey: true, shiftKey: true }), "?"), false);
});

test("a letter with Option on a Mac is still found by its key code", () => {
  assert.equal(matchShortcut(key("˚", { altKey: true, code: "KeyK" }), "Alt+K", true), true);
});

test("parseShortcut refuses unknown modifiers and reads the plus key", () => {
  assert.throws(() => parseShortcut("Hyper+K"));
  assert.equal(parseShortcut("Ctrl++").key, "+");
  assert.equal(parseShortcut("Ctrl++").ctrl, true);
});

test("every listed shortcut parses and has a label", () => {
  for (const s of SHORTCUTS) {
    assert.ok(shortcutLabel(s.keys, false).length >= 1, s.keys);
  }
  assert.deepEqual(shortcutLabel("Mod+K", true), ["⌘", "K"]);
  assert.deepEqual(shortcutLabel("Mod+K", false), ["Ctrl", "K"]);
  assert.deepEqual(shortcutLabel("Alt+Shift+ArrowUp", false), ["Alt", "Shift", "↑"]);
});

test("matchScore: exact beats prefix beats word start beats substring beats fuzzy", () => {
  const exact = matchScore("dev", "dev");
  const prefix = matchScore("dev", "devops");
  const word = matchScore("dev", "web-dev-team");
  const inside = matchScore("dev", "webdevteam");
  const fuzzy = matchScore("dvo", "devops");
  assert.ok(exact > prefix && prefix > word && word > inside && inside > fuzzy && fuzzy > 0);
  assert.equal(matchScore("xyz", "devops"), 0);
  assert.equal(matchScore("ved", "dev"), 0); // letters out of order
});

test("rankSwitcher orders by match, keeps only matches, and drops a person who has a conversation", () => {
  const items = [
    { label: "random", kind: "channel" },
    { label: "general", kind: "channel" },
    { label: "gen-ops", kind: "channel", unread: 3 },
    { label: "gemma", kind: "dm" },
    { label: "gemma", kind: "person" },
    { label: "george", kind: "person" },
  ];
  assert.deepEqual(
    rankSwitcher("gen", items).map((i) => i.label),
    ["gen-ops", "general"]
  );
  assert.deepEqual(
    rankSwitcher("ge", items).map((i) => i.kind + ":" + i.label),
    ["dm:gemma", "person:george", "channel:gen-ops", "channel:general"] // shorter first; unread breaks the tie
  );
  assert.equal(rankSwitcher("", items).length, 5);
  assert.equal(rankSwitcher("", items, 2).length, 2);
});

test("stepRoom moves in sidebar order, wraps around and can skip to the next candidate", () => {
  const slugs = ["a", "b", "c", "d"];
  assert.equal(stepRoom(slugs, "b", 1), "c");
  assert.equal(stepRoom(slugs, "b", -1), "a");
  assert.equal(stepRoom(slugs, "d", 1), "a");
  assert.equal(stepRoom(slugs, "a", -1), "d");
  const unread = new Set(["a", "d"]);
  assert.equal(stepRoom(slugs, "b", 1, (s) => unread.has(s)), "d");
  assert.equal(stepRoom(slugs, "d", 1, (s) => unread.has(s)), "a");
  assert.equal(stepRoom(slugs, "b", 1, () => false), null);
  assert.equal(stepRoom(["a"], "a", 1), null);
  assert.equal(stepRoom(slugs, "zz", 1), "a"); // not in the sidebar (a channel you only read)
  assert.equal(stepRoom(slugs, "zz", -1), "d");
});
