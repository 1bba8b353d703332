// The reconnect delays and the order of room names, without a browser.
import { test } from "node:test";
import assert from "node:assert/strict";

import { FAST_FOR_MS, RETRY_FAST_CAP_MS, RETRY_SLOW_CAP_MS, reconnectDelay } from "../../static/js/backoff.js";
import { compareNames } from "../../static/js/common.js";

const low = () => 0;
const high = () => 0.999999;

test("the first retry after a drop comes almost at once", () => {
  assert.ok(reconnectDelay(0, 0, low) >= 100);
  assert.ok(reconnectDelay(0, 0, high) <= 400);
});

test("while an outage is young the retries stay about a second apart, jittered", () => {
  const delays = [1, 2, 3, 5, 10, 30].map((attempt) => [reconnectDelay(attempt, 20_000, low), reconnectDelay(attempt, 20_000, high)]);
  delays.forEach(([least, most]) => {
    assert.ok(most <= RETRY_FAST_CAP_MS, "a restarted server is found within the fast cap");
    assert.ok(least >= 400 && least < most, "spread, so tabs dropped together come back apart");
  });
});

test("an outage that lasts backs off to half a minute", () => {
  const delays = [1, 2, 3, 4, 5, 6, 8, 20].map((attempt) => reconnectDelay(attempt, FAST_FOR_MS, high));
  delays.reduce((before, delay) => {
    assert.ok(delay >= before);
    return delay;
  });
  assert.ok(delays[delays.length - 1] <= RETRY_SLOW_CAP_MS);
  assert.ok(delays[delays.length - 1] > RETRY_SLOW_CAP_MS * 0.9);
  assert.ok(reconnectDelay(20, FAST_FOR_MS, low) >= RETRY_SLOW_CAP_MS / 2);
});

test("room names sort ignoring case: general before Project Plans", () => {
  const names = ["Project Plans", "general", "design", "Zebra", "alpha"];
  assert.deepEqual(names.slice().sort(compareNames), ["alpha", "design", "general", "Project Plans", "Zebra"]);
  assert.ok(compareNames("Plans", "plans") !== 0, "names differing only in case still have an order");
  assert.ok(compareNames("émile", "fun") < 0, "accents sort with their letters");
});

test("a restart (1012) spreads the reconnects over two seconds", async () => {
  const { RESTART_SPREAD_MS, restartDelay } = await import("../../static/js/backoff.js");
  assert.equal(restartDelay(() => 0), 100);
  assert.equal(restartDelay(() => 0.999999), 100 + RESTART_SPREAD_MS);
  const spread = new Set(Array.from({ length: 50 }, (_, i) => Math.floor(restartDelay(() => i / 50) / 200)));
  assert.ok(spread.size >= 10, "not all at once");
});
