// Emoji search, :shortcode detection and "frequently used": node --test tests/js/*.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";

import { frequentEmoji, recordPick, searchEmoji, shortcodeQuery } from "../../static/js/emoji.js";

const CATALOG = [
  { emoji: "😀", name: "grinning face", shortcodes: ["grinning_face", "grinning"] },
  { emoji: "🎉", name: "party popper", shortcodes: ["party_popper", "tada"] },
  { emoji: "👍", name: "thumbs up", shortcodes: ["thumbs_up", "+1", "thumbsup"] },
  { emoji: "🥳", name: "partying face", shortcodes: ["partying_face"] },
  { emoji: "🐙", name: "octopus", shortcodes: ["octopus"] },
];

test("searchEmoji finds by shortcode and by name, best first", () => {
  assert.deepEqual(searchEmoji(CATALOG, "tad").map((e) => e.emoji), ["🎉"]);
  assert.deepEqual(searchEmoji(CATALOG, "party").map((e) => e.emoji), ["🎉", "🥳"]);
  assert.deepEqual(searchEmoji(CATALOG, "popper").map((e) => e.emoji), ["🎉"]);
  assert.deepEqual(searchEmoji(CATALOG, "thumbs up").map((e) => e.emoji), ["👍"]);
  assert.deepEqual(searchEmoji(CATALOG, ":+1:").map((e) => e.emoji), ["👍"]);
  assert.deepEqual(searchEmoji(CATALOG, "TOP").map((e) => e.emoji), ["🐙"]); // inside a name
  assert.deepEqual(searchEmoji(CATALOG, "zzz"), []);
  assert.equal(searchEmoji(CATALOG, "").length, CATALOG.length);
  assert.equal(searchEmoji(CATALOG, "", 2).length, 2);
});

test("an exact shortcode comes first", () => {
  const catalog = [{ emoji: "A", name: "x", shortcodes: ["tadpole"] }, ...CATALOG, { emoji: "B", name: "y", shortcodes: ["tada"] }];
  assert.equal(searchEmoji(catalog, "tada")[0].emoji, "🎉");
});

test("shortcodeQuery sees a :code being typed, not times or lone colons", () => {
  assert.deepEqual(shortcodeQuery("well :tad"), { query: "tad", start: 5 });
  assert.deepEqual(shortcodeQuery(":Party_po"), { query: "party_po", start: 0 });
  assert.deepEqual(shortcodeQuery("yes (:+1"), { query: "+1", start: 5 });
  assert.equal(shortcodeQuery("at 10:30"), null);
  assert.equal(shortcodeQuery("a :t"), null); // too short yet
  assert.equal(shortcodeQuery("done :tada: "), null);
  assert.equal(shortcodeQuery("http://x"), null);
  assert.equal(shortcodeQuery(""), null);
});

test("frequently used: most picked first, recency between equals, bounded history", () => {
  let picks = [];
  ["👍", "🎉", "👍", "🐙"].forEach((e) => (picks = recordPick(picks, e)));
  assert.deepEqual(frequentEmoji(picks), ["👍", "🐙", "🎉"]);
  assert.deepEqual(frequentEmoji(picks, 1), ["👍"]);
  for (let i = 0; i < 100; i += 1) {
    picks = recordPick(picks, "😀");
  }
  assert.equal(picks.length, 60);
  assert.deepEqual(frequentEmoji(picks), ["😀"]);
  assert.deepEqual(frequentEmoji(null), []);
  assert.deepEqual(recordPick("garbage", "👍"), ["👍"]);
});
