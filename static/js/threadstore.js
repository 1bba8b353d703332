/*
 * Threads on the room page, as state: the open thread (its root and
 * replies), the counts of the threads the person follows, and the followed
 * threads the "Threads" view lists. The room's Store owns one
 * (store.threads) and hands it the events that concern threads; it tells
 * the views what changed through the Store's named events.
 *
 * No DOM, no socket, no timers (tests/js/threads.test.mjs). Every event is
 * applied idempotently: replies by id, counts by root.
 */

/* A reply that lives only in its thread (not sent also to the room). */
export function isThreadOnly(m) {
  return !!m && typeof m.thread === "number" && !m.in_channel;
}

/* The counts fields of a thread_read event (or a /api/threads/ item). */
const COUNT_FIELDS = ["following", "last_read_id", "unread", "mentions"];
const SUMMARY_FIELDS = ["replies", "last_reply", "repliers"];

function time(iso) {
  const at = iso ? Date.parse(iso) : NaN;
  return isNaN(at) ? 0 : at;
}

/* Followed threads in the order the Threads view shows them: unread first, then by last reply, newest first. */
export function compareThreads(a, b) {
  const ua = a.unread > 0 ? 1 : 0;
  const ub = b.unread > 0 ? 1 : 0;
  if (ua !== ub) {
    return ub - ua;
  }
  const la = time(a.root && (a.root.last_reply || a.root.created));
  const lb = time(b.root && (b.root.last_reply || b.root.created));
  return lb - la || b.rootId - a.rootId;
}

export class Threads {
  /* `store`: the room's Store (its room, its rooms' entries, emit()). */
  constructor(store) {
    this.store = store;
    this.open = null; // {root: id, messages: Map id -> message (root and replies), loaded, oldestId, complete}
    // root id -> {rootId, room, root (message object or null), following, last_read_id, unread, mentions}
    this.followed = new Map();
    this.listed = false; // the followed list was loaded from GET /api/threads/ (all of it)
  }

  // --- the open thread -----------------------------------------------------------

  /* Start showing thread `root` (its messages come with load(); live ones are kept meanwhile). */
  openThread(root) {
    if (!this.open || this.open.root !== root) {
      this.open = { root, messages: new Map(), loaded: false, oldestId: null, complete: false };
    }
    return this.open;
  }

  closeThread() {
    this.open = null;
  }

  isOpen(root) {
    return !!this.open && this.open.root === root;
  }

  /* A message of the open thread (root or reply) as held, or undefined. */
  get(id) {
    return this.open ? this.open.messages.get(id) : undefined;
  }

  rootMessage() {
    return this.open ? this.open.messages.get(this.open.root) || null : null;
  }

  /* The open thread's replies, oldest first. */
  replies() {
    if (!this.open) {
      return [];
    }
    const root = this.open.root;
    return Array.from(this.open.messages.values())
      .filter((m) => m.id !== root)
      .sort((a, b) => a.id - b.id);
  }

  /* The newest reply of the open thread (0: none). */
  newestReplyId() {
    const list = this.replies();
    return list.length ? list[list.length - 1].id : 0;
  }

  hold(m) {
    const known = this.open.messages.get(m.id);
    if (known) {
      Object.assign(known, m);
      return known;
    }
    const message = Object.assign({}, m);
    delete message.type;
    delete message.seq;
    this.open.messages.set(m.id, message);
    return message;
  }

  /*
   * A page of the history API for the open thread ({messages, root}): `older`
   * when it was asked for with `before`. Returns the replies not held before,
   * oldest first.
   */
  load(root, data, { older = false, pageSize = 50 } = {}) {
    if (!this.isOpen(root) || !data) {
      return [];
    }
    if (data.root && typeof data.root.id === "number") {
      this.hold(data.root);
    }
    const added = [];
    (Array.isArray(data.messages) ? data.messages : []).forEach((m) => {
      if (typeof m.id !== "number" || m.thread !== root) {
        return;
      }
      if (!this.open.messages.has(m.id)) {
        added.push(m);
      }
      this.hold(m);
      if (this.open.oldestId === null || m.id < this.open.oldestId) {
        this.open.oldestId = m.id;
      }
    });
    // A short page: there is nothing older to load.
    this.open.complete = !Array.isArray(data.messages) || data.messages.length < pageSize;
    this.open.loaded = true;
    this.store.emit("thread-loaded", { root, added: added.sort((a, b) => a.id - b.id), older });
    return added;
  }

  /* A reply (a `message` event with `thread`): into the open thread if it is that one's. */
  applyReply(m, acked) {
    if (!this.open || m.thread !== this.open.root || m.room !== this.store.room || typeof m.id !== "number") {
      return false;
    }
    const known = this.open.messages.has(m.id);
    const message = this.hold(m);
    const isNew = !known && !acked;
    this.store.emit("thread-message", { message, isNew, acked: acked || null });
    return true;
  }

  applyEdited(data, changes) {
    if (!this.open || !this.open.messages.has(data.id)) {
      return;
    }
    const message = this.hold(Object.assign({}, changes, { id: data.id }));
    this.store.emit("thread-edited", { message, changes });
  }

  applyReaction(data, users) {
    const message = this.get(data.id);
    if (!message) {
      return;
    }
    const reactions = Object.assign({}, message.reactions || {});
    if (users.length) {
      reactions[data.emoji] = users;
    } else {
      delete reactions[data.emoji];
    }
    message.reactions = reactions;
    this.store.emit("thread-reaction", { id: data.id, emoji: data.emoji, users });
  }

  /* A deleted message: a reply goes; the root stays as a placeholder (its replies stay reachable). */
  applyDeleted(id) {
    if (!this.open || !this.open.messages.has(id)) {
      return;
    }
    if (id === this.open.root) {
      const changes = deletedChanges();
      const message = this.hold(Object.assign({}, changes, { id }));
      this.store.emit("thread-edited", { message, changes });
      return;
    }
    this.open.messages.delete(id);
    this.store.emit("thread-removed", { id });
  }

  // --- root summaries ------------------------------------------------------------------

  /* A `thread` event: a root's reply count, last reply time and latest repliers. */
  applySummary(data) {
    if (typeof data.root !== "number") {
      return;
    }
    const changes = {};
    SUMMARY_FIELDS.forEach((key) => {
      if (key in data) {
        changes[key] = data[key];
      }
    });
    const item = this.followed.get(data.root);
    if (item && item.root) {
      Object.assign(item.root, changes);
      this.store.emit("threads-list", { root: data.root });
    }
    if (data.room !== this.store.room) {
      return;
    }
    const held = this.store.messages.get(data.root);
    if (held) {
      Object.assign(held, changes);
    }
    const open = this.get(data.root);
    if (open) {
      Object.assign(open, changes);
    }
    this.store.emit("thread-summary", { root: data.root, changes });
    if (held && held.deleted && !(held.replies > 0)) {
      // A deleted root kept only for its replies: with none left it goes too.
      this.store.dropMessage(data.root);
    }
  }

  // --- counts of followed threads ------------------------------------------------------

  /* The counts of a followed thread (or undefined when not known to be followed). */
  counts(root) {
    return this.followed.get(root);
  }

  /*
   * A `thread_read` event (or the answer to follow/unfollow): the person's
   * counts for one thread. The room's thread sums move by the difference, so
   * the sidebar shows the activity without a round trip; `resumed` and `read`
   * events bring the server's sums.
   */
  applyThreadRead(data) {
    if (typeof data.root !== "number") {
      return;
    }
    let item = this.followed.get(data.root);
    const before = item ? { unread: item.unread || 0, mentions: item.mentions || 0 } : { unread: 0, mentions: 0 };
    if (!item) {
      item = { rootId: data.root, room: data.room, root: null, following: false, last_read_id: 0, unread: 0, mentions: 0 };
      this.followed.set(data.root, item);
    }
    if (typeof data.room === "string") {
      item.room = data.room;
    }
    COUNT_FIELDS.forEach((key) => {
      if (key in data) {
        item[key] = data[key];
      }
    });
    if (!item.following) {
      // Not followed: no counts in the room's sums, and not listed.
      item.unread = 0;
      item.mentions = 0;
    }
    this.shiftRoom(item.room, (item.unread || 0) - before.unread, (item.mentions || 0) - before.mentions);
    this.store.emit("thread-counts", { root: data.root, item, known: !!item.root });
    this.store.emit("threads-list", { root: data.root });
  }

  shiftRoom(slug, unread, mentions) {
    const entry = this.store.rooms.get(slug);
    if (!entry || (!unread && !mentions)) {
      return;
    }
    entry.thread_unread = Math.max(0, (entry.thread_unread || 0) + unread);
    entry.thread_mentions = Math.max(0, (entry.thread_mentions || 0) + mentions);
    this.store.emit("counts", { entry });
  }

  /* `resumed.threads`: the followed threads with unread replies now; every other one has none. */
  applyResumed(list) {
    if (!Array.isArray(list)) {
      return;
    }
    const unread = new Map();
    list.forEach((item) => {
      if (item && typeof item.root === "number") {
        unread.set(item.root, item);
      }
    });
    this.followed.forEach((item, root) => {
      if (!unread.has(root)) {
        item.unread = 0;
        item.mentions = 0;
      }
    });
    unread.forEach((data, root) => {
      let item = this.followed.get(root);
      if (!item) {
        item = { rootId: root, room: data.room, root: null, following: true, last_read_id: 0, unread: 0, mentions: 0 };
        this.followed.set(root, item);
      }
      item.room = data.room;
      COUNT_FIELDS.forEach((key) => {
        if (key in data) {
          item[key] = data[key];
        }
      });
    });
    this.store.emit("threads-list", {});
  }

  /*
   * The person's state of a thread as a thread page carries it (`state`: the
   * `thread_read` fields), for a thread the page knew nothing of. The room's
   * sums from the server count it already, so nothing moves; a thread already
   * known is kept as its events left it.
   */
  knowState(data) {
    if (!data || typeof data.root !== "number" || this.followed.has(data.root)) {
      return;
    }
    const item = { rootId: data.root, room: data.room, root: null, following: false, last_read_id: 0, unread: 0, mentions: 0 };
    COUNT_FIELDS.forEach((key) => {
      if (key in data) {
        item[key] = data[key];
      }
    });
    if (!item.following) {
      item.unread = 0;
      item.mentions = 0;
    }
    this.followed.set(data.root, item);
    this.store.emit("thread-counts", { root: data.root, item, known: false });
  }

  /* A page of GET /api/threads/ (`first`: it starts the list over). */
  applyList(data, { first = true, complete = true } = {}) {
    if (first) {
      this.followed.forEach((item) => {
        item.following = false;
      });
    }
    (data && Array.isArray(data.threads) ? data.threads : []).forEach((entry) => {
      if (!entry || !entry.root || typeof entry.root.id !== "number") {
        return;
      }
      const root = entry.root.id;
      const item = this.followed.get(root) || { rootId: root };
      Object.assign(item, { room: entry.room, root: Object.assign({}, entry.root) });
      COUNT_FIELDS.forEach((key) => {
        if (key in entry) {
          item[key] = entry[key];
        }
      });
      this.followed.set(root, item);
    });
    if (complete) {
      this.listed = true;
    }
    this.store.emit("threads-list", {});
  }

  /* The followed threads the Threads view lists, in its order. */
  list() {
    return Array.from(this.followed.values())
      .filter((item) => item.following && item.root)
      .sort(compareThreads);
  }

  /* Followed threads known to the page whose root it does not have (the list should be loaded again). */
  missingRoots() {
    return Array.from(this.followed.values()).filter((item) => item.following && !item.root).length;
  }

  /* Sum of the rooms' thread activity, for the sidebar's Threads entry. */
  totals() {
    let unread = 0;
    let mentions = 0;
    this.store.rooms.forEach((entry) => {
      unread += entry.thread_unread || 0;
      mentions += entry.thread_mentions || 0;
    });
    return { unread, mentions };
  }
}

/* What a deleted root keeps: its place, its author and time, its summary; not its text. */
export function deletedChanges() {
  return { deleted: true, body: "", html: "", attachments: [], reactions: {}, mentions: [] };
}
