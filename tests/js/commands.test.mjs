import assert from "node:assert/strict";
import test from "node:test";

import { commandQueryIn, matchCommands, meAction, parseTyped } from "../../static/js/commands.js";

test("a slash and a name is a command with its arguments", () => {
  assert.deepEqual(parseTyped("/topic Launch day"), { kind: "command", name: "topic", args: "Launch day" });
  assert.deepEqual(parseTyped("/shrug"), { kind: "command", name: "shrug", args: "" });
  assert.deepEqual(parseTyped("/invite @bob\n"), { kind: "command", name: "invite", args: "@bob" });
});

test("two slashes send the text with one; anything else is a message", () => {
  assert.deepEqual(parseTyped("//shrug is a command"), { kind: "message", body: "/shrug is a command" });
  assert.deepEqual(parseTyped("hello /topic"), { kind: "message", body: "hello /topic" });
  assert.deepEqual(parseTyped("/ nothing"), { kind: "message", body: "/ nothing" });
  assert.deepEqual(parseTyped("/Topic x"), { kind: "message", body: "/Topic x" });
  assert.deepEqual(parseTyped(" /topic x"), { kind: "message", body: " /topic x" });
});

test("completion opens only while the name is typed", () => {
  assert.deepEqual(commandQueryIn("/"), { query: "", start: 0 });
  assert.deepEqual(commandQueryIn("/to"), { query: "to", start: 0 });
  assert.equal(commandQueryIn("/topic "), null);
  assert.equal(commandQueryIn("a /to"), null);
});

test("commands match by the start of their name, in the order listed", () => {
  const list = [{ name: "me" }, { name: "mute" }, { name: "topic" }, { name: "deploy" }];
  assert.deepEqual(matchCommands(list, "m").map((c) => c.name), ["me", "mute"]);
  assert.deepEqual(matchCommands(list, "").map((c) => c.name), ["me", "mute", "topic", "deploy"]);
  assert.deepEqual(matchCommands(list, "x"), []);
});

test("a /me message is shown as an action", () => {
  assert.equal(meAction("/me waves"), "waves");
  assert.equal(meAction("/mean"), null);
  assert.equal(meAction(undefined), null);
});
