/*
 * How long the page waits before trying its socket again.
 *
 * A dropped connection is most often a server restart (a deploy) that is
 * back within seconds: the first retry comes almost at once, and while the
 * outage is young the retries stay about a second apart, so the page is back
 * about a second after the server is. Only an outage that lasts backs off
 * further, to half a minute. Every delay is jittered, so that the tabs a
 * restart dropped together do not all come back in the same instant; the
 * page also tries at once when the browser says it is online again, when
 * the tab is shown again, and when the person asks ("Reconnect now").
 *
 * No DOM, no timers: tests/js checks it with Node's runner.
 */

export const RETRY_FIRST_MS = 250;
export const RETRY_BASE_MS = 1000;
export const RETRY_FAST_CAP_MS = 1500;
export const RETRY_SLOW_CAP_MS = 30000;
export const FAST_FOR_MS = 60000;

/*
 * `attempt`: retries already made since the connection was lost (0 for the
 * first); `downForMs`: how long it has been lost; `random()` in [0, 1).
 */
export function reconnectDelay(attempt, downForMs, random = Math.random) {
  if (attempt <= 0) {
    return Math.round(RETRY_FIRST_MS * (0.5 + random()));
  }
  const cap = downForMs < FAST_FOR_MS ? RETRY_FAST_CAP_MS : RETRY_SLOW_CAP_MS;
  const base = Math.min(cap, RETRY_BASE_MS * Math.pow(2, attempt - 1));
  return Math.round(base * (0.5 + 0.5 * random()));
}

/*
 * A server closing for a restart (1012) asks every socket it had to come
 * back at once: spread over RESTART_SPREAD_MS, so the process that takes
 * them over (or the one that replaces it) gets them a few at a time.
 */
export const RESTART_SPREAD_MS = 2000;
export const CLOSE_SERVICE_RESTART = 1012;

export function restartDelay(random = Math.random) {
  return Math.round(100 + random() * RESTART_SPREAD_MS);
}
