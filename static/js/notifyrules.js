/*
 * What may interrupt the person: the rules of browser notifications and of
 * the tab title's counts, as pure functions (no DOM), tested with node
 * (tests/js/notifyrules.test.mjs). docs/protocol.md, "Notifications".
 */

export const LEVELS = ["default", "all", "mentions", "none"];

export const LEVEL_WORDS = {
  default: "Default",
  all: "All messages",
  mentions: "Mentions only",
  none: "Nothing (muted)",
};

/* A room's level as it acts: "default" is "all" for conversations, "mentions" for channels. */
export function effectiveLevel(room) {
  const level = room && typeof room.notify === "string" ? room.notify : "default";
  if (level === "all" || level === "mentions" || level === "none") {
    return level;
  }
  return room && room.kind === "dm" ? "all" : "mentions";
}

export function isMuted(room) {
  return effectiveLevel(room) === "none";
}

/*
 * Whether a message mentions `me`: by name or through a group (the server
 * lists both in `mentions`; @here lists whoever was online), or @channel.
 */
export function mentionsMe(message, me) {
  if (!message) {
    return false;
  }
  if (message.broadcast === "channel") {
    return true;
  }
  return Array.isArray(message.mentions) && message.mentions.includes(me);
}

/* Whether do not disturb runs at `now` (ms): `dndUntil` is an ISO time or null. */
export function dndActive(dndUntil, now) {
  if (!dndUntil) {
    return false;
  }
  const end = Date.parse(dndUntil);
  return Number.isFinite(end) && end > now;
}

/*
 * Whether a new message may raise a browser notification.
 * `context`: {me, room (its sidebar entry: kind, notify), visible (the tab
 * is being looked at), dndUntil, now, following (for a thread reply that is
 * not also in the channel: whether the person follows its thread)}.
 * Never for one's own messages, while the tab is visible, during do not
 * disturb or in a muted room. "all": every message; "mentions": messages
 * that mention the person. A reply that stays in its thread notifies its
 * followers (following a thread is asking to hear from it) and anyone it
 * mentions, at either level.
 */
export function shouldNotify(message, context) {
  const { me, room, visible = false, dndUntil = null, now = Date.now(), following = false } = context || {};
  if (!message || !room || message.user === me || visible) {
    return false;
  }
  if (dndActive(dndUntil, now)) {
    return false;
  }
  const level = effectiveLevel(room);
  if (level === "none") {
    return false;
  }
  const mentioned = mentionsMe(message, me);
  const threadOnly = message.thread !== null && message.thread !== undefined && !message.in_channel;
  if (threadOnly) {
    return mentioned || !!following;
  }
  return level === "all" || mentioned;
}

/*
 * The tab title's counts over the sidebar's rooms: unread messages of rooms
 * that are not muted, and mentions of every room (a mention in a muted room
 * still counts).
 */
export function titleTotals(rooms) {
  let unread = 0;
  let mentions = 0;
  rooms.forEach((entry) => {
    // Replies in followed threads count as the room's own messages do.
    if (!isMuted(entry)) {
      unread += (entry.unread || 0) + (entry.thread_unread || 0);
    }
    mentions += (entry.mentions || 0) + (entry.thread_mentions || 0);
  });
  return { unread, mentions };
}

/* The words that mention a whole room, as the composer offers them. */
export const BROADCASTS = [
  { handle: "channel", label: "Everyone in this room", broadcast: true },
  { handle: "here", label: "Everyone online in this room", broadcast: true },
];

/*
 * @-completion after people: the user groups whose handle or name starts
 * with `query` (ignoring case), then @channel and @here when they match.
 * `groups`: GET /api/groups/'s list. Items are {handle, label, broadcast?}.
 */
export function groupCompletions(query, groups) {
  const q = String(query || "").toLowerCase();
  const found = [];
  (groups || []).forEach((group) => {
    if (!group || typeof group.handle !== "string") {
      return;
    }
    const name = typeof group.name === "string" ? group.name : "";
    if (group.handle.toLowerCase().startsWith(q) || (q && name.toLowerCase().startsWith(q))) {
      const count = Array.isArray(group.members) ? group.members.length : 0;
      found.push({ handle: group.handle, label: (name || group.handle) + " (" + count + (count === 1 ? " person)" : " people)") });
    }
  });
  BROADCASTS.forEach((entry) => {
    if (entry.handle.startsWith(q)) {
      found.push(entry);
    }
  });
  return found;
}
