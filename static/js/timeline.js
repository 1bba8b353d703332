/*
 * How the message list reads, decided without a browser: which messages
 * start a new day (a date divider above them), what that divider says, and
 * which messages continue their author's run (shown without avatar and
 * name). Days are the viewer's local days. Messages are {user, created}
 * with `created` in ISO 8601, as the protocol sends them.
 */

export const GROUP_WINDOW_MS = 5 * 60 * 1000;

function toDate(value) {
  const date = value instanceof Date ? value : new Date(value);
  return isNaN(date.getTime()) ? null : date;
}

/* The local day of a time, as "YYYY-M-D" (null for a time that cannot be read). */
export function dayKey(value) {
  const date = toDate(value);
  return date ? date.getFullYear() + "-" + (date.getMonth() + 1) + "-" + date.getDate() : null;
}

/* Whether `message` is the first of its local day after `previous` (null: it is the first shown). */
export function startsDay(previous, message) {
  if (!previous) {
    return true;
  }
  const day = dayKey(message.created);
  return day === null || day !== dayKey(previous.created);
}

/* Whether `message` continues `previous`'s run: same author, same day, within five minutes. */
export function continues(previous, message) {
  if (!previous || previous.user !== message.user || startsDay(previous, message)) {
    return false;
  }
  const gap = toDate(message.created) - toDate(previous.created);
  return gap >= 0 && gap < GROUP_WINDOW_MS;
}

/* A date divider's words: "Today", "Yesterday", else the date in the viewer's locale. */
export function dayLabel(value, now = new Date(), locale = undefined) {
  const date = toDate(value);
  if (!date) {
    return "";
  }
  const day = dayKey(date);
  if (day === dayKey(now)) {
    return "Today";
  }
  if (day === dayKey(new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1))) {
    return "Yesterday";
  }
  const options = { weekday: "long", month: "long", day: "numeric" };
  if (date.getFullYear() !== now.getFullYear()) {
    options.year = "numeric";
  }
  return date.toLocaleDateString(locale, options);
}
