// Who a message names with @name: node --test tests/js/*.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";

import { mentionedNames, mentionedOutsiders } from "../../static/js/mentioned.js";

test("names are read as the server reads them", () => {
  assert.deepEqual(mentionedNames("hi @Bob and @carol.smith, thanks @dan."), ["bob", "carol.smith", "dan"]);
  assert.deepEqual(mentionedNames("@bob @BOB"), ["bob"], "once each, whatever the case");
  assert.deepEqual(mentionedNames("mail me at me@example.com"), [], "an address is no mention");
  assert.deepEqual(mentionedNames("see `@bob` and https://x.test/@carol and [@dan](https://x.test)"), []);
  assert.deepEqual(mentionedNames("```\n@bob\n```\nthen @erin"), ["erin"], "not in a code block");
  assert.deepEqual(mentionedNames("@bob@alice"), ["bob"], "a name stops at the next @");
});

test("outsiders are the names the server did not count as members, never oneself", () => {
  assert.deepEqual(mentionedOutsiders("@bob @carol @mia", ["carol"], "mia"), ["bob"]);
  assert.deepEqual(mentionedOutsiders("@Bob", ["bob"], "mia"), []);
  assert.deepEqual(mentionedOutsiders("no one", [], "mia"), []);
});
