// The message list's date dividers and author runs: node --test tests/js/*.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";

import { GROUP_WINDOW_MS, continues, dayLabel, startsDay } from "../../static/js/timeline.js";

// Local times, so the tests mean the same in every time zone.
const at = (y, mo, d, h = 12, mi = 0, s = 0) => new Date(y, mo - 1, d, h, mi, s).toISOString();
const msg = (user, created) => ({ user, created });

test("the first message shown starts a day, and so does the first of each later local day", () => {
  assert.equal(startsDay(null, msg("bob", at(2026, 3, 1))), true);
  assert.equal(startsDay(msg("bob", at(2026, 3, 1, 0, 0)), msg("ann", at(2026, 3, 1, 23, 59))), false);
  assert.equal(startsDay(msg("bob", at(2026, 3, 1, 23, 59)), msg("bob", at(2026, 3, 2, 0, 1))), true);
  assert.equal(startsDay(msg("bob", at(2026, 3, 1)), msg("bob", at(2027, 3, 1))), true, "same date, another year");
});

test("a message continues its author's run within five minutes on the same day", () => {
  const first = msg("bob", at(2026, 3, 1, 9, 0));
  assert.equal(continues(first, msg("bob", at(2026, 3, 1, 9, 4, 59))), true);
  assert.equal(continues(first, msg("bob", new Date(new Date(first.created).getTime() + GROUP_WINDOW_MS).toISOString())), false);
  assert.equal(continues(first, msg("ann", at(2026, 3, 1, 9, 1))), false, "someone else");
  assert.equal(continues(null, first), false, "nothing before it");
  assert.equal(continues(msg("bob", at(2026, 3, 1, 23, 58)), msg("bob", at(2026, 3, 2, 0, 1))), false, "a date divider between");
  assert.equal(continues(first, msg("bob", at(2026, 3, 1, 8, 59))), false, "earlier than the one before");
  assert.equal(continues(first, msg("bob", "not a time")), false);
});

test("a divider says Today, Yesterday, else the date in the viewer's locale", () => {
  const now = new Date(2026, 2, 1, 0, 30); // just after midnight, 1 March
  assert.equal(dayLabel(at(2026, 3, 1, 0, 5), now), "Today");
  assert.equal(dayLabel(at(2026, 2, 28, 23, 50), now), "Yesterday", "across a month end");
  assert.equal(dayLabel(at(2026, 2, 27, 12), now, "en-US"), "Friday, February 27");
  assert.equal(dayLabel(at(2025, 12, 31, 12), now, "en-US"), "Wednesday, December 31, 2025", "another year names it");
  assert.equal(dayLabel(at(2026, 2, 27, 12), now, "de-DE"), "Freitag, 27. Februar");
  assert.equal(dayLabel("garbage", now), "");
});
