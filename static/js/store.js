/*
 * The room page's state, and the one place server events are applied to it.
 *
 * No DOM, no socket, no timers: the store takes parsed events (receive()),
 * keeps what they mean (the log position `seq`, this room's messages, the
 * sidebar's rooms and counts, the outbox of sends not yet stored, who is
 * typing, who is online) and tells the views what changed through named
 * events (on()). The views draw from it; Node's test runner checks it
 * without a browser (tests/js/).
 *
 * Every event is applied idempotently: by message id, by reaction (id,
 * emoji), by room slug. See docs/protocol.md.
 */

import { Directory } from "./people.js";
import { mentionsMe, titleTotals } from "./notifyrules.js";
import { Threads, deletedChanges, isThreadOnly } from "./threadstore.js";

export const PRESENCE_STATES = new Set(["online", "away", "offline"]);
export const TYPING_SHOWN_MS = 5000;

const ROOM_FIELDS = ["slug", "name", "topic", "kind", "private", "archived"];

/* The other people in a conversation: as the server listed them, else as its name lists them. */
export function dmOthers(room, me) {
  if (Array.isArray(room.members)) {
    return room.members;
  }
  return String(room.name || "")
    .split(", ")
    .filter((name) => name && name !== me);
}

/* The other person of a 1:1 conversation (null for a group, or one left alone). */
export function dmPartner(room, me) {
  const others = room.kind === "dm" ? dmOthers(room, me) : [];
  return others.length === 1 ? others[0] : null;
}

export function roomLabel(room, me) {
  if (room.kind !== "dm") {
    return room.name;
  }
  const others = dmOthers(room, me);
  return others.length ? others.join(", ") : room.name;
}

export function roomTitle(room, me) {
  return room.kind === "dm" ? roomLabel(room, me) : "#" + room.name;
}

/* What a page says of a room an admin deleted (a `member` event, action `deleted`). */
export function deletedNote(room, me, by) {
  const done = " was deleted" + (by ? " by " + by : "") + ".";
  if (room.kind !== "dm") {
    return "#" + room.name + done;
  }
  const others = dmOthers(room, me);
  return (others.length ? "Your conversation with " + others.join(", ") : "This conversation") + done;
}

export class Store {
  /*
   * `config`: the page's chat-config (room, user, seq, rooms, messages, ...).
   * `visible()`: whether the person is looking at this room now (a message
   * that arrives while they are is not counted as unread). `now()`: the clock.
   */
  constructor(config, { visible = () => true, now = () => Date.now() } = {}) {
    this.me = config.user;
    this.uploadMaxBytes = typeof config.uploadMaxBytes === "number" ? config.uploadMaxBytes : Infinity;
    this.room = config.room;
    this.roomInfo = Object.assign(
      { slug: config.room, name: config.roomName, topic: "", kind: config.roomKind, private: false, archived: false },
      config.roomData || {}
    );
    this.canManage = !!config.canManage;
    this.isModerator = !!config.isModerator;
    this.isMember = !!config.isMember;
    this.roomDeleted = false; // an admin deleted this room: nothing more to read, join or write
    this.marker = config.lastReadId || 0; // the server's read marker for this room
    this.seq = typeof config.seq === "number" ? config.seq : 0; // the highest event applied
    this.catchingUp = false; // between a socket's open and its `resumed`: the server is replaying

    this.rooms = new Map(); // slug -> {slug, name, topic, kind, private, archived, unread, mentions, last_read_id, members}
    (config.rooms || []).forEach((room) => this.rooms.set(room.slug, Object.assign({}, room)));
    this.messages = new Map(); // message id -> message data (this room), in no particular order
    this.lastId = 0; // highest message id held
    this.oldestId = null; // smallest message id held
    this.outbox = new Map(); // nonce -> {nonce, body, created, attachments, state: "pending"|"failed", reason, sent}, in the order typed
    // The server's per-user send bucket as the page can estimate it (rate per
    // second, burst): sends are paced under it instead of being refused.
    this.sendRate = typeof config.sendRate === "number" && config.sendRate > 0 ? config.sendRate : 0;
    this.sendBurst = typeof config.sendBurst === "number" && config.sendBurst >= 1 ? config.sendBurst : 1;
    this.sendTokens = this.sendBurst;
    this.sendTokensAt = null; // when sendTokens was last brought up to date (null: not yet)
    this.sendAwaited = false; // a send is on its way: the estimate does not refill until its answer
    this.actions = new Map(); // nonce -> {kind, id, revert}: edits, deletions, reactions awaiting their event
    this.typers = new Map(); // username -> time their indicator expires
    this.presence = new Map(); // username -> online | away | offline (absent: not known)
    this.people = new Directory(config.people || []); // everyone's public profile

    this.visible = visible;
    this.now = now;
    this.listeners = new Map();
    this.threads = new Threads(this); // the open thread, followed threads' counts (threadstore.js)
    this.addOlder(config.messages || []);
  }

  // --- change notifications ----------------------------------------------

  on(name, listener) {
    if (!this.listeners.has(name)) {
      this.listeners.set(name, []);
    }
    this.listeners.get(name).push(listener);
    return this;
  }

  emit(name, detail) {
    (this.listeners.get(name) || []).forEach((listener) => listener(detail || {}));
  }

  // --- derived ----------------------------------------------------------------

  canWrite() {
    return this.isMember && !this.roomInfo.archived;
  }

  isChannel() {
    return this.roomInfo.kind !== "dm";
  }

  /* Unread and mention counts over the sidebar's rooms (for the title): muted rooms count only mentions. */
  totals() {
    return titleTotals(this.rooms);
  }

  /* This room's messages, oldest first. */
  messageList() {
    return Array.from(this.messages.values()).sort((a, b) => a.id - b.id);
  }

  // --- applying server events ---------------------------------------------------

  /* Apply one event from the socket; stored events move `seq` on (even when a view failed on them). */
  receive(data) {
    if (!data || typeof data !== "object" || typeof data.type !== "string") {
      return;
    }
    const seq = typeof data.seq === "number" ? data.seq : null;
    // A stored event this page has not applied yet (replays never repeat one,
    // but counting twice would be visible, so the counters check).
    const fresh = seq === null || seq > this.seq;
    try {
      this.apply(data, fresh);
    } finally {
      if (seq !== null && seq > this.seq) {
        this.seq = seq;
      }
    }
  }

  apply(data, fresh) {
    switch (data.type) {
      case "message":
        this.applyMessage(data, fresh);
        break;
      case "message_edited":
        this.applyEdited(data);
        break;
      case "message_deleted":
        if (data.room === this.room && typeof data.id === "number") {
          this.settleActions("delete", data.id);
          this.applyDeleted(data.id);
        }
        break;
      case "thread":
        this.threads.applySummary(data);
        break;
      case "thread_read":
        this.threads.applyThreadRead(data);
        break;
      case "reaction":
        this.applyReaction(data);
        break;
      case "attachment_removed":
        this.applyAttachmentRemoved(data);
        break;
      case "read":
        if (typeof data.room === "string") {
          this.setCounts(data.room, data);
          this.emit("read", { room: data.room });
        }
        break;
      case "room":
        this.applyRoom(data.room);
        break;
      case "notify":
        this.applyNotify(data);
        break;
      case "member":
        this.applyMember(data, fresh);
        break;
      case "typing":
        this.applyTyping(data);
        break;
      case "presence":
        this.applyPresence(data.users);
        break;
      case "profile": {
        const person = this.people.put(data);
        if (person) {
          this.emit("profile", { person });
        }
        break;
      }
      case "status":
        if (data.live === true) {
          this.emit("live");
        }
        break;
      case "reload":
        this.emit("reload");
        break;
      case "resumed":
        this.applyResumed(data);
        break;
      case "draft":
        this.emit("draft", { draft: data }); // drafts.js applies it, by version
        break;
      case "command_result":
        if (typeof data.text === "string" && data.text) {
          this.emit("notice", { text: data.text });
        }
        break;
      case "error":
        this.applyError(data);
        break;
      default:
        break; // an event type this page does not know: ignore it
    }
  }

  // --- messages ---------------------------------------------------------------

  /* Keep a message of this room; returns it as held (merged into what was held). */
  holdMessage(m) {
    const known = this.messages.get(m.id);
    if (known) {
      Object.assign(known, m);
      return known;
    }
    const message = Object.assign({}, m);
    delete message.type;
    delete message.seq;
    this.messages.set(m.id, message);
    if (m.id > this.lastId) {
      this.lastId = m.id;
    }
    if (this.oldestId === null || m.id < this.oldestId) {
      this.oldestId = m.id;
    }
    return message;
  }

  /*
   * A `message` event. Emits "message" with:
   * here (it is this room's), isNew (not shown before: neither held nor our
   * own pending send), acked (the outbox entry it stores, if any), unseen
   * (someone else's new message counted as unread: divider and notification),
   * typingChanged (its author's typing indicator ended).
   */
  applyMessage(m, fresh) {
    if (isThreadOnly(m)) {
      // Counted in its thread's counts (thread_read), not the room's; shown in its thread only.
      const acked = m.room === this.room ? this.takeAcked(m) : null;
      const inThread = m.room === this.room && this.threads.applyReply(m, acked);
      // Someone else's reply that mentions this person, while they are not looking: worth a notification.
      const unseen =
        fresh &&
        m.user !== this.me &&
        Array.isArray(m.mentions) &&
        m.mentions.includes(this.me) &&
        (m.room !== this.room || !this.visible());
      this.emit("message", { message: m, here: false, inThread, isNew: false, acked, fresh, unseen, typingChanged: false });
      return;
    }
    if (m.room !== this.room) {
      const unseen = fresh && m.user !== this.me && this.bump(m.room, m);
      this.emit("message", { message: m, here: false, isNew: false, acked: null, fresh, unseen, typingChanged: false });
      return;
    }
    let isNew = false;
    let acked = null;
    let message = m;
    if (typeof m.id === "number") {
      const known = this.messages.has(m.id);
      if (!known) {
        acked = this.takeAcked(m);
      }
      message = this.holdMessage(m);
      isNew = !known && !acked;
      if (typeof m.thread === "number") {
        this.threads.applyReply(m, acked); // sent also to the room: in its open thread too
      }
    }
    const typingChanged = this.typers.delete(m.user);
    let unseen = false;
    if (m.user !== this.me && isNew && fresh && this.isMember && m.id > this.marker && !this.visible()) {
      this.bump(this.room, m);
      unseen = true;
    }
    this.emit("message", { message, here: true, isNew, acked, fresh, unseen, typingChanged });
  }

  /* Our own send, stored: its outbox entry (taken out of the outbox), or null. */
  takeAcked(m) {
    if (!m.nonce || m.user !== this.me || !this.outbox.has(m.nonce)) {
      return null;
    }
    const acked = this.outbox.get(m.nonce);
    this.outbox.delete(m.nonce);
    if (acked.sent) {
      this.sendSettled();
    }
    return acked;
  }

  applyEdited(data) {
    if (data.room !== this.room || typeof data.id !== "number") {
      return;
    }
    this.settleActions("edit", data.id);
    const changes = {};
    ["body", "html", "edited", "mentions", "attachments", "broadcast"].forEach((key) => {
      if (key in data) {
        changes[key] = data[key];
      }
    });
    this.threads.applyEdited(data, changes);
    if (!this.messages.has(data.id)) {
      return; // not loaded here; it shows as edited when loaded
    }
    const message = this.holdMessage(Object.assign({}, changes, { id: data.id }));
    this.emit("message-edited", { message, changes });
  }

  /* An admin removed a file: the message shows the rest of its attachments. */
  applyAttachmentRemoved(data) {
    const message = data.room === this.room && typeof data.message === "number" ? this.messages.get(data.message) : null;
    if (!message || !Array.isArray(message.attachments) || typeof data.id !== "number") {
      return;
    }
    const changes = { attachments: message.attachments.filter((a) => a.id !== data.id) };
    this.emit("message-edited", { message: this.holdMessage(Object.assign({}, changes, { id: message.id })), changes });
  }

  applyReaction(data) {
    if (data.room !== this.room || typeof data.id !== "number" || typeof data.emoji !== "string") {
      return;
    }
    this.settleActions("react", data.id);
    const users = Array.isArray(data.users) ? data.users.slice() : [];
    this.threads.applyReaction(data, users);
    const message = this.messages.get(data.id);
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
    this.emit("reaction", { id: data.id, emoji: data.emoji, users });
  }

  /* A deleted message goes; a root with replies stays as a placeholder that still opens its thread. */
  applyDeleted(id) {
    this.threads.applyDeleted(id);
    const held = this.messages.get(id);
    if (held && held.replies > 0) {
      const changes = deletedChanges();
      this.emit("message-edited", { message: this.holdMessage(Object.assign({}, changes, { id })), changes });
      return;
    }
    this.dropMessage(id);
  }

  dropMessage(id) {
    if (this.messages.delete(id)) {
      this.emit("message-removed", { id });
    }
  }

  /*
   * Older messages from the history API; returns those not held before, oldest
   * first. Replies only in their thread are left out of the room's list, but
   * paging goes on below them (oldestId), so a page of them does not stall it.
   */
  addOlder(page) {
    const added = [];
    let floor = this.oldestId;
    page.forEach((m) => {
      if (typeof m.id !== "number" || this.messages.has(m.id) || (this.oldestId !== null && m.id >= this.oldestId)) {
        return;
      }
      if (isThreadOnly(m)) {
        floor = floor === null ? m.id : Math.min(floor, m.id);
        return;
      }
      added.push(m);
    });
    const held = added.sort((a, b) => a.id - b.id).map((m) => this.holdMessage(m));
    if (floor !== null && (this.oldestId === null || floor < this.oldestId)) {
      this.oldestId = floor;
    }
    return held;
  }

  // --- counts and the sidebar's rooms ----------------------------------------------

  /* A new message by someone else in a room not being read: count it until the server says otherwise. */
  bump(slug, m) {
    const entry = this.rooms.get(slug);
    if (!entry || m.id <= (entry.last_read_id || 0)) {
      return false;
    }
    entry.unread = (entry.unread || 0) + 1;
    if (mentionsMe(m, this.me)) {
      entry.mentions = (entry.mentions || 0) + 1;
    }
    this.emit("counts", { entry });
    return true;
  }

  /* The server's read marker and counts for a room (a `read` event, `resumed`). */
  setCounts(slug, counts) {
    if (slug === this.room && typeof counts.last_read_id === "number") {
      this.marker = counts.last_read_id;
    }
    const entry = this.rooms.get(slug);
    if (!entry) {
      return;
    }
    ["unread", "mentions", "last_read_id", "thread_unread", "thread_mentions"].forEach((key) => {
      if (typeof counts[key] === "number") {
        entry[key] = counts[key];
      }
    });
    this.emit("counts", { entry });
  }

  upsertRoom(data) {
    if (!data || typeof data.slug !== "string") {
      return;
    }
    if (data.archived) {
      this.removeRoom(data.slug);
      return;
    }
    let entry = this.rooms.get(data.slug);
    if (!entry) {
      // A conversation's people: from its name; a new membership's level: its kind's default.
      entry = { unread: 0, mentions: 0, last_read_id: 0, notify: "default" };
      this.rooms.set(data.slug, entry);
    }
    const oldLabel = entry.slug ? roomLabel(entry, this.me) : null;
    ROOM_FIELDS.forEach((key) => {
      if (key in data) {
        entry[key] = data[key];
      }
    });
    this.emit("room", { entry, oldLabel });
  }

  /* The person's level for a room changed (a `notify` event, or this page's own change). */
  applyNotify(data) {
    const entry = typeof data.room === "string" ? this.rooms.get(data.room) : null;
    if (!entry || typeof data.notify !== "string" || entry.notify === data.notify) {
      return;
    }
    entry.notify = data.notify;
    this.emit("notify", { entry });
    this.emit("counts", { entry });
  }

  removeRoom(slug) {
    this.rooms.delete(slug);
    this.emit("room-removed", { slug });
  }

  /* Someone else joined or left a conversation in the sidebar: its label, and whom it shows. */
  updateDmMembers(slug, user, joined) {
    const entry = this.rooms.get(slug);
    if (!entry || entry.kind !== "dm") {
      return;
    }
    const oldLabel = roomLabel(entry, this.me);
    const others = new Set(dmOthers(entry, this.me));
    if (joined) {
      others.add(user);
    } else {
      others.delete(user);
    }
    entry.members = Array.from(others).sort();
    this.emit("room", { entry, oldLabel });
  }

  /* A room's name, topic or archived state changed (a `room` event, or this page's own change). */
  applyRoom(room) {
    if (!room || typeof room.slug !== "string") {
      return;
    }
    if (room.slug === this.room) {
      Object.assign(this.roomInfo, room);
      this.emit("room-info");
    }
    if (room.archived) {
      this.removeRoom(room.slug);
    } else if (room.slug !== this.room || this.isMember) {
      this.upsertRoom(room);
    }
  }

  applyMember(data, fresh) {
    const room = data.room || {};
    const slug = room.slug;
    if (typeof slug !== "string") {
      return;
    }
    const joined = data.action === "joined" || data.action === "invited";
    if (data.user === this.me) {
      if (joined) {
        if (!room.archived) {
          this.upsertRoom(room);
        }
        if (slug === this.room) {
          this.becomeMember();
        } else if (fresh && !this.catchingUp && data.action === "invited" && data.by && data.by !== this.me) {
          this.emit("notice", { text: data.by + " added you to " + roomTitle(room, this.me) + "." });
        }
      } else if (data.action === "deleted") {
        this.applyRoomDeleted(data);
      } else {
        this.removeRoom(slug);
        if (slug === this.room) {
          this.loseMembership(data);
        }
      }
    } else if (typeof data.user === "string") {
      this.updateDmMembers(slug, data.user, joined);
      if (slug === this.room) {
        this.emit("member", { user: data.user, joined });
      }
    }
  }

  /*
   * An admin deleted a room this person was in: it leaves the sidebar; this
   * room's page ends as after a removal, with nothing left to join. Another
   * room's deletion is said too (its history went with it).
   */
  applyRoomDeleted(data) {
    const slug = data.room.slug;
    // The sidebar's entry knows a conversation's people; the event names the room as it was.
    const room = Object.assign({}, data.room, this.rooms.get(slug) || {});
    this.removeRoom(slug);
    if (slug === this.room) {
      this.roomDeleted = true;
      this.loseMembership(data);
    } else if (data.by && data.by !== this.me) {
      this.emit("notice", { text: deletedNote(room, this.me, data.by) });
    }
  }

  becomeMember() {
    if (this.isMember) {
      return;
    }
    this.isMember = true;
    this.upsertRoom(this.roomInfo);
    this.emit("membership", { member: true });
  }

  /* `data`: the `member` event that ended it ({action: "removed"} when `resumed` says so). */
  loseMembership(data) {
    if (!this.isMember) {
      return;
    }
    this.isMember = false;
    this.emit("membership", { member: false, action: data.action, by: data.by || null });
    this.removeRoom(this.room);
  }

  applyResumed(data) {
    if (Array.isArray(data.rooms)) {
      const joined = new Set();
      data.rooms.forEach((counts) => {
        if (counts && typeof counts.room === "string") {
          joined.add(counts.room);
          this.setCounts(counts.room, counts);
        }
      });
      Array.from(this.rooms.keys()).forEach((slug) => {
        if (!joined.has(slug)) {
          this.removeRoom(slug);
        }
      });
      if (this.isMember && !joined.has(this.room)) {
        this.loseMembership({ action: "removed" });
      }
    }
    this.threads.applyResumed(data.threads);
    this.catchingUp = false;
    this.emit("resumed");
  }

  // --- typing and presence --------------------------------------------------------

  applyTyping(data) {
    if (data.room !== this.room || data.user === this.me || typeof data.user !== "string") {
      return;
    }
    this.typers.set(data.user, this.now() + TYPING_SHOWN_MS);
    this.emit("typing");
  }

  /* Forget indicators that have run out; returns when the next one does (Infinity: none left). */
  pruneTypers() {
    const now = this.now();
    let next = Infinity;
    this.typers.forEach((until, name) => {
      if (until <= now) {
        this.typers.delete(name);
      } else {
        next = Math.min(next, until);
      }
    });
    return next;
  }

  clearTypers() {
    this.typers.clear();
  }

  /* `users`: the states of people this socket follows, all of them (the answer to presence_sub) or the changes. */
  applyPresence(users) {
    if (!users || typeof users !== "object") {
      return;
    }
    const changed = new Set();
    Object.keys(users).forEach((name) => {
      if (PRESENCE_STATES.has(users[name])) {
        this.presence.set(name, users[name]);
        changed.add(name);
      }
    });
    if (changed.size) {
      this.emit("presence", { changed });
    }
  }

  // --- the outbox: sends not stored yet ----------------------------------------------
  //
  // Sends go out one at a time, in the order typed, paced under the server's
  // send bucket: the next leaves once the one before is stored. Nothing is
  // sent past a failed one (it would be stored before it): a failure fails
  // every unsent message behind it too, and retryAll() puts them all back in
  // line, in order. So the list shows them where they were typed.

  /*
   * A message typed here: pending until the server's `message` with its nonce
   * comes back. `attachments` are its uploads (attachment objects, shown while
   * pending); every send of it, retries included, carries the same ids.
   */
  queue(body, nonce, created, attachments = [], thread = null) {
    const entry = { nonce, body, created, attachments, user: this.me, state: "pending", reason: null, sent: false };
    if (thread) {
      // A reply: {root, inChannel}. It waits in the same line as every other send.
      entry.thread = thread.root;
      entry.inChannel = !!thread.inChannel;
    }
    this.outbox.set(nonce, entry);
    return entry;
  }

  /*
   * Tokens in the estimated bucket now (refilled since last asked). The server
   * takes a send's token somewhere between its sending and its answer; counted
   * as taken at the answer (no refill in between), the estimate never runs
   * ahead of the server's bucket however the delays vary.
   */
  refillSendTokens() {
    const now = this.now();
    if (this.sendTokensAt !== null && this.sendRate > 0 && !this.sendAwaited) {
      this.sendTokens = Math.min(this.sendBurst, this.sendTokens + ((now - this.sendTokensAt) / 1000) * this.sendRate);
    }
    this.sendTokensAt = now;
    return this.sendTokens;
  }

  /*
   * What to send now: {entry} (send it, then outboxSent()), {wait} (ms until
   * the pace allows the next), or null (nothing to send: the outbox is empty,
   * a send is awaiting its reply, or the next is failed and waits for a retry).
   */
  outboxNext() {
    for (const entry of this.outbox.values()) {
      if (entry.state !== "pending" || entry.sent) {
        return null;
      }
      if (this.sendRate <= 0) {
        return { entry, wait: 0 };
      }
      const tokens = this.refillSendTokens();
      if (tokens >= 1) {
        return { entry, wait: 0 };
      }
      return { entry: null, wait: Math.ceil(((1 - tokens) / this.sendRate) * 1000) };
    }
    return null;
  }

  /* (Again) waiting to be sent. */
  outboxPending(nonce) {
    const entry = this.outbox.get(nonce);
    if (entry) {
      entry.state = "pending";
      entry.reason = null;
      entry.sent = false;
      this.emit("outbox", { entry });
    }
    return entry;
  }

  /* Handed to the socket: it spends a token of the bucket. */
  outboxSent(nonce) {
    const entry = this.outbox.get(nonce);
    if (entry) {
      entry.sent = true;
      this.refillSendTokens();
      this.sendTokens = Math.max(0, this.sendTokens - 1);
      this.sendAwaited = true;
    }
  }

  /* The send on its way was answered (stored or refused) or lost with its socket: refilling goes on. */
  sendSettled() {
    this.refillSendTokens();
    this.sendAwaited = false;
  }

  /* Not stored: this one fails with `reason`, and every unsent one typed after it waits with it. */
  outboxFail(nonce, reason) {
    const entry = this.outbox.get(nonce);
    if (!entry) {
      return;
    }
    if (entry.sent) {
      this.sendSettled();
    }
    let behind = false;
    Array.from(this.outbox.values()).forEach((other) => {
      if (other === entry) {
        behind = true;
        this.failEntry(other, reason);
      } else if (behind && other.state === "pending" && !other.sent) {
        this.failEntry(other, "waiting for the message above.");
      }
    });
  }

  failEntry(entry, reason) {
    entry.state = "failed";
    entry.reason = reason;
    entry.sent = false;
    this.emit("outbox", { entry });
  }

  /* The server refused a send for its rate: the bucket is empty, whatever this page counted. */
  sendRefusedForRate() {
    this.sendSettled();
    this.sendTokens = 0;
  }

  /* Every failed message back in line, in the order typed; returns how many. */
  retryAll() {
    const failed = this.failed();
    failed.forEach((entry) => this.outboxPending(entry.nonce));
    return failed.length;
  }

  failed() {
    return Array.from(this.outbox.values()).filter((entry) => entry.state === "failed");
  }

  /* The socket is gone: pending messages wait, to be sent again with the same nonce. */
  outboxSuspend() {
    this.sendSettled();
    this.outbox.forEach((entry) => {
      if (entry.state === "pending") {
        entry.sent = false;
      }
    });
  }

  failPending(reason) {
    Array.from(this.outbox.values()).forEach((entry) => {
      if (entry.state === "pending") {
        this.failEntry(entry, reason);
      }
    });
  }

  /* Pending messages not on the current socket yet, in the order they were typed. */
  unsent() {
    return Array.from(this.outbox.values()).filter((entry) => entry.state === "pending" && !entry.sent);
  }

  // --- edits, deletions and reactions awaiting their event ------------------------------

  /* `revert` (optional) undoes what the page showed ahead of the server's answer. */
  expect(nonce, kind, id, revert) {
    this.actions.set(nonce, { kind, id, revert: revert || null });
  }

  settleActions(kind, id) {
    this.actions.forEach((action, nonce) => {
      if (action.kind === kind && action.id === id) {
        this.actions.delete(nonce);
      }
    });
  }

  /* The socket is gone: undo what was shown early; the replay re-applies what was stored. */
  revertActions() {
    this.actions.forEach((action) => {
      if (action.revert) {
        action.revert();
      }
    });
    this.actions.clear();
  }

  /* A refused frame: a send fails, an early edit or deletion goes back; anything else is said. */
  applyError(data) {
    const detail = typeof data.detail === "string" && data.detail ? data.detail : String(data.code);
    const nonce = typeof data.nonce === "string" ? data.nonce : null;
    if (nonce && this.outbox.has(nonce)) {
      if (data.code === "rate_limited") {
        this.sendRefusedForRate();
      }
      this.outboxFail(nonce, detail);
      return;
    }
    const action = nonce ? this.actions.get(nonce) : undefined;
    if (action) {
      this.actions.delete(nonce);
      if (action.revert) {
        action.revert();
      }
    }
    this.emit("notice", { text: detail });
  }
}
